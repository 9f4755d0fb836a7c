"""Loads and stores: every addressing mode of the general and FP/SIMD registers,
exclusives, load-acquire/store-release, compare-and-swap and the LSE atomics.

Exclusives follow QEMU: LDXR records the address and the value read, STXR is a
compare-and-swap against that value (so a store by anyone in between makes it fail
only if it changed the value). Pairs of doublewords (LDXP/STXP, CASP) are 16-byte
aligned and their store is the IR's 128-bit ``atomic_cmpxchg_pair`` (cmpxchg16b); LDXP
reads the two doublewords with two loads (the architecture makes each one single-copy
atomic; a torn pair makes the STXP's compare fail, as in QEMU).
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmtcg.frontends.aarch64.translate import (
    GLOBALS,
    VQ,
    ZERO,
    DisasContext,
    V,
    gen_extended_reg,
)
from llvmtcg.ir import I64, AtomicOp, Cond, MemOp, Temp, const
from llvmtcg.ir.types import PAIR_MEMOP

EXCL_ADDR = GLOBALS["excl_addr"]
EXCL_VAL = GLOBALS["excl_val"]
EXCL_VAL2 = GLOBALS["excl_val2"]


@dataclass(frozen=True, slots=True)
class Access:
    """What one load/store encoding transfers: ``size_log2`` bytes (4 = a Q register),
    to or from a general register (``vector`` False) or a SIMD&FP register; loads
    sign-extend to 64 bits (``signed``) or to 32 (``signed32``)."""

    size_log2: int
    load: bool
    vector: bool = False
    signed: bool = False
    signed32: bool = False
    prefetch: bool = False


def decode_access(size: int, v: int, opc: int) -> Access | None:
    """The size/V/opc fields of the load/store register classes; None: unallocated."""
    if v:
        size_log2 = (opc >> 1) << 2 | size
        if size_log2 > 4:
            return None
        return Access(size_log2, bool(opc & 1), vector=True)
    if opc == 0:
        return Access(size, False)
    if opc == 1:
        return Access(size, True)
    if opc == 2:
        if size == 3:
            return Access(3, True, prefetch=True)  # PRFM
        return Access(size, True, signed=True)
    if size >= 2:
        return None
    return Access(size, True, signed=True, signed32=True)


# -- shared generators ----------------------------------------------------------------------

def gen_load_reg(ctx: DisasContext, acc: Access, rt: int, addr: Temp) -> None:
    """Load register rt (general or SIMD&FP) from addr."""
    b = ctx.builder
    if acc.prefetch:
        return
    if acc.vector:
        gen_load_vreg(ctx, rt, addr, acc.size_log2)
        return
    value = ctx.temp()
    b.qemu_ld(value, addr, MemOp(acc.size_log2, signed=acc.signed), ctx.mem_idx)
    ctx.set_x(rt, value, 0 if acc.signed32 else 1)


def gen_store_reg(ctx: DisasContext, acc: Access, rt: int, addr: Temp) -> None:
    if acc.vector:
        gen_store_vreg(ctx, rt, addr, acc.size_log2)
        return
    ctx.builder.qemu_st(ctx.get_x(rt), addr, MemOp(acc.size_log2), ctx.mem_idx)


def gen_load_vreg(ctx: DisasContext, vt: int, addr: Temp, size_log2: int) -> None:
    """Load B/H/S/D (zeroing the rest of the register) or Q into V[vt]."""
    b = ctx.builder
    if size_log2 == 4:  # one 16-byte access (two doublewords: ir/ops.py)
        b.qemu_ld(VQ[vt], addr, MemOp(3), ctx.mem_idx)
        return
    b.qemu_ld(V[2 * vt], addr, MemOp(size_log2), ctx.mem_idx)
    b.movi(V[2 * vt + 1], 0)


def gen_store_vreg(ctx: DisasContext, vt: int, addr: Temp, size_log2: int) -> None:
    b = ctx.builder
    if size_log2 == 4:
        b.qemu_st(VQ[vt], addr, MemOp(3), ctx.mem_idx)
        return
    b.qemu_st(V[2 * vt], addr, MemOp(size_log2), ctx.mem_idx)


def gen_access(ctx: DisasContext, acc: Access, rt: int, addr: Temp) -> None:
    (gen_load_reg if acc.load else gen_store_reg)(ctx, acc, rt, addr)


def _address(ctx: DisasContext, rn: int, offset: int, index: int) -> tuple[Temp, Temp | None]:
    """(access address, written-back base or None) for the immediate-offset modes:
    index 1 post-index, 3 pre-index, anything else plain offset."""
    b = ctx.builder
    base = ctx.temp()
    b.mov(base, ctx.get_x_sp(rn))
    if index == 1:
        updated = ctx.temp()
        b.add(updated, base, const(I64, offset))
        return base, updated
    addr = ctx.temp()
    b.add(addr, base, const(I64, offset))
    return addr, (addr if index == 3 else None)


# -- single registers -----------------------------------------------------------------------

def trans_ldst_imm(ctx: DisasContext, a) -> bool:
    """LDUR/STUR (idx 0), post-index (1), LDTR/STTR (2: EL0 accesses as usual),
    pre-index (3), with a signed 9-bit unscaled offset."""
    acc = decode_access(a.size, a.v, a.opc)
    if acc is None or (a.idx == 2 and acc.vector) or (acc.prefetch and a.idx != 0):
        return False
    addr, writeback = _address(ctx, a.rn, a.imm, a.idx)
    gen_access(ctx, acc, a.rt, addr)
    if writeback is not None:
        ctx.set_x_sp(a.rn, writeback)
    return True


def trans_ldst_uimm(ctx: DisasContext, a) -> bool:
    acc = decode_access(a.size, a.v, a.opc)
    if acc is None:
        return False
    addr, _ = _address(ctx, a.rn, a.imm << acc.size_log2, 2)
    gen_access(ctx, acc, a.rt, addr)
    return True


def trans_ldst_roff(ctx: DisasContext, a) -> bool:
    acc = decode_access(a.size, a.v, a.opc)
    if acc is None or not a.option & 2:
        return False
    offset = gen_extended_reg(ctx, a.rm, a.option, acc.size_log2 if a.s else 0)
    addr = ctx.temp()
    ctx.builder.add(addr, ctx.get_x_sp(a.rn), offset)
    gen_access(ctx, acc, a.rt, addr)
    return True


def _literal(ctx: DisasContext, a, acc: Access) -> bool:
    addr = ctx.temp()
    ctx.builder.movi(addr, ctx.pc + a.imm)
    gen_load_reg(ctx, acc, a.rt, addr)
    return True


def trans_ldr_lit(ctx: DisasContext, a) -> bool:
    return _literal(ctx, a, Access(2 + a.opc, True))


def trans_ldrsw_lit(ctx: DisasContext, a) -> bool:
    return _literal(ctx, a, Access(2, True, signed=True))


def trans_prfm_lit(ctx: DisasContext, a) -> bool:
    return True


def trans_ldr_lit_v(ctx: DisasContext, a) -> bool:
    if a.opc == 3:
        return False
    return _literal(ctx, a, Access(2 + a.opc, True, vector=True))


# -- pairs ----------------------------------------------------------------------------------

def _pair(ctx: DisasContext, a, load: bool, vector: bool) -> bool:
    """LDP/STP/LDNP/STNP/LDPSW: idx 0 non-temporal offset, 1 post, 2 offset, 3 pre."""
    if vector:
        if a.opc == 3:
            return False
        acc = Access(2 + a.opc, load, vector=True)
    elif a.opc == 1:
        if not load or a.idx == 0:  # STGP (MTE) and LDNPSW do not exist here
            return False
        acc = Access(2, True, signed=True)
    elif a.opc in (0, 2):
        acc = Access(2 + (a.opc >> 1), load)
    else:
        return False
    step = 1 << acc.size_log2
    addr, writeback = _address(ctx, a.rn, a.imm * step, a.idx)
    addr2 = ctx.temp()
    ctx.builder.add(addr2, addr, const(I64, step))
    if load and not vector:
        # Both values are read before either register is written (rt may be the base).
        first, second = ctx.temp(), ctx.temp()
        memop = MemOp(acc.size_log2, signed=acc.signed)
        ctx.builder.qemu_ld(first, addr, memop, ctx.mem_idx)
        ctx.builder.qemu_ld(second, addr2, memop, ctx.mem_idx)
        # rt == rt2 is CONSTRAINED UNPREDICTABLE (an UNKNOWN value): the first
        # value, as QEMU gives it (it writes rt last).
        ctx.set_x(a.rt2, second)
        ctx.set_x(a.rt, first)
    else:
        gen_access(ctx, acc, a.rt, addr)
        gen_access(ctx, acc, a.rt2, addr2)
    if writeback is not None:
        ctx.set_x_sp(a.rn, writeback)
    return True


def trans_stp(ctx: DisasContext, a) -> bool:
    return _pair(ctx, a, False, False)


def trans_ldp(ctx: DisasContext, a) -> bool:
    return _pair(ctx, a, True, False)


def trans_stp_v(ctx: DisasContext, a) -> bool:
    return _pair(ctx, a, False, True)


def trans_ldp_v(ctx: DisasContext, a) -> bool:
    return _pair(ctx, a, True, True)


# -- exclusives, acquire/release, compare-and-swap ------------------------------------------

def _aligned(size_log2: int) -> MemOp:
    return MemOp(size_log2, align_log2=size_log2)


def trans_ldxr(ctx: DisasContext, a) -> bool:
    b = ctx.builder
    addr = ctx.temp()
    b.mov(addr, ctx.get_x_sp(a.rn))
    b.qemu_ld(EXCL_VAL, addr, _aligned(a.size), ctx.mem_idx)
    b.mov(EXCL_ADDR, addr)
    ctx.set_x(a.rt, EXCL_VAL)
    return True


def trans_ldxp(ctx: DisasContext, a) -> bool:
    b = ctx.builder
    addr = ctx.temp()
    b.mov(addr, ctx.get_x_sp(a.rn))
    if a.size == 2:  # two words: one doubleword access
        b.qemu_ld(EXCL_VAL, addr, _aligned(3), ctx.mem_idx)
        lo, hi = ctx.temp(), ctx.temp()
        b.ext32u(lo, EXCL_VAL)
        b.shr(hi, EXCL_VAL, const(I64, 32))
        ctx.set_x(a.rt, lo)
        ctx.set_x(a.rt2, hi)
    else:
        addr2 = ctx.temp()
        b.qemu_ld(EXCL_VAL, addr, PAIR_MEMOP, ctx.mem_idx)  # (the pair's alignment)
        b.add(addr2, addr, const(I64, 8))
        b.qemu_ld(EXCL_VAL2, addr2, _aligned(3), ctx.mem_idx)
        ctx.set_x(a.rt, EXCL_VAL)
        ctx.set_x(a.rt2, EXCL_VAL2)
    b.mov(EXCL_ADDR, addr)
    return True


def _store_exclusive(ctx: DisasContext, a, pair: bool) -> bool:
    b = ctx.builder
    addr, status = ctx.temp(), ctx.temp()
    b.mov(addr, ctx.get_x_sp(a.rn))
    fail, done = b.label(), b.label()
    b.brcond(Cond.NE, addr, EXCL_ADDR, fail)
    if pair and a.size == 3:
        old1, old2, d1, d2 = ctx.temp(), ctx.temp(), ctx.temp(), ctx.temp()
        b.atomic_cmpxchg_pair((old1, old2), addr, (EXCL_VAL, EXCL_VAL2),
                              (ctx.get_x(a.rt), ctx.get_x(a.rt2)), ctx.mem_idx)
        b.xor(d1, old1, EXCL_VAL)
        b.xor(d2, old2, EXCL_VAL2)
        b.or_(d1, d1, d2)
        b.setcond(Cond.NE, status, d1, ZERO)
    else:
        new, old = ctx.temp(), ctx.temp()
        size = a.size
        if pair:  # two words as one doubleword (rt in the low half)
            lo = ctx.temp()
            b.ext32u(lo, ctx.get_x(a.rt))
            b.deposit(new, lo, ctx.get_x(a.rt2), 32, 32)
            size = 3
        else:
            b.mov(new, ctx.get_x(a.rt))
        b.atomic_cmpxchg(old, addr, EXCL_VAL, new, _aligned(size), ctx.mem_idx)
        b.setcond(Cond.NE, status, old, EXCL_VAL)
    b.br(done)
    b.set_label(fail)
    b.movi(status, 1)
    b.set_label(done)
    b.movi(EXCL_ADDR, -1)  # any store-exclusive clears the monitor
    ctx.set_x(a.rs, status)
    return True


def trans_stxr(ctx: DisasContext, a) -> bool:
    return _store_exclusive(ctx, a, False)


def trans_stxp(ctx: DisasContext, a) -> bool:
    return _store_exclusive(ctx, a, True)


def trans_ldar(ctx: DisasContext, a) -> bool:
    if not a.o0 and not ctx.model.has_lse:
        return False  # LDLAR (Armv8.1 LORegions)
    value = ctx.temp()
    ctx.builder.qemu_ld(value, ctx.get_x_sp(a.rn), _aligned(a.size), ctx.mem_idx)
    ctx.set_x(a.rt, value)
    return True


def trans_stlr(ctx: DisasContext, a) -> bool:
    if not a.o0 and not ctx.model.has_lse:
        return False  # STLLR
    ctx.builder.qemu_st(ctx.get_x(a.rt), ctx.get_x_sp(a.rn), _aligned(a.size), ctx.mem_idx)
    return True


def trans_cas(ctx: DisasContext, a) -> bool:
    if not ctx.model.has_lse:
        return False
    b = ctx.builder
    expected, old = ctx.temp(), ctx.temp()
    ext = (b.ext8u, b.ext16u, b.ext32u, b.mov)[a.size]
    ext(expected, ctx.get_x(a.rs))
    b.atomic_cmpxchg(old, ctx.get_x_sp(a.rn), expected, ctx.get_x(a.rt), _aligned(a.size),
                     ctx.mem_idx)
    ctx.set_x(a.rs, old)
    return True


def trans_casp(ctx: DisasContext, a) -> bool:
    if a.rs & 1 or a.rt & 1 or not ctx.model.has_lse:
        return False
    b = ctx.builder
    addr = ctx.temp()
    b.mov(addr, ctx.get_x_sp(a.rn))
    if a.size == 0:  # word pairs: one doubleword compare-and-swap
        expected, new, old, lo = ctx.temp(), ctx.temp(), ctx.temp(), ctx.temp()
        b.ext32u(lo, ctx.get_x(a.rs))
        b.deposit(expected, lo, ctx.get_x(a.rs + 1), 32, 32)
        b.ext32u(lo, ctx.get_x(a.rt))
        b.deposit(new, lo, ctx.get_x(a.rt + 1), 32, 32)
        b.atomic_cmpxchg(old, addr, expected, new, _aligned(3), ctx.mem_idx)
        hi = ctx.temp()
        b.shr(hi, old, const(I64, 32))
        ctx.set_x(a.rs, old, 0)
        ctx.set_x(a.rs + 1, hi, 0)
        return True
    old1, old2 = ctx.temp(), ctx.temp()
    b.atomic_cmpxchg_pair((old1, old2), addr, (ctx.get_x(a.rs), ctx.get_x(a.rs + 1)),
                          (ctx.get_x(a.rt), ctx.get_x(a.rt + 1)), ctx.mem_idx)
    ctx.set_x(a.rs, old1)
    ctx.set_x(a.rs + 1, old2)
    return True


# -- LSE atomics ----------------------------------------------------------------------------

def _atomic(ctx: DisasContext, a, op: AtomicOp, invert: bool = False) -> bool:
    if not ctx.model.has_lse:
        return False
    b = ctx.builder
    value = ctx.get_x(a.rs)
    if invert:  # LDCLR: memory AND NOT value
        inverted = ctx.temp()
        b.not_(inverted, value)
        value = inverted
    old = ctx.temp()
    b.atomic_rmw(op, old, ctx.get_x_sp(a.rn), value, _aligned(a.size), ctx.mem_idx)
    ctx.set_x(a.rt, old)
    return True


def trans_ldadd(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.ADD)


def trans_ldclr(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.AND, invert=True)


def trans_ldeor(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.XOR)


def trans_ldset(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.OR)


def trans_ldsmax(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.SMAX)


def trans_ldsmin(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.SMIN)


def trans_ldumax(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.UMAX)


def trans_ldumin(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.UMIN)


def trans_swp(ctx: DisasContext, a) -> bool:
    return _atomic(ctx, a, AtomicOp.XCHG)


