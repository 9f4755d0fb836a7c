"""Names of the symbols a lowered module defines or imports, shared with the runtime.

A block's exit slots, execution counter and indirect-target profile are module globals
named after the block; the runtime finds them by these names after linking. Memory
accessors are functions shared by every module of an engine, one per (kind, MemOp, MMU
index), named and typed here for both their callers and their definitions.
"""

from __future__ import annotations

import re

from llvmtcg.ir.block import Block
from llvmtcg.ir.types import MemOp


def slot_symbol(block_name: str, n: int) -> str:
    """The module global holding exit slot n's target (a host function pointer)."""
    return f"{block_name}.slot{n}"


def counter_symbol(block_name: str) -> str:
    """The module global counting down a block's executions to its HOT exit."""
    return f"{block_name}.count"


def target_symbol(block_name: str) -> str:
    """The module global recording recent targets of a block's indirect jump (with
    execution counters only): hot regions include targets seen there. It is an array
    of INDIRECT_TARGETS pcs, written round robin (slot = the counter's low bits)."""
    return f"{block_name}.target"


INDIRECT_TARGETS = 4


def has_indirect_exit(block: Block) -> bool:
    return any(op.name == "lookup_and_goto_ptr" for op in block.ops)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9._$]+")


def quote(name: str) -> str:
    """Quote a symbol name when it has characters LLVM identifiers cannot."""
    if _PLAIN_NAME.fullmatch(name):
        return name
    return '"' + name.replace('"', "") + '"'


# -- memory accessors --------------------------------------------------------------------------

# kind -> (return type, parameters): "ld" returns the loaded value (extended to 64 bits),
# "st" stores, "at" returns the host address for an atomic; each with a success bit.
ACCESSOR_SIGNATURES = {
    "ld": ("{ i64, i1 }", "ptr noalias %cpu, ptr %mem, i64 %addr"),
    "st": ("i1", "ptr noalias %cpu, ptr %mem, i64 %addr, i64 %value"),
    "at": ("{ ptr, i1 }", "ptr noalias %cpu, ptr %mem, i64 %addr"),
}


def accessor_name(kind: str, memop: MemOp, mmu_idx: int, on_miss: bool = False) -> str:
    """The accessor's symbol. ``on_miss``: the variant inline probes call on a TLB miss,
    with LLVM's preserve_all calling convention: the caller's registers survive the
    (cold) call, so hot code around it keeps guest registers in host registers instead
    of spilling them for a call that hardly ever happens."""
    return f"llvmtcg_{kind}_{memop.encode():02x}_{mmu_idx}{'_pa' if on_miss else ''}"


def parse_accessor_name(name: str) -> tuple[str, MemOp, int, bool]:
    """(kind, MemOp, MMU index, on_miss) of an :func:`accessor_name`."""
    _, kind, bits, mmu, *pa = name.split("_")
    return kind, MemOp.decode(int(bits, 16)), int(mmu), bool(pa)


def accessor_cc(name: str) -> str:
    """The calling-convention keyword (with a trailing space) of an accessor, or ""."""
    return "preserve_allcc " if parse_accessor_name(name)[3] else ""


def accessor_declaration(name: str) -> str:
    ret, params = ACCESSOR_SIGNATURES[parse_accessor_name(name)[0]]
    types = ", ".join(p.split()[0] for p in params.split(", "))
    return f"declare {accessor_cc(name)}{ret} @{name}({types}) nounwind"
