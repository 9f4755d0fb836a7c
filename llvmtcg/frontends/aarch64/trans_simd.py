"""FP/SIMD register moves, AdvSIMD structure loads/stores and the integer AdvSIMD data
processing: vector IR ops (host SSE/AVX) or inline IR on the 64-bit halves."""

from __future__ import annotations

from collections.abc import Callable

from llvmtcg.frontends.aarch64 import simd_lanes
from llvmtcg.frontends.aarch64.simd_lanes import (
    M64,
    expand_imm,
    shift_geometry,
)
from llvmtcg.frontends.aarch64.translate import GLOBALS, VQ, ZERO, DisasContext, V
from llvmtcg.ir import I32, I64, V128, Cond, MemOp, Temp, const
from llvmtcg.ir.cpu_layout import PAGE_SIZE
from llvmtcg.ir.ops import pack_permute

_REPLICATE = (0x0101_0101_0101_0101, 0x0001_0001_0001_0001, 0x0000_0001_0000_0001, 1)


# -- register moves ---------------------------------------------------------------------------

def trans_fmov_to_gp(ctx: DisasContext, a) -> bool:
    if (a.sf, a.ftype) == (0, 0):
        ctx.set_x(a.rd, V[2 * a.rn], 0)
    elif (a.sf, a.ftype) == (1, 1):
        ctx.set_x(a.rd, V[2 * a.rn])
    else:
        return False  # half precision is not implemented
    return True


def trans_fmov_from_gp(ctx: DisasContext, a) -> bool:
    b = ctx.builder
    if (a.sf, a.ftype) == (0, 0):
        b.ext32u(V[2 * a.rd], ctx.get_x(a.rn))
    elif (a.sf, a.ftype) == (1, 1):
        b.mov(V[2 * a.rd], ctx.get_x(a.rn))
    else:
        return False
    b.movi(V[2 * a.rd + 1], 0)
    return True


def trans_fmov_hi_to_gp(ctx: DisasContext, a) -> bool:
    ctx.set_x(a.rd, V[2 * a.rn + 1])
    return True


def trans_fmov_hi_from_gp(ctx: DisasContext, a) -> bool:
    ctx.builder.mov(V[2 * a.rd + 1], ctx.get_x(a.rn))
    return True


def trans_fmov_reg(ctx: DisasContext, a) -> bool:
    b = ctx.builder
    if a.ftype == 0:
        b.ext32u(V[2 * a.rd], V[2 * a.rn])
    elif a.ftype == 1:
        b.mov(V[2 * a.rd], V[2 * a.rn])
    else:
        return False
    b.movi(V[2 * a.rd + 1], 0)
    return True


# -- structure loads and stores -----------------------------------------------------------------

# opcode -> (registers, structure elements) of the multiple-structure forms
_MULTI_FORMS = {0b0000: (4, 4), 0b0010: (4, 1), 0b0100: (3, 3), 0b0110: (3, 1),
                0b0111: (1, 1), 0b1000: (2, 2), 0b1010: (2, 1)}


def _post_index(ctx: DisasContext, a, base: Temp, total: int) -> None:
    if not ctx.insn >> 23 & 1:
        return
    updated = ctx.temp()
    offset = const(I64, total) if a.rm == 31 else ctx.get_x(a.rm)
    ctx.builder.add(updated, base, offset)
    ctx.set_x_sp(a.rn, updated)


def _lane_access(ctx: DisasContext, load: bool, reg: int, size: int, index: int,
                 addr: Temp) -> None:
    """Load (or store) element ``index`` of ``size`` (log2 bytes) of V``reg`` at addr."""
    b = ctx.builder
    esize = 8 << size
    bit = index * esize
    half, pos = V[2 * reg + bit // 64], bit % 64
    if size == 3:
        if load:
            b.qemu_ld(half, addr, MemOp(3), ctx.mem_idx)
        else:
            b.qemu_st(half, addr, MemOp(3), ctx.mem_idx)
        return
    value = ctx.temp()
    if load:
        b.qemu_ld(value, addr, MemOp(size), ctx.mem_idx)
        b.deposit(half, half, value, pos, esize)
    else:
        b.shr(value, half, const(I64, pos))
        b.qemu_st(value, addr, MemOp(size), ctx.mem_idx)


def trans_simd_ldst_multi(ctx: DisasContext, a) -> bool:
    """LD1-LD4/ST1-ST4 (multiple structures): LDn de-interleaves n-element structures
    into n registers; LD1 of several registers fills them one after the other."""
    form = _MULTI_FORMS.get(a.opcode)
    if form is None:
        return False
    regs, selem = form
    if selem > 1 and a.sizev == 3 and not a.q:
        return False
    b = ctx.builder
    base = ctx.temp()
    b.mov(base, ctx.get_x_sp(a.rn))
    reg_bytes = 16 if a.q else 8
    if selem == 1:  # whole registers: one 16-byte access each, or a doubleword
        for i in range(regs):
            vt = (a.rt + i) % 32
            if a.q:
                addr = ctx.temp()
                b.add(addr, base, const(I64, i * reg_bytes))
                if a.l:
                    b.qemu_ld(VQ[vt], addr, MemOp(3), ctx.mem_idx)
                else:
                    b.qemu_st(VQ[vt], addr, MemOp(3), ctx.mem_idx)
                continue
            for half in range(reg_bytes // 8):
                addr = ctx.temp()
                b.add(addr, base, const(I64, i * reg_bytes + half * 8))
                _lane_access(ctx, bool(a.l), vt, 3, half, addr)
    else:
        # One wide access and vperms when the structures are on one page (then the
        # first access faults if any does, before a register or byte is written,
        # as element by element); across a page, element by element, as qemu
        # (a fault there leaves the elements before it loaded or stored).
        slow, done = b.label(), b.label()
        in_page = ctx.temp()
        b.and_(in_page, base, const(I64, PAGE_SIZE - 1))
        b.brcond(Cond.GTU, in_page, const(I64, PAGE_SIZE - selem * reg_bytes), slow)
        (_load_structures if a.l else _store_structures)(ctx, a, base, selem, reg_bytes)
        b.br(done)
        b.set_label(slow)
        esize_bytes = 1 << a.sizev
        offset = 0
        for element in range(reg_bytes // esize_bytes):
            for r in range(selem):
                addr = ctx.temp()
                b.add(addr, base, const(I64, offset))
                _lane_access(ctx, bool(a.l), (a.rt + r) % 32, a.sizev, element, addr)
                offset += esize_bytes
        b.set_label(done)
    if a.l and not a.q:
        for i in range(regs):
            b.movi(V[2 * ((a.rt + i) % 32) + 1], 0)
    _post_index(ctx, a, base, regs * reg_bytes)
    return True


def _gather(ctx: DisasContext, dst: Temp, sources: list[Temp], size: int, oprsz: int,
            want: list[tuple[int, int]]) -> None:
    """dst = lanes ``want`` ((source, lane) each) of the v128 ``sources``, as a tree of
    vperms of two (each step gathers the lanes its two inputs hold)."""
    whole = 16 >> size
    used = sorted({k for k, _ in want})
    # (temp, {(source, lane): where it is in temp}) per partial result
    items = [(sources[k], {(k, lane): lane for lane in range(whole)}) for k in used]
    if len(items) == 1:
        items.append(items[0])
    while len(items) > 1:
        (x, at_x), (y, at_y) = items[0], items[1]
        last = len(items) == 2
        indexes, at = [], {}
        for position, lane in enumerate(want):
            if lane in at_x:
                indexes.append(at_x[lane])
            elif lane in at_y:
                indexes.append(whole + at_y[lane])
            else:
                indexes.append(0)  # (not here yet: a later step puts it in)
                continue
            at[lane] = position
        out = dst if last else ctx.builder.temp(V128)
        permute(ctx, out, x, y, size, oprsz if last else 16, indexes)
        items[:2] = [(out, at)]


def _load_structures(ctx: DisasContext, a, base: Temp, selem: int, reg_bytes: int) -> None:
    """LD2-LD4 (multiple structures) on one page: the selem * reg_bytes bytes loaded
    (16 at a time, an 8-byte tail for LD3 of 8-byte registers), then each register's
    elements gathered from them."""
    b = ctx.builder
    size, total = a.sizev, selem * reg_bytes
    chunks = []
    for offset in range(0, total, 16):
        addr, chunk = ctx.temp(), b.temp(V128)
        b.add(addr, base, const(I64, offset))
        if total - offset >= 16:
            b.qemu_ld(chunk, addr, MemOp(3), ctx.mem_idx)
        else:
            tail = ctx.temp()
            b.qemu_ld(tail, addr, MemOp(3), ctx.mem_idx)
            b.vector("vdup", chunk, (tail,), 3, 8)
        chunks.append(chunk)
    per_chunk, count = 16 >> size, reg_bytes >> size
    for r in range(selem):  # (reading the loaded bytes only: no fault from here on)
        flat = [j * selem + r for j in range(count)]
        _gather(ctx, VQ[(a.rt + r) % 32], chunks, size, reg_bytes,
                [(f // per_chunk, f % per_chunk) for f in flat])


def _store_structures(ctx: DisasContext, a, base: Temp, selem: int, reg_bytes: int) -> None:
    """ST2-ST4 (multiple structures) on one page: each 16 bytes of the interleaved
    structures gathered from the registers, then stored; the 24 bytes of ST3 of 8-byte
    registers as bytes 0-15 and 8-23 (the overlap stored twice, with the same bytes)."""
    b = ctx.builder
    size = a.sizev
    per_chunk, total = 16 >> size, selem * reg_bytes
    regs = [VQ[(a.rt + r) % 32] for r in range(selem)]
    offsets = list(range(0, total - 15, 16)) + ([total - 16] if total % 16 else [])
    chunks = []
    for offset in offsets:
        flat = [(offset >> size) + lane for lane in range(per_chunk)]
        chunk = b.temp(V128)
        _gather(ctx, chunk, regs, size, 16, [(f % selem, f // selem) for f in flat])
        chunks.append(chunk)
    for offset, chunk in zip(offsets, chunks, strict=True):
        addr = ctx.temp()
        b.add(addr, base, const(I64, offset))
        b.qemu_st(chunk, addr, MemOp(3), ctx.mem_idx)


def trans_simd_ldst_single(ctx: DisasContext, a) -> bool:
    """LD1-LD4/ST1-ST4 (single structure: one lane of 1-4 registers) and LD1R-LD4R
    (load one structure and replicate it to all lanes)."""
    b = ctx.builder
    scale = a.opcode >> 1
    selem = ((a.opcode & 1) << 1 | a.r) + 1
    base = ctx.temp()
    b.mov(base, ctx.get_x_sp(a.rn))
    if scale == 3:  # LDnR
        if not a.l or a.s:
            return False
        size = a.sizev
        for r in range(selem):
            vt = (a.rt + r) % 32
            value, addr = ctx.temp(), ctx.temp()
            b.add(addr, base, const(I64, r << size))
            b.qemu_ld(value, addr, MemOp(size), ctx.mem_idx)
            b.mul(V[2 * vt], value, const(I64, _REPLICATE[size]))
            if a.q:
                b.mov(V[2 * vt + 1], V[2 * vt])
            else:
                b.movi(V[2 * vt + 1], 0)
        _post_index(ctx, a, base, selem << size)
        return True
    lane = _single_lane(a, scale)
    if lane is None:
        return False
    size, index = lane
    for r in range(selem):
        addr = ctx.temp()
        b.add(addr, base, const(I64, r << size))
        _lane_access(ctx, bool(a.l), (a.rt + r) % 32, size, index, addr)
    _post_index(ctx, a, base, selem << size)
    return True


def _single_lane(a, scale: int) -> tuple[int, int] | None:
    """(element size log2, lane) of a single-structure encoding, None if unallocated."""
    if scale == 0:
        return 0, a.q << 3 | a.s << 2 | a.sizev
    if scale == 1:
        if a.sizev & 1:
            return None
        return 1, a.q << 2 | a.s << 1 | a.sizev >> 1
    if a.sizev == 0:
        return 2, a.q << 1 | a.s
    if a.sizev == 1 and not a.s:
        return 3, a.q
    return None


# -- AdvSIMD data processing ------------------------------------------------------------------

def _add_long(name: str, signed: bool, wide: bool):
    """SADDL/UADDL/SSUBL/USUBL{2} (both operands' lower (upper: Q) half lanes widened,
    see _widen) and SADDW/UADDW/SSUBW/USUBW{2} (Vn already wide): one 2x-wide vadd or
    vsub."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        n = VQ[a.rn] if wide else _widen(ctx, VQ[a.rn], a.size, a.q, signed)
        m = _widen(ctx, VQ[a.rm], a.size, a.q, signed)
        ctx.builder.vector(name, VQ[a.rd], (n, m), a.size + 1, 16)
        return True
    return trans


trans_saddl_v = _add_long("vadd", True, False)
trans_uaddl_v = _add_long("vadd", False, False)
trans_saddw_v = _add_long("vadd", True, True)
trans_uaddw_v = _add_long("vadd", False, True)
trans_ssubl_v = _add_long("vsub", True, False)
trans_usubl_v = _add_long("vsub", False, False)


def _compare_zero(cond: Cond):
    """CMGT/CMGE/CMLE/CMLT #0: a signed vcmp of Vn with zero."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3 and not a.q:
            return False
        zero = ctx.builder.temp(V128)
        ctx.builder.vector("vdup", zero, (ZERO,), 0, 16)
        ctx.builder.vector("vcmp", VQ[a.rd], (VQ[a.rn], zero), a.size, 16 if a.q else 8,
                           cond)
        return True
    return trans


trans_cmgt0_v = _compare_zero(Cond.GT)
trans_cmge0_v = _compare_zero(Cond.GE)
trans_cmle0_v = _compare_zero(Cond.LE)
trans_cmlt0_v = _compare_zero(Cond.LT)


def _copy_size(a) -> int | None:
    imm5 = a.imm & 31
    return None if imm5 & 15 == 0 else (imm5 & -imm5).bit_length() - 1


def trans_ins_elem(ctx: DisasContext, a) -> bool:
    """INS (element; MOV Vd.T[i], Vn.T[j]): one element of Vn into Vd's lane i, the
    rest of Vd kept."""
    size = _copy_size(a)
    if size is None:
        return False
    imm5, imm4 = a.imm & 31, a.imm >> 5
    value = ctx.temp()
    ctx.builder.mov(value, _lane_source(ctx, a.rn, size, imm4 >> size))
    esize = 8 << size
    bit = (imm5 >> (size + 1)) * esize
    half = V[2 * a.rd + bit // 64]
    if size == 3:
        ctx.builder.mov(half, value)
    else:
        ctx.builder.deposit(half, half, value, bit % 64, esize)
    return True


# -- saturating, halving, accumulating, long and narrow forms --------------------------------

def _halving(kind: str, signed: bool):
    """SHADD/UHADD, SRHADD/URHADD, SHSUB/UHSUB: (a op b [+ 1]) >> 1 of the unbounded
    sum or difference, without widening, from a + b = 2(a & b) + (a ^ b) = 2(a | b) -
    (a ^ b) and a - b = (a ^ b) - 2(~a & b): (a & b) + (a ^ b) / 2, (a | b) - (a ^ b) /
    2 and (a ^ b) / 2 - (~a & b), the halving an arithmetic (signed) or logical shift."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        b, oprsz = ctx.builder, 16 if a.q else 8
        n, m = VQ[a.rn], VQ[a.rm]
        diff, half, base = b.temp(V128), b.temp(V128), b.temp(V128)
        b.vector("vxor", diff, (n, m), a.size, 16)
        b.vector("vsari" if signed else "vshri", half, (diff,), a.size, 16, 1)
        if kind == "add":
            b.vector("vand", base, (n, m), a.size, 16)
            b.vector("vadd", VQ[a.rd], (base, half), a.size, oprsz)
        elif kind == "round":
            b.vector("vor", base, (n, m), a.size, 16)
            b.vector("vsub", VQ[a.rd], (base, half), a.size, oprsz)
        else:
            b.vector("vandc", base, (m, n), a.size, 16)
            b.vector("vsub", VQ[a.rd], (half, base), a.size, oprsz)
        return True
    return trans


trans_shadd_v = _halving("add", True)
trans_uhadd_v = _halving("add", False)
trans_srhadd_v = _halving("round", True)
trans_urhadd_v = _halving("round", False)
trans_shsub_v = _halving("sub", True)
trans_uhsub_v = _halving("sub", False)
FPSR = GLOBALS["fpsr"]


def _saturating(name: str, wrapping: str):
    """SQADD/UQADD/SQSUB/UQSUB: the saturating vector op; FPSR.QC set when some lane
    differs from the wrapping result (it saturated)."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3 and not a.q:
            return False
        b = ctx.builder
        oprsz = 16 if a.q else 8
        saturated, wrapped = b.temp(V128), b.temp(V128)
        b.vector(name, saturated, (VQ[a.rn], VQ[a.rm]), a.size, oprsz)
        b.vector(wrapping, wrapped, (VQ[a.rn], VQ[a.rm]), a.size, oprsz)
        b.vector("vxor", wrapped, (wrapped, saturated), a.size, oprsz)
        clipped, qc = b.temp(I64), b.temp(I32)
        b.vector("vany", clipped, (wrapped,), a.size, oprsz)
        b.extr_i64_i32(qc, clipped)
        b.shl(qc, qc, const(I32, simd_lanes.QC.bit_length() - 1))
        b.or_(FPSR, FPSR, qc)
        b.vector("vmov", VQ[a.rd], (saturated,), 0, 16)
        return True
    return trans


trans_sqadd_v = _saturating("vssadd", "vadd")
trans_uqadd_v = _saturating("vusadd", "vadd")
trans_sqsub_v = _saturating("vsssub", "vsub")
trans_uqsub_v = _saturating("vussub", "vsub")


trans_ssubw_v = _add_long("vsub", True, True)
trans_usubw_v = _add_long("vsub", False, True)


def trans_pmull_v(ctx: DisasContext, a) -> bool:
    """PMULL{2} of bytes, or of doublewords (the crypto extension's 64x64 -> 128): one
    vpmull of the low (PMULL2: high) halves."""
    if not (a.size == 0 or (a.size == 3 and ctx.model.has_crypto)):
        return False
    ctx.builder.vector("vpmull", VQ[a.rd], (VQ[a.rn], VQ[a.rm]), a.size, 16, a.q)
    return True


def _shifted_right(ctx: DisasContext, a, signed: bool, full: bool
                   ) -> tuple[Temp, int, int, int] | None:
    """Vn's lanes shifted right by the immediate's 1..esize (by esize: all sign bits,
    or zero), as (temp, esize, shift, oprsz); None for an unallocated immh. ``full``:
    computed over all 16 bytes, else over the operation's size (bytes above it zero)."""
    immh = a.imm >> 3
    if immh == 0 or (immh >= 8 and not a.q):
        return None
    b = ctx.builder
    esize, right, _ = shift_geometry(a.imm)
    size, oprsz = esize.bit_length() - 4, 16 if a.q else 8
    width = 16 if full else oprsz
    shifted = b.temp(V128)
    if right < esize or signed:  # (an arithmetic shift by esize is one by esize-1)
        b.vector("vsari" if signed else "vshri", shifted, (VQ[a.rn],), size, width,
                 min(right, esize - 1))
    else:
        b.vector("vdup", shifted, (ZERO,), size, width)
    return shifted, esize, right, oprsz


def _rounding_shift_right(signed: bool, accumulate: bool):
    """SRSHR/URSHR/SRSRA/URSRA: (x + 2**(shift-1)) >> shift of the unbounded lane as
    (x >> shift) + bit shift-1 of x (a shift by esize: 0, or the sign copies for the
    signed form), added to Vd's lane for the accumulating forms."""
    def trans(ctx: DisasContext, a) -> bool:
        found = _shifted_right(ctx, a, signed, full=True)
        if found is None:
            return False
        shifted, esize, right, oprsz = found
        b = ctx.builder
        size = esize.bit_length() - 4
        bit, one, rounded = (b.temp(V128) for _ in range(3))
        b.vector("vshri", bit, (VQ[a.rn],), size, 16, right - 1)
        b.vector("vdup", one, (const(I64, 1),), size, 16)
        b.vector("vand", bit, (bit, one), size, 16)
        if accumulate:
            b.vector("vadd", rounded, (shifted, bit), size, 16)
            b.vector("vadd", VQ[a.rd], (rounded, VQ[a.rd]), size, oprsz)
        else:
            b.vector("vadd", VQ[a.rd], (shifted, bit), size, oprsz)
        return True
    return trans


trans_srshr_v = _rounding_shift_right(True, False)
trans_urshr_v = _rounding_shift_right(False, False)
trans_srsra_v = _rounding_shift_right(True, True)
trans_ursra_v = _rounding_shift_right(False, True)


# -- the AdvSIMD scalar forms: one lane of the vector operation ------------------------------

def trans_dup_s(ctx: DisasContext, a) -> bool:
    """DUP (element, scalar; MOV Dd, Vn.D[1]): Vd = the element, zero-extended."""
    size = _copy_size(a)
    if size is None:
        return False
    value = ctx.temp()
    ctx.builder.mov(value, _lane_source(ctx, a.rn, size, (a.imm & 31) >> (size + 1)))
    ctx.builder.mov(V[2 * a.rd], value)
    ctx.builder.movi(V[2 * a.rd + 1], 0)
    return True


# -- by element ----------------------------------------------------------------------------

# -- the cryptographic extension --------------------------------------------------------------
#
# Each instruction is one vector op of Vd (as read before it is written), Vn and Vm
# (ir/lower/crypto.py: AES-NI, SHA-NI and PCLMULQDQ on hosts with them, portable IR
# otherwise; crypto.py is the reference). SHA1H and SHA1SU0 are a few scalar ops.

def _crypto(op: str, sources: str):
    def trans(ctx: DisasContext, a) -> bool:
        if not ctx.model.has_crypto:
            return False
        regs = {"d": a.rd, "n": a.rn, "m": getattr(a, "rm", 0)}
        ctx.builder.vector(op, VQ[a.rd], tuple(VQ[regs[s]] for s in sources), 0, 16)
        return True
    return trans


trans_aese = _crypto("vaese", "dn")
trans_aesd = _crypto("vaesd", "dn")
trans_aesmc = _crypto("vaesmc", "n")
trans_aesimc = _crypto("vaesimc", "n")
trans_sha1c = _crypto("vsha1c", "dnm")
trans_sha1p = _crypto("vsha1p", "dnm")
trans_sha1m = _crypto("vsha1m", "dnm")
trans_sha256h = _crypto("vsha256h", "dnm")
trans_sha256h2 = _crypto("vsha256h2", "dnm")
trans_sha256su1 = _crypto("vsha256su1", "dnm")
trans_sha1su1 = _crypto("vsha1su1", "dn")
trans_sha256su0 = _crypto("vsha256su0", "dn")


def trans_sha1h(ctx: DisasContext, a) -> bool:
    """SHA1H: Vn's word 0 rotated left by 30, zero-extended to the whole register."""
    if not ctx.model.has_crypto:
        return False
    b = ctx.builder
    word = b.temp(I32)
    b.extr_i64_i32(word, V[2 * a.rn])
    b.rotl(word, word, const(I32, 30))
    b.ext_i32_i64(V[2 * a.rd], word, signed=False)
    b.movi(V[2 * a.rd + 1], 0)
    return True


def trans_sha1su0(ctx: DisasContext, a) -> bool:
    """SHA1SU0: (Vn's low doubleword : Vd's high one) ^ Vd ^ Vm, by doublewords."""
    if not ctx.model.has_crypto:
        return False
    b = ctx.builder
    d_lo, d_hi, n_lo = V[2 * a.rd], V[2 * a.rd + 1], V[2 * a.rn]
    lo, hi = ctx.temp(), ctx.temp()
    b.xor(lo, d_lo, d_hi)
    b.xor(lo, lo, V[2 * a.rm])
    b.xor(hi, n_lo, d_hi)
    b.xor(hi, hi, V[2 * a.rm + 1])
    b.mov(d_lo, lo)
    b.mov(d_hi, hi)
    return True


# -- inline forms of the common operations --------------------------------------------------
#
# The operations compilers and glibc's string routines use most are IR on the two 64-bit
# halves (SWAR: lanes never carry into each other), not calls of the lane helper.

def gen_halves(ctx: DisasContext, a, emit, halves: int | None = None) -> bool:
    """Vd.half[h] = emit(ctx, dst, Vn.half[h], Vm.half[h], Vd.half[h]) for one (Q=0, the
    upper half cleared) or both halves; the results are written last."""
    b = ctx.builder
    out = []
    for h in range(halves or (2 if a.q else 1)):
        t = ctx.temp()
        emit(ctx, t, V[2 * a.rn + h], V[2 * a.rm + h], V[2 * a.rd + h])
        out.append(t)
    b.mov(V[2 * a.rd], out[0])
    if len(out) == 2:
        b.mov(V[2 * a.rd + 1], out[1])
    else:
        b.movi(V[2 * a.rd + 1], 0)
    return True


def _logic(emit):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_halves(ctx, a, emit)
    return trans


def gen_vector(ctx: DisasContext, a, name: str, *args: object, size: int | None = None,
               unary: bool = False) -> bool:
    """Vd = the vector op ``name`` of Vn (and Vm) on host vector registers, lanes of
    ``size`` (default the encoding's) over Q's 8 or 16 bytes (Q=0 clears the upper
    half); Vd may be a source."""
    size = a.size if size is None else size
    if size == 3 and not a.q:
        return False
    sources = (VQ[a.rn],) if unary else (VQ[a.rn], VQ[a.rm])
    ctx.builder.vector(name, VQ[a.rd], sources, size, 16 if a.q else 8, *args)
    return True


def _vector(name: str, *args: object, size: int | None = None, unary: bool = False):
    """A translator of one vector op (see gen_vector)."""
    def trans(ctx: DisasContext, a) -> bool:
        return gen_vector(ctx, a, name, *args, size=size, unary=unary)
    return trans


trans_and_v = _vector("vand", size=0)
trans_bic_v = _vector("vandc", size=0)
trans_orr_v = _vector("vor", size=0)
trans_orn_v = _logic(lambda ctx, t, n, m, d: ctx.builder.orc(t, n, m))
trans_eor_v = _vector("vxor", size=0)
trans_not_v = _vector("vnot", size=0, unary=True)


def _bitwise_select(which: str):
    """BSL/BIT/BIF: Vd = (ones & mask) | (zeros & ~mask) as zeros ^ ((ones ^ zeros) &
    mask) on vector ops (BSL: mask Vd, ones Vn, zeros Vm; BIT: mask Vm, Vn into Vd;
    BIF: the same where Vm is clear)."""
    def trans(ctx: DisasContext, a) -> bool:
        b, oprsz = ctx.builder, 16 if a.q else 8
        n, m, d = VQ[a.rn], VQ[a.rm], VQ[a.rd]
        mask, ones, zeros = {"bsl": (d, n, m), "bit": (m, n, d), "bif": (m, n, d)}[which]
        diff = b.temp(V128)
        b.vector("vxor", diff, (ones, zeros), 0, 16)
        b.vector("vandc" if which == "bif" else "vand", diff, (diff, mask), 0, 16)
        b.vector("vxor", d, (zeros, diff), 0, oprsz)
        return True
    return trans


trans_bsl_v = _bitwise_select("bsl")
trans_bit_v = _bitwise_select("bit")
trans_bif_v = _bitwise_select("bif")


trans_abs_v = _vector("vabs", unary=True)  # (the most negative lane is itself)
trans_neg_v = _vector("vneg", unary=True)
trans_add_v = _vector("vadd")
trans_sub_v = _vector("vsub")
trans_cmeq_v = _vector("vcmp", Cond.EQ)


def trans_cmtst_v(ctx: DisasContext, a) -> bool:
    """CMTST: lanes all ones where Vn & Vm is not zero."""
    if a.size == 3 and not a.q:
        return False
    b, oprsz = ctx.builder, 16 if a.q else 8
    both, zero = b.temp(V128), b.temp(V128)
    b.vector("vand", both, (VQ[a.rn], VQ[a.rm]), 0, 16)
    b.vector("vdup", zero, (ZERO,), 0, 16)
    b.vector("vcmp", VQ[a.rd], (both, zero), a.size, oprsz, Cond.NE)
    return True


def trans_cmeq0_v(ctx: DisasContext, a) -> bool:
    if a.size == 3 and not a.q:
        return False
    zero = ctx.builder.temp(V128)
    ctx.builder.vector("vdup", zero, (ZERO,), 0, 16)
    ctx.builder.vector("vcmp", VQ[a.rd], (VQ[a.rn], zero), a.size, 16 if a.q else 8,
                       Cond.EQ)
    return True


def trans_cnt_v(ctx: DisasContext, a) -> bool:
    """CNT: population count of each byte (vpopcntb, or pshufb of a nibble table)."""
    return gen_vector(ctx, a, "vctpop", size=0, unary=True)


def trans_dup_gp(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    if size is None or (size == 3 and not a.q):
        return False
    b = ctx.builder
    value = ctx.temp()
    (b.ext8u, b.ext16u, b.ext32u, b.mov)[size](value, ctx.get_x(a.rn))
    b.mul(value, value, const(I64, _REPLICATE[size]))
    return gen_halves(ctx, a, lambda ctx, t, n, m, d: ctx.builder.mov(t, value))


def _lane_source(ctx: DisasContext, reg: int, size: int, index: int, signed: bool = False
                 ) -> Temp:
    """Element ``index`` of V``reg``, zero- (sign-) extended to 64 bits."""
    esize = 8 << size
    bit = index * esize
    half = V[2 * reg + bit // 64]
    if size == 3:
        return half
    t = ctx.temp()
    ctx.builder.extract(t, half, bit % 64, esize, signed=signed)
    return t


def trans_umov(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    if size is None or (size == 3) != bool(a.q):
        return False
    ctx.set_x(a.rd, _lane_source(ctx, a.rn, size, (a.imm & 31) >> (size + 1)))
    return True


def trans_ins_gp(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    if size is None:
        return False
    esize = 8 << size
    bit = ((a.imm & 31) >> (size + 1)) * esize
    half = V[2 * a.rd + bit // 64]
    if size == 3:
        ctx.builder.mov(half, ctx.get_x(a.rn))
    else:
        ctx.builder.deposit(half, half, ctx.get_x(a.rn), bit % 64, esize)
    return True


def trans_movi(ctx: DisasContext, a) -> bool:
    """MOVI/MVNI/ORR/BIC (immediate) and FMOV (vector, immediate)."""
    op, cmode = a.imm >> 12, a.imm >> 5 & 15
    imm8 = (a.imm >> 9 & 7) << 5 | a.imm & 31
    imm = expand_imm(op, cmode, imm8)
    if imm is None or (cmode == 15 and op and not a.q):
        return False
    if cmode < 12 and cmode & 1:  # ORR / BIC
        emit = ((lambda ctx, t, n, m, d: ctx.builder.and_(t, d, const(I64, ~imm & M64)))
                if op else (lambda ctx, t, n, m, d: ctx.builder.or_(t, d, const(I64, imm))))
    else:
        value = ~imm & M64 if op and cmode < 14 else imm  # MVNI
        emit = (lambda ctx, t, n, m, d: ctx.builder.movi(t, value))  # noqa: E731
    return gen_halves(ctx, a, emit)


def trans_dup_elem(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    if size is None or (size == 3 and not a.q):
        return False
    ctx.builder.vector("vdupe", VQ[a.rd], (VQ[a.rn],), size, 16 if a.q else 8,
                       (a.imm & 31) >> (size + 1))
    return True


trans_cmgt_v = _vector("vcmp", Cond.GT)
trans_cmge_v = _vector("vcmp", Cond.GE)
trans_cmhi_v = _vector("vcmp", Cond.GTU)
trans_cmhs_v = _vector("vcmp", Cond.GEU)


def _no_2d(name: str):
    """A vector op without a 64-bit lane form (size 3 is unallocated)."""
    def trans(ctx: DisasContext, a) -> bool:
        return a.size != 3 and gen_vector(ctx, a, name)
    return trans


trans_smax_v = _no_2d("vsmax")
trans_smin_v = _no_2d("vsmin")
trans_umax_v = _no_2d("vumax")
trans_umin_v = _no_2d("vumin")
def _pairwise(name: str, allow_2d: bool = True):
    """ADDP/SMAXP/SMINP/UMAXP/UMINP: Vd[i] = op of lanes 2i, 2i+1 of Vn:Vm (Vn's lanes
    first), as op(UZP1(Vn, Vm), UZP2(Vn, Vm))."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3 and (not allow_2d or not a.q):
            return False
        b = ctx.builder
        oprsz = 16 if a.q else 8
        even, odd = b.temp(V128), b.temp(V128)
        b.vector("vuzp1", even, (VQ[a.rn], VQ[a.rm]), a.size, oprsz)
        b.vector("vuzp2", odd, (VQ[a.rn], VQ[a.rm]), a.size, oprsz)
        b.vector(name, VQ[a.rd], (even, odd), a.size, oprsz)
        return True
    return trans


trans_addp_v = _pairwise("vadd")
trans_smaxp_v = _pairwise("vsmax", allow_2d=False)
trans_sminp_v = _pairwise("vsmin", allow_2d=False)
trans_umaxp_v = _pairwise("vumax", allow_2d=False)
trans_uminp_v = _pairwise("vumin", allow_2d=False)


def permute(ctx: DisasContext, dst: Temp, a: Temp, b: Temp, size: int, oprsz: int,
            indexes: list[int]) -> None:
    """dst = lanes ``indexes`` (of ``8 << size`` bits) of the 32 bytes a:b (a first)."""
    ctx.builder.vector("vperm", dst, (a, b), size, oprsz, pack_permute(indexes))


def _narrow(ctx: DisasContext, a, size: int, wide: Temp) -> bool:
    """XTN/SHRN/RSHRN (and the "2" forms): the lanes of ``wide`` (of twice ``size``)
    truncated into Vd's lower half (upper half: Q, the lower one kept), one vperm of
    the even narrow lanes."""
    half = 8 >> size  # narrow lanes per 64 bits
    if a.q:
        whole = 16 >> size
        permute(ctx, VQ[a.rd], VQ[a.rd], wide, size, 16,
                [*range(half), *(whole + 2 * i for i in range(half))])
    else:
        permute(ctx, VQ[a.rd], wide, wide, size, 8, [2 * i for i in range(half)])
    return True


def trans_xtn_v(ctx: DisasContext, a) -> bool:
    return a.size < 3 and _narrow(ctx, a, a.size, VQ[a.rn])


def _shift_right_narrow(rounding: bool):
    """SHRN/RSHRN{2}: each wide lane (plus 1 << (shift - 1) for RSHRN, wrapping: the
    bits kept, shift .. shift + esize, are below the wide lane's top) shifted right
    and narrowed."""
    def trans(ctx: DisasContext, a) -> bool:
        immh = a.imm >> 3
        if not 0 < immh < 8:
            return False
        b = ctx.builder
        _, right, _ = shift_geometry(a.imm)
        size = immh.bit_length() - 1
        source = VQ[a.rn]
        if rounding:
            bias, source = b.temp(V128), b.temp(V128)
            b.vector("vdup", bias, (const(I64, 1 << (right - 1)),), size + 1, 16)
            b.vector("vadd", source, (VQ[a.rn], bias), size + 1, 16)
        wide = b.temp(V128)
        b.vector("vshri", wide, (source,), size + 1, 16, right)
        return _narrow(ctx, a, size, wide)
    return trans


trans_shrn_v = _shift_right_narrow(False)
trans_rshrn_v = _shift_right_narrow(True)


def _narrow_high(name: str, rounding: bool):
    """ADDHN/SUBHN/RADDHN/RSUBHN{2}: the high halves of the wide lanes' sums
    (differences), plus 1 << (esize - 1) first for the rounding forms (wrapping: the
    bits kept are below the wide lane's top), narrowed."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        b, esize = ctx.builder, 8 << a.size
        total, wide = b.temp(V128), b.temp(V128)
        b.vector(name, total, (VQ[a.rn], VQ[a.rm]), a.size + 1, 16)
        if rounding:
            bias = b.temp(V128)
            b.vector("vdup", bias, (const(I64, 1 << (esize - 1)),), a.size + 1, 16)
            b.vector("vadd", total, (total, bias), a.size + 1, 16)
        b.vector("vshri", wide, (total,), a.size + 1, 16, esize)
        return _narrow(ctx, a, a.size, wide)
    return trans


trans_addhn_v = _narrow_high("vadd", False)
trans_raddhn_v = _narrow_high("vadd", True)
trans_subhn_v = _narrow_high("vsub", False)
trans_rsubhn_v = _narrow_high("vsub", True)


def _clamp_narrow(ctx: DisasContext, a, size: int, wide: Temp, kind: str) -> bool:
    """The lanes of ``wide`` (of twice ``size``) clamped to the narrow range (sqxtn:
    signed, uqxtn: unsigned, sqxtun: signed to unsigned), FPSR.QC set when some lane
    was clamped, narrowed into Vd (see _narrow)."""
    b, esize, wide_size = ctx.builder, 8 << size, size + 1
    clamped, bound = b.temp(V128), b.temp(V128)
    if kind == "uqxtn":
        b.vector("vdup", bound, (const(I64, (1 << esize) - 1),), wide_size, 16)
        b.vector("vumin", clamped, (wide, bound), wide_size, 16)
    else:
        low, high = (-(1 << (esize - 1)), (1 << (esize - 1)) - 1) if kind == "sqxtn" \
            else (0, (1 << esize) - 1)
        b.vector("vdup", bound, (const(I64, high),), wide_size, 16)
        b.vector("vsmin", clamped, (wide, bound), wide_size, 16)
        b.vector("vdup", bound, (const(I64, low & M64),), wide_size, 16)
        b.vector("vsmax", clamped, (clamped, bound), wide_size, 16)
    changed, clipped, qc = b.temp(V128), b.temp(I64), b.temp(I32)
    b.vector("vxor", changed, (clamped, wide), wide_size, 16)
    b.vector("vany", clipped, (changed,), wide_size, 16)
    b.extr_i64_i32(qc, clipped)
    b.shl(qc, qc, const(I32, simd_lanes.QC.bit_length() - 1))
    b.or_(FPSR, FPSR, qc)
    return _narrow(ctx, a, size, clamped)


def _saturating_narrow(kind: str):
    """SQXTN/UQXTN/SQXTUN{2}: each wide lane of Vn clamped and narrowed."""
    def trans(ctx: DisasContext, a) -> bool:
        return a.size != 3 and _clamp_narrow(ctx, a, a.size, VQ[a.rn], kind)
    return trans


trans_sqxtn_v = _saturating_narrow("sqxtn")
trans_uqxtn_v = _saturating_narrow("uqxtn")
trans_sqxtun_v = _saturating_narrow("sqxtun")


def trans_ext_v(ctx: DisasContext, a) -> bool:
    """EXT: bytes imm.. of Vm:Vn (Vn the low end; of their low halves for Q=0)."""
    if not a.q and a.imm >= 8:
        return False
    if a.q:
        indexes = [a.imm + i for i in range(16)]
    else:  # (Vm's low half is bytes 16.. of the pair)
        indexes = [k if k < 8 else k + 8 for k in range(a.imm, a.imm + 8)]
    permute(ctx, VQ[a.rd], VQ[a.rn], VQ[a.rm], 0, 16 if a.q else 8, indexes)
    return True


def _reverse(container: int):
    """REV64/REV32/REV16: the elements reversed within each ``container``-bit unit."""
    def trans(ctx: DisasContext, a) -> bool:
        esize = 8 << a.size
        if esize >= container:
            return False
        per, oprsz = container // esize, 16 if a.q else 8
        indexes = [i // per * per + per - 1 - i % per for i in range(oprsz * 8 // esize)]
        permute(ctx, VQ[a.rd], VQ[a.rn], VQ[a.rn], a.size, oprsz, indexes)
        return True
    return trans


trans_rev64_v = _reverse(64)
trans_rev32_v = _reverse(32)
trans_rev16_v = _reverse(16)


def _table_lookup(extend: bool):
    """TBL/TBX of a one- to four-register table (Vn, Vn+1 .. modulo 32): one vtbl step
    per register, each with the indices less 16 and the previous step's result as
    the fallback (out of range: 0, or Vd's byte for TBX)."""
    def trans(ctx: DisasContext, a) -> bool:
        b = ctx.builder
        oprsz = 16 if a.q else 8
        if extend:
            fallback = VQ[a.rd]
        else:
            fallback = b.temp(V128)
            b.vector("vdup", fallback, (ZERO,), 0, 16)
        indices, sixteen = VQ[a.rm], None
        for k in range(a.size + 1):  # a.size is len: 1-4 registers
            if k:
                if sixteen is None:
                    sixteen = b.temp(V128)
                    b.vector("vdup", sixteen, (const(I64, 16),), 0, 16)
                lowered = b.temp(V128)
                b.vector("vsub", lowered, (indices, sixteen), 0, 16)
                indices = lowered
            result = b.temp(V128)
            b.vector("vtbl", result, (VQ[(a.rn + k) % 32], indices, fallback), 0, oprsz)
            fallback = result
        b.vector("vmov", VQ[a.rd], (result,), 0, 16)
        return True
    return trans


trans_tbl_v = _table_lookup(False)
trans_tbx_v = _table_lookup(True)


# Multiplies, shifts by immediate, widening and permutes, lane by lane in IR (what
# gcc -O3 vectorised loops use most; the rest of their families stay in the helper).

def _multiply(accumulate: int):
    """MUL, MLA (accumulate 1), MLS (-1): Vd[i] (+/-)= Vn[i] * Vm[i], modulo the lane."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        if not accumulate:
            return gen_vector(ctx, a, "vmul")
        b = ctx.builder
        oprsz = 16 if a.q else 8
        product = b.temp(V128)
        b.vector("vmul", product, (VQ[a.rn], VQ[a.rm]), a.size, oprsz)
        b.vector("vadd" if accumulate > 0 else "vsub", VQ[a.rd], (VQ[a.rd], product),
                 a.size, oprsz)
        return True
    return trans


trans_mul_v = _multiply(0)
trans_mla_v = _multiply(1)
trans_mls_v = _multiply(-1)


def _widen(ctx: DisasContext, src: Temp, size: int, upper: bool, signed: bool) -> Temp:
    """The lanes of ``src``'s lower (upper) half sign- or zero-extended to twice their
    size, as a v128: ZIP1 (ZIP2) of the lanes with their extension (the copies of the
    sign bit, or zeros) puts each extension above its lane."""
    b = ctx.builder
    ext = b.temp(V128)
    if signed:
        b.vector("vsari", ext, (src,), size, 16, (8 << size) - 1)
    else:
        b.vector("vdup", ext, (ZERO,), size, 16)
    out = b.temp(V128)
    b.vector("vzip2" if upper else "vzip1", out, (src, ext), size, 16)
    return out


def _multiply_long(signed: bool, accumulate: int):
    """SMULL/UMULL{2}, SMLAL/UMLAL{2}, SMLSL/UMLSL{2}: the lanes of Vn's and Vm's lower
    (upper: Q) halves widened and multiplied into lanes of twice the size (vector ops:
    the low half of a product of extended lanes is the exact long product)."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        b = ctx.builder
        n = _widen(ctx, VQ[a.rn], a.size, a.q, signed)
        m = _widen(ctx, VQ[a.rm], a.size, a.q, signed)
        if not accumulate:
            b.vector("vmul", VQ[a.rd], (n, m), a.size + 1, 16)
            return True
        product = b.temp(V128)
        b.vector("vmul", product, (n, m), a.size + 1, 16)
        b.vector("vadd" if accumulate > 0 else "vsub", VQ[a.rd], (VQ[a.rd], product),
                 a.size + 1, 16)
        return True
    return trans


trans_smull_v = _multiply_long(True, 0)
trans_umull_v = _multiply_long(False, 0)
trans_smlal_v = _multiply_long(True, 1)
trans_umlal_v = _multiply_long(False, 1)
trans_smlsl_v = _multiply_long(True, -1)
trans_umlsl_v = _multiply_long(False, -1)


def _shift_right(signed: bool, accumulate: bool):
    """SSHR/USHR/SSRA/USRA: each lane shifted right by 1..esize (esize: all sign bits,
    or zero), added to Vd's lane for the accumulating forms."""
    def trans(ctx: DisasContext, a) -> bool:
        found = _shifted_right(ctx, a, signed, full=False)
        if found is None:
            return False
        shifted, esize, _, oprsz = found
        b = ctx.builder
        size = esize.bit_length() - 4
        if accumulate:
            b.vector("vadd", VQ[a.rd], (shifted, VQ[a.rd]), size, oprsz)
        else:
            b.vector("vmov", VQ[a.rd], (shifted,), 0, 16)
        return True
    return trans


trans_sshr_v = _shift_right(True, False)
trans_ushr_v = _shift_right(False, False)
trans_ssra_v = _shift_right(True, True)
trans_usra_v = _shift_right(False, True)


def trans_shl_v(ctx: DisasContext, a) -> bool:
    immh = a.imm >> 3
    if immh == 0 or (immh >= 8 and not a.q):
        return False
    esize, _, left = shift_geometry(a.imm)
    ctx.builder.vector("vshli", VQ[a.rd], (VQ[a.rn],), esize.bit_length() - 4,
                       16 if a.q else 8, left)
    return True


def _shift_left_long(signed: bool):
    """SSHLL/USHLL{2} (SXTL/UXTL with shift 0): the lanes of Vn's lower (upper) half
    widened (vector ops, see _widen) and shifted left."""
    def trans(ctx: DisasContext, a) -> bool:
        immh = a.imm >> 3
        if not 0 < immh < 8:
            return False
        b = ctx.builder
        esize, _, left = shift_geometry(a.imm)
        size = esize.bit_length() - 4
        wide = _widen(ctx, VQ[a.rn], size, a.q, signed)
        if left:
            b.vector("vshli", VQ[a.rd], (wide,), size + 1, 16, left)
        else:
            b.vector("vmov", VQ[a.rd], (wide,), 0, 16)
        return True
    return trans


trans_sshll_v = _shift_left_long(True)
trans_ushll_v = _shift_left_long(False)


trans_uzp1_v = _vector("vuzp1")
trans_uzp2_v = _vector("vuzp2")
trans_trn1_v = _vector("vtrn1")
trans_trn2_v = _vector("vtrn2")
trans_zip1_v = _vector("vzip1")
trans_zip2_v = _vector("vzip2")


# -- the rest of the integer set on vector ops ------------------------------------------------
#
# Saturating shifts, shifts by register, by-element, absolute differences, pairwise
# long adds, the doubling multiplies, CLZ/CLS, SQABS/SQNEG, SRI/SLI and the AdvSIMD
# scalar forms: vector IR ops, so none of them calls the lane helper any more. The
# cores compute on all 16 bytes (integer lanes: no side effects) and take FPSR.QC from
# the lanes of the operation's size only; the caller writes Vd with oprsz (8: the
# upper half cleared). A scalar form runs the vector core on copies of its operands
# with lane 0 kept and the other lanes zero (every core gives 0 and no saturation
# for zero lanes), so the result's other lanes are zero as Arm writes them.

Core = Callable[[DisasContext, int, int, Temp, Temp, Temp], Temp]


def _vop(ctx: DisasContext, name: str, sources: tuple[Temp, ...], size: int,
         oprsz: int = 16, *args: object) -> Temp:
    t = ctx.builder.temp(V128)
    ctx.builder.vector(name, t, sources, size, oprsz, *args)
    return t


def _splat(ctx: DisasContext, value: int, size: int) -> Temp:
    return _vop(ctx, "vdup", (const(I64, value & M64),), size)


def _select(ctx: DisasContext, mask: Temp, yes: Temp, no: Temp) -> Temp:
    """Lanes of ``yes`` where ``mask`` is set, else of ``no`` (no ^ ((yes ^ no) & mask))."""
    diff = _vop(ctx, "vxor", (yes, no), 0)
    return _vop(ctx, "vxor", (no, _vop(ctx, "vand", (diff, mask), 0)), 0)


def _accrue_qc(ctx: DisasContext, changed: Temp, size: int, oprsz: int) -> None:
    """FPSR.QC |= some lane (of oprsz) of ``changed`` is not zero (it saturated)."""
    b = ctx.builder
    clipped, qc = b.temp(I64), b.temp(I32)
    b.vector("vany", clipped, (changed,), size, oprsz)
    b.extr_i64_i32(qc, clipped)
    b.shl(qc, qc, const(I32, simd_lanes.QC.bit_length() - 1))
    b.or_(FPSR, FPSR, qc)


def _isolate(ctx: DisasContext, src: Temp, size: int) -> Temp:
    """Lane 0 of ``src``, every other lane zero (the scalar forms' operand)."""
    if size == 3:
        return _vop(ctx, "vmov", (src,), 0, 8)
    zero = _splat(ctx, 0, 0)
    whole = 16 >> size
    t = ctx.builder.temp(V128)
    permute(ctx, t, src, zero, size, 8, [0] + [whole] * (whole // 2 - 1))
    return t


def _signed_limits(size: int) -> tuple[int, int]:
    e = 8 << size
    return -(1 << (e - 1)) & M64, (1 << (e - 1)) - 1


def _saturated_value(ctx: DisasContext, x: Temp, size: int, signed: bool) -> Temp:
    """The value a lane saturates to on overflow away from zero: MAX, or MIN for a
    negative signed lane (MAX ^ the sign copies)."""
    e = 8 << size
    if not signed:
        return _splat(ctx, (1 << e) - 1, size)
    sign = _vop(ctx, "vsari", (x,), size, 16, e - 1)
    return _vop(ctx, "vxor", (_splat(ctx, (1 << (e - 1)) - 1, size), sign), size)


def _vector3(core: Core, allow_2d: bool = True, sizes: tuple[int, ...] = (0, 1, 2, 3)):
    """A three-same (or two-register) vector translator of ``core``."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size not in sizes or (a.size == 3 and not (a.q and allow_2d)):
            return False
        oprsz = 16 if a.q else 8
        result = core(ctx, a.size, oprsz, VQ[a.rn], VQ[a.rm], VQ[a.rd])
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, oprsz)
        return True
    return trans


def _scalar3(core: Core, sizes: tuple[int, ...], reads_m: bool = True,
             reads_d: bool = False):
    """The AdvSIMD scalar form of ``core``: lane 0 of the operands (see above)."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size not in sizes:
            return False
        n = _isolate(ctx, VQ[a.rn], a.size)
        m = _isolate(ctx, VQ[a.rm], a.size) if reads_m else n
        d = _isolate(ctx, VQ[a.rd], a.size) if reads_d else n
        result = core(ctx, a.size, 8, n, m, d)
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, 8)
        return True
    return trans


def _scalar_d(vector_trans, shift: bool = False):
    """An AdvSIMD scalar form of doublewords only: the vector translator's .2D form
    (lane 1 computed too, then cleared with the upper half)."""
    def trans(ctx: DisasContext, a) -> bool:
        legal = a.imm >> 3 >= 8 if shift else a.size == 3
        if not legal or not vector_trans(ctx, a._replace(q=1)):
            return False
        ctx.builder.movi(V[2 * a.rd + 1], 0)
        return True
    return trans


# Saturating add and subtract (vector forms above, with _saturating).

def _saturating_core(name: str, wrapping: str) -> Core:
    def core(ctx: DisasContext, size: int, oprsz: int, n: Temp, m: Temp, d: Temp) -> Temp:
        result = _vop(ctx, name, (n, m), size)
        wrapped = _vop(ctx, wrapping, (n, m), size)
        _accrue_qc(ctx, _vop(ctx, "vxor", (result, wrapped), size), size, oprsz)
        return result
    return core


trans_sqadd_s = _scalar3(_saturating_core("vssadd", "vadd"), (0, 1, 2, 3))
trans_uqadd_s = _scalar3(_saturating_core("vusadd", "vadd"), (0, 1, 2, 3))
trans_sqsub_s = _scalar3(_saturating_core("vsssub", "vsub"), (0, 1, 2, 3))
trans_uqsub_s = _scalar3(_saturating_core("vussub", "vsub"), (0, 1, 2, 3))


# Shifts by register: SSHL/USHL, SRSHL/URSHL, SQSHL/UQSHL, SQRSHL/UQRSHL.

def _shift_by_register(signed: bool, rounding: bool, saturating: bool) -> Core:
    """Each lane shifted by the signed low byte of Vm's lane: left for a count >= 0
    (a count of esize or more gives 0, or saturates), right for a negative one (the
    sign copies, or 0, past esize; the rounding forms add the last bit shifted out,
    which keeps the unbounded (x + 2**(n-1)) >> n exact). The saturating forms clamp
    a left shift that lost bits (shifting back differs) to MAX (MIN for a negative
    signed lane), setting QC; a right shift never saturates."""
    def core(ctx: DisasContext, size: int, oprsz: int, x: Temp, m: Temp, d: Temp) -> Temp:
        e = 8 << size
        count = m
        if size:
            count = _vop(ctx, "vsari", (_vop(ctx, "vshli", (m,), size, 16, e - 8),), size,
                         16, e - 8)
        right_op = "vsarv" if signed else "vshrv"
        left = _vop(ctx, "vshlv", (x, count), size)
        negated = _vop(ctx, "vneg", (count,), size)
        right = _vop(ctx, right_op, (x, negated), size)
        if rounding:
            one = _splat(ctx, 1, size)
            below = _vop(ctx, right_op, (x, _vop(ctx, "vsub", (negated, one), size)), size)
            right = _vop(ctx, "vadd", (right, _vop(ctx, "vand", (below, one), size)), size)
        is_right = _vop(ctx, "vcmp", (count, _splat(ctx, 0, size)), size, 16, Cond.LT)
        if saturating:
            back = _vop(ctx, right_op, (left, count), size)
            lost = _vop(ctx, "vcmp", (back, x), size, 16, Cond.NE)
            lost = _vop(ctx, "vandc", (lost, is_right), size)
            left = _select(ctx, lost, _saturated_value(ctx, x, size, signed), left)
            _accrue_qc(ctx, lost, size, oprsz)
        return _select(ctx, is_right, right, left)
    return core


for _name, _signed, _rounding, _sat in (
        ("sshl", True, False, False), ("ushl", False, False, False),
        ("srshl", True, True, False), ("urshl", False, True, False),
        ("sqshl", True, False, True), ("uqshl", False, False, True),
        ("sqrshl", True, True, True), ("uqrshl", False, True, True)):
    _core = _shift_by_register(_signed, _rounding, _sat)
    globals()[f"trans_{_name}_v"] = _vector3(_core)
    globals()[f"trans_{_name}_s"] = (_scalar3(_core, (0, 1, 2, 3)) if _sat
                                     else _scalar_d(globals()[f"trans_{_name}_v"]))


# Saturating shifts left by immediate: SQSHL/UQSHL/SQSHLU (vector and scalar).

def _saturating_shift_left(kind: str):
    """Each lane shifted left by the immediate, saturated where shifting back differs
    (bits or the sign were lost); SQSHLU also clamps a negative lane to 0."""
    def trans(ctx: DisasContext, a, scalar: bool = False) -> bool:
        immh = a.imm >> 3
        if immh == 0 or (immh >= 8 and not a.q and not scalar):
            return False
        esize, _, left = shift_geometry(a.imm)
        size = esize.bit_length() - 4
        oprsz = 8 if scalar else 16 if a.q else 8
        x = _isolate(ctx, VQ[a.rn], size) if scalar else VQ[a.rn]
        shifted = _vop(ctx, "vshli", (x,), size, 16, left)
        back = _vop(ctx, "vsari" if kind == "sqshl" else "vshri", (shifted,), size, 16, left)
        lost = _vop(ctx, "vcmp", (back, x), size, 16, Cond.NE)
        result = _select(ctx, lost, _saturated_value(ctx, x, size, kind == "sqshl"), shifted)
        if kind == "sqshlu":
            negative = _vop(ctx, "vcmp", (x, _splat(ctx, 0, size)), size, 16, Cond.LT)
            result = _vop(ctx, "vandc", (result, negative), size)
            lost = _vop(ctx, "vor", (lost, negative), size)
        _accrue_qc(ctx, lost, size, oprsz)
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, oprsz)
        return True
    return trans


def _scalar_form(vector_trans):
    def trans(ctx: DisasContext, a) -> bool:
        return vector_trans(ctx, a, scalar=True)
    return trans


trans_sqshl_imm_v = _saturating_shift_left("sqshl")
trans_uqshl_imm_v = _saturating_shift_left("uqshl")
trans_sqshlu_v = _saturating_shift_left("sqshlu")
trans_sqshl_imm_s = _scalar_form(trans_sqshl_imm_v)
trans_uqshl_imm_s = _scalar_form(trans_uqshl_imm_v)
trans_sqshlu_s = _scalar_form(trans_sqshlu_v)


# Saturating narrowing: SQXTN/UQXTN/SQXTUN (scalar) and the shifts right narrow
# SQSHRN/UQSHRN/SQRSHRN/UQRSHRN/SQSHRUN/SQRSHRUN (vector and scalar).

def _scalar_narrow(kind: str):
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        return _clamp_narrow(ctx, a, a.size, _isolate(ctx, VQ[a.rn], a.size + 1), kind)
    return trans


trans_sqxtn_s = _scalar_narrow("sqxtn")
trans_uqxtn_s = _scalar_narrow("uqxtn")
trans_sqxtun_s = _scalar_narrow("sqxtun")


def _saturating_shift_narrow(kind: str, rounding: bool):
    """Each wide lane shifted right (arithmetically for the signed sources; the
    rounding forms add the last bit shifted out: no overflow of the wide lane), then
    clamped and narrowed as SQXTN/UQXTN/SQXTUN."""
    signed = kind != "uqxtn"

    def trans(ctx: DisasContext, a, scalar: bool = False) -> bool:
        immh = a.imm >> 3
        if not 0 < immh < 8:
            return False
        _, right, _ = shift_geometry(a.imm)
        size = immh.bit_length() - 1
        wide = size + 1
        x = _isolate(ctx, VQ[a.rn], wide) if scalar else VQ[a.rn]
        shifted = _vop(ctx, "vsari" if signed else "vshri", (x,), wide, 16, right)
        if rounding:
            bit = _vop(ctx, "vshri", (x,), wide, 16, right - 1)
            bit = _vop(ctx, "vand", (bit, _splat(ctx, 1, wide)), wide)
            shifted = _vop(ctx, "vadd", (shifted, bit), wide)
        return _clamp_narrow(ctx, a._replace(q=0) if scalar else a, size, shifted, kind)
    return trans


for _name, _kind, _rounding in (("sqshrn", "sqxtn", False), ("sqrshrn", "sqxtn", True),
                                ("uqshrn", "uqxtn", False), ("uqrshrn", "uqxtn", True),
                                ("sqshrun", "sqxtun", False), ("sqrshrun", "sqxtun", True)):
    globals()[f"trans_{_name}_v"] = _saturating_shift_narrow(_kind, _rounding)
    globals()[f"trans_{_name}_s"] = _scalar_form(globals()[f"trans_{_name}_v"])


# The doubling multiplies: SQDMULH/SQRDMULH, SQDMULL/SQDMLAL/SQDMLSL.

def _doubling_high_core(rounding: bool) -> Core:
    """(2·n·m [+ 2**(e-1)]) >> e of each lane pair, as (n·m [+ 2**(e-2)]) >> (e-1) of
    the lanes widened (exact in 2e bits); only MIN·MIN overflows: clamped to MAX, QC."""
    def core(ctx: DisasContext, size: int, oprsz: int, n: Temp, m: Temp, d: Temp) -> Temp:
        e, wide = 8 << size, size + 1
        bound = _splat(ctx, (1 << (e - 1)) - 1, wide)
        halves, lost = [], None
        for upper in ((False, True) if oprsz == 16 else (False,)):
            product = _vop(ctx, "vmul", (_widen(ctx, n, size, upper, True),
                                         _widen(ctx, m, size, upper, True)), wide)
            if rounding:
                product = _vop(ctx, "vadd", (product, _splat(ctx, 1 << (e - 2), wide)), wide)
            high = _vop(ctx, "vsari", (product,), wide, 16, e - 1)
            clamped = _vop(ctx, "vsmin", (high, bound), wide)
            changed = _vop(ctx, "vxor", (high, clamped), wide)
            lost = changed if lost is None else _vop(ctx, "vor", (lost, changed), wide)
            halves.append(clamped)
        _accrue_qc(ctx, lost, wide, 16)
        narrowed = ctx.builder.temp(V128)  # (the low half of each wide lane)
        permute(ctx, narrowed, halves[0], halves[-1], size, oprsz,
                [2 * i for i in range(oprsz >> size)])
        return narrowed
    return core


def _doubling_long(accumulate: int):
    """SQDMULL/SQDMLAL/SQDMLSL{2}: the lanes of the lower (upper: Q) halves widened
    and multiplied (exact), doubled with a saturating add (MIN·MIN overflows), then
    added to (subtracted from) Vd's wide lanes saturating; QC from either step."""
    def trans(ctx: DisasContext, a, scalar: bool = False, m: Temp | None = None) -> bool:
        if a.size not in (1, 2):
            return False
        wide, upper = a.size + 1, bool(a.q) and not scalar
        n = _isolate(ctx, VQ[a.rn], a.size) if scalar else VQ[a.rn]
        if m is None:
            m = _isolate(ctx, VQ[a.rm], a.size) if scalar else VQ[a.rm]
        product = _vop(ctx, "vmul", (_widen(ctx, n, a.size, upper, True),
                                     _widen(ctx, m, a.size, upper, True)), wide)
        doubled = _vop(ctx, "vssadd", (product, product), wide)
        lost = _vop(ctx, "vxor", (doubled, _vop(ctx, "vadd", (product, product), wide)), wide)
        result = doubled
        if accumulate:
            d = _isolate(ctx, VQ[a.rd], wide) if scalar else VQ[a.rd]
            sat, wrap = ("vssadd", "vadd") if accumulate > 0 else ("vsssub", "vsub")
            result = _vop(ctx, sat, (d, doubled), wide)
            changed = _vop(ctx, "vxor", (result, _vop(ctx, wrap, (d, doubled), wide)), wide)
            lost = _vop(ctx, "vor", (lost, changed), wide)
        _accrue_qc(ctx, lost, wide, 16)
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, 16)
        return True
    return trans


trans_sqdmulh_v = _vector3(_doubling_high_core(False), sizes=(1, 2))
trans_sqrdmulh_v = _vector3(_doubling_high_core(True), sizes=(1, 2))
trans_sqdmulh_s = _scalar3(_doubling_high_core(False), (1, 2))
trans_sqrdmulh_s = _scalar3(_doubling_high_core(True), (1, 2))
trans_sqdmull_v = _doubling_long(0)
trans_sqdmlal_v = _doubling_long(1)
trans_sqdmlsl_v = _doubling_long(-1)
trans_sqdmull_s = _scalar_form(trans_sqdmull_v)
trans_sqdmlal_s = _scalar_form(trans_sqdmlal_v)
trans_sqdmlsl_s = _scalar_form(trans_sqdmlsl_v)


# By element: Vm's lane broadcast (vdupe), then the vector form.

def _element(ctx: DisasContext, a) -> Temp:
    reg, index = simd_lanes.element_index(a)
    return _vop(ctx, "vdupe", (VQ[reg],), a.size, 16, index)


def _multiply_element(accumulate: int):
    """MUL/MLA/MLS (by element)."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size not in (1, 2):
            return False
        oprsz = 16 if a.q else 8
        product = _vop(ctx, "vmul", (VQ[a.rn], _element(ctx, a)), a.size)
        if accumulate:
            product = _vop(ctx, "vadd" if accumulate > 0 else "vsub", (VQ[a.rd], product),
                           a.size)
        ctx.builder.vector("vmov", VQ[a.rd], (product,), 0, oprsz)
        return True
    return trans


def _multiply_long_element(signed: bool, accumulate: int):
    """SMULL/UMULL/SMLAL/UMLAL/SMLSL/UMLSL{2} (by element)."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size not in (1, 2):
            return False
        wide = a.size + 1
        product = _vop(ctx, "vmul", (_widen(ctx, VQ[a.rn], a.size, bool(a.q), signed),
                                     _widen(ctx, _element(ctx, a), a.size, False, signed)),
                       wide)
        if accumulate:
            product = _vop(ctx, "vadd" if accumulate > 0 else "vsub", (VQ[a.rd], product),
                           wide)
        ctx.builder.vector("vmov", VQ[a.rd], (product,), 0, 16)
        return True
    return trans


def _doubling_high_element(rounding: bool, scalar: bool = False):
    core = _doubling_high_core(rounding)

    def trans(ctx: DisasContext, a) -> bool:
        if a.size not in (1, 2):
            return False
        oprsz = 8 if scalar or not a.q else 16
        n = _isolate(ctx, VQ[a.rn], a.size) if scalar else VQ[a.rn]
        result = core(ctx, a.size, oprsz, n, _element(ctx, a), n)
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, oprsz)
        return True
    return trans


def _doubling_long_element(accumulate: int, scalar: bool = False):
    long_trans = _doubling_long(accumulate)

    def trans(ctx: DisasContext, a) -> bool:
        if a.size not in (1, 2):
            return False
        return long_trans(ctx, a, scalar=scalar, m=_element(ctx, a))
    return trans


trans_mul_elem = _multiply_element(0)
trans_mla_elem = _multiply_element(1)
trans_mls_elem = _multiply_element(-1)
trans_smull_elem = _multiply_long_element(True, 0)
trans_umull_elem = _multiply_long_element(False, 0)
trans_smlal_elem = _multiply_long_element(True, 1)
trans_umlal_elem = _multiply_long_element(False, 1)
trans_smlsl_elem = _multiply_long_element(True, -1)
trans_umlsl_elem = _multiply_long_element(False, -1)
trans_sqdmulh_elem = _doubling_high_element(False)
trans_sqrdmulh_elem = _doubling_high_element(True)
trans_sqdmulh_elem_s = _doubling_high_element(False, scalar=True)
trans_sqrdmulh_elem_s = _doubling_high_element(True, scalar=True)
trans_sqdmull_elem = _doubling_long_element(0)
trans_sqdmlal_elem = _doubling_long_element(1)
trans_sqdmlsl_elem = _doubling_long_element(-1)
trans_sqdmull_elem_s = _doubling_long_element(0, scalar=True)
trans_sqdmlal_elem_s = _doubling_long_element(1, scalar=True)
trans_sqdmlsl_elem_s = _doubling_long_element(-1, scalar=True)


# Absolute differences: SABD/UABD/SABA/UABA and the long SABDL/UABDL/SABAL/UABAL.

def _absolute_difference(ctx: DisasContext, n: Temp, m: Temp, size: int,
                         signed: bool) -> Temp:
    """|n - m| of each lane pair as max - min (the difference fits the lane unsigned)."""
    high = _vop(ctx, "vsmax" if signed else "vumax", (n, m), size)
    low = _vop(ctx, "vsmin" if signed else "vumin", (n, m), size)
    return _vop(ctx, "vsub", (high, low), size)


def _abd_core(signed: bool, accumulate: bool) -> Core:
    def core(ctx: DisasContext, size: int, oprsz: int, n: Temp, m: Temp, d: Temp) -> Temp:
        diff = _absolute_difference(ctx, n, m, size, signed)
        return _vop(ctx, "vadd", (d, diff), size) if accumulate else diff
    return core


def _abd_long(signed: bool, accumulate: bool):
    """The lanes' absolute differences zero-extended (see _widen) from the lower (upper:
    Q) half, added to Vd's wide lanes for SABAL/UABAL."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        diff = _absolute_difference(ctx, VQ[a.rn], VQ[a.rm], a.size, signed)
        result = _widen(ctx, diff, a.size, bool(a.q), False)
        if accumulate:
            result = _vop(ctx, "vadd", (VQ[a.rd], result), a.size + 1)
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, 16)
        return True
    return trans


trans_sabd_v = _vector3(_abd_core(True, False), allow_2d=False)
trans_uabd_v = _vector3(_abd_core(False, False), allow_2d=False)
trans_saba_v = _vector3(_abd_core(True, True), allow_2d=False)
trans_uaba_v = _vector3(_abd_core(False, True), allow_2d=False)
trans_sabdl_v = _abd_long(True, False)
trans_uabdl_v = _abd_long(False, False)
trans_sabal_v = _abd_long(True, True)
trans_uabal_v = _abd_long(False, True)


# Pairwise long adds, SHLL, CLZ/CLS, SQABS/SQNEG, RBIT.

def _pairwise_long(signed: bool, accumulate: bool):
    """SADDLP/UADDLP/SADALP/UADALP: each wide lane's two halves extended (the low one
    shifted up and back down, the high one shifted down) and added (to Vd's lane)."""
    def trans(ctx: DisasContext, a) -> bool:
        if a.size == 3:
            return False
        e, wide = 8 << a.size, a.size + 1
        down = "vsari" if signed else "vshri"
        low = _vop(ctx, down, (_vop(ctx, "vshli", (VQ[a.rn],), wide, 16, e),), wide, 16, e)
        high = _vop(ctx, down, (VQ[a.rn],), wide, 16, e)
        total = _vop(ctx, "vadd", (low, high), wide)
        if accumulate:
            total = _vop(ctx, "vadd", (total, VQ[a.rd]), wide)
        ctx.builder.vector("vmov", VQ[a.rd], (total,), 0, 16 if a.q else 8)
        return True
    return trans


trans_saddlp_v = _pairwise_long(True, False)
trans_uaddlp_v = _pairwise_long(False, False)
trans_sadalp_v = _pairwise_long(True, True)
trans_uadalp_v = _pairwise_long(False, True)


def trans_shll_v(ctx: DisasContext, a) -> bool:
    """SHLL{2} (shift left long by the element size): ZIP of zeros with the lower
    (upper) half's lanes puts each lane in the top half of a wide lane."""
    if a.size == 3:
        return False
    ctx.builder.vector("vzip2" if a.q else "vzip1", VQ[a.rd],
                       (_splat(ctx, 0, 0), VQ[a.rn]), a.size, 16)
    return True


def _count_leading(sign: bool) -> Core:
    """CLZ; CLS as CLZ(x ^ (x >> 1 arithmetic)) - 1 (the bits that equal the sign)."""
    def core(ctx: DisasContext, size: int, oprsz: int, x: Temp, m: Temp, d: Temp) -> Temp:
        if not sign:
            return _vop(ctx, "vclz", (x,), size)
        flipped = _vop(ctx, "vxor", (x, _vop(ctx, "vsari", (x,), size, 16, 1)), size)
        return _vop(ctx, "vsub", (_vop(ctx, "vclz", (flipped,), size), _splat(ctx, 1, size)),
                    size)
    return core


trans_clz_v = _vector3(_count_leading(False), allow_2d=False)
trans_cls_v = _vector3(_count_leading(True), allow_2d=False)


def _saturating_unary(absolute: bool) -> Core:
    """SQNEG: 0 - x saturating; SQABS: max(x, SQNEG x); QC where it differs from the
    wrapping NEG/ABS (only for the most negative lane)."""
    def core(ctx: DisasContext, size: int, oprsz: int, x: Temp, m: Temp, d: Temp) -> Temp:
        negated = _vop(ctx, "vsssub", (_splat(ctx, 0, size), x), size)
        if absolute:
            result = _vop(ctx, "vsmax", (x, negated), size)
            wrapped = _vop(ctx, "vabs", (x,), size)
        else:
            result, wrapped = negated, _vop(ctx, "vneg", (x,), size)
        _accrue_qc(ctx, _vop(ctx, "vxor", (result, wrapped), size), size, oprsz)
        return result
    return core


trans_sqabs_v = _vector3(_saturating_unary(True))
trans_sqneg_v = _vector3(_saturating_unary(False))
trans_sqabs_s = _scalar3(_saturating_unary(True), (0, 1, 2, 3), reads_m=False)
trans_sqneg_s = _scalar3(_saturating_unary(False), (0, 1, 2, 3), reads_m=False)


def trans_rbit_v(ctx: DisasContext, a) -> bool:
    return gen_vector(ctx, a, "vbitrev", size=0, unary=True)  # (the encoding's size is 01)


# Shift and insert: SRI/SLI (vector; scalar of doublewords).

def _shift_insert(right_shift: bool):
    """SRI: Vd's top bits (those the shifted lane does not cover) kept, the lane shifted
    right by 1..esize inserted below them; SLI: the low bits kept, shifted left by
    0..esize-1 above."""
    def trans(ctx: DisasContext, a) -> bool:
        immh = a.imm >> 3
        if immh == 0 or (immh >= 8 and not a.q):
            return False
        esize, right, left = shift_geometry(a.imm)
        size, mask = esize.bit_length() - 4, (1 << esize) - 1
        if right_shift:
            keep = ~(mask >> right) & mask if right < esize else mask
            shifted = (_vop(ctx, "vshri", (VQ[a.rn],), size, 16, right) if right < esize
                       else _splat(ctx, 0, 0))
        else:
            keep = (1 << left) - 1
            shifted = _vop(ctx, "vshli", (VQ[a.rn],), size, 16, left)
        kept = _vop(ctx, "vand", (VQ[a.rd], _splat(ctx, keep, size)), size)
        ctx.builder.vector("vor", VQ[a.rd], (kept, shifted), size, 16 if a.q else 8)
        return True
    return trans


trans_sri_v = _shift_insert(True)
trans_sli_v = _shift_insert(False)


# The AdvSIMD scalar forms of doublewords only: the .2D vector form, lane 1 cleared.

trans_cmgt_s = _scalar_d(trans_cmgt_v)
trans_cmhi_s = _scalar_d(trans_cmhi_v)
trans_cmge_s = _scalar_d(trans_cmge_v)
trans_cmhs_s = _scalar_d(trans_cmhs_v)
trans_add_s = _scalar_d(trans_add_v)
trans_sub_s = _scalar_d(trans_sub_v)
trans_cmtst_s = _scalar_d(trans_cmtst_v)
trans_cmeq_s = _scalar_d(trans_cmeq_v)
trans_cmgt0_s = _scalar_d(trans_cmgt0_v)
trans_cmge0_s = _scalar_d(trans_cmge0_v)
trans_cmeq0_s = _scalar_d(trans_cmeq0_v)
trans_cmle0_s = _scalar_d(trans_cmle0_v)
trans_cmlt0_s = _scalar_d(trans_cmlt0_v)
trans_abs_s = _scalar_d(trans_abs_v)
trans_neg_s = _scalar_d(trans_neg_v)
trans_sshr_s = _scalar_d(trans_sshr_v, shift=True)
trans_ushr_s = _scalar_d(trans_ushr_v, shift=True)
trans_ssra_s = _scalar_d(trans_ssra_v, shift=True)
trans_usra_s = _scalar_d(trans_usra_v, shift=True)
trans_srshr_s = _scalar_d(trans_srshr_v, shift=True)
trans_urshr_s = _scalar_d(trans_urshr_v, shift=True)
trans_srsra_s = _scalar_d(trans_srsra_v, shift=True)
trans_ursra_s = _scalar_d(trans_ursra_v, shift=True)
trans_sri_s = _scalar_d(trans_sri_v, shift=True)
trans_shl_s = _scalar_d(trans_shl_v, shift=True)
trans_sli_s = _scalar_d(trans_sli_v, shift=True)


# Moves and sums in IR on the 64-bit halves.

def trans_smov(ctx: DisasContext, a) -> bool:
    """SMOV: an element sign-extended into Wd (zero above) or Xd."""
    size = _copy_size(a)
    if size is None or size >= (3 if a.q else 2):
        return False
    value = _lane_source(ctx, a.rn, size, (a.imm & 31) >> (size + 1), signed=True)
    ctx.set_x(a.rd, value, a.q)
    return True


def trans_addp_s(ctx: DisasContext, a) -> bool:
    """ADDP (scalar): Dd = the sum of Vn's two doublewords."""
    total = ctx.temp()
    ctx.builder.add(total, V[2 * a.rn], V[2 * a.rn + 1])
    ctx.builder.mov(V[2 * a.rd], total)
    ctx.builder.movi(V[2 * a.rd + 1], 0)
    return True


def _add_long_across(signed: bool):
    """SADDLV/UADDLV: adjacent lanes extended and added into lanes twice as wide (as
    SADDLP/UADDLP), then those summed (see _reduced): the sum of all lanes, which fits
    the wide lane."""
    def trans(ctx: DisasContext, a) -> bool:
        if not (a.size < 2 or (a.size == 2 and a.q)):
            return False
        e, wide = 8 << a.size, a.size + 1
        down = "vsari" if signed else "vshri"
        low = _vop(ctx, down, (_vop(ctx, "vshli", (VQ[a.rn],), wide, 16, e),), wide, 16, e)
        pairs = _vop(ctx, "vadd", (low, _vop(ctx, down, (VQ[a.rn],), wide, 16, e)), wide)
        result = _reduced(ctx, "vadd", pairs, wide, (16 if a.q else 8) >> wide)
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, 8)
        return True
    return trans


trans_saddlv_v = _add_long_across(True)
trans_uaddlv_v = _add_long_across(False)


# SUQADD/USQADD: an accumulator of the other signedness.

def _mixed_saturating_add(signed_d: bool) -> Core:
    """SUQADD: signed Vd + unsigned Vn, which can only overflow upwards: MAX where Vn >
    MAX - Vd (unsigned: exact); USQADD: unsigned Vd + signed Vn: UMAX where Vn >= 0 and
    Vn > UMAX - Vd (~Vd), 0 where Vn < 0 and Vd < -Vn (unsigned: -MIN is 2**(e-1)).
    QC where either clamped."""
    def core(ctx: DisasContext, size: int, oprsz: int, n: Temp, m: Temp, d: Temp) -> Temp:
        e = 8 << size
        wrapped = _vop(ctx, "vadd", (d, n), size)
        if signed_d:
            room = _vop(ctx, "vsub", (_splat(ctx, (1 << (e - 1)) - 1, size), d), size)
            over = _vop(ctx, "vcmp", (n, room), size, 16, Cond.GTU)
            result = _select(ctx, over, _splat(ctx, (1 << (e - 1)) - 1, size), wrapped)
            lost = over
        else:
            negative = _vop(ctx, "vcmp", (n, _splat(ctx, 0, size)), size, 16, Cond.LT)
            over = _vop(ctx, "vcmp", (n, _vop(ctx, "vnot", (d,), size)), size, 16, Cond.GTU)
            over = _vop(ctx, "vandc", (over, negative), size)
            under = _vop(ctx, "vcmp", (d, _vop(ctx, "vneg", (n,), size)), size, 16,
                         Cond.LTU)
            under = _vop(ctx, "vand", (under, negative), size)
            result = _select(ctx, over, _splat(ctx, (1 << e) - 1, size), wrapped)
            result = _vop(ctx, "vandc", (result, under), size)
            lost = _vop(ctx, "vor", (over, under), size)
        _accrue_qc(ctx, lost, size, oprsz)
        return result
    return core


trans_suqadd_v = _vector3(_mixed_saturating_add(True))
trans_usqadd_v = _vector3(_mixed_saturating_add(False))
trans_suqadd_s = _scalar3(_mixed_saturating_add(True), (0, 1, 2, 3), reads_m=False,
                          reads_d=True)
trans_usqadd_s = _scalar3(_mixed_saturating_add(False), (0, 1, 2, 3), reads_m=False,
                          reads_d=True)


def _polynomial_multiply(ctx: DisasContext, size: int, oprsz: int, x: Temp, y: Temp,
                         d: Temp) -> Temp:
    """PMUL (bytes): the carry-less product's low 8 bits, as the XOR of x << i over the
    bits i of y (each bit made a byte mask by shifting it to the top and back
    arithmetically)."""
    product = None
    for i in range(8):
        mask = y if i == 7 else _vop(ctx, "vshli", (y,), 0, 16, 7 - i)
        mask = _vop(ctx, "vsari", (mask,), 0, 16, 7)
        term = _vop(ctx, "vand", (x if i == 0 else _vop(ctx, "vshli", (x,), 0, 16, i), mask),
                    0)
        product = term if product is None else _vop(ctx, "vxor", (product, term), 0)
    return product


trans_pmul_v = _vector3(_polynomial_multiply, sizes=(0,))


def _reduced(ctx: DisasContext, name: str, acc: Temp, size: int, count: int) -> Temp:
    """Lane 0 (the rest zero) = the op over the first ``count`` lanes of ``acc``:
    log2(count) steps of the op with the upper half of the lanes still in play moved
    down (vperm)."""
    whole = 16 >> size
    while count > 1:
        count //= 2
        upper = ctx.builder.temp(V128)
        permute(ctx, upper, acc, acc, size, 16,
                [count + i for i in range(count)] + [0] * (whole - count))
        acc = _vop(ctx, name, (acc, upper), size)
    return _isolate(ctx, acc, size)


def _reduce(name: str):
    """ADDV/SMAXV/SMINV/UMAXV/UMINV: the lanes reduced into lane 0 of Vd."""
    def trans(ctx: DisasContext, a) -> bool:
        if not (a.size < 2 or (a.size == 2 and a.q)):
            return False
        result = _reduced(ctx, name, VQ[a.rn], a.size, (16 if a.q else 8) >> a.size)
        ctx.builder.vector("vmov", VQ[a.rd], (result,), 0, 8)
        return True
    return trans


trans_addv_v = _reduce("vadd")
trans_smaxv_v = _reduce("vsmax")
trans_sminv_v = _reduce("vsmin")
trans_umaxv_v = _reduce("vumax")
trans_uminv_v = _reduce("vumin")
