"""Data processing: immediate and register classes (integer ALU, bitfield, multiply,
divide, conditional select and compare)."""

from __future__ import annotations

from collections.abc import Callable

from llvmtcg.frontends.aarch64.translate import (
    CF,
    INVERT,
    ZERO,
    DisasContext,
    gen_add_flags,
    gen_extended_reg,
    gen_flags_logic,
    gen_set_nzcv,
    gen_shift,
    gen_shifted_reg,
    gen_sub_flags,
    gen_test_cc,
)
from llvmtcg.ir import I64, Builder, Cond, Temp, const
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
CRC32_POLY = 0xEDB8_8320  # 0x04C11DB7 bit-reflected (ISO-HDLC, as zlib)
CRC32C_POLY = 0x82F6_3B78  # 0x1EDC6F41 bit-reflected (Castagnoli)


def _crc_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (poly if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC_TABLES = (_crc_table(CRC32_POLY), _crc_table(CRC32C_POLY))
CRC_HELPER = HelperDecl("aarch64_crc32", I64, (I64, I64, I64), HelperFlag.NO_SIDE_EFFECTS)


def register_helpers(registry) -> None:
    registry.register(CRC_HELPER, crc_helper)


def crc_helper(acc: int, value: int, size_and_kind: int) -> int:
    """CRC32*/CRC32C*: ``acc`` updated with the low ``size_and_kind >> 1`` bytes of
    ``value``, least significant first, without the pre/post inversion zlib adds."""
    table = _CRC_TABLES[size_and_kind & 1]
    crc = acc & 0xFFFF_FFFF
    for i in range(size_and_kind >> 1):
        crc = (crc >> 8) ^ table[(crc ^ (value >> (8 * i))) & 0xFF]
    return crc


def decode_bit_masks(n: int, imms: int, immr: int, sf: int) -> int | None:
    """The logical-immediate value (the manual's DecodeBitMasks with immediate=TRUE),
    or None for a reserved encoding."""
    combined = (n << 6) | (~imms & 0x3F)
    if combined == 0:
        return None
    length = combined.bit_length() - 1
    if length < 1 or (not sf and n):
        return None
    levels = (1 << length) - 1
    if imms & levels == levels:
        return None
    s, r, esize = imms & levels, immr & levels, 1 << length
    welem = (1 << (s + 1)) - 1
    emask = (1 << esize) - 1
    elem = ((welem >> r) | (welem << (esize - r))) & emask
    datasize = 64 if sf else 32
    value = 0
    for i in range(0, datasize, esize):
        value |= elem << i
    return value


# -- data processing: immediate ---------------------------------------------------------

def trans_adr(ctx: DisasContext, a) -> bool:
    ctx.set_x(a.rd, const(I64, ctx.pc + a.imm))
    return True


def trans_adrp(ctx: DisasContext, a) -> bool:
    ctx.set_x(a.rd, const(I64, (ctx.pc & ~0xFFF) + a.imm))
    return True


def _addsub_imm(ctx: DisasContext, a, sub: bool, setflags: bool) -> bool:
    imm = const(I64, a.imm << (12 * a.sh))
    src = ctx.get_x_sp(a.rn)
    dst = ctx.temp()
    if setflags:
        (gen_sub_flags if sub else gen_add_flags)(ctx, dst, src, imm, a.sf)
        ctx.set_x(a.rd, dst, a.sf)
    else:
        (ctx.builder.sub if sub else ctx.builder.add)(dst, src, imm)
        ctx.set_x_sp(a.rd, dst, a.sf)
    return True


def trans_add_imm(ctx: DisasContext, a) -> bool:
    return _addsub_imm(ctx, a, False, False)


def trans_adds_imm(ctx: DisasContext, a) -> bool:
    return _addsub_imm(ctx, a, False, True)


def trans_sub_imm(ctx: DisasContext, a) -> bool:
    return _addsub_imm(ctx, a, True, False)


def trans_subs_imm(ctx: DisasContext, a) -> bool:
    return _addsub_imm(ctx, a, True, True)


Binary = Callable[[Builder, Temp, Temp, Temp], None]


def _logic_imm(ctx: DisasContext, a, op: Binary, setflags: bool = False) -> bool:
    imm = decode_bit_masks(a.n, a.imms, a.immr, a.sf)
    if imm is None:
        return False
    dst = ctx.temp()
    op(ctx.builder, dst, ctx.get_x(a.rn), const(I64, imm))
    if setflags:
        gen_flags_logic(ctx, dst, a.sf)
        ctx.set_x(a.rd, dst, a.sf)
    else:
        ctx.set_x_sp(a.rd, dst, a.sf)
    return True


def trans_and_imm(ctx: DisasContext, a) -> bool:
    return _logic_imm(ctx, a, Builder.and_)


def trans_orr_imm(ctx: DisasContext, a) -> bool:
    return _logic_imm(ctx, a, Builder.or_)


def trans_eor_imm(ctx: DisasContext, a) -> bool:
    return _logic_imm(ctx, a, Builder.xor)


def trans_ands_imm(ctx: DisasContext, a) -> bool:
    return _logic_imm(ctx, a, Builder.and_, setflags=True)


def _move_wide(ctx: DisasContext, a) -> int | None:
    if not a.sf and a.hw >= 2:
        return None
    return a.hw * 16


def trans_movn(ctx: DisasContext, a) -> bool:
    if (pos := _move_wide(ctx, a)) is None:
        return False
    ctx.set_x(a.rd, const(I64, ~(a.imm << pos)), a.sf)
    return True


def trans_movz(ctx: DisasContext, a) -> bool:
    if (pos := _move_wide(ctx, a)) is None:
        return False
    ctx.set_x(a.rd, const(I64, a.imm << pos), a.sf)
    return True


def trans_movk(ctx: DisasContext, a) -> bool:
    if (pos := _move_wide(ctx, a)) is None:
        return False
    dst = ctx.temp()
    ctx.builder.deposit(dst, ctx.get_x(a.rd), const(I64, a.imm), pos, 16)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def _bitfield_ok(a) -> bool:
    return a.n == a.sf and (a.sf or (a.immr < 32 and a.imms < 32))


def trans_sbfm(ctx: DisasContext, a) -> bool:
    if not _bitfield_ok(a):
        return False
    b, src, dst = ctx.builder, ctx.get_x(a.rn), ctx.temp()
    bits = 64 if a.sf else 32
    if a.imms >= a.immr:  # SBFX / ASR / SXT*
        b.extract(dst, src, a.immr, a.imms - a.immr + 1, signed=True)
    else:  # SBFIZ
        b.extract(dst, src, 0, a.imms + 1, signed=True)
        b.shl(dst, dst, const(I64, bits - a.immr))
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_ubfm(ctx: DisasContext, a) -> bool:
    if not _bitfield_ok(a):
        return False
    b, src, dst = ctx.builder, ctx.get_x(a.rn), ctx.temp()
    bits = 64 if a.sf else 32
    if a.imms >= a.immr:  # UBFX / LSR / UXT*
        b.extract(dst, src, a.immr, a.imms - a.immr + 1)
    else:  # UBFIZ / LSL
        b.deposit(dst, ZERO, src, bits - a.immr, a.imms + 1)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_bfm(ctx: DisasContext, a) -> bool:
    if not _bitfield_ok(a):
        return False
    b, src, dst = ctx.builder, ctx.get_x(a.rn), ctx.temp()
    bits = 64 if a.sf else 32
    if a.imms >= a.immr:  # BFXIL
        length = a.imms - a.immr + 1
        field = ctx.temp()
        b.extract(field, src, a.immr, length)
        b.deposit(dst, ctx.get_x(a.rd), field, 0, length)
    else:  # BFI
        b.deposit(dst, ctx.get_x(a.rd), src, bits - a.immr, a.imms + 1)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_extr(ctx: DisasContext, a) -> bool:
    if a.n != a.sf or (not a.sf and a.imms >= 32):
        return False
    b, lsb = ctx.builder, a.imms
    hi, lo, dst = ctx.get_x(a.rn), ctx.get_x(a.rm), ctx.temp()
    if a.sf:
        if lsb == 0:
            b.mov(dst, lo)
        else:
            t = ctx.temp()
            b.shr(dst, lo, const(I64, lsb))
            b.shl(t, hi, const(I64, 64 - lsb))
            b.or_(dst, dst, t)
    else:
        t = ctx.temp()
        b.ext32u(t, lo)
        b.deposit(dst, t, hi, 32, 32)
        b.shr(dst, dst, const(I64, lsb))
    ctx.set_x(a.rd, dst, a.sf)
    return True


# -- data processing: register ----------------------------------------------------------

def _logic_reg(ctx: DisasContext, a, op: Binary, setflags: bool = False) -> bool:
    if not a.sf and a.imm >= 32:
        return False
    operand = gen_shifted_reg(ctx, a.rm, a.shift, a.imm, a.sf)
    dst = ctx.temp()
    op(ctx.builder, dst, ctx.get_x(a.rn), operand)
    if setflags:
        gen_flags_logic(ctx, dst, a.sf)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_and_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.and_)


def trans_bic_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.andc)


def trans_orr_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.or_)


def trans_orn_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.orc)


def trans_eor_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.xor)


def trans_eon_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.eqv)


def trans_ands_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.and_, setflags=True)


def trans_bics_r(ctx: DisasContext, a) -> bool:
    return _logic_reg(ctx, a, Builder.andc, setflags=True)


def _addsub(ctx: DisasContext, a, src: Temp, operand: Temp, sub: bool, setflags: bool,
            rd_is_sp: bool) -> bool:
    dst = ctx.temp()
    if setflags:
        (gen_sub_flags if sub else gen_add_flags)(ctx, dst, src, operand, a.sf)
        ctx.set_x(a.rd, dst, a.sf)
        return True
    (ctx.builder.sub if sub else ctx.builder.add)(dst, src, operand)
    if rd_is_sp:
        ctx.set_x_sp(a.rd, dst, a.sf)
    else:
        ctx.set_x(a.rd, dst, a.sf)
    return True


def _addsub_shifted(ctx: DisasContext, a, sub: bool, setflags: bool) -> bool:
    if a.shift == 3 or (not a.sf and a.imm >= 32):
        return False
    operand = gen_shifted_reg(ctx, a.rm, a.shift, a.imm, a.sf)
    return _addsub(ctx, a, ctx.get_x(a.rn), operand, sub, setflags, rd_is_sp=False)


def trans_add_r(ctx: DisasContext, a) -> bool:
    return _addsub_shifted(ctx, a, False, False)


def trans_adds_r(ctx: DisasContext, a) -> bool:
    return _addsub_shifted(ctx, a, False, True)


def trans_sub_r(ctx: DisasContext, a) -> bool:
    return _addsub_shifted(ctx, a, True, False)


def trans_subs_r(ctx: DisasContext, a) -> bool:
    return _addsub_shifted(ctx, a, True, True)


def _addsub_extended(ctx: DisasContext, a, sub: bool, setflags: bool) -> bool:
    if a.imm > 4:
        return False
    operand = gen_extended_reg(ctx, a.rm, a.option, a.imm)
    return _addsub(ctx, a, ctx.get_x_sp(a.rn), operand, sub, setflags, rd_is_sp=True)


def trans_add_ext(ctx: DisasContext, a) -> bool:
    return _addsub_extended(ctx, a, False, False)


def trans_adds_ext(ctx: DisasContext, a) -> bool:
    return _addsub_extended(ctx, a, False, True)


def trans_sub_ext(ctx: DisasContext, a) -> bool:
    return _addsub_extended(ctx, a, True, False)


def trans_subs_ext(ctx: DisasContext, a) -> bool:
    return _addsub_extended(ctx, a, True, True)


def _adc(ctx: DisasContext, a, sub: bool, setflags: bool) -> bool:
    b = ctx.builder
    operand = ctx.get_x(a.rm)
    if sub:
        inverted = ctx.temp()
        b.not_(inverted, operand)
        operand = inverted
    dst = ctx.temp()
    if setflags:
        gen_add_flags(ctx, dst, ctx.get_x(a.rn), operand, a.sf, CF)
    else:
        b.add(dst, ctx.get_x(a.rn), operand)
        b.add(dst, dst, CF)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_adc(ctx: DisasContext, a) -> bool:
    return _adc(ctx, a, False, False)


def trans_adcs(ctx: DisasContext, a) -> bool:
    return _adc(ctx, a, False, True)


def trans_sbc(ctx: DisasContext, a) -> bool:
    return _adc(ctx, a, True, False)


def trans_sbcs(ctx: DisasContext, a) -> bool:
    return _adc(ctx, a, True, True)


def _ccmp(ctx: DisasContext, a, negative: bool) -> bool:
    """CCMP/CCMN: flags of Rn - op (Rn + op) if the condition holds, else #nzcv."""
    b = ctx.builder
    immediate_form = ctx.insn >> 11 & 1
    operand = const(I64, a.imm) if immediate_form else ctx.get_x(a.rm)
    test = gen_test_cc(ctx, a.cond)
    done = b.label()
    if test is not None:
        fail = b.label()
        cond, x, y = test
        b.brcond(INVERT[cond], x, y, fail)
        _ccmp_flags(ctx, a, operand, negative)
        b.br(done)
        b.set_label(fail)
        gen_set_nzcv(ctx, a.nzcv)
    else:
        _ccmp_flags(ctx, a, operand, negative)
    b.set_label(done)
    return True


def _ccmp_flags(ctx: DisasContext, a, operand: Temp, negative: bool) -> None:
    scratch = ctx.temp()
    if negative:
        gen_add_flags(ctx, scratch, ctx.get_x(a.rn), operand, a.sf)
    else:
        gen_sub_flags(ctx, scratch, ctx.get_x(a.rn), operand, a.sf)


def trans_ccmn(ctx: DisasContext, a) -> bool:
    return _ccmp(ctx, a, True)


def trans_ccmp(ctx: DisasContext, a) -> bool:
    return _ccmp(ctx, a, False)


def _csel(ctx: DisasContext, a, alter: Callable[[Builder, Temp, Temp], None] | None) -> bool:
    b = ctx.builder
    false_value = ctx.get_x(a.rm)
    if alter is not None:
        t = ctx.temp()
        alter(b, t, false_value)
        false_value = t
    test = gen_test_cc(ctx, a.cond)
    dst = ctx.temp()
    if test is None:
        b.mov(dst, ctx.get_x(a.rn))
    else:
        b.movcond(test[0], dst, test[1], test[2], ctx.get_x(a.rn), false_value)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def _increment(b: Builder, dst: Temp, src: Temp) -> None:
    b.add(dst, src, const(I64, 1))


def trans_csel(ctx: DisasContext, a) -> bool:
    return _csel(ctx, a, None)


def trans_csinc(ctx: DisasContext, a) -> bool:
    return _csel(ctx, a, _increment)


def trans_csinv(ctx: DisasContext, a) -> bool:
    return _csel(ctx, a, Builder.not_)


def trans_csneg(ctx: DisasContext, a) -> bool:
    return _csel(ctx, a, Builder.neg)


# -- multiply and divide ----------------------------------------------------------------

def _madd(ctx: DisasContext, a, sub: bool, extend: Callable | None = None) -> bool:
    b = ctx.builder
    x, y = ctx.get_x(a.rn), ctx.get_x(a.rm)
    if extend is not None:  # the widening forms multiply the low words
        xe, ye = ctx.temp(), ctx.temp()
        extend(b, xe, x)
        extend(b, ye, y)
        x, y = xe, ye
    product, dst = ctx.temp(), ctx.temp()
    b.mul(product, x, y)
    (b.sub if sub else b.add)(dst, ctx.get_x(a.ra), product)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_madd(ctx: DisasContext, a) -> bool:
    return _madd(ctx, a, False)


def trans_msub(ctx: DisasContext, a) -> bool:
    return _madd(ctx, a, True)


def trans_smaddl(ctx: DisasContext, a) -> bool:
    return _madd(ctx, a, False, Builder.ext32s)


def trans_smsubl(ctx: DisasContext, a) -> bool:
    return _madd(ctx, a, True, Builder.ext32s)


def trans_umaddl(ctx: DisasContext, a) -> bool:
    return _madd(ctx, a, False, Builder.ext32u)


def trans_umsubl(ctx: DisasContext, a) -> bool:
    return _madd(ctx, a, True, Builder.ext32u)


def trans_smulh(ctx: DisasContext, a) -> bool:
    dst = ctx.temp()
    ctx.builder.mulsh(dst, ctx.get_x(a.rn), ctx.get_x(a.rm))
    ctx.set_x(a.rd, dst)
    return True


def trans_umulh(ctx: DisasContext, a) -> bool:
    dst = ctx.temp()
    ctx.builder.muluh(dst, ctx.get_x(a.rn), ctx.get_x(a.rm))
    ctx.set_x(a.rd, dst)
    return True


def _div(ctx: DisasContext, a, signed: bool) -> bool:
    """UDIV/SDIV: division by zero gives 0 (the IR's all-ones is replaced); the
    overflowing INT_MIN / -1 gives INT_MIN, as the IR does."""
    b = ctx.builder
    x, y = ctx.get_x(a.rn), ctx.get_x(a.rm)
    if not a.sf:
        ext = Builder.ext32s if signed else Builder.ext32u
        xe, ye = ctx.temp(), ctx.temp()
        ext(b, xe, x)
        ext(b, ye, y)
        x, y = xe, ye
    q, dst = ctx.temp(), ctx.temp()
    (b.div if signed else b.divu)(q, x, y)
    b.movcond(Cond.EQ, dst, y, ZERO, ZERO, q)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_udiv(ctx: DisasContext, a) -> bool:
    return _div(ctx, a, False)


def trans_sdiv(ctx: DisasContext, a) -> bool:
    return _div(ctx, a, True)


def _shiftv(ctx: DisasContext, a, kind: int) -> bool:
    dst = ctx.temp()
    gen_shift(ctx, dst, ctx.get_x(a.rn), kind, ctx.get_x(a.rm), a.sf)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_lslv(ctx: DisasContext, a) -> bool:
    return _shiftv(ctx, a, 0)


def trans_lsrv(ctx: DisasContext, a) -> bool:
    return _shiftv(ctx, a, 1)


def trans_asrv(ctx: DisasContext, a) -> bool:
    return _shiftv(ctx, a, 2)


def trans_rorv(ctx: DisasContext, a) -> bool:
    return _shiftv(ctx, a, 3)


# -- one source -------------------------------------------------------------------------

def gen_swap_bits(ctx: DisasContext, dst: Temp, src: Temp, shift: int, mask: int) -> None:
    """dst = ((src >> shift) & mask) | ((src & mask) << shift): swaps adjacent fields."""
    b = ctx.builder
    hi, lo = ctx.temp(), ctx.temp()
    b.shr(hi, src, const(I64, shift))
    b.and_(hi, hi, const(I64, mask))
    b.and_(lo, src, const(I64, mask))
    b.shl(lo, lo, const(I64, shift))
    b.or_(dst, hi, lo)


def gen_rbit64(ctx: DisasContext, dst: Temp, src: Temp) -> None:
    t = ctx.temp()
    gen_swap_bits(ctx, t, src, 1, 0x5555_5555_5555_5555)
    gen_swap_bits(ctx, t, t, 2, 0x3333_3333_3333_3333)
    gen_swap_bits(ctx, t, t, 4, 0x0F0F_0F0F_0F0F_0F0F)
    ctx.builder.bswap64(dst, t)


def trans_rbit(ctx: DisasContext, a) -> bool:
    dst = ctx.temp()
    gen_rbit64(ctx, dst, ctx.get_x(a.rn))
    if not a.sf:
        ctx.builder.shr(dst, dst, const(I64, 32))
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_rev16(ctx: DisasContext, a) -> bool:
    dst = ctx.temp()
    gen_swap_bits(ctx, dst, ctx.get_x(a.rn), 8, 0x00FF_00FF_00FF_00FF)
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_rev32(ctx: DisasContext, a) -> bool:
    """REV32 (64-bit: each word byte-reversed) or, with sf=0, REV Wd."""
    b, dst = ctx.builder, ctx.temp()
    b.bswap64(dst, ctx.get_x(a.rn))
    if a.sf:
        b.rotr(dst, dst, const(I64, 32))
    else:
        b.shr(dst, dst, const(I64, 32))
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_rev64(ctx: DisasContext, a) -> bool:
    if not a.sf:
        return False
    dst = ctx.temp()
    ctx.builder.bswap64(dst, ctx.get_x(a.rn))
    ctx.set_x(a.rd, dst)
    return True


def trans_clz(ctx: DisasContext, a) -> bool:
    b, dst = ctx.builder, ctx.temp()
    if a.sf:
        b.clz(dst, ctx.get_x(a.rn), const(I64, 64))
    else:
        b.ext32u(dst, ctx.get_x(a.rn))
        b.clz(dst, dst, const(I64, 64))
        b.sub(dst, dst, const(I64, 32))
    ctx.set_x(a.rd, dst, a.sf)
    return True


def trans_cls(ctx: DisasContext, a) -> bool:
    """Leading sign bits: clz(x ^ (x >> 1)) - 1, on the sign-extended word for W."""
    b, x, t = ctx.builder, ctx.temp(), ctx.temp()
    if a.sf:
        b.mov(x, ctx.get_x(a.rn))
    else:
        b.ext32s(x, ctx.get_x(a.rn))
    b.sar(t, x, const(I64, 1))
    b.xor(t, t, x)
    b.clz(t, t, const(I64, 64))
    b.sub(t, t, const(I64, 1 if a.sf else 33))
    ctx.set_x(a.rd, t, a.sf)
    return True


# -- CRC32 ----------------------------------------------------------------------------------

def _crc(ctx: DisasContext, a, castagnoli: int) -> bool:
    if (a.sz == 3) != bool(a.sf):  # only the doubleword forms take an X register
        return False
    dst = ctx.temp()
    ctx.builder.call(CRC_HELPER.name, (dst,), (ctx.get_x(a.rn), ctx.get_x(a.rm),
                                               const(I64, (1 << a.sz) << 1 | castagnoli)))
    ctx.set_x(a.rd, dst, 0)
    return True


def trans_crc32(ctx: DisasContext, a) -> bool:
    return _crc(ctx, a, 0)


def trans_crc32c(ctx: DisasContext, a) -> bool:
    return _crc(ctx, a, 1)
