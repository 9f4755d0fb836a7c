"""The RISC-V frontend: fetch, decode and translate one block of guest code."""

from __future__ import annotations

import functools
from collections.abc import Callable

from llvmtcg.frontends.riscv import (
    RiscvDecoder,
    insn_length,
    trans_rva,
    trans_rvb,
    trans_rvd,
    trans_rvf,
    trans_rvi,
    trans_rvm,
    trans_system,
)
from llvmtcg.frontends.riscv.cpu import CpuModel
from llvmtcg.frontends.riscv.fpu import FFLAGS, FRM
from llvmtcg.frontends.riscv.priv.state import FsState, TbFlags
from llvmtcg.frontends.riscv.translate import (
    GLOBALS,
    MAX_INSNS_PER_BLOCK,
    NORETURN,
    BlockEnd,
    DisasContext,
    F,
)
from llvmtcg.ir import Block, Builder, Op
from llvmtcg.ir.cpu_layout import PAGE_SIZE
from llvmtcg.ir.ops import OPS
from llvmtcg.ir.recording import Recording, record
from llvmtcg.log import Log
from llvmtcg.runtime.exits import GuestFault

TRANSLATOR_MODULES = (trans_rvi, trans_rvm, trans_rva, trans_rvf, trans_rvd, trans_rvb,
                      trans_system)


@functools.cache
def decoder() -> RiscvDecoder:
    """The decoder bound to the translators, built on first use (a run served by the
    code cache never needs it). A pattern without a translator, or a translator without
    a pattern, is an error here (tests/frontends checks it is not)."""
    return RiscvDecoder(*TRANSLATOR_MODULES)


_FP_STATE = frozenset((*F, FFLAGS, FRM))
_PAGE_OFFSET = PAGE_SIZE - 1
_LAST_WORD = PAGE_SIZE - 4  # (the last page offset a 4-byte fetch stays on the page)


def _touches_fp_state(ops: list) -> bool:
    return any(t in _FP_STATE for op in ops for t in (*op.outputs, *op.inputs))


_NEXT = BlockEnd.NEXT
_UNSEEN = object()  # (the memo has no verdict on a word yet)
_SEEN_ONCE = object()  # (translated once: recorded when met again)
_new_op = tuple.__new__  # (as Builder does: a named tuple's constructor is Python)
_TERMINATORS = frozenset(name for name, op in OPS.items() if op.is_terminator)
_MEMO_LIMIT = 1 << 16  # words per memo (bounded: system mode meets many flags values)
_PC, _NEXT_PC, _BLOCK_PC = DisasContext.pc, DisasContext.next_pc, DisasContext.block_pc
_FLAGS = DisasContext.flags


class _TrackedContext(DisasContext):
    """A translation context that notes when a translator reads an address (the
    instruction's, the next one's or the block's; ``address_read``): the IR of such
    an instruction depends on where it is, so the memo does not record it. And when
    it reads the translation flags (``flags_read``: privilege, MMU index, FS, paging,
    read through ``flags`` by ``priv``, ``mem_idx``, ``has_ext`` of F/D and the
    privileged translators): the IR of an instruction that did not is the same under
    every flags value, so its recording serves them all. (The block's context becomes
    one while an instruction is recorded: the same slots.)"""

    __slots__ = ()

    @property
    def flags(self) -> int:
        self.flags_read = True
        return _FLAGS.__get__(self)

    @flags.setter
    def flags(self, value: int) -> None:
        _FLAGS.__set__(self, value)

    @property
    def pc(self) -> int:
        self.address_read = True
        return _PC.__get__(self)

    @pc.setter
    def pc(self, value: int) -> None:
        _PC.__set__(self, value)

    @property
    def next_pc(self) -> int:
        self.address_read = True
        return _NEXT_PC.__get__(self)

    @next_pc.setter
    def next_pc(self, value: int) -> None:
        _NEXT_PC.__set__(self, value)

    @property
    def block_pc(self) -> int:
        self.address_read = True
        return _BLOCK_PC.__get__(self)

    @block_pc.setter
    def block_pc(self, value: int) -> None:
        _BLOCK_PC.__set__(self, value)


def _recording(ctx: _TrackedContext, next_pc: int, first_op: int, first_local: int,
               first_label: int, first_label_used: int) -> Recording | None:
    """The recording of the instruction ``ctx`` just translated, or None if its IR
    may differ elsewhere: it read an address (auipc, jumps, branches, traps), ended
    the block or changed the translation state."""
    if (ctx.address_read or ctx.end is not _NEXT or ctx.frm_checked
            or _NEXT_PC.__get__(ctx) != next_pc):
        return None
    b = ctx.builder
    ops = b.block.ops
    for i in range(first_op, len(ops)):
        if ops[i].name in _TERMINATORS:
            return None
    return record(b, first_op, first_local, first_label, first_label_used)


class RiscvFrontend:
    """Translates RV64GC (+Zba/Zbb/Zbs) code for one CPU model (the translator behind
    :class:`llvmtcg.frontends.riscv.arch.Riscv64Arch`).

    Args:
        model: the CPU model (which extensions are enabled).
        system: translate for the flags' privilege, MMU index and FS state.
        memo: remember the IR of each instruction word that does not depend on its
            address or on the instructions before it, and replay it when the word is
            met again (same flags) instead of decoding and translating it: the same
            ops, with the block's own temps and labels.
    """

    def __init__(self, model: CpuModel | None = None, *, system: bool = False,
                 memo: bool = True) -> None:
        self.model = model or CpuModel()
        self.memo = memo  # replay the IR of instruction words translated before
        self.system = system  # translate for the flags' privilege, MMU index and FS
        self._disassembler = None
        # Per translation flags: instruction word -> its recorded IR (replayed instead
        # of decoding and translating it again), or None when it cannot be recorded.
        self._memos: dict[int, dict[int, Recording | None]] = {}
        # Across flags values: instruction word -> its recording when its translation
        # read no flags (most instructions: the same IR in M, S and U mode, at every
        # MMU index and FS state), _SEEN_ONCE when met once under some flags, None
        # when its IR depends on the flags (loads and stores: their MMU index) or on
        # its address. A flags value's memo takes the recording from here at its first
        # sight of the word, so code met under several flags values (OpenSBI in M mode
        # with FS Off and Dirty; user space with FS Clean and Dirty; the kernel before
        # and after paging) is decoded and translated once, not once per value.
        self._shared: dict[int, Recording | object | None] = {}
        # Per translation flags: whether FS is Initial or Clean (the first FP
        # instruction marks it Dirty). (FS takes 4 values: a few flags values a run.)
        self._fs_clean: dict[int, bool] = {}

    def clear_memo(self) -> None:
        """Forget every recorded instruction (benchmarks measure first translations)."""
        self._memos.clear()
        self._shared.clear()

    @property
    def decoder(self) -> RiscvDecoder:
        return decoder()

    def translate(self, pc: int, fetch: Callable[[int, int], bytes],
                  log: Log | None = None, flags: int = 0) -> Block:
        """The block at pc for translation flags ``flags`` (system mode; layout
        priv.state.TbFlags); ``log`` gets its guest instructions under ``-d in_asm``."""
        b = Builder(pc, GLOBALS)
        use_memo = self.memo
        ctx = DisasContext(self.model, b, pc, system=self.system, flags=flags, block_pc=pc)
        # FP state is marked Dirty by the first instruction that touches it (system
        # mode, FS Initial or Clean); QEMU's mark_fs_dirty, conservatively also for
        # instructions that only read FP registers, as the spec allows.
        fs_clean = self._fs_clean.get(flags)
        if fs_clean is None:  # (an enum made and compared per block: ~1% of a boot)
            fs_clean = self._fs_clean[flags] = (
                self.system and TbFlags.fs(flags) not in (FsState.OFF, FsState.DIRTY))
        page_end = (pc & ~(PAGE_SIZE - 1)) + PAGE_SIZE
        tables = decoder()  # (each table's dispatch directly: one call less per insn)
        dispatch32, dispatch16 = tables.insn32.dispatch, tables.insn16.dispatch
        block = b.block
        ops = block.ops
        memo = self._memos.get(flags)
        if memo is None or len(memo) >= _MEMO_LIMIT:
            memo = self._memos[flags] = {}
        memo_get = memo.get
        shared = self._shared
        if len(shared) >= _MEMO_LIMIT:
            shared.clear()
        shared_get = shared.get
        starts = [] if log is not None and log.enabled("in_asm") else None
        # The addresses are kept here and written to ctx (through the slots: no
        # tracking) only when a translator runs.
        set_pc, set_next_pc, get_next_pc = _PC.__set__, _NEXT_PC.__set__, _NEXT_PC.__get__
        insn_pc = pc
        while True:
            # Four bytes in one fetch when they lie on one page. Where that faults (a
            # compressed instruction that ends the mapping or a fetch limit, a PMP
            # boundary) two bytes first, then the instruction's own size: the fetches
            # that decide whether and where the block ends are of the instruction's
            # own size, as fetch hooks expect.
            insn = -1
            if insn_pc & _PAGE_OFFSET <= _LAST_WORD:
                try:
                    insn = int.from_bytes(fetch(insn_pc, 4), "little")
                except GuestFault:
                    pass
                else:
                    length = 4 if insn & 3 == 3 else 2
                    if length == 2:
                        insn &= 0xFFFF
            try:
                if insn < 0:
                    insn = int.from_bytes(fetch(insn_pc, 2), "little")
                    length = insn_length(insn)
                    if length == 4:
                        insn = int.from_bytes(fetch(insn_pc, 4), "little")
            except GuestFault:
                if block.n_insns == 0:
                    raise  # the block's first instruction: the guest takes the fault
                set_pc(ctx, insn_pc)
                ctx.goto(0, insn_pc)  # stop before it; it faults when executed
                break
            block.n_insns += 1  # (Builder.insn_start, inline)
            ops.append(_new_op(Op, ("insn_start", (), (), (insn_pc,))))
            next_pc = insn_pc + length
            if starts is not None:
                starts.append((insn, length))
            first_op = len(ops)
            # The memo serves blocks whose translation state is still the initial one
            # (a dynamic rounding mode check makes later FP instructions differ).
            recorded = memo_get(insn, _UNSEEN) if use_memo and not ctx.frm_checked else None
            if recorded is _UNSEEN:  # (this flags value's first sight: other values'?)
                other = shared_get(insn, _UNSEEN)
                if type(other) is Recording:
                    recorded = memo[insn] = other
                elif other is _UNSEEN:
                    shared[insn] = _SEEN_ONCE
                elif other is _SEEN_ONCE:
                    recorded = _SEEN_ONCE  # (met under another value: record it now)
            if type(recorded) is Recording:
                recorded.replay(b)
                translated = True
            else:
                if recorded is _UNSEEN:  # (most words are met once: record the second)
                    memo[insn] = _SEEN_ONCE
                set_pc(ctx, insn_pc)
                set_next_pc(ctx, next_pc)
                ctx.insn, ctx.insn_len = insn, length
                if recorded is _SEEN_ONCE:  # (record it: note what it reads)
                    first_local, first_label = len(block.locals), block.n_labels
                    first_label_used = len(b._labels_used)  # noqa: SLF001
                    ctx.address_read = ctx.flags_read = False
                    ctx.__class__ = _TrackedContext
                    translated = (dispatch32 if length == 4 else dispatch16)(ctx, insn)
                    ctx.__class__ = DisasContext
                    recording = memo[insn] = _recording(
                        ctx, next_pc, first_op, first_local, first_label,
                        first_label_used) if translated else None
                    shared[insn] = None if ctx.flags_read else recording
                else:
                    translated = (dispatch32 if length == 4 else dispatch16)(ctx, insn)
                next_pc = get_next_pc(ctx)
            if not translated:
                ctx.illegal()
            elif fs_clean and ctx.end is not NORETURN and _touches_fp_state(ops[first_op:]):
                set_pc(ctx, insn_pc)
                set_next_pc(ctx, next_pc)
                ctx.insn, ctx.insn_len = insn, length
                trans_system.mark_fs_dirty(ctx)  # (ends the block)
            insn_pc = next_pc
            if ctx.end is NORETURN:
                break
            if block.n_insns >= MAX_INSNS_PER_BLOCK or insn_pc >= page_end:
                set_pc(ctx, insn_pc)
                ctx.goto(0, insn_pc)
                break
        block = b.finish()
        block.guest_size = insn_pc - pc
        if starts is not None:
            code = b"".join(insn.to_bytes(length, "little") for insn, length in starts)
            log.write(self.disassemble(code, pc))
        return block

    def disassemble(self, code: bytes, pc: int) -> str:
        import capstone  # only needed for -d in_asm

        if self._disassembler is None:
            self._disassembler = capstone.Cs(
                capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
        lines = [f"IN: {pc:#x}"]
        offset = 0
        for insn in self._disassembler.disasm(code, pc):
            lines.append(f"0x{insn.address:016x}:  {insn.bytes[::-1].hex():>8}  "
                         f"{insn.mnemonic} {insn.op_str}".rstrip())
            offset += insn.size
        if offset < len(code):  # capstone lacks some extensions (Zb*): show raw words
            lines.append(f"0x{pc + offset:016x}:  {code[offset:].hex()}  (not disassembled)")
        return "\n".join(lines) + "\n"
