"""RV64M: multiply and divide. The IR's division ops already give RISC-V's results for
division by zero and overflow, so no guards are needed here."""

from __future__ import annotations

from llvmtcg.frontends.riscv.translate import DisasContext, gen_arith, gen_arith_w
from llvmtcg.ir import Builder


def _m(ctx: DisasContext) -> bool:
    return ctx.has_ext("m")


def _ext32(ctx: DisasContext, a, signed: bool) -> tuple:
    b = ctx.builder
    x, y = ctx.temp(), ctx.temp()
    extend = b.ext32s if signed else b.ext32u
    extend(x, ctx.get_gpr(a.rs1))
    extend(y, ctx.get_gpr(a.rs2))
    return x, y


def _div_w(ctx: DisasContext, a, op, signed: bool) -> bool:
    """divw/divuw/remw/remuw: 64-bit division of the extended words, then sign-extend."""
    x, y = _ext32(ctx, a, signed)
    t = ctx.temp()
    op(ctx.builder, t, x, y)
    ctx.builder.ext32s(ctx.dest_gpr(a.rd), t)
    return True


def trans_mul(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith(ctx, a, Builder.mul)


def trans_mulh(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith(ctx, a, Builder.mulsh)


def trans_mulhu(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith(ctx, a, Builder.muluh)


def trans_mulhsu(ctx: DisasContext, a) -> bool:
    if not _m(ctx):
        return False
    lo = ctx.temp()
    ctx.builder.mul2("mulsu2", lo, ctx.dest_gpr(a.rd), ctx.get_gpr(a.rs1), ctx.get_gpr(a.rs2))
    return True


def trans_div(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith(ctx, a, Builder.div)


def trans_divu(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith(ctx, a, Builder.divu)


def trans_rem(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith(ctx, a, Builder.rem)


def trans_remu(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith(ctx, a, Builder.remu)


def trans_mulw(ctx: DisasContext, a) -> bool:
    return _m(ctx) and gen_arith_w(ctx, a, Builder.mul)


def trans_divw(ctx: DisasContext, a) -> bool:
    return _m(ctx) and _div_w(ctx, a, Builder.div, signed=True)


def trans_divuw(ctx: DisasContext, a) -> bool:
    return _m(ctx) and _div_w(ctx, a, Builder.divu, signed=False)


def trans_remw(ctx: DisasContext, a) -> bool:
    return _m(ctx) and _div_w(ctx, a, Builder.rem, signed=True)


def trans_remuw(ctx: DisasContext, a) -> bool:
    return _m(ctx) and _div_w(ctx, a, Builder.remu, signed=False)
