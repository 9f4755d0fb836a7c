"""RISC-V translation context and the generators the trans_* functions share.

Register rules live here (STYLE.md #3): ``get_gpr`` returns the constant 0 for x0 and
``set_gpr`` drops writes to it, so translators never test ``rd != 0``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from llvmtcg.frontends.riscv.cpu import LAYOUT, MMU_USER, Cause, CpuModel
from llvmtcg.frontends.riscv.priv.state import FsState, Priv, TbFlags
from llvmtcg.ir import I64, Builder, Cond, ExitReason, MemOp, Temp, const
from llvmtcg.ir.cpu_layout import PAGE_MASK

# Enum members used per instruction, as module constants (a member read through
# its class runs Python code: ~30x a global).
_CAUSE_ILLEGAL_INSN = Cause.ILLEGAL_INSN
_CAUSE_INSN_ADDR_MISALIGNED = Cause.INSN_ADDR_MISALIGNED

GLOBALS = LAYOUT.globals()
X = [GLOBALS[f"x[{i}]"] for i in range(32)]
F = [GLOBALS[f"f[{i}]"] for i in range(32)]
PC = GLOBALS["pc"]

MAX_INSNS_PER_BLOCK = 128


class BlockEnd(enum.Enum):
    NEXT = "next"  # keep translating
    TOO_MANY = "too_many"  # stop; the block falls through to ctx.next_pc
    NORETURN = "noreturn"  # the block already ended with an exit


# For code that runs per instruction: an enum member looked up through its class costs
# ~10 plain lookups (EnumType.__getattr__ puts every class attribute on a slow path).
NORETURN = BlockEnd.NORETURN
_ZERO = const(I64, 0)


@dataclass(slots=True)
class DisasContext:
    """State while translating one block (slots: read and written per instruction)."""

    model: CpuModel
    builder: Builder
    pc: int  # address of the instruction being translated
    next_pc: int = 0  # address of the next instruction
    insn: int = 0  # the raw instruction word
    insn_len: int = 4
    end: BlockEnd = BlockEnd.NEXT
    frm_checked: bool = False  # the dynamic rounding mode was validated in this block
    frm_is_rmm: Temp | None = None  # set by that check: nonzero if frm is ties-to-away
    scratch: list[Temp] = field(default_factory=list)
    # System mode: the block's translation flags (priv.state.TbFlags layout) decide
    # privilege, the MMU index of loads and stores, and whether the FPU is on.
    system: bool = False
    flags: int = 0
    block_pc: int = 0  # the first instruction's address (for the same-page chaining rule)
    address_read: bool = False  # (set by the frontend's memo: see frontend._TrackedContext)
    flags_read: bool = False  # (likewise: the translation read ``flags``)

    def has_ext(self, ext: str) -> bool:
        if ext in ("f", "d") and self.system and TbFlags.fs(self.flags) == FsState.OFF:
            return False  # mstatus.FS = Off: FP instructions and CSRs are illegal
        return self.model.has(ext)

    @property
    def priv(self) -> Priv:
        return TbFlags.priv(self.flags) if self.system else Priv.U

    @property
    def mem_idx(self) -> int:
        """The MMU index of this block's loads and stores."""
        return int(TbFlags.mmu_idx(self.flags)) if self.system else MMU_USER

    # -- registers --------------------------------------------------------------------
    def get_gpr(self, reg: int) -> Temp:
        return _ZERO if reg == 0 else X[reg]

    def set_gpr(self, reg: int, value: Temp) -> None:
        if reg != 0:
            self.builder.mov(X[reg], value)

    def dest_gpr(self, reg: int) -> Temp:
        """A temp to compute rd's value into (a scratch temp for x0)."""
        return self.temp() if reg == 0 else X[reg]

    def temp(self) -> Temp:
        return self.builder.temp(I64)

    # -- block exits -------------------------------------------------------------------
    def goto(self, slot: int, dest: int) -> None:
        """Continue at ``dest``: a chainable direct jump, unless the MMU translates
        fetches and dest is on another guest page than the block start (QEMU's
        translator_use_goto_tb: a link must not outlive a change of that mapping),
        then an indirect jump looked up by (pc, flags)."""
        if self.flags & TbFlags.PAGING and (dest ^ self.block_pc) & PAGE_MASK:
            self.builder.mov(PC, const(I64, dest))
            self.builder.lookup_and_goto_ptr()
            return
        self.builder.goto_tb(slot, dest)

    def exit_with(self, reason: ExitReason, pc: int) -> None:
        self.builder.mov(PC, const(I64, pc))
        self.builder.exit_tb(reason)
        self.end = NORETURN

    def raise_exception(self, cause: Cause) -> None:
        self.builder.raise_exception(int(cause), self.pc)
        self.end = NORETURN

    def illegal(self) -> None:
        self.builder.mov(GLOBALS["badinsn"], const(I64, self.insn))
        self.raise_exception(_CAUSE_ILLEGAL_INSN)


# -- shared generators (QEMU's gen_arith & co.) -------------------------------------------

Binary = Callable[[Builder, Temp, Temp, Temp], None]


def gen_arith(ctx: DisasContext, a, op: Binary) -> bool:
    dst = ctx.dest_gpr(a.rd)
    op(ctx.builder, dst, ctx.get_gpr(a.rs1), ctx.get_gpr(a.rs2))
    return True


def gen_arith_imm(ctx: DisasContext, a, op: Binary) -> bool:
    dst = ctx.dest_gpr(a.rd)
    op(ctx.builder, dst, ctx.get_gpr(a.rs1), const(I64, a.imm))
    return True


def gen_arith_w(ctx: DisasContext, a, op: Binary, src2: Temp | None = None) -> bool:
    """A 32-bit operation: compute in 64 bits, sign-extend the low word."""
    b = ctx.builder
    t = ctx.temp()
    op(b, t, ctx.get_gpr(a.rs1), ctx.get_gpr(a.rs2) if src2 is None else src2)
    b.ext32s(ctx.dest_gpr(a.rd), t)
    return True


def gen_unary(ctx: DisasContext, a, fn: Callable[[Builder, Temp, Temp], None]) -> bool:
    fn(ctx.builder, ctx.dest_gpr(a.rd), ctx.get_gpr(a.rs1))
    return True


def gen_setcond(ctx: DisasContext, a, cond: Cond, src2: Temp) -> bool:
    ctx.builder.setcond(cond, ctx.dest_gpr(a.rd), ctx.get_gpr(a.rs1), src2)
    return True


def gen_branch(ctx: DisasContext, a, cond: Cond) -> bool:
    b = ctx.builder
    target = (ctx.pc + a.imm) & 0xFFFF_FFFF_FFFF_FFFF
    taken = b.label()
    b.brcond(cond, ctx.get_gpr(a.rs1), ctx.get_gpr(a.rs2), taken)
    ctx.goto(1, ctx.next_pc)
    b.set_label(taken)
    if target & 2 and not ctx.has_ext("c"):
        ctx.raise_exception(_CAUSE_INSN_ADDR_MISALIGNED)
    else:
        ctx.goto(0, target)
    ctx.end = NORETURN
    return True


def _address(ctx: DisasContext, a) -> Temp:
    """rs1 + imm; rs1 itself for a zero offset (a quarter of the loads and stores:
    one op less to translate and to run)."""
    if a.imm == 0 and a.rs1 != 0:
        return X[a.rs1]
    addr = ctx.temp()
    ctx.builder.add(addr, ctx.get_gpr(a.rs1), const(I64, a.imm))
    return addr


def gen_load(ctx: DisasContext, a, memop: MemOp) -> bool:
    ctx.builder.qemu_ld(ctx.dest_gpr(a.rd), _address(ctx, a), memop, ctx.mem_idx)
    return True


def gen_store(ctx: DisasContext, a, memop: MemOp) -> bool:
    ctx.builder.qemu_st(ctx.get_gpr(a.rs2), _address(ctx, a), memop, ctx.mem_idx)
    return True
