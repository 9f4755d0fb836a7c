"""AArch64 translation context and the generators the trans_* functions share.

Register rules live here: register 31 is the zero register or SP depending on the
instruction, so translators say which they mean (``get_x`` / ``get_x_sp``); writes of
32-bit results zero-extend (``set_x(..., sf=0)``), writes to the zero register are
dropped. The NZCV flags are four CPU-state fields (see cpu.py) written by
``gen_flags_*`` and read through :func:`gen_test_cc`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from llvmtcg.frontends.aarch64.cpu import LAYOUT, MMU_USER, CpuModel, Excp
from llvmtcg.ir import I64, V128, Builder, Cond, ExitReason, Temp, TempKind, const

GLOBALS = LAYOUT.globals()
X = [GLOBALS[f"x[{i}]"] for i in range(32)]
V = [GLOBALS[f"v[{i}]"] for i in range(64)]
# The V registers whole, for the vector ops: v128 globals over the halves v[2n], v[2n+1].
VQ = [Temp(TempKind.GLOBAL, V128, f"q[{n}]", offset=V[2 * n].offset) for n in range(32)]
PC = GLOBALS["pc"]
NF, ZF, CF, VF = GLOBALS["nf"], GLOBALS["zf"], GLOBALS["cf"], GLOBALS["vf"]

MAX_INSNS_PER_BLOCK = 128
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
ZERO = const(I64, 0)


class BlockEnd(enum.Enum):
    NEXT = "next"  # keep translating
    NORETURN = "noreturn"  # the block already ended with an exit


@dataclass
class DisasContext:
    """State while translating one block."""

    model: CpuModel
    builder: Builder
    pc: int  # address of the instruction being translated
    next_pc: int = 0
    insn: int = 0  # the raw instruction word
    end: BlockEnd = BlockEnd.NEXT
    mem_idx: int = MMU_USER

    # -- registers --------------------------------------------------------------------
    def get_x(self, reg: int, sf: int = 1) -> Temp:
        """Xn/Wn with 31 as the zero register. With sf=0 the value's upper half is
        whatever the register holds: users that care extend it."""
        return ZERO if reg == 31 else X[reg]

    def get_x_sp(self, reg: int) -> Temp:
        return X[reg]  # x[31] is SP

    def set_x(self, reg: int, value: Temp, sf: int = 1) -> None:
        """Xd = value (sf=1) or Wd = low 32 bits of value, zero-extended (sf=0);
        register 31 is the zero register (the write is dropped)."""
        if reg == 31:
            return
        if sf:
            self.builder.mov(X[reg], value)
        else:
            self.builder.ext32u(X[reg], value)

    def set_x_sp(self, reg: int, value: Temp, sf: int = 1) -> None:
        if sf:
            self.builder.mov(X[reg], value)
        else:
            self.builder.ext32u(X[reg], value)

    def temp(self) -> Temp:
        return self.builder.temp(I64)

    # -- block exits -------------------------------------------------------------------
    def goto(self, slot: int, dest: int) -> None:
        self.builder.goto_tb(slot, dest & MASK64)

    def exit_with(self, reason: ExitReason, pc: int) -> None:
        self.builder.mov(PC, const(I64, pc))
        self.builder.exit_tb(reason)
        self.end = BlockEnd.NORETURN

    def raise_exception(self, excp: Excp) -> None:
        self.builder.raise_exception(int(excp), self.pc)
        self.end = BlockEnd.NORETURN

    def undef(self) -> None:
        """The instruction is unallocated (or not implemented): UNDEF, SIGILL in
        Linux user mode. The one place illegal instructions are raised."""
        self.builder.mov(GLOBALS["badinsn"], const(I64, self.insn))
        self.raise_exception(Excp.UDEF)


# -- flags ----------------------------------------------------------------------------------

def gen_flags_nz(ctx: DisasContext, result: Temp, sf: int) -> None:
    """N and Z from a result (logical ops, which also clear C and V)."""
    b = ctx.builder
    if sf:
        b.mov(NF, result)
        b.mov(ZF, result)
    else:
        b.ext32s(NF, result)
        b.mov(ZF, NF)


def gen_flags_logic(ctx: DisasContext, result: Temp, sf: int) -> None:
    gen_flags_nz(ctx, result, sf)
    ctx.builder.movi(CF, 0)
    ctx.builder.movi(VF, 0)


def gen_add_flags(ctx: DisasContext, dst: Temp, a: Temp, b_: Temp, sf: int,
                  carry_in: Temp | int = 0) -> None:
    """dst = a + b_ + carry_in with NZCV set (ADDS/ADCS; SUBS is a + ~b + 1).
    carry_in is 0, 1 or a temp holding 0/1."""
    b = ctx.builder
    t = ctx.temp()
    if not sf:
        a32, b32 = ctx.temp(), ctx.temp()
        b.ext32u(a32, a)
        b.ext32u(b32, b_)
        b.add(t, a32, b32)
        if isinstance(carry_in, Temp):
            b.add(t, t, carry_in)
        elif carry_in:
            b.add(t, t, const(I64, 1))
        b.shr(CF, t, const(I64, 32))  # the 33-bit sum's carry out
        b.ext32s(NF, t)
        b.mov(ZF, NF)
        x, y = ctx.temp(), ctx.temp()
        b.xor(x, t, a32)
        b.xor(y, a32, b32)
        b.andc(x, x, y)
        b.shl(VF, x, const(I64, 32))  # bit 31 to bit 63
        b.mov(dst, t)
        return
    if isinstance(carry_in, Temp):
        t1, c1 = ctx.temp(), ctx.temp()
        b.add(t1, a, carry_in)
        b.setcond(Cond.LTU, c1, t1, a)
        b.add(t, t1, b_)
        c2 = ctx.temp()
        b.setcond(Cond.LTU, c2, t, t1)
        b.or_(CF, c1, c2)
    elif carry_in:
        # a + ~b + 1 = a - b' where b_ = ~b'; carry out = a >=u b'.
        nb = ctx.temp()
        b.not_(nb, b_)
        b.sub(t, a, nb)
        b.setcond(Cond.GEU, CF, a, nb)
    else:
        b.add(t, a, b_)
        b.setcond(Cond.LTU, CF, t, a)
    x, y = ctx.temp(), ctx.temp()
    b.xor(x, t, a)
    b.xor(y, a, b_)
    b.andc(VF, x, y)
    b.mov(NF, t)
    b.mov(ZF, t)
    b.mov(dst, t)


def gen_sub_flags(ctx: DisasContext, dst: Temp, a: Temp, b_: Temp, sf: int) -> None:
    """dst = a - b_ with NZCV set (SUBS, CMP)."""
    b = ctx.builder
    if sf:
        t = ctx.temp()
        b.sub(t, a, b_)
        b.setcond(Cond.GEU, CF, a, b_)
        x, y = ctx.temp(), ctx.temp()
        b.xor(x, t, a)
        b.xor(y, a, b_)
        b.and_(VF, x, y)
        b.mov(NF, t)
        b.mov(ZF, t)
        b.mov(dst, t)
        return
    nb = ctx.temp()
    b.not_(nb, b_)
    gen_add_flags(ctx, dst, a, nb, 0, 1)


def gen_test_cc(ctx: DisasContext, cond: int) -> tuple[Cond, Temp, Temp] | None:
    """The comparison that holds when condition ``cond`` (0-15) passes, as
    (Cond, a, b); None for AL/NV (always)."""
    b = ctx.builder
    base = cond >> 1
    if base == 7:
        return None
    if base == 0:  # EQ / NE
        test = (Cond.EQ, ZF, ZERO)
    elif base == 1:  # CS / CC
        test = (Cond.NE, CF, ZERO)
    elif base == 2:  # MI / PL
        test = (Cond.LT, NF, ZERO)
    elif base == 3:  # VS / VC
        test = (Cond.LT, VF, ZERO)
    elif base == 4:  # HI: C && !Z  /  LS
        t, z = ctx.temp(), ctx.temp()
        b.setcond(Cond.NE, z, ZF, ZERO)
        b.and_(t, CF, z)
        test = (Cond.NE, t, ZERO)
    elif base == 5:  # GE: N == V  /  LT
        t = ctx.temp()
        b.xor(t, NF, VF)
        test = (Cond.GE, t, ZERO)
    else:  # GT: !Z && N == V  /  LE
        t, z, n = ctx.temp(), ctx.temp(), ctx.temp()
        b.xor(t, NF, VF)
        b.setcond(Cond.GE, n, t, ZERO)
        b.setcond(Cond.NE, z, ZF, ZERO)
        b.and_(t, n, z)
        test = (Cond.NE, t, ZERO)
    if cond & 1:
        test = (INVERT[test[0]], test[1], test[2])
    return test


INVERT = {Cond.EQ: Cond.NE, Cond.NE: Cond.EQ, Cond.LT: Cond.GE, Cond.GE: Cond.LT,
           Cond.GT: Cond.LE, Cond.LE: Cond.GT, Cond.LTU: Cond.GEU, Cond.GEU: Cond.LTU,
           Cond.GTU: Cond.LEU, Cond.LEU: Cond.GTU}


def gen_set_nzcv(ctx: DisasContext, nzcv: Temp | int) -> None:
    """Set the flags from an NZCV value in bits 3:0 (constant) or a temp in bits 31:28."""
    b = ctx.builder
    if isinstance(nzcv, int):
        b.movi(NF, -(nzcv >> 3 & 1))
        b.movi(ZF, 0 if nzcv & 4 else 1)
        b.movi(CF, nzcv >> 1 & 1)
        b.movi(VF, -(nzcv & 1))
        return
    t = ctx.temp()
    b.shl(NF, nzcv, const(I64, 32))  # bit 31 -> 63
    b.extract(t, nzcv, 30, 1)
    b.xor(ZF, t, const(I64, 1))
    b.extract(CF, nzcv, 29, 1)
    b.shl(VF, nzcv, const(I64, 35))  # bit 28 -> 63


def gen_get_nzcv(ctx: DisasContext, dst: Temp) -> None:
    """dst = NZCV in bits 31:28 (MRS NZCV)."""
    b = ctx.builder
    n, z, t = ctx.temp(), ctx.temp(), ctx.temp()
    b.shr(n, NF, const(I64, 63))
    b.shl(n, n, const(I64, 31))
    b.setcond(Cond.EQ, z, ZF, ZERO)
    b.shl(z, z, const(I64, 30))
    b.or_(n, n, z)
    b.shl(t, CF, const(I64, 29))
    b.or_(n, n, t)
    b.shr(t, VF, const(I64, 63))
    b.shl(t, t, const(I64, 28))
    b.or_(dst, n, t)


# -- operands -------------------------------------------------------------------------------

SHIFT_LSL, SHIFT_LSR, SHIFT_ASR, SHIFT_ROR = range(4)


def gen_shift(ctx: DisasContext, dst: Temp, src: Temp, kind: int, amount: Temp, sf: int
              ) -> None:
    """dst = src shifted (LSL/LSR/ASR/ROR) by ``amount`` (taken mod the width) as a
    ``sf`` ? 64 : 32-bit value; 32-bit results have undefined upper halves."""
    b = ctx.builder
    if not sf:
        count = amount
        if not amount.is_const:
            count = ctx.temp()
            b.and_(count, amount, const(I64, 31))
        else:
            count = const(I64, amount.value & 31)
        s = ctx.temp()
        if kind == SHIFT_LSL:
            b.shl(dst, src, count)
        elif kind == SHIFT_LSR:
            b.ext32u(s, src)
            b.shr(dst, s, count)
        elif kind == SHIFT_ASR:
            b.ext32s(s, src)
            b.sar(dst, s, count)
        else:  # rotate the 32-bit value: rotate its doubled copy
            d = ctx.temp()
            b.ext32u(s, src)
            b.shl(d, s, const(I64, 32))
            b.or_(d, d, s)
            b.rotr(dst, d, count)
        return
    op = (b.shl, b.shr, b.sar, b.rotr)[kind]
    op(dst, src, amount)


def gen_shifted_reg(ctx: DisasContext, reg: int, kind: int, amount: int, sf: int) -> Temp:
    """The shifted-register operand ``Rm, <shift> #amount``."""
    src = ctx.get_x(reg)
    if amount == 0:
        return src
    t = ctx.temp()
    gen_shift(ctx, t, src, kind, const(I64, amount), sf)
    return t


def gen_extended_reg(ctx: DisasContext, reg: int, option: int, shift: int) -> Temp:
    """The extended-register operand ``Rm, <extend> #shift`` (UXTB..SXTX)."""
    b = ctx.builder
    src = ctx.get_x(reg)
    t = ctx.temp()
    ext = (b.ext8u, b.ext16u, b.ext32u, b.mov, b.ext8s, b.ext16s, b.ext32s, b.mov)[option]
    ext(t, src)
    if shift:
        b.shl(t, t, const(I64, shift))
    return t


def gen_accrue_fflags(ctx: DisasContext, flags: Temp) -> None:
    """OR IEEE flags (an i32 of FFlag bits) into FPSR's cumulative bits: FFlag bit k is
    FPSR bit 4 - k (IXC UFC OFC DZC IOC)."""
    b = ctx.builder
    raised = ctx.temp()
    b.ext_i32_i64(raised, flags, signed=False)
    result = ctx.temp()
    b.movi(result, 0)
    for k in range(5):
        bit = ctx.temp()
        b.extract(bit, raised, k, 1)
        b.shl(bit, bit, const(I64, 4 - k))
        b.or_(result, result, bit)
    fpsr = ctx.temp()
    b.ext_i32_i64(fpsr, GLOBALS["fpsr"], signed=False)
    b.or_(fpsr, fpsr, result)
    b.extr_i64_i32(GLOBALS["fpsr"], fpsr)
