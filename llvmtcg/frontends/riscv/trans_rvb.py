"""Zba, Zbb, Zbs: address generation, basic bit manipulation, single-bit ops."""

from __future__ import annotations

from llvmtcg.frontends.riscv.translate import DisasContext, gen_arith, gen_unary
from llvmtcg.ir import I64, Builder, Cond, const

# Enum members used per instruction, as module constants (a member read through
# its class runs Python code: ~30x a global).
_C_GT = Cond.GT
_C_GTU = Cond.GTU
_C_LT = Cond.LT
_C_LTU = Cond.LTU


def _zba(ctx: DisasContext) -> bool:
    return ctx.has_ext("zba")


def _zbb(ctx: DisasContext) -> bool:
    return ctx.has_ext("zbb")


def _zbs(ctx: DisasContext) -> bool:
    return ctx.has_ext("zbs")


# -- Zba ------------------------------------------------------------------------------------

def _shadd(ctx: DisasContext, a, shift: int, uw: bool) -> bool:
    b = ctx.builder
    t = ctx.temp()
    if uw:
        b.ext32u(t, ctx.get_gpr(a.rs1))
        b.shl(t, t, const(I64, shift))
    else:
        b.shl(t, ctx.get_gpr(a.rs1), const(I64, shift))
    b.add(ctx.dest_gpr(a.rd), t, ctx.get_gpr(a.rs2))
    return True


def trans_sh1add(ctx: DisasContext, a) -> bool:
    return _zba(ctx) and _shadd(ctx, a, 1, False)


def trans_sh2add(ctx: DisasContext, a) -> bool:
    return _zba(ctx) and _shadd(ctx, a, 2, False)


def trans_sh3add(ctx: DisasContext, a) -> bool:
    return _zba(ctx) and _shadd(ctx, a, 3, False)


def trans_add_uw(ctx: DisasContext, a) -> bool:
    return _zba(ctx) and _shadd(ctx, a, 0, True)


def trans_sh1add_uw(ctx: DisasContext, a) -> bool:
    return _zba(ctx) and _shadd(ctx, a, 1, True)


def trans_sh2add_uw(ctx: DisasContext, a) -> bool:
    return _zba(ctx) and _shadd(ctx, a, 2, True)


def trans_sh3add_uw(ctx: DisasContext, a) -> bool:
    return _zba(ctx) and _shadd(ctx, a, 3, True)


def trans_slli_uw(ctx: DisasContext, a) -> bool:
    if not _zba(ctx):
        return False
    t = ctx.temp()
    ctx.builder.ext32u(t, ctx.get_gpr(a.rs1))
    ctx.builder.shl(ctx.dest_gpr(a.rd), t, const(I64, a.shamt))
    return True


# -- Zbb ------------------------------------------------------------------------------------

def trans_andn(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_arith(ctx, a, Builder.andc)


def trans_orn(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_arith(ctx, a, Builder.orc)


def trans_xnor(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_arith(ctx, a, Builder.eqv)


def trans_max(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _minmax(ctx, a, _C_GT)


def trans_maxu(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _minmax(ctx, a, _C_GTU)


def trans_min(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _minmax(ctx, a, _C_LT)


def trans_minu(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _minmax(ctx, a, _C_LTU)


def _minmax(ctx: DisasContext, a, cond: Cond) -> bool:
    x, y = ctx.get_gpr(a.rs1), ctx.get_gpr(a.rs2)
    ctx.builder.movcond(cond, ctx.dest_gpr(a.rd), x, y, x, y)
    return True


def trans_clz(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_unary(ctx, a, lambda b, d, s: b.clz(d, s, const(I64, 64)))


def trans_ctz(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_unary(ctx, a, lambda b, d, s: b.ctz(d, s, const(I64, 64)))


def trans_cpop(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_unary(ctx, a, Builder.ctpop)


def _word_then(ctx: DisasContext, a, extend: str, fn) -> bool:
    """Apply fn to the low word of rs1 (zero- or sign-extended first)."""
    b = ctx.builder
    t = ctx.temp()
    (b.ext32u if extend == "u" else b.ext32s)(t, ctx.get_gpr(a.rs1))
    fn(b, ctx.dest_gpr(a.rd), t)
    return True


def trans_clzw(ctx: DisasContext, a) -> bool:
    if not _zbb(ctx):
        return False

    def clzw(b: Builder, dst, word) -> None:
        # clz of the 64-bit zero-extended word, minus the 32 high zeros; 32 for 0.
        t = ctx.temp()
        b.clz(t, word, const(I64, 64))
        b.sub(dst, t, const(I64, 32))

    return _word_then(ctx, a, "u", clzw)


def trans_ctzw(ctx: DisasContext, a) -> bool:
    if not _zbb(ctx):
        return False

    def ctzw(b: Builder, dst, word) -> None:
        t = ctx.temp()
        b.or_(t, word, const(I64, 1 << 32))  # a zero word gives 32
        b.ctz(dst, t, const(I64, 64))

    return _word_then(ctx, a, "u", ctzw)


def trans_cpopw(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _word_then(ctx, a, "u", Builder.ctpop)


def trans_sext_b(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_unary(ctx, a, Builder.ext8s)


def trans_sext_h(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_unary(ctx, a, Builder.ext16s)


def trans_zext_h(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_unary(ctx, a, Builder.ext16u)


def trans_rol(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_arith(ctx, a, Builder.rotl)


def trans_ror(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_arith(ctx, a, Builder.rotr)


def trans_rori(ctx: DisasContext, a) -> bool:
    if not _zbb(ctx):
        return False
    ctx.builder.rotr(ctx.dest_gpr(a.rd), ctx.get_gpr(a.rs1), const(I64, a.shamt))
    return True


def _rotate_w(ctx: DisasContext, a, left: bool, amount) -> bool:
    """rolw/rorw/roriw: rotate the low word; rotating the word duplicated into both
    halves of a 64-bit value gives the 32-bit rotation in its low half."""
    b = ctx.builder
    lo, both, count, rotated = ctx.temp(), ctx.temp(), ctx.temp(), ctx.temp()
    b.ext32u(lo, ctx.get_gpr(a.rs1))
    b.deposit(both, lo, lo, 32, 32)
    b.and_(count, amount, const(I64, 31))
    (b.rotl if left else b.rotr)(rotated, both, count)
    b.ext32s(ctx.dest_gpr(a.rd), rotated)
    return True


def trans_rolw(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _rotate_w(ctx, a, True, ctx.get_gpr(a.rs2))


def trans_rorw(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _rotate_w(ctx, a, False, ctx.get_gpr(a.rs2))


def trans_roriw(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and _rotate_w(ctx, a, False, const(I64, a.shamt))


def trans_rev8(ctx: DisasContext, a) -> bool:
    return _zbb(ctx) and gen_unary(ctx, a, Builder.bswap64)


def trans_orc_b(ctx: DisasContext, a) -> bool:
    if not _zbb(ctx):
        return False
    # Each byte becomes 0xff if nonzero: set the top bit of every nonzero byte
    # ((x & 0x7f..) + 0x7f.. sets it for nonzero low 7 bits; | x for the top bit),
    # then spread it down the byte.
    b = ctx.builder
    low7 = const(I64, 0x7F7F_7F7F_7F7F_7F7F)
    t, u = ctx.temp(), ctx.temp()
    x = ctx.get_gpr(a.rs1)
    b.and_(t, x, low7)
    b.add(t, t, low7)
    b.or_(t, t, x)
    b.and_(t, t, const(I64, 0x8080_8080_8080_8080))  # the top bit of each nonzero byte
    b.shr(u, t, const(I64, 7))
    b.sub(u, t, u)  # 0x80 - 0x01 = 0x7f in each marked byte
    b.or_(ctx.dest_gpr(a.rd), t, u)
    return True


# -- Zbs ------------------------------------------------------------------------------------

def _bit(ctx: DisasContext, a, kind: str, index) -> bool:
    b = ctx.builder
    mask = ctx.temp()
    b.shl(mask, const(I64, 1), index)  # IR shifts take the index mod 64, as Zbs does
    x, dst = ctx.get_gpr(a.rs1), ctx.dest_gpr(a.rd)
    if kind == "clr":
        b.andc(dst, x, mask)
    elif kind == "set":
        b.or_(dst, x, mask)
    elif kind == "inv":
        b.xor(dst, x, mask)
    else:
        t = ctx.temp()
        b.shr(t, x, index)
        b.and_(dst, t, const(I64, 1))
    return True


def trans_bclr(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "clr", ctx.get_gpr(a.rs2))


def trans_bset(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "set", ctx.get_gpr(a.rs2))


def trans_binv(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "inv", ctx.get_gpr(a.rs2))


def trans_bext(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "ext", ctx.get_gpr(a.rs2))


def trans_bclri(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "clr", const(I64, a.shamt))


def trans_bseti(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "set", const(I64, a.shamt))


def trans_binvi(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "inv", const(I64, a.shamt))


def trans_bexti(ctx: DisasContext, a) -> bool:
    return _zbs(ctx) and _bit(ctx, a, "ext", const(I64, a.shamt))
