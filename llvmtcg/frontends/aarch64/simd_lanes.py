"""AdvSIMD lane operations, run by the ``aarch64_simd`` helper on the CPU state.

Each operation is a plain function of the state and the decoded operands
(:class:`SimdArgs`) that reads and writes the V registers as 128-bit integers. The
translator (trans_simd.py) checks legality while decoding and passes the operation's
index and the packed operands; nothing here raises a guest exception.

This is the correct-but-slow tier of AdvSIMD: the operations are Python, a few
microseconds each. Lowering them to LLVM vector types is the follow-up (issue 15).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from llvmtcg.frontends.aarch64 import crypto

M64 = (1 << 64) - 1
M128 = (1 << 128) - 1


class SimdArgs(NamedTuple):
    q: int
    size: int
    rm: int
    rn: int
    rd: int
    imm: int
    scalar: int = 0  # the AdvSIMD scalar form: one lane, the rest of Vd zeroed

    def pack(self) -> int:
        return (self.q | self.scalar << 1 | self.size << 2 | self.rm << 4 | self.rn << 9
                | self.rd << 14 | self.imm << 19)

    @classmethod
    def unpack(cls, packed: int) -> SimdArgs:
        return cls(packed & 1, packed >> 2 & 3, packed >> 4 & 31, packed >> 9 & 31,
                   packed >> 14 & 31, packed >> 19, packed >> 1 & 1)


def vget(state, n: int) -> int:
    return state.get("v", 2 * n) | state.get("v", 2 * n + 1) << 64


def vset(state, n: int, value: int) -> None:
    state.set("v", value & M64, 2 * n)
    state.set("v", value >> 64 & M64, 2 * n + 1)


def split(value: int, esize: int, count: int) -> list[int]:
    mask = (1 << esize) - 1
    return [(value >> (i * esize)) & mask for i in range(count)]


def join(lanes: list[int], esize: int) -> int:
    mask = (1 << esize) - 1
    value = 0
    for i, lane in enumerate(lanes):
        value |= (lane & mask) << (i * esize)
    return value


def signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def _geometry(a: SimdArgs, size: int | None = None) -> tuple[int, int]:
    esize = 8 << (a.size if size is None else size)
    if a.scalar:
        return esize, 1
    return esize, (128 if a.q else 64) // esize


def _write(state, a: SimdArgs, lanes: list[int], esize: int) -> None:
    vset(state, a.rd, join(lanes, esize))  # a 64-bit result clears the upper half


def elementwise(fn: Callable[[int, int, int], int]) -> Callable:
    """Vd[i] = fn(Vn[i], Vm[i], esize)."""
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        n, m = split(vget(state, a.rn), esize, count), split(vget(state, a.rm), esize, count)
        _write(state, a, [fn(x, y, esize) for x, y in zip(n, m, strict=True)], esize)
    return run


def pairwise(fn: Callable[[int, int, int], int]) -> Callable:
    """Vd[i] = fn of adjacent lanes of Vm:Vn (Vn's pairs first)."""
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        cat = split(vget(state, a.rn), esize, count) + split(vget(state, a.rm), esize, count)
        _write(state, a, [fn(cat[2 * i], cat[2 * i + 1], esize) for i in range(count)], esize)
    return run


def unary(fn: Callable[[int, int], int]) -> Callable:
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        _write(state, a, [fn(x, esize) for x in split(vget(state, a.rn), esize, count)],
               esize)
    return run


def across(fn: Callable[[list[int], int], int], widen: bool = False) -> Callable:
    """Vd = fn(all lanes of Vn) in lane 0 (twice as wide for the long forms)."""
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        result = fn(split(vget(state, a.rn), esize, count), esize)
        out = esize * 2 if widen else esize
        vset(state, a.rd, result & ((1 << out) - 1))
    return run


def long_op(fn: Callable[[int, int], int], sign: bool, wide_n: bool) -> Callable:
    """The long/wide forms: narrow lanes from the lower (Q=0) or upper (Q=1, "2")
    half, extended to twice their width; Vn is already wide for the W forms."""
    def run(state, a: SimdArgs) -> None:
        esize = 8 << a.size
        count = 64 // esize
        half = 64 if a.q else 0
        ext = (lambda x: signed(x, esize)) if sign else (lambda x: x)
        m = [ext(x) for x in split(vget(state, a.rm) >> half, esize, count)]
        if wide_n:
            n = [signed(x, 2 * esize) if sign else x
                 for x in split(vget(state, a.rn), 2 * esize, count)]
        else:
            n = [ext(x) for x in split(vget(state, a.rn) >> half, esize, count)]
        vset(state, a.rd, join([fn(x, y) for x, y in zip(n, m, strict=True)], 2 * esize))
    return run


def _cmp(pred: Callable[[int, int, int], bool]) -> Callable[[int, int, int], int]:
    return lambda x, y, e: (1 << e) - 1 if pred(x, y, e) else 0


def _narrow_write(state, a: SimdArgs, lanes: list[int], esize: int) -> None:
    """Write narrow lanes to the lower half (Q=0, upper cleared) or upper half (Q=1)."""
    value = join(lanes, esize)
    if a.q:
        vset(state, a.rd, (vget(state, a.rd) & M64) | value << 64)
    else:
        vset(state, a.rd, value)


def _xtn(state, a: SimdArgs) -> None:
    esize = 8 << a.size
    lanes = split(vget(state, a.rn), 2 * esize, 64 // esize)
    _narrow_write(state, a, lanes, esize)


def _reverse(container: int) -> Callable:
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        lanes = split(vget(state, a.rn), esize, count)
        per = container // esize
        out: list[int] = []
        for i in range(0, count, per):
            out += lanes[i:i + per][::-1]
        _write(state, a, out, esize)
    return run


def _logic(fn: Callable[[int, int, int], int]) -> Callable:
    def run(state, a: SimdArgs) -> None:
        width = M128 if a.q else M64
        d, n, m = vget(state, a.rd), vget(state, a.rn), vget(state, a.rm)
        vset(state, a.rd, fn(d, n, m) & width)
    return run


def _addp_scalar(state, a: SimdArgs) -> None:
    n = vget(state, a.rn)
    vset(state, a.rd, ((n & M64) + (n >> 64)) & M64)


# -- copy ---------------------------------------------------------------------------------

def copy_lane(imm5: int) -> tuple[int, int]:
    """(element size log2, index) from an imm5 field."""
    size = (imm5 & -imm5).bit_length() - 1
    return size, imm5 >> (size + 1)


def _dup_elem(state, a: SimdArgs) -> None:
    size, index = copy_lane(a.imm)
    esize = 8 << size
    lane = split(vget(state, a.rn), esize, 128 // esize)[index]
    _write(state, a, [lane] * ((128 if a.q else 64) // esize), esize)


def _dup_gp(state, a: SimdArgs) -> None:
    size, _ = copy_lane(a.imm)
    esize = 8 << size
    value = state.get("x", a.rn) if a.rn != 31 else 0
    _write(state, a, [value] * ((128 if a.q else 64) // esize), esize)


def _mov_to_gp(sign: bool) -> Callable:
    def run(state, a: SimdArgs) -> None:
        size, index = copy_lane(a.imm)
        esize = 8 << size
        lane = split(vget(state, a.rn), esize, 128 // esize)[index]
        if sign:
            lane = signed(lane, esize) & (M64 if a.q else 0xFFFF_FFFF)
        if a.rd != 31:
            state.set("x", lane, a.rd)
    return run


def _insert(state, a: SimdArgs, index: int, esize: int, value: int) -> None:
    mask = ((1 << esize) - 1) << (index * esize)
    vset(state, a.rd, (vget(state, a.rd) & ~mask) | (value << (index * esize) & mask))


def _ins_gp(state, a: SimdArgs) -> None:
    size, index = copy_lane(a.imm)
    _insert(state, a, index, 8 << size, state.get("x", a.rn) if a.rn != 31 else 0)


def _ins_elem(state, a: SimdArgs) -> None:
    imm5, imm4 = a.imm & 31, a.imm >> 5
    size, dst_index = copy_lane(imm5)
    esize = 8 << size
    lane = split(vget(state, a.rn), esize, 128 // esize)[imm4 >> size]
    _insert(state, a, dst_index, esize, lane)


# -- modified immediate -------------------------------------------------------------------

def expand_imm(op: int, cmode: int, imm8: int) -> int | None:
    """AdvSIMDExpandImm: the 64-bit pattern, or None where unallocated."""
    kind = cmode >> 1
    if kind <= 3:
        return _rep(imm8 << (8 * kind), 32)
    if kind <= 5:
        return _rep(imm8 << (8 * (kind & 1)), 16)
    if kind == 6:
        shift = 8 * (1 + (cmode & 1))  # MSL: shifting ones in
        return _rep(imm8 << shift | ((1 << shift) - 1), 32)
    if cmode == 14:
        if op:
            return sum(0xFF << (8 * i) for i in range(8) if imm8 >> i & 1)
        return _rep(imm8, 8)
    if op == 0:  # FMOV single
        a, b, cdefgh = imm8 >> 7, imm8 >> 6 & 1, imm8 & 0x3F
        exp = (b ^ 1) << 7 | (0x1F if b else 0) << 2 | cdefgh >> 4
        return _rep(a << 31 | exp << 23 | (cdefgh & 0xF) << 19, 32)
    a, b, cdefgh = imm8 >> 7, imm8 >> 6 & 1, imm8 & 0x3F
    exp = (b ^ 1) << 10 | (0xFF if b else 0) << 2 | cdefgh >> 4
    return a << 63 | exp << 52 | (cdefgh & 0xF) << 48


def _rep(value: int, width: int) -> int:
    return sum(value << i for i in range(0, 64, width)) & M64


def _movi(state, a: SimdArgs) -> None:
    op, cmode = a.imm >> 12, a.imm >> 5 & 15
    imm8 = (a.imm >> 9 & 7) << 5 | a.imm & 31
    imm64 = expand_imm(op, cmode, imm8)
    assert imm64 is not None  # checked by the translator
    imm = imm64 | imm64 << 64 if a.q else imm64
    width = M128 if a.q else M64
    is_logic = cmode < 12 and cmode & 1
    if is_logic:  # ORR / BIC
        d = vget(state, a.rd)
        result = d & ~imm if op else d | imm
    elif op and cmode < 14:  # MVNI
        result = ~imm
    else:
        result = imm
    vset(state, a.rd, result & width)


# -- shifts -------------------------------------------------------------------------------

def shift_geometry(immhb: int) -> tuple[int, int, int]:
    """(esize, right shift, left shift) of a shift-by-immediate encoding."""
    esize = 8 << ((immhb >> 3).bit_length() - 1)
    return esize, 2 * esize - immhb, immhb - esize


def _shift_op(kind: str) -> Callable:
    def run(state, a: SimdArgs) -> None:
        esize, right, left = shift_geometry(a.imm)
        count = (128 if a.q else 64) // esize
        n = split(vget(state, a.rn), esize, count)
        d = split(vget(state, a.rd), esize, count)
        mask = (1 << esize) - 1
        if kind == "sshr":
            out = [signed(x, esize) >> right for x in n]
        elif kind == "ushr":
            out = [x >> right for x in n]
        elif kind == "ssra":
            out = [y + (signed(x, esize) >> right) for x, y in zip(n, d, strict=True)]
        elif kind == "usra":
            out = [y + (x >> right) for x, y in zip(n, d, strict=True)]
        elif kind == "sri":
            keep = ~(mask >> right) & mask
            out = [(y & keep) | (x >> right) for x, y in zip(n, d, strict=True)]
        elif kind == "shl":
            out = [x << left for x in n]
        else:  # sli
            keep = (1 << left) - 1
            out = [(y & keep) | (x << left) for x, y in zip(n, d, strict=True)]
        _write(state, a, out, esize)
    return run


def _shrn(state, a: SimdArgs) -> None:
    esize, right, _ = shift_geometry(a.imm)
    lanes = split(vget(state, a.rn), 2 * esize, 64 // esize)
    _narrow_write(state, a, [x >> right for x in lanes], esize)


def _shll(sign: bool) -> Callable:
    def run(state, a: SimdArgs) -> None:
        esize, _, left = shift_geometry(a.imm)
        count = 64 // esize
        lanes = split(vget(state, a.rn) >> (64 if a.q else 0), esize, count)
        if sign:
            lanes = [signed(x, esize) for x in lanes]
        vset(state, a.rd, join([x << left for x in lanes], 2 * esize))
    return run


# -- permute, extract, table lookup -------------------------------------------------------

def _permute(kind: str) -> Callable:
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        n = split(vget(state, a.rn), esize, count)
        m = split(vget(state, a.rm), esize, count)
        half = count // 2
        if kind == "uzp1":
            out = (n + m)[0::2]
        elif kind == "uzp2":
            out = (n + m)[1::2]
        elif kind == "trn1":
            out = [n[i] if i % 2 == 0 else m[i - 1] for i in range(count)]
        elif kind == "trn2":
            out = [n[i + 1] if i % 2 == 0 else m[i] for i in range(count)]
        elif kind == "zip1":
            out = [x for i in range(half) for x in (n[i], m[i])]
        else:  # zip2
            out = [x for i in range(half, count) for x in (n[i], m[i])]
        _write(state, a, out, esize)
    return run


def _ext(state, a: SimdArgs) -> None:
    count = 16 if a.q else 8
    cat = split(vget(state, a.rn), 8, count) + split(vget(state, a.rm), 8, count)
    _write(state, a, cat[a.imm:a.imm + count], 8)


def _rbit8(x: int, e: int) -> int:
    return int(f"{x:08b}"[::-1], 2)


def _sat_lanes(fn: Callable[[list[int], int], int], sign: bool) -> Callable:
    def run(lanes: list[int], esize: int) -> int:
        return fn([signed(x, esize) for x in lanes] if sign else lanes, esize)
    return run


# -- saturating, halving, rounding and accumulating integer operations ------------------

QC = 1 << 27  # FPSR.QC, the cumulative saturation flag


def saturate(value: int, bits: int, sign: bool) -> tuple[int, bool]:
    """SignedSatQ / UnsignedSatQ: ``value`` clamped to a ``bits``-wide range, and whether
    it was clamped."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if sign else (0, (1 << bits) - 1)
    if value < lo:
        return lo, True
    if value > hi:
        return hi, True
    return value, False


def _set_qc(state, saturated: bool) -> None:
    if saturated:
        state.set("fpsr", state.get("fpsr") | QC)


def _as_int(x: int, bits: int, sign: bool) -> int:
    return signed(x, bits) if sign else x


def lanes3(fn: Callable[[int, int, int, int], int], sign: bool,
           sat: bool | None = None) -> Callable:
    """Vd[i] = fn(Vn[i], Vm[i], Vd[i], esize) with the lanes read as signed (``sign``) or
    unsigned integers; the result saturates (setting QC) to signed (sat=True) or
    unsigned (sat=False) lanes, or wraps (sat=None)."""
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        n = split(vget(state, a.rn), esize, count)
        m = split(vget(state, a.rm), esize, count)
        d = split(vget(state, a.rd), esize, count)
        out, hit = [], False
        for x, y, z in zip(n, m, d, strict=True):
            value = fn(_as_int(x, esize, sign), _as_int(y, esize, sign), _as_int(z, esize, sign),
                       esize)
            if sat is not None:
                value, clamped = saturate(value, esize, sat)
                hit |= clamped
            out.append(value)
        _write(state, a, out, esize)
        _set_qc(state, hit)
    return run


def shift_by_register(x: int, shift_lane: int, rounding: bool) -> int:
    """(x + round) << shift with shift = the signed low byte of the Vm lane; a negative
    shift shifts right (flooring), rounding adds half of the last bit shifted out."""
    shift = signed(shift_lane & 0xFF, 8)
    if shift >= 0:
        return x << shift
    if rounding:
        x += 1 << (-shift - 1)
    return x >> -shift


def lanes_shift(sign: bool, rounding: bool, sat: bool) -> Callable:
    """SSHL/USHL/SRSHL/URSHL and the saturating SQSHL/UQSHL/SQRSHL/UQRSHL (register)."""
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        n = split(vget(state, a.rn), esize, count)
        m = split(vget(state, a.rm), esize, count)
        out, hit = [], False
        for x, y in zip(n, m, strict=True):
            value = shift_by_register(_as_int(x, esize, sign), y, rounding)
            if sat:
                value, clamped = saturate(value, esize, sign)
                hit |= clamped
            out.append(value)
        _write(state, a, out, esize)
        _set_qc(state, hit)
    return run


def lanes2(fn: Callable[[int, int, int], int], sign: bool, sat: bool | None = None,
           d_sign: bool | None = None) -> Callable:
    """Vd[i] = fn(Vn[i], Vd[i], esize) (two-register forms; SUQADD/USQADD read Vd with
    the other signedness, ``d_sign``)."""
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        n = split(vget(state, a.rn), esize, count)
        d = split(vget(state, a.rd), esize, count)
        out, hit = [], False
        dsign = sign if d_sign is None else d_sign
        for x, z in zip(n, d, strict=True):
            value = fn(_as_int(x, esize, sign), _as_int(z, esize, dsign), esize)
            if sat is not None:
                value, clamped = saturate(value, esize, sat)
                hit |= clamped
            out.append(value)
        _write(state, a, out, esize)
        _set_qc(state, hit)
    return run


def narrow_sat(src_sign: bool, dst_sign: bool) -> Callable:
    """SQXTN/UQXTN/SQXTUN: wide lanes of Vn saturated into narrow lanes of the lower
    (Q=0, scalar) or upper (Q=1) half of Vd."""
    def run(state, a: SimdArgs) -> None:
        esize = 8 << a.size
        count = 1 if a.scalar else 64 // esize
        lanes = split(vget(state, a.rn), 2 * esize, count)
        out, hit = [], False
        for x in lanes:
            value, clamped = saturate(_as_int(x, 2 * esize, src_sign), esize, dst_sign)
            hit |= clamped
            out.append(value)
        _narrow_write(state, a, out, esize)
        _set_qc(state, hit)
    return run


def _clz(x: int, e: int) -> int:
    return e - x.bit_length()


def _cls(x: int, e: int) -> int:
    v = signed(x, e)
    return e - 1 - (v if v >= 0 else ~v).bit_length()


def pairwise_long(sign: bool, accumulate: bool) -> Callable:
    """SADDLP/UADDLP (and SADALP/UADALP): adjacent lanes added into lanes twice as wide."""
    def run(state, a: SimdArgs) -> None:
        esize, count = _geometry(a)
        n = [_as_int(x, esize, sign) for x in split(vget(state, a.rn), esize, count)]
        sums = [n[2 * i] + n[2 * i + 1] for i in range(count // 2)]
        if accumulate:
            d = split(vget(state, a.rd), 2 * esize, count // 2)
            sums = [x + y for x, y in zip(sums, d, strict=True)]
        _write(state, a, sums, 2 * esize)
    return run


def _shll_by_esize(state, a: SimdArgs) -> None:
    esize = 8 << a.size
    lanes = split(vget(state, a.rn) >> (64 if a.q else 0), esize, 64 // esize)
    vset(state, a.rd, join([x << esize for x in lanes], 2 * esize))


def long3(fn: Callable[[int, int, int, int], int], sign: bool, sat: bool = False,
          wide_n: bool = False) -> Callable:
    """The long forms with an accumulator: Vd(2e)[i] = fn(Vn[i], Vm[i], Vd[i], e) with
    narrow lanes from the lower (Q=0) or upper (Q=1) half; SQDMULL & co saturate."""
    def run(state, a: SimdArgs) -> None:
        esize = 8 << a.size
        count = 1 if a.scalar else 64 // esize
        half = 64 if a.q else 0
        n_lanes = (split(vget(state, a.rn), 2 * esize, count) if wide_n
                   else split(vget(state, a.rn) >> half, esize, count))
        m = [_as_int(x, esize, sign) for x in split(vget(state, a.rm) >> half, esize, count)]
        n = [_as_int(x, 2 * esize if wide_n else esize, sign) for x in n_lanes]
        d = [_as_int(x, 2 * esize, sign) for x in split(vget(state, a.rd), 2 * esize, count)]
        out, hit = [], False
        for x, y, z in zip(n, m, d, strict=True):
            value = fn(x, y, z, esize)
            if sat:
                value, clamped = saturate(value, 2 * esize, True)
                hit |= clamped
            out.append(value)
        vset(state, a.rd, join(out, 2 * esize))
        _set_qc(state, hit)
    return run


def _sat_doubling(accumulate: int) -> Callable:
    """SQDMULL / SQDMLAL / SQDMLSL: the doubled product saturates, then the sum does."""
    def fn(x: int, y: int, z: int, e: int) -> int:
        product, _ = saturate(2 * x * y, 2 * e, True)
        return product if not accumulate else z + accumulate * product
    return fn


def _sqdml(accumulate: int) -> Callable:
    def run(state, a: SimdArgs) -> None:
        esize = 8 << a.size
        count = 1 if a.scalar else 64 // esize
        half = 64 if a.q else 0
        n = [signed(x, esize) for x in split(vget(state, a.rn) >> half, esize, count)]
        m = [signed(x, esize) for x in split(vget(state, a.rm) >> half, esize, count)]
        d = [signed(x, 2 * esize) for x in split(vget(state, a.rd), 2 * esize, count)]
        out, hit = [], False
        for x, y, z in zip(n, m, d, strict=True):
            product, h1 = saturate(2 * x * y, 2 * esize, True)
            value, h2 = saturate(z + accumulate * product if accumulate else product,
                                 2 * esize, True)
            hit |= h1 or h2
            out.append(value)
        vset(state, a.rd, join(out, 2 * esize))
        _set_qc(state, hit)
    return run


def narrow_high(subtract: bool, rounding: bool) -> Callable:
    """ADDHN/SUBHN/RADDHN/RSUBHN: the high halves of wide sums into narrow lanes."""
    def run(state, a: SimdArgs) -> None:
        esize = 8 << a.size
        count = 64 // esize
        n = split(vget(state, a.rn), 2 * esize, count)
        m = split(vget(state, a.rm), 2 * esize, count)
        round_const = 1 << (esize - 1) if rounding else 0
        out = [((x - y if subtract else x + y) + round_const) >> esize
               for x, y in zip(n, m, strict=True)]
        _narrow_write(state, a, out, esize)
    return run


def clmul(x: int, y: int) -> int:
    """Carry-less (polynomial) product."""
    result = 0
    while y:
        if y & 1:
            result ^= x
        x <<= 1
        y >>= 1
    return result


def _pmull(state, a: SimdArgs) -> None:
    """PMULL/PMULL2: 8x8 -> 16-bit lanes (size 0) or one 64x64 -> 128-bit product
    (size 3, the crypto extension)."""
    half = 64 if a.q else 0
    if a.size == 3:
        vset(state, a.rd, clmul(vget(state, a.rn) >> half & M64, vget(state, a.rm) >> half
                                & M64))
        return
    n = split(vget(state, a.rn) >> half, 8, 8)
    m = split(vget(state, a.rm) >> half, 8, 8)
    vset(state, a.rd, join([clmul(x, y) for x, y in zip(n, m, strict=True)], 16))


def _doubling_high(rounding: bool) -> Callable[[int, int, int, int], int]:
    def fn(x: int, y: int, z: int, e: int) -> int:
        return (2 * x * y + ((1 << (e - 1)) if rounding else 0)) >> e
    return fn


# -- shift by immediate: rounding and saturating forms ------------------------------------

def _shift_imm_lanes(kind: str) -> Callable:
    """SRSHR/URSHR/SRSRA/URSRA and SQSHL/UQSHL/SQSHLU (immediate)."""
    def run(state, a: SimdArgs) -> None:
        esize, right, left = shift_geometry(a.imm)
        count = 1 if a.scalar else (128 if a.q else 64) // esize
        n = split(vget(state, a.rn), esize, count)
        d = split(vget(state, a.rd), esize, count)
        out, hit = [], False
        for x, z in zip(n, d, strict=True):
            if kind in ("srshr", "srsra"):
                value = (signed(x, esize) + (1 << (right - 1))) >> right
            elif kind in ("urshr", "ursra"):
                value = (x + (1 << (right - 1))) >> right
            else:
                source = signed(x, esize) if kind in ("sqshl", "sqshlu") else x
                value, clamped = saturate(source << left, esize, kind == "sqshl")
                hit |= clamped
            if kind.endswith("sra"):
                value += z
            out.append(value)
        _write(state, a, out, esize)
        _set_qc(state, hit)
    return run


def _shift_narrow(src_sign: bool, dst_sign: bool | None, rounding: bool) -> Callable:
    """RSHRN and the saturating SQSHRN/UQSHRN/SQRSHRN/UQRSHRN/SQSHRUN/SQRSHRUN
    (dst_sign None: no saturation)."""
    def run(state, a: SimdArgs) -> None:
        esize, right, _ = shift_geometry(a.imm)
        count = 1 if a.scalar else 64 // esize
        lanes = split(vget(state, a.rn), 2 * esize, count)
        out, hit = [], False
        for x in lanes:
            value = _as_int(x, 2 * esize, src_sign)
            if rounding:
                value += 1 << (right - 1)
            value >>= right
            if dst_sign is not None:
                value, clamped = saturate(value, esize, dst_sign)
                hit |= clamped
            out.append(value)
        _narrow_write(state, a, out, esize)
        _set_qc(state, hit)
    return run


# -- by element ----------------------------------------------------------------------------

def element_index(a: SimdArgs) -> tuple[int, int]:
    """(Vm number, lane) of a by-element encoding; imm holds H:L:M (bits 2:0)."""
    h, l_, m = a.imm >> 2 & 1, a.imm >> 1 & 1, a.imm & 1
    if a.size == 1:
        return a.rm, h << 2 | l_ << 1 | m
    if a.size == 2:
        return m << 4 | a.rm, h << 1 | l_
    return m << 4 | a.rm, h  # size 3 (FP double)


def by_element(fn: Callable[[int, int, int, int], int], sign: bool,
               sat: bool | None = None, long: bool = False) -> Callable:
    """MUL/MLA/MLS/SQDMULH/SQRDMULH by element and the long forms (SMULL/UMLAL...)."""
    def run(state, a: SimdArgs) -> None:
        esize = 8 << a.size
        reg, index = element_index(a)
        y = _as_int(split(vget(state, reg), esize, 128 // esize)[index], esize, sign)
        if long:
            count = 1 if a.scalar else 64 // esize
            n = split(vget(state, a.rn) >> (64 if a.q else 0), esize, count)
            d = split(vget(state, a.rd), 2 * esize, count)
            width = 2 * esize
        else:
            count = 1 if a.scalar else (128 if a.q else 64) // esize
            n = split(vget(state, a.rn), esize, count)
            d = split(vget(state, a.rd), esize, count)
            width = esize
        out, hit = [], False
        for x, z in zip(n, d, strict=True):
            value = fn(_as_int(x, esize, sign), y, _as_int(z, width, sign), esize)
            if sat is not None:
                value, clamped = saturate(value, width, sat)
                hit |= clamped
            out.append(value)
        if long:
            vset(state, a.rd, join(out, width))
        else:
            _write(state, a, out, width)
        _set_qc(state, hit)
    return run


def _sqdml_element(accumulate: int) -> Callable:
    def run(state, a: SimdArgs) -> None:
        esize = 8 << a.size
        reg, index = element_index(a)
        y = signed(split(vget(state, reg), esize, 128 // esize)[index], esize)
        count = 1 if a.scalar else 64 // esize
        n = split(vget(state, a.rn) >> (64 if a.q else 0), esize, count)
        d = split(vget(state, a.rd), 2 * esize, count)
        out, hit = [], False
        for x, z in zip(n, d, strict=True):
            product, h1 = saturate(2 * signed(x, esize) * y, 2 * esize, True)
            value, h2 = saturate(signed(z, 2 * esize) + accumulate * product
                                 if accumulate else product, 2 * esize, True)
            hit |= h1 or h2
            out.append(value)
        vset(state, a.rd, join(out, 2 * esize))
        _set_qc(state, hit)
    return run


def _dup_scalar(state, a: SimdArgs) -> None:
    """DUP (element), scalar: Vd = Vn[index] zero-extended (MOV Sd, Vn.S[i])."""
    size, index = copy_lane(a.imm)
    esize = 8 << size
    vset(state, a.rd, split(vget(state, a.rn), esize, 128 // esize)[index])


# -- the cryptographic extension ------------------------------------------------------------

def _crypto_dn(fn: Callable[[int, int], int]) -> Callable:
    return lambda state, a: vset(state, a.rd, fn(vget(state, a.rd), vget(state, a.rn)))


def _crypto_n(fn: Callable[[int], int]) -> Callable:
    return lambda state, a: vset(state, a.rd, fn(vget(state, a.rn)))


def _crypto_dnm(fn: Callable[[int, int, int], int]) -> Callable:
    return lambda state, a: vset(state, a.rd, fn(vget(state, a.rd), vget(state, a.rn),
                                                 vget(state, a.rm)))


# The operations, by name: the translator passes an index into OPERATIONS.
OPERATIONS: dict[str, Callable] = {
    "add": elementwise(lambda x, y, e: x + y),
    "sub": elementwise(lambda x, y, e: x - y),
    "mul": elementwise(lambda x, y, e: x * y),
    "cmeq": elementwise(_cmp(lambda x, y, e: x == y)),
    "cmtst": elementwise(_cmp(lambda x, y, e: x & y != 0)),
    "cmgt": elementwise(_cmp(lambda x, y, e: signed(x, e) > signed(y, e))),
    "cmhi": elementwise(_cmp(lambda x, y, e: x > y)),
    "cmge": elementwise(_cmp(lambda x, y, e: signed(x, e) >= signed(y, e))),
    "cmhs": elementwise(_cmp(lambda x, y, e: x >= y)),
    "smax": elementwise(lambda x, y, e: x if signed(x, e) >= signed(y, e) else y),
    "umax": elementwise(lambda x, y, e: max(x, y)),
    "smin": elementwise(lambda x, y, e: x if signed(x, e) <= signed(y, e) else y),
    "umin": elementwise(lambda x, y, e: min(x, y)),
    "addp": pairwise(lambda x, y, e: x + y),
    "smaxp": pairwise(lambda x, y, e: x if signed(x, e) >= signed(y, e) else y),
    "umaxp": pairwise(lambda x, y, e: max(x, y)),
    "sminp": pairwise(lambda x, y, e: x if signed(x, e) <= signed(y, e) else y),
    "uminp": pairwise(lambda x, y, e: min(x, y)),
    "and": _logic(lambda d, n, m: n & m),
    "bic": _logic(lambda d, n, m: n & ~m),
    "orr": _logic(lambda d, n, m: n | m),
    "orn": _logic(lambda d, n, m: n | ~m),
    "eor": _logic(lambda d, n, m: n ^ m),
    "bsl": _logic(lambda d, n, m: (d & n) | (~d & m)),
    "bit": _logic(lambda d, n, m: (n & m) | (d & ~m)),
    "bif": _logic(lambda d, n, m: (d & m) | (n & ~m)),
    "saddl": long_op(lambda x, y: x + y, True, False),
    "uaddl": long_op(lambda x, y: x + y, False, False),
    "saddw": long_op(lambda x, y: x + y, True, True),
    "uaddw": long_op(lambda x, y: x + y, False, True),
    "ssubl": long_op(lambda x, y: x - y, True, False),
    "usubl": long_op(lambda x, y: x - y, False, False),
    "smull": long_op(lambda x, y: x * y, True, False),
    "umull": long_op(lambda x, y: x * y, False, False),
    "rev64": _reverse(64),
    "rev32": _reverse(32),
    "rev16": _reverse(16),
    "cnt": unary(lambda x, e: x.bit_count()),
    "not": unary(lambda x, e: ~x),
    "rbit": unary(_rbit8),
    "cmgt0": unary(lambda x, e: (1 << e) - 1 if signed(x, e) > 0 else 0),
    "cmge0": unary(lambda x, e: (1 << e) - 1 if signed(x, e) >= 0 else 0),
    "cmeq0": unary(lambda x, e: (1 << e) - 1 if x == 0 else 0),
    "cmle0": unary(lambda x, e: (1 << e) - 1 if signed(x, e) <= 0 else 0),
    "cmlt0": unary(lambda x, e: (1 << e) - 1 if signed(x, e) < 0 else 0),
    "abs": unary(lambda x, e: abs(signed(x, e))),
    "neg": unary(lambda x, e: -x),
    "xtn": _xtn,
    "saddlv": across(_sat_lanes(lambda v, e: sum(v), True), widen=True),
    "uaddlv": across(lambda v, e: sum(v), widen=True),
    "smaxv": across(_sat_lanes(lambda v, e: max(v), True)),
    "umaxv": across(lambda v, e: max(v)),
    "sminv": across(_sat_lanes(lambda v, e: min(v), True)),
    "uminv": across(lambda v, e: min(v)),
    "addv": across(lambda v, e: sum(v)),
    "addp_s": _addp_scalar,
    "dup_elem": _dup_elem,
    "dup_gp": _dup_gp,
    "smov": _mov_to_gp(True),
    "umov": _mov_to_gp(False),
    "ins_gp": _ins_gp,
    "ins_elem": _ins_elem,
    "movi": _movi,
    "sshr": _shift_op("sshr"),
    "ushr": _shift_op("ushr"),
    "ssra": _shift_op("ssra"),
    "usra": _shift_op("usra"),
    "sri": _shift_op("sri"),
    "shl": _shift_op("shl"),
    "sli": _shift_op("sli"),
    "shrn": _shrn,
    "sshll": _shll(True),
    "ushll": _shll(False),
    "uzp1": _permute("uzp1"),
    "uzp2": _permute("uzp2"),
    "trn1": _permute("trn1"),
    "trn2": _permute("trn2"),
    "zip1": _permute("zip1"),
    "zip2": _permute("zip2"),
    "ext": _ext,
    "sqadd": lanes3(lambda x, y, d, e: x + y, True, True),
    "uqadd": lanes3(lambda x, y, d, e: x + y, False, False),
    "sqsub": lanes3(lambda x, y, d, e: x - y, True, True),
    "uqsub": lanes3(lambda x, y, d, e: x - y, False, False),
    "shadd": lanes3(lambda x, y, d, e: (x + y) >> 1, True),
    "uhadd": lanes3(lambda x, y, d, e: (x + y) >> 1, False),
    "srhadd": lanes3(lambda x, y, d, e: (x + y + 1) >> 1, True),
    "urhadd": lanes3(lambda x, y, d, e: (x + y + 1) >> 1, False),
    "shsub": lanes3(lambda x, y, d, e: (x - y) >> 1, True),
    "uhsub": lanes3(lambda x, y, d, e: (x - y) >> 1, False),
    "sabd": lanes3(lambda x, y, d, e: abs(x - y), True),
    "uabd": lanes3(lambda x, y, d, e: abs(x - y), False),
    "saba": lanes3(lambda x, y, d, e: d + abs(x - y), True),
    "uaba": lanes3(lambda x, y, d, e: d + abs(x - y), False),
    "mla": lanes3(lambda x, y, d, e: d + x * y, False),
    "mls": lanes3(lambda x, y, d, e: d - x * y, False),
    "pmul": lanes3(lambda x, y, d, e: clmul(x, y), False),
    "sqdmulh": lanes3(_doubling_high(False), True, True),
    "sqrdmulh": lanes3(_doubling_high(True), True, True),
    "sshl": lanes_shift(True, False, False),
    "ushl": lanes_shift(False, False, False),
    "srshl": lanes_shift(True, True, False),
    "urshl": lanes_shift(False, True, False),
    "sqshl": lanes_shift(True, False, True),
    "uqshl": lanes_shift(False, False, True),
    "sqrshl": lanes_shift(True, True, True),
    "uqrshl": lanes_shift(False, True, True),
    "sqabs": lanes2(lambda x, d, e: abs(x), True, True),
    "sqneg": lanes2(lambda x, d, e: -x, True, True),
    "suqadd": lanes2(lambda x, d, e: d + x, False, True, d_sign=True),
    "usqadd": lanes2(lambda x, d, e: d + x, True, False, d_sign=False),
    "clz": unary(_clz),
    "cls": unary(_cls),
    "saddlp": pairwise_long(True, False),
    "uaddlp": pairwise_long(False, False),
    "sadalp": pairwise_long(True, True),
    "uadalp": pairwise_long(False, True),
    "shll": _shll_by_esize,
    "sqxtn": narrow_sat(True, True),
    "uqxtn": narrow_sat(False, False),
    "sqxtun": narrow_sat(True, False),
    "ssubw": long_op(lambda x, y: x - y, True, True),
    "usubw": long_op(lambda x, y: x - y, False, True),
    "sabal": long3(lambda x, y, d, e: d + abs(x - y), True),
    "uabal": long3(lambda x, y, d, e: d + abs(x - y), False),
    "sabdl": long3(lambda x, y, d, e: abs(x - y), True),
    "uabdl": long3(lambda x, y, d, e: abs(x - y), False),
    "smlal": long3(lambda x, y, d, e: d + x * y, True),
    "umlal": long3(lambda x, y, d, e: d + x * y, False),
    "smlsl": long3(lambda x, y, d, e: d - x * y, True),
    "umlsl": long3(lambda x, y, d, e: d - x * y, False),
    "sqdmull": _sqdml(0),
    "sqdmlal": _sqdml(1),
    "sqdmlsl": _sqdml(-1),
    "addhn": narrow_high(False, False),
    "subhn": narrow_high(True, False),
    "raddhn": narrow_high(False, True),
    "rsubhn": narrow_high(True, True),
    "pmull": _pmull,
    "srshr": _shift_imm_lanes("srshr"),
    "urshr": _shift_imm_lanes("urshr"),
    "srsra": _shift_imm_lanes("srsra"),
    "ursra": _shift_imm_lanes("ursra"),
    "sqshl_imm": _shift_imm_lanes("sqshl"),
    "uqshl_imm": _shift_imm_lanes("uqshl"),
    "sqshlu": _shift_imm_lanes("sqshlu"),
    "rshrn": _shift_narrow(False, None, True),
    "sqshrn": _shift_narrow(True, True, False),
    "sqrshrn": _shift_narrow(True, True, True),
    "uqshrn": _shift_narrow(False, False, False),
    "uqrshrn": _shift_narrow(False, False, True),
    "sqshrun": _shift_narrow(True, False, False),
    "sqrshrun": _shift_narrow(True, False, True),
    "mul_elem": by_element(lambda x, y, d, e: x * y, False),
    "mla_elem": by_element(lambda x, y, d, e: d + x * y, False),
    "mls_elem": by_element(lambda x, y, d, e: d - x * y, False),
    "sqdmulh_elem": by_element(_doubling_high(False), True, True),
    "sqrdmulh_elem": by_element(_doubling_high(True), True, True),
    "smull_elem": by_element(lambda x, y, d, e: x * y, True, long=True),
    "umull_elem": by_element(lambda x, y, d, e: x * y, False, long=True),
    "smlal_elem": by_element(lambda x, y, d, e: d + x * y, True, long=True),
    "umlal_elem": by_element(lambda x, y, d, e: d + x * y, False, long=True),
    "smlsl_elem": by_element(lambda x, y, d, e: d - x * y, True, long=True),
    "umlsl_elem": by_element(lambda x, y, d, e: d - x * y, False, long=True),
    "sqdmull_elem": _sqdml_element(0),
    "sqdmlal_elem": _sqdml_element(1),
    "sqdmlsl_elem": _sqdml_element(-1),
    "dup_scalar": _dup_scalar,
    "aese": _crypto_dn(crypto.aese),
    "aesd": _crypto_dn(crypto.aesd),
    "aesmc": _crypto_n(crypto.aesmc),
    "aesimc": _crypto_n(crypto.aesimc),
    "sha1c": _crypto_dnm(crypto.sha1c),
    "sha1p": _crypto_dnm(crypto.sha1p),
    "sha1m": _crypto_dnm(crypto.sha1m),
    "sha1su0": _crypto_dnm(crypto.sha1su0),
    "sha256h": _crypto_dnm(crypto.sha256h),
    "sha256h2": _crypto_dnm(crypto.sha256h2),
    "sha256su1": _crypto_dnm(crypto.sha256su1),
    "sha1h": _crypto_n(crypto.sha1h),
    "sha1su1": _crypto_dn(crypto.sha1su1),
    "sha256su0": _crypto_dn(crypto.sha256su0),
}
OPERATION_NAMES = tuple(OPERATIONS)
OPERATION_INDEX = {name: i for i, name in enumerate(OPERATION_NAMES)}
_BY_INDEX = tuple(OPERATIONS.values())


def run_operation(state, index: int, packed: int) -> None:
    _BY_INDEX[index](state, SimdArgs.unpack(packed))
