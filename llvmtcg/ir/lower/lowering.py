"""The lowering's entry point: IR blocks -> LLVM IR modules (text).

:class:`Lowering` assembles modules from the three function shapes — cheap-tier
blocks (``block_function.py``), hot regions (``region_function.py``) and memory
accessors (``accessor_function.py``) — and the declarations they need: slow paths,
the soft-float helper, the helpers blocks call, the accessors they use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_abi
from llvmtcg.ir.block import Block
from llvmtcg.ir.helper_decl import HelperDecl
from llvmtcg.ir.lower.emitter import LoweringError, LoweringOptions
from llvmtcg.ir.lower.symbols import accessor_declaration, quote, slot_symbol
from llvmtcg.ir.ops import EXIT_REASON_BITS

# (_rules: the three function shapes, and through them the rule table, are imported by
# the methods that lower: a warm start places stored code and lowers nothing, and
# importing the rules cost it ~3 ms.)

assert EXIT_REASON_BITS == 3  # exit slots are 8-byte aligned: their low 3 bits are free



class Lowering:
    """Lowers blocks against one CPU layout and helper set.

    Args:
        layout: the CPU-state layout (field offsets, TLB geometry).
        helpers: declarations of the helpers blocks may call, by name.
        count_insns: add each block's instruction count to ``insn_count`` on entry.
        inline_memory: expand every guest access's TLB probe inline (fast code), with a
            call to the shared accessor only on a miss, rather than calling the accessor
            for every access (about half the LLVM IR for memory-heavy blocks, so much
            faster to compile). Accessors a module calls are listed in
            ``accessors_used``; :meth:`accessor_module` defines them.
        hot_threshold: if nonzero, each block counts its executions down from this in a
            module global (:func:`counter_symbol`) and returns HOT, once, on reaching 0.
        flat_memory: with ``inline_memory``, check an access against the page-flag
            table (``page_table``/``page_count``) instead of probing the TLB: valid
            when guest RAM is identity-mapped from ``%mem`` (a GuestMemory), as in user
            mode. Same work as a TLB hit, but it never misses, however scattered the
            accesses (a TLB of 1024 pages covers 4 MiB).
    """

    def __init__(self, layout: abi.CpuLayout, helpers: Mapping[str, HelperDecl],
                 count_insns: bool = False, inline_memory: bool = True,
                 hot_threshold: int = 0, flat_memory: bool = False) -> None:
        self.options = LoweringOptions(layout, helpers, count_insns, inline_memory,
                                       hot_threshold, flat_memory)
        self.accessors_used: set[str] = set()

    @property
    def layout(self) -> abi.CpuLayout:
        return self.options.layout

    @property
    def helpers(self) -> Mapping[str, HelperDecl]:
        return self.options.helpers

    @property
    def count_insns(self) -> bool:
        return self.options.count_insns

    @property
    def inline_memory(self) -> bool:
        return self.options.inline_memory

    @property
    def hot_threshold(self) -> int:
        return self.options.hot_threshold

    @property
    def flat_memory(self) -> bool:
        return self.options.flat_memory

    def lower_module(self, blocks: Iterable[Block], triple: str = "") -> str:
        """A module of cheap-tier block functions, one per block."""
        from llvmtcg.ir.lower.block_function import block_globals  # noqa: PLC0415 - see _rules

        blocks = list(blocks)
        self.accessors_used = set()
        out: list[str] = []
        if triple:
            out.append(f'target triple = "{triple}"')
        for b in blocks:
            out += block_globals(b, self.options.hot_threshold)
        out += self._declarations(blocks)
        functions = [self.lower_function(b) for b in blocks]
        for name in sorted(self.accessors_used):
            out.append(accessor_declaration(name))
        return "\n".join(out + functions) + "\n"

    def lower_function(self, block: Block) -> str:
        """The cheap-tier function of one block (accessors it calls are added to
        ``accessors_used``)."""
        from llvmtcg.ir.lower.block_function import lower_block_function  # noqa: PLC0415

        return lower_block_function(self.options, block, self.accessors_used)

    def lower_region(self, name: str, blocks: Iterable[Block], triple: str = "",
                     indirect_targets: Iterable[int] = ()) -> tuple[str, dict[int, int]]:
        """One function ``@name`` for a region: ``blocks[0]`` is its entry, and a
        ``goto_tb`` to any member's pc is a branch to that member. An indirect jump
        first compares its target with the head, the continuations of calls made in
        the region (returns) and ``indirect_targets``, and branches there on a match.

        Returns the module text and the region's exits: destination pc -> exit slot
        number (the slot's symbol is ``slot_symbol(name, n)``).
        """
        from llvmtcg.ir.lower.region_function import lower_region_function  # noqa: PLC0415

        blocks = list(blocks)
        self.accessors_used = set()
        function, exits = lower_region_function(self.options, name, blocks, indirect_targets,
                                                self.accessors_used)
        out = [f'target triple = "{triple}"'] if triple else []
        out += [f"@{quote(slot_symbol(name, n))} = global ptr null, align 8"
                for n in sorted(exits.values())]
        out += self._declarations(blocks)
        out += [accessor_declaration(a) for a in sorted(self.accessors_used)]
        return "\n".join([*out, function]) + "\n", exits

    def accessor_module(self, names: Iterable[str], triple: str = "") -> str:
        """LLVM IR defining the out-of-line memory accessors ``names``."""
        from llvmtcg.ir.lower.accessor_function import (  # noqa: PLC0415
            lower_accessor_function,
        )

        out = [f'target triple = "{triple}"'] if triple else []
        out += host_abi.declarations(host_abi.ACCESSOR_IMPORTS)
        out += [lower_accessor_function(self.options, name) for name in names]
        return "\n".join(out) + "\n"

    def _declarations(self, blocks: list[Block]) -> list[str]:
        out = host_abi.declarations(host_abi.BLOCK_IMPORTS)
        out.append(host_abi.declaration(host_abi.TB_LOOKUP))
        used_helpers = {op.args[0] for b in blocks for op in b.ops if op.name == "call"}
        for name in sorted(used_helpers):
            decl = self.helpers.get(name)
            if decl is None:
                raise LoweringError(f"call to undeclared helper {name!r}")
            out.append(host_abi.declaration(host_abi.HostFunction.for_helper(decl),
                                            decl.llvm_attributes()))
        return out
