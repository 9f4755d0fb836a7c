"""The AArch64 frontend: fetch, decode and translate one block of A64 code."""

from __future__ import annotations

import functools
from collections.abc import Callable

from llvmtcg.frontends.aarch64 import (
    trans_branch,
    trans_dp,
    trans_fp,
    trans_fpsimd,
    trans_ldst,
    trans_simd,
)
from llvmtcg.frontends.aarch64.cpu import CpuModel
from llvmtcg.frontends.aarch64.translate import (
    GLOBALS,
    MAX_INSNS_PER_BLOCK,
    BlockEnd,
    DisasContext,
)
from llvmtcg.frontends.decodetree import Decoder
from llvmtcg.ir import Block, Builder
from llvmtcg.ir.cpu_layout import PAGE_SIZE
from llvmtcg.log import Log
from llvmtcg.runtime.exits import GuestFault

TRANSLATOR_MODULES = (trans_dp, trans_branch, trans_ldst, trans_simd, trans_fp, trans_fpsimd)


@functools.cache
def decoder() -> Decoder:
    """The A64 table bound to the translators, built on first use. A pattern without a
    translator, or a translator without a pattern, is an error here."""
    from llvmtcg.frontends.aarch64.insn import INSN

    return Decoder(INSN, *TRANSLATOR_MODULES)


class Aarch64Frontend:
    """Translates A64 code for one CPU model (the translator behind
    :class:`llvmtcg.frontends.aarch64.arch.Aarch64Arch`)."""

    def __init__(self, model: CpuModel | None = None) -> None:
        self.model = model or CpuModel()
        self._disassembler = None

    def translate(self, pc: int, fetch: Callable[[int, int], bytes],
                  log: Log | None = None) -> Block:
        b = Builder(pc, GLOBALS)
        ctx = DisasContext(self.model, b, pc)
        page_end = (pc & ~(PAGE_SIZE - 1)) + PAGE_SIZE
        code = bytearray()
        dispatch = decoder().dispatch
        while True:
            try:
                raw = fetch(ctx.pc, 4)
            except GuestFault:
                if b.block.n_insns == 0:
                    raise  # the block's first instruction: the guest takes the fault
                ctx.goto(0, ctx.pc)  # stop before it; it faults when executed
                break
            insn = int.from_bytes(raw, "little")
            b.insn_start(ctx.pc)
            ctx.insn, ctx.next_pc = insn, ctx.pc + 4
            code += raw
            if not dispatch(ctx, insn):
                ctx.undef()
            ctx.pc = ctx.next_pc
            if ctx.end is BlockEnd.NORETURN:
                break
            if b.block.n_insns >= MAX_INSNS_PER_BLOCK or ctx.pc >= page_end:
                ctx.goto(0, ctx.pc)
                break
        block = b.finish()
        block.guest_size = ctx.pc - pc
        if log is not None and log.enabled("in_asm"):
            log.write(self.disassemble(bytes(code), pc))
        return block

    def disassemble(self, code: bytes, pc: int) -> str:
        import capstone  # only needed for -d in_asm

        if self._disassembler is None:
            self._disassembler = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
        lines = [f"IN: {pc:#x}"]
        for offset in range(0, len(code), 4):
            word = code[offset:offset + 4]
            insns = list(self._disassembler.disasm(word, pc + offset))
            text = f"{insns[0].mnemonic} {insns[0].op_str}".rstrip() if insns else ".word"
            lines.append(f"0x{pc + offset:016x}:  {word[::-1].hex()}  {text}")
        return "\n".join(lines) + "\n"
