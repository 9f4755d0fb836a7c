"""F and D: the register rules and generators both extensions share.

RISC-V rules live here, on top of the IR's generic IEEE ops:

* NaN boxing: f registers are 64 bits; a single is written with the upper 32 bits all
  ones, and a single read from a register that is not so boxed is the canonical NaN.
  Transfers (flw/fsw, fmv.x.w/fmv.w.x) move raw bits and do not check the box.
* Every arithmetic result that is a NaN is the canonical NaN (0x7fc00000 /
  0x7ff8000000000000); sign injection and moves keep payloads.
* Rounding: rm 0-4 are static modes, 7 is frm (checked once per block: frm 5-7 make
  the instruction illegal; CSR writes end the block, so frm cannot change inside one),
  rm 5/6 are illegal. The host cannot round ties-to-away, so an op in the dynamic mode
  has a second copy in RMM taken when frm says so.
* fflags: float ops raise their flags in the host FP environment, which the run loop
  folds into ``fflags`` (:func:`fp_accrue`); conversions to integers compute theirs and
  OR them into ``fflags`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmtcg.frontends.riscv.cpu import Cause
from llvmtcg.frontends.riscv.translate import GLOBALS, DisasContext
from llvmtcg.ir import I32, I64, Builder, Cond, FCond, IRType, MemOp, RoundingMode, Temp, const

# Enum members used per instruction, as module constants (a member read through
# its class runs Python code: ~30x a global).
_CAUSE_ILLEGAL_INSN = Cause.ILLEGAL_INSN
_C_EQ = Cond.EQ
_C_GTU = Cond.GTU
_C_LEU = Cond.LEU
_C_NE = Cond.NE

F = [GLOBALS[f"f[{i}]"] for i in range(32)]
FFLAGS = GLOBALS["fflags"]
FRM = GLOBALS["frm"]

NAN_BOX = 0xFFFF_FFFF_0000_0000
RM_DYN = 7
FRM_RMM = 4
STATIC_MODES = {0: RoundingMode.RNE, 1: RoundingMode.RTZ, 2: RoundingMode.RDN,
                3: RoundingMode.RUP, 4: RoundingMode.RMM}
RNE, DYN, RMM = RoundingMode.RNE, RoundingMode.DYN, RoundingMode.RMM


@dataclass(frozen=True, slots=True)
class FpFormat:
    """A RISC-V float format: its IR type, extension letter and bit patterns."""

    type: IRType
    ext: str
    man_bits: int
    canonical_nan: int

    @property
    def sign(self) -> int:
        return 1 << (self.type.bits - 1)

    @property
    def inf(self) -> int:
        return (self.sign - 1) & ~((1 << self.man_bits) - 1)

    @property
    def memop(self) -> MemOp:
        return MemOp(2) if self.type is I32 else MemOp(3)


SINGLE = FpFormat(I32, "f", 23, 0x7FC0_0000)
DOUBLE = FpFormat(I64, "d", 52, 0x7FF8_0000_0000_0000)


# -- the guest's FP environment, for the run loop and the CSR helper ------------------------

def fp_rounding(state) -> RoundingMode:
    """The host rounding mode for DYN ops: frm, or RNE when frm is RMM or reserved
    (those blocks take the RMM copies, or trap, and never round in DYN)."""
    frm = state.get("frm")
    return STATIC_MODES[frm] if frm < FRM_RMM else RNE


def fp_accrue(state, flags: int) -> None:
    """OR IEEE exception flags (FFlag, RISC-V's own layout) into fflags."""
    state.set("fflags", state.get("fflags") | (int(flags) & 0x1F))


# -- registers --------------------------------------------------------------------------------

def get_fpr(ctx: DisasContext, reg: int, fmt: FpFormat) -> Temp:
    """Operand ``reg`` in format fmt; an improperly boxed single reads as the canonical NaN."""
    if fmt is DOUBLE:
        return F[reg]
    b = ctx.builder
    high, low, value = b.temp(I32), b.temp(I32), b.temp(I32)
    b.extr_i64_i32(high, F[reg], high=True)
    b.extr_i64_i32(low, F[reg])
    b.movcond(_C_EQ, value, high, const(I32, 0xFFFF_FFFF), low,
              const(I32, SINGLE.canonical_nan))
    return value


def set_fpr(ctx: DisasContext, reg: int, fmt: FpFormat, value: Temp) -> None:
    """Write a result; singles are NaN-boxed."""
    b = ctx.builder
    if fmt is DOUBLE:
        b.mov(F[reg], value)
        return
    wide = b.temp(I64)
    b.ext_i32_i64(wide, value, signed=False)
    b.or_(F[reg], wide, const(I64, NAN_BOX))


def canonical_nan(ctx: DisasContext, fmt: FpFormat, value: Temp) -> Temp:
    """value, or the canonical NaN if value is any NaN."""
    # The IR's canonical NaN is RISC-V's (0x7fc00000 / 0x7ff8000000000000).
    out = ctx.builder.temp(fmt.type)
    ctx.builder.fcanon(out, value)
    return out


def negate(ctx: DisasContext, fmt: FpFormat, value: Temp) -> Temp:
    out = ctx.builder.temp(fmt.type)
    ctx.builder.xor(out, value, const(fmt.type, fmt.sign))
    return out


# -- rounding modes -----------------------------------------------------------------------------

def rounding_mode(ctx: DisasContext, rm: int) -> RoundingMode | None:
    """The IR mode for an rm field, or None when rm is reserved (the instruction is
    illegal). rm=7 checks frm, once per block."""
    if rm == RM_DYN:
        if not ctx.frm_checked:
            _check_frm(ctx)
        return DYN
    return STATIC_MODES.get(rm)


def _check_frm(ctx: DisasContext) -> None:
    """Trap precisely (this instruction, nothing done yet) if frm holds 5, 6 or 7."""
    b = ctx.builder
    valid = b.label()
    b.brcond(_C_LEU, FRM, const(I32, FRM_RMM), valid)
    b.mov(GLOBALS["badinsn"], const(I64, ctx.insn))
    b.raise_exception(int(_CAUSE_ILLEGAL_INSN), ctx.pc)
    b.set_label(valid)
    ctx.frm_is_rmm = b.temp(I32)
    b.setcond(_C_EQ, ctx.frm_is_rmm, FRM, const(I32, FRM_RMM))
    ctx.frm_checked = True


def gen_rounded(ctx: DisasContext, rm: RoundingMode, emit: Callable[[RoundingMode], None]) -> None:
    """Emit an op in mode rm. DYN gets a ties-to-away copy for when frm is RMM, which
    the host environment cannot hold."""
    if rm is not DYN:
        emit(rm)
        return
    b = ctx.builder
    away, done = b.label(), b.label()
    b.brcond(_C_NE, ctx.frm_is_rmm, const(I32, 0), away)
    emit(DYN)
    b.br(done)
    b.set_label(away)
    emit(RMM)
    b.set_label(done)


# -- generators ---------------------------------------------------------------------------------

Arith = Callable[[Builder, Temp, Temp, Temp, RoundingMode], None]


def gen_load(ctx: DisasContext, a, fmt: FpFormat) -> bool:
    if not ctx.has_ext(fmt.ext):
        return False
    b = ctx.builder
    addr, value = ctx.temp(), b.temp(I64)
    b.add(addr, ctx.get_gpr(a.rs1), const(I64, a.imm))
    b.qemu_ld(value, addr, fmt.memop, ctx.mem_idx)
    if fmt is SINGLE:
        b.or_(F[a.rd], value, const(I64, NAN_BOX))
    else:
        b.mov(F[a.rd], value)
    return True


def gen_store(ctx: DisasContext, a, fmt: FpFormat) -> bool:
    """Stores move raw bits: fsw writes the low word, boxed or not."""
    if not ctx.has_ext(fmt.ext):
        return False
    b = ctx.builder
    addr = ctx.temp()
    b.add(addr, ctx.get_gpr(a.rs1), const(I64, a.imm))
    b.qemu_st(F[a.rs2], addr, fmt.memop, ctx.mem_idx)
    return True


def gen_arith(ctx: DisasContext, a, fmt: FpFormat, op: Arith) -> bool:
    """fadd/fsub/fmul/fdiv: rd = op(rs1, rs2) rounded per rm, NaNs canonical."""
    if not ctx.has_ext(fmt.ext):
        return False
    rm = rounding_mode(ctx, a.rm)
    if rm is None:
        return False
    x, y = get_fpr(ctx, a.rs1, fmt), get_fpr(ctx, a.rs2, fmt)
    r = ctx.builder.temp(fmt.type)
    gen_rounded(ctx, rm, lambda mode: op(ctx.builder, r, x, y, mode))
    set_fpr(ctx, a.rd, fmt, canonical_nan(ctx, fmt, r))
    return True


def gen_sqrt(ctx: DisasContext, a, fmt: FpFormat) -> bool:
    if not ctx.has_ext(fmt.ext):
        return False
    rm = rounding_mode(ctx, a.rm)
    if rm is None:
        return False
    x = get_fpr(ctx, a.rs1, fmt)
    r = ctx.builder.temp(fmt.type)
    gen_rounded(ctx, rm, lambda mode: ctx.builder.fsqrt(r, x, mode))
    set_fpr(ctx, a.rd, fmt, canonical_nan(ctx, fmt, r))
    return True


def gen_fma(ctx: DisasContext, a, fmt: FpFormat, negate_product: bool,
            negate_addend: bool) -> bool:
    """(±rs1)*rs2 + (±rs3) with one rounding: negating the operands (not the result)
    keeps directed rounding and the sign of exact zeros right."""
    if not ctx.has_ext(fmt.ext):
        return False
    rm = rounding_mode(ctx, a.rm)
    if rm is None:
        return False
    x, y, z = (get_fpr(ctx, r, fmt) for r in (a.rs1, a.rs2, a.rs3))
    if negate_product:
        x = negate(ctx, fmt, x)
    if negate_addend:
        z = negate(ctx, fmt, z)
    r = ctx.builder.temp(fmt.type)
    gen_rounded(ctx, rm, lambda mode: ctx.builder.fma(r, x, y, z, mode))
    set_fpr(ctx, a.rd, fmt, canonical_nan(ctx, fmt, r))
    return True


def gen_sign_inject(ctx: DisasContext, a, fmt: FpFormat, kind: str) -> bool:
    """fsgnj (kind "j"), fsgnjn ("n"), fsgnjx ("x"): rs1's magnitude, a sign from rs2."""
    if not ctx.has_ext(fmt.ext):
        return False
    b = ctx.builder
    t = fmt.type
    x, y = get_fpr(ctx, a.rs1, fmt), get_fpr(ctx, a.rs2, fmt)
    sign = const(t, fmt.sign)
    s, r = b.temp(t), b.temp(t)
    if kind == "n":
        b.andc(s, sign, y)
    else:
        b.and_(s, y, sign)
    if kind == "x":
        b.xor(r, x, s)
    else:
        magnitude = b.temp(t)
        b.andc(magnitude, x, sign)
        b.or_(r, magnitude, s)
    set_fpr(ctx, a.rd, fmt, r)
    return True


def gen_minmax(ctx: DisasContext, a, fmt: FpFormat, maximum: bool) -> bool:
    if not ctx.has_ext(fmt.ext):
        return False
    b = ctx.builder
    x, y = get_fpr(ctx, a.rs1, fmt), get_fpr(ctx, a.rs2, fmt)
    r = b.temp(fmt.type)
    (b.fmax if maximum else b.fmin)(r, x, y)
    set_fpr(ctx, a.rd, fmt, canonical_nan(ctx, fmt, r))
    return True


def gen_compare(ctx: DisasContext, a, fmt: FpFormat, cond: FCond) -> bool:
    """feq (quiet), flt/fle (signalling): rd = 0 or 1."""
    if not ctx.has_ext(fmt.ext):
        return False
    x, y = get_fpr(ctx, a.rs1, fmt), get_fpr(ctx, a.rs2, fmt)
    ctx.builder.fsetcond(cond, ctx.dest_gpr(a.rd), x, y)
    return True


def gen_class(ctx: DisasContext, a, fmt: FpFormat) -> bool:
    """fclass: the IR's class order is RISC-V's bit order."""
    if not ctx.has_ext(fmt.ext):
        return False
    ctx.builder.fclass(ctx.dest_gpr(a.rd), get_fpr(ctx, a.rs1, fmt))
    return True


def gen_to_int(ctx: DisasContext, a, fmt: FpFormat, bits: int, signed: bool) -> bool:
    """fcvt.{w,wu,l,lu}.{s,d}: saturating; a NaN converts to the maximum; 32-bit results
    are sign-extended (also for wu)."""
    if not ctx.has_ext(fmt.ext):
        return False
    rm = rounding_mode(ctx, a.rm)
    if rm is None:
        return False
    b = ctx.builder
    it = I32 if bits == 32 else I64
    x = get_fpr(ctx, a.rs1, fmt)
    value, flags = b.temp(it), b.temp(I32)
    gen_rounded(ctx, rm, lambda mode: b.ftoi(value, flags, x, mode, signed))
    b.or_(FFLAGS, FFLAGS, flags)
    magnitude, result = b.temp(fmt.type), b.temp(it)
    b.and_(magnitude, x, const(fmt.type, fmt.sign - 1))
    nan_result = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    b.movcond(_C_GTU, result, magnitude, const(fmt.type, fmt.inf), const(it, nan_result),
              value)
    if it is I32:
        b.ext_i32_i64(ctx.dest_gpr(a.rd), result, signed=True)
    else:
        b.mov(ctx.dest_gpr(a.rd), result)
    return True


def gen_from_int(ctx: DisasContext, a, fmt: FpFormat, bits: int, signed: bool) -> bool:
    """fcvt.{s,d}.{w,wu,l,lu}: 32-bit sources are the low word of rs1."""
    if not ctx.has_ext(fmt.ext):
        return False
    rm = rounding_mode(ctx, a.rm)
    if rm is None:
        return False
    b = ctx.builder
    src = ctx.get_gpr(a.rs1)
    if bits == 32:
        low = b.temp(I32)
        b.extr_i64_i32(low, src)
        src = low
    r = b.temp(fmt.type)
    if bits == 32 and fmt is DOUBLE:  # exact: the rounding mode cannot matter
        b.itof(r, src, RNE, signed)
    else:
        gen_rounded(ctx, rm, lambda mode: b.itof(r, src, mode, signed))
    set_fpr(ctx, a.rd, fmt, r)
    return True


def gen_convert(ctx: DisasContext, a, dst: FpFormat, src: FpFormat) -> bool:
    """fcvt.s.d (rounds) and fcvt.d.s (exact; rm is still checked)."""
    if not (ctx.has_ext(dst.ext) and ctx.has_ext(src.ext)):
        return False
    rm = rounding_mode(ctx, a.rm)
    if rm is None:
        return False
    b = ctx.builder
    x = get_fpr(ctx, a.rs1, src)
    r = b.temp(dst.type)
    if dst is DOUBLE:
        b.fcvt(r, x)
    else:
        gen_rounded(ctx, rm, lambda mode: b.fcvt(r, x, mode))
    set_fpr(ctx, a.rd, dst, canonical_nan(ctx, dst, r))
    return True


def gen_move_to_int(ctx: DisasContext, a, fmt: FpFormat) -> bool:
    """fmv.x.w (sign-extends the raw low word) and fmv.x.d."""
    if not ctx.has_ext(fmt.ext):
        return False
    if fmt is SINGLE:
        ctx.builder.ext32s(ctx.dest_gpr(a.rd), F[a.rs1])
    else:
        ctx.builder.mov(ctx.dest_gpr(a.rd), F[a.rs1])
    return True


def gen_move_from_int(ctx: DisasContext, a, fmt: FpFormat) -> bool:
    """fmv.w.x (boxes the low word) and fmv.d.x."""
    if not ctx.has_ext(fmt.ext):
        return False
    b = ctx.builder
    if fmt is SINGLE:
        low = b.temp(I64)
        b.ext32u(low, ctx.get_gpr(a.rs1))
        b.or_(F[a.rd], low, const(I64, NAN_BOX))
    else:
        b.mov(F[a.rd], ctx.get_gpr(a.rs1))
    return True
