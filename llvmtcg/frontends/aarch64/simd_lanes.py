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

M64 = (1 << 64) - 1
M128 = (1 << 128) - 1


class SimdArgs(NamedTuple):
    q: int
    size: int
    rm: int
    rn: int
    rd: int
    imm: int

    def pack(self) -> int:
        return (self.q | self.size << 1 | self.rm << 3 | self.rn << 8 | self.rd << 13
                | self.imm << 18)

    @classmethod
    def unpack(cls, packed: int) -> SimdArgs:
        return cls(packed & 1, packed >> 1 & 3, packed >> 3 & 31, packed >> 8 & 31,
                   packed >> 13 & 31, packed >> 18)


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


def _table(extend: bool) -> Callable:
    def run(state, a: SimdArgs) -> None:
        regs = a.size + 1
        table: list[int] = []
        for i in range(regs):
            table += split(vget(state, (a.rn + i) % 32), 8, 16)
        count = 16 if a.q else 8
        indices = split(vget(state, a.rm), 8, count)
        d = split(vget(state, a.rd), 8, count)
        out = [table[x] if x < len(table) else (d[i] if extend else 0)
               for i, x in enumerate(indices)]
        _write(state, a, out, 8)
    return run


def _rbit8(x: int, e: int) -> int:
    return int(f"{x:08b}"[::-1], 2)


def _sat_lanes(fn: Callable[[list[int], int], int], sign: bool) -> Callable:
    def run(lanes: list[int], esize: int) -> int:
        return fn([signed(x, esize) for x in lanes] if sign else lanes, esize)
    return run


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
    "tbl": _table(False),
    "tbx": _table(True),
}
OPERATION_NAMES = tuple(OPERATIONS)
OPERATION_INDEX = {name: i for i, name in enumerate(OPERATION_NAMES)}
_BY_INDEX = tuple(OPERATIONS.values())


def run_operation(state, index: int, packed: int) -> None:
    _BY_INDEX[index](state, SimdArgs.unpack(packed))
