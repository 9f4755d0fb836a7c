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
    DisasContext,
    F,
)
from llvmtcg.ir import Block, Builder
from llvmtcg.ir.cpu_layout import PAGE_SIZE
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


class RiscvFrontend:
    """Translates RV64GC (+Zba/Zbb/Zbs) code for one CPU model (the translator behind
    :class:`llvmtcg.frontends.riscv.arch.Riscv64Arch`).

    Args:
        model: the CPU model (which extensions are enabled).
    """

    def __init__(self, model: CpuModel | None = None, *, system: bool = False) -> None:
        self.model = model or CpuModel()
        self.system = system  # translate for the flags' privilege, MMU index and FS
        self._disassembler = None

    @property
    def decoder(self) -> RiscvDecoder:
        return decoder()

    def translate(self, pc: int, fetch: Callable[[int, int], bytes],
                  log: Log | None = None, flags: int = 0) -> Block:
        """The block at pc for translation flags ``flags`` (system mode; layout
        priv.state.TbFlags); ``log`` gets its guest instructions under ``-d in_asm``."""
        b = Builder(pc, GLOBALS)
        ctx = DisasContext(self.model, b, pc, system=self.system, flags=flags, block_pc=pc)
        # FP state is marked Dirty by the first instruction that touches it (system
        # mode, FS Initial or Clean); QEMU's mark_fs_dirty, conservatively also for
        # instructions that only read FP registers, as the spec allows.
        fs_clean = self.system and TbFlags.fs(flags) not in (FsState.OFF, FsState.DIRTY)
        page_end = (pc & ~(PAGE_SIZE - 1)) + PAGE_SIZE
        tables = decoder()  # (each table's dispatch directly: one call less per insn)
        dispatch32, dispatch16 = tables.insn32.dispatch, tables.insn16.dispatch
        block = b.block
        starts = [] if log is not None and log.enabled("in_asm") else None
        while True:
            insn_pc = ctx.pc
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
                ctx.goto(0, insn_pc)  # stop before it; it faults when executed
                break
            b.insn_start(insn_pc)
            ctx.insn, ctx.insn_len, ctx.next_pc = insn, length, insn_pc + length
            if starts is not None:
                starts.append((insn, length))
            first_op = len(block.ops)
            if not (dispatch32 if length == 4 else dispatch16)(ctx, insn):
                ctx.illegal()
            elif fs_clean and ctx.end is not NORETURN and _touches_fp_state(
                    block.ops[first_op:]):
                trans_system.mark_fs_dirty(ctx)  # (ends the block)
            ctx.pc = ctx.next_pc
            if ctx.end is NORETURN:
                break
            if block.n_insns >= MAX_INSNS_PER_BLOCK or ctx.pc >= page_end:
                ctx.goto(0, ctx.pc)
                break
        block = b.finish()
        block.guest_size = ctx.pc - pc
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
