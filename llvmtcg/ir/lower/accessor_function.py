"""The accessor function shape: the out-of-line guest memory access shared by every
block of an engine, one per (kind, MemOp, MMU index) — ``llvmtcg_ld_<memop>_<mmu>``
and friends (names and signatures in ``symbols.py``).

An accessor probes the TLB; on a miss it refills the entry natively from the page-flag
table when the page is plain guest RAM with the needed permission, else calls the
Python slow path (MMIO, translated code, page-crossing or misaligned accesses,
faults). It returns its result with a success bit instead of leaving through a guest
exit: the caller takes its own fault exit. The ``_pa`` variant is the same body with
LLVM's preserve_all convention, called by inline probes on a miss.
"""

from __future__ import annotations

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_abi
from llvmtcg.ir.block import Block
from llvmtcg.ir.lower.emitter import Emitter, LoweringOptions
from llvmtcg.ir.lower.memory import PAGE_OK_BITS, host_pointer, oi, tlb_probe
from llvmtcg.ir.lower.symbols import ACCESSOR_SIGNATURES, accessor_cc, parse_accessor_name
from llvmtcg.ir.types import MemOp, to_signed


class AccessorFunction(Emitter):
    """The emitter of an accessor: CPU-state field pointers are made where used (the
    function is small and has no entry-block preamble); no guest exits."""

    __slots__ = ()

    def state_ptr(self, offset: int) -> str:
        return self.value(f"getelementptr i8, ptr %cpu, i64 {offset}")

    field_ptr = state_ptr


def _ret_ok(em: Emitter, ret: str, type_: str, value: str) -> None:
    """Return {value, true} (aggregate constants cannot hold SSA values)."""
    zero = "0" if type_ == "i64" else "null"
    pair = em.value(f"insertvalue {ret} {{ {type_} {zero}, i1 true }}, {type_} {value}, 0")
    em.emit(f"ret {ret} {pair}")


def _native_refill(em: Emitter, kind: str, memop: MemOp, mmu_idx: int, entry: str) -> None:
    """TLB miss: fill the entry from the page table (or the CPU's native page-table
    walker) and probe again, or go to ``slow``.

    Only plain guest RAM with the access's permissions qualifies (and, for stores and
    atomics, no translated code on the page); page-crossing and misaligned accesses
    are left to the slow path, which splits them or raises the fault.
    """
    em.new_block("refill")
    table = em.load_field("page_table")
    count = em.load_field("page_count")
    page_index = em.value(f"lshr i64 %addr, {abi.PAGE_BITS}")
    in_table = em.value(f"icmp ult i64 {page_index}, {count}")  # count is 0 without a table
    offset_in_page = em.value(f"and i64 %addr, {abi.PAGE_SIZE - 1}")
    fits = em.value(f"icmp ule i64 {offset_in_page}, {abi.PAGE_SIZE - memop.size}")
    aligned = "true"
    if memop.align_log2:
        low = em.value(f"and i64 %addr, {(1 << memop.align_log2) - 1}")
        aligned = em.value(f"icmp eq i64 {low}, 0")
    candidate = em.value(f"and i1 {fits}, {aligned}")
    em.emit(f"br i1 {candidate}, label %table, label %slow")
    em.new_block("table")
    em.emit(f"br i1 {in_table}, label %lookup, label %walk")
    # No page-flag table for this address (system mode has none: virtual is not
    # physical): the CPU's native page-table walker, when it has one, fills the entry
    # or answers 0 (a fault, MMIO, code, anything not simple: the slow path decides).
    em.new_block("walk")
    ctx = em.value(f"inttoptr i64 {em.load_field('tlb_walk')} to ptr")
    has_walker = em.value(f"icmp ne ptr {ctx}, null")
    em.emit(f"br i1 {has_walker}, label %walk.call, label %slow")
    em.new_block("walk.call")
    walker = em.value(f"load ptr, ptr {ctx}, align 8")
    info = (0 if kind == "ld" else 1) | (mmu_idx << 8)  # (Access.READ / WRITE)
    filled = em.value(f"call i64 {walker}(ptr {ctx}, i64 %addr, i64 {info}, ptr {entry})")
    em.emit(f"br i1 {em.value(f'icmp ne i64 {filled}, 0')}, label %probe, label %slow")
    em.new_block("lookup")
    table_ptr = em.value(f"inttoptr i64 {table} to ptr")
    flag_ptr = em.value(f"getelementptr i8, ptr {table_ptr}, i64 {page_index}")
    flags = em.value(f"zext i8 {em.value(f'load i8, ptr {flag_ptr}, align 1')} to i64")
    needed = PAGE_OK_BITS[kind]
    masked = em.value(f"and i64 {flags}, {needed}")
    good = em.value(f"icmp eq i64 {masked}, {needed}")
    em.emit(f"br i1 {good}, label %fill, label %slow")
    em.new_block("fill")
    page = em.value(f"and i64 %addr, {to_signed(abi.PAGE_MASK, 64)}")

    def tag(bit: int, extra: str = "") -> str:
        has = em.value(f"icmp ne i64 {em.value(f'and i64 {flags}, {bit}')}, 0")
        value = page
        if extra:
            value = em.value(f"or i64 {page}, {extra}")
        return em.value(f"select i1 {has}, i64 {value}, i64 -1")

    code_bit = em.value(f"and i64 {flags}, {abi.PAGE_CODE}")
    has_code = em.value(f"icmp ne i64 {code_bit}, 0")
    notdirty = em.value(f"select i1 {has_code}, i64 {abi.TLB_NOTDIRTY}, i64 0")
    for field_offset, value in ((abi.TLB_ADDR_READ, tag(abi.PAGE_R)),
                                (abi.TLB_ADDR_WRITE, tag(abi.PAGE_W, notdirty)),
                                (abi.TLB_ADDR_CODE, tag(abi.PAGE_X)), (abi.TLB_ADDEND, "0")):
        ptr = em.value(f"getelementptr i8, ptr {entry}, i64 {field_offset}")
        em.emit(f"store i64 {value}, ptr {ptr}, align 8")
    em.emit("br label %probe")


def _accessor_body(em: Emitter, kind: str, memop: MemOp, mmu_idx: int) -> None:
    """The inline fast path and slow-path call, returning success instead of exiting."""
    ret = ACCESSOR_SIGNATURES[kind][0]
    which = abi.TLB_ADDR_READ if kind == "ld" else abi.TLB_ADDR_WRITE
    em.emit("br label %probe")
    em.new_block("probe")
    hit, entry = tlb_probe(em, "%addr", memop, mmu_idx, which)
    em.emit(f"br i1 {hit}, label %fast, label %refill")
    _native_refill(em, kind, memop, mmu_idx, entry)
    em.new_block("fast")
    ptr = host_pointer(em, "%addr", entry)
    w = f"i{memop.bits}"
    if kind == "ld":
        raw = em.value(f"load {w}, ptr {ptr}, align 1")
        if memop.big_endian and memop.bits > 8:
            raw = em.value(f"call {w} @llvm.bswap.{w}({w} {raw})")
        if memop.bits < 64:
            raw = em.value(f"{'sext' if memop.signed else 'zext'} {w} {raw} to i64")
        _ret_ok(em, ret, "i64", raw)
    elif kind == "st":
        narrow = "%value" if memop.bits == 64 else em.value(f"trunc i64 %value to {w}")
        if memop.big_endian and memop.bits > 8:
            narrow = em.value(f"call {w} @llvm.bswap.{w}({w} {narrow})")
        em.emit(f"store {w} {narrow}, ptr {ptr}, align 1")
        em.emit("ret i1 true")
    else:
        _ret_ok(em, ret, "ptr", ptr)
    em.new_block("slow")
    info = oi(memop, mmu_idx)
    if kind == "ld":
        status = em.value(host_abi.call(host_abi.SLOW_LOAD, ["%addr", str(info)]))
    elif kind == "st":
        status = em.value(host_abi.call(host_abi.SLOW_STORE, ["%addr", "%value", str(info)]))
    else:
        status = em.value(host_abi.call(host_abi.SLOW_PROBE, ["%addr", str(info)]))
    bad = em.value(f"icmp ne i64 {status}, 0")
    em.emit(f"br i1 {bad}, label %fail, label %done")
    em.new_block("done")
    if kind == "st":
        em.emit("ret i1 true")
    elif kind == "ld":
        _ret_ok(em, ret, "i64", em.load_field("slow_value"))
    else:
        host = em.value(f"getelementptr i8, ptr %mem, i64 {em.load_field('slow_value')}")
        host = em.value(f"getelementptr i8, ptr {host}, i64 %addr")
        _ret_ok(em, ret, "ptr", host)
    em.new_block("fail")
    em.emit(f"ret {ret} zeroinitializer")


def lower_accessor_function(options: LoweringOptions, name: str) -> str:
    """The definition of the accessor ``name`` (an :func:`~symbols.accessor_name`)."""
    kind, memop, mmu_idx, _ = parse_accessor_name(name)
    ret, params = ACCESSOR_SIGNATURES[kind]
    em = AccessorFunction(options, Block(0, name=name), set())
    _accessor_body(em, kind, memop, mmu_idx)
    return "\n".join([f"define {accessor_cc(name)}{ret} @{name}({params}) nounwind {{",
                      "entry:", *em.lines, "}"])
