"""The vector IR ops (v128 lanes), run as native code on every tier against lane-by-lane
Python references: integer lanes exactly, float lanes against the exact soft-float
reference with their exception flags; plus the text form and the builder's checks.

The v128 operands live over the i64 registers: q0 = r[0..1] (the result), q1 = r[2..3],
q2 = r[4..5], q3 = r[6..7]; vdup's scalar is r[6].
"""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from llvmtcg.ir import (
    I64,
    V128,
    Builder,
    Cond,
    ExitReason,
    FCond,
    FFlag,
    IRError,
    RoundingMode,
    Temp,
)
from llvmtcg.ir.ops import pack_permute
from llvmtcg.ir.parse import parse_block
from llvmtcg.ir.types import TempKind
from llvmtcg.runtime import softfloat as sf
from tests.core.support import CODE, LAYOUT, make_cpu
from tests.core.test_fp_ops import TIERS, VALUES, FpFrontend

RNE, RTZ, RDN, RUP, RMM, DYN = RoundingMode
M128 = (1 << 128) - 1
Q = [Temp(TempKind.GLOBAL, V128, f"q{i}", offset=LAYOUT.globals()[f"r[{2 * i}]"].offset)
     for i in range(4)]


@pytest.fixture(scope="module", params=list(TIERS))
def machine(request):
    frontend = FpFrontend()
    return frontend, make_cpu(frontend, **TIERS[request.param])


_next_pc = itertools.count(CODE + 0x8000, 4)


def kernel(machine, emit):
    """A one-block kernel; returns run(q1, q2, q3, r6) -> (q0, flags)."""
    frontend, cpu = machine
    pc = next(_next_pc)

    @frontend.define(pc)
    def _(b: Builder) -> None:
        emit(b)
        b.exit_tb(ExitReason.HALT)

    def run(*inputs: int, rounding: RoundingMode = RNE) -> tuple[int, int]:
        for i, v in enumerate(inputs, start=1):
            cpu.state.set("r", v & (1 << 64) - 1, 2 * i)
            cpu.state.set("r", v >> 64 & (1 << 64) - 1, 2 * i + 1)
        frontend.rounding, frontend.flags = rounding, 0
        cpu.pc = pc
        assert cpu.run().reason is ExitReason.HALT
        return cpu.state.get("r", 0) | cpu.state.get("r", 1) << 64, frontend.flags

    return run


def split(v: int, bits: int, count: int) -> list[int]:
    return [(v >> (i * bits)) & ((1 << bits) - 1) for i in range(count)]


def join(lanes: list[int], bits: int) -> int:
    return sum((x & ((1 << bits) - 1)) << (i * bits) for i, x in enumerate(lanes))


def signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) else x


def sat(x: int, bits: int, is_signed: bool) -> int:
    lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if is_signed else (0, (1 << bits) - 1)
    return min(max(x, lo), hi)


LANEWISE = {
    "vadd": lambda a, b, n: a + b, "vsub": lambda a, b, n: a - b,
    "vmul": lambda a, b, n: a * b, "vand": lambda a, b, n: a & b,
    "vor": lambda a, b, n: a | b, "vxor": lambda a, b, n: a ^ b,
    "vandc": lambda a, b, n: a & ~b,
    "vsmin": lambda a, b, n: min(signed(a, n), signed(b, n)),
    "vsmax": lambda a, b, n: max(signed(a, n), signed(b, n)),
    "vumin": lambda a, b, n: min(a, b), "vumax": lambda a, b, n: max(a, b),
    "vssadd": lambda a, b, n: sat(signed(a, n) + signed(b, n), n, True),
    "vusadd": lambda a, b, n: sat(a + b, n, False),
    "vsssub": lambda a, b, n: sat(signed(a, n) - signed(b, n), n, True),
    "vussub": lambda a, b, n: sat(a - b, n, False),
}
UNARY = {"vneg": lambda a, n: -a, "vnot": lambda a, n: ~a,
         "vabs": lambda a, n: abs(signed(a, n)), "vmov": lambda a, n: a}


def _vectors(bits: int, n: int = 12) -> list[int]:
    rng = random.Random(bits)
    edge = [0, M128, join([1 << (bits - 1)] * (128 // bits), bits),
            join([(1 << (bits - 1)) - 1] * (128 // bits), bits)]
    return edge + [rng.getrandbits(128) for _ in range(n)]


def _check_lanes(run, ref, vece: int, oprsz: int, n_in: int) -> None:
    bits = 8 << vece
    count = oprsz * 8 // bits
    values = _vectors(bits)
    for operands in itertools.islice(itertools.product(values, repeat=n_in), 60):
        got, _ = run(*operands)
        lanes = [split(v, bits, count) for v in operands]
        want = join([ref(*xs) for xs in zip(*lanes, strict=True)], bits)
        assert hex(got) == hex(want), f"{[hex(v) for v in operands]}"


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (1, 16), (2, 16), (3, 16), (0, 8),
                                             (2, 8)])
@pytest.mark.parametrize("name", sorted(LANEWISE))
def test_integer_lanes(machine, name: str, vece: int, oprsz: int) -> None:
    run = kernel(machine, lambda b: b.vector(name, Q[0], (Q[1], Q[2]), vece, oprsz))
    _check_lanes(run, lambda a, b: LANEWISE[name](a, b, 8 << vece), vece, oprsz, 2)


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (1, 8), (2, 16), (3, 16)])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_lanes(machine, name: str, vece: int, oprsz: int) -> None:
    run = kernel(machine, lambda b: b.vector(name, Q[0], (Q[1],), vece, oprsz))
    _check_lanes(run, lambda a: UNARY[name](a, 8 << vece), vece, oprsz, 1)


@pytest.mark.parametrize("cond", list(Cond))
@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (2, 8), (3, 16)])
def test_compare_lanes(machine, cond: Cond, vece: int, oprsz: int) -> None:
    bits = 8 << vece
    run = kernel(machine, lambda b: b.vector("vcmp", Q[0], (Q[1], Q[2]), vece, oprsz, cond))
    _check_lanes(run, lambda a, b: -1 if cond.evaluate(a, b, bits) else 0, vece, oprsz, 2)


@pytest.mark.parametrize(("vece", "count"), [(0, 0), (0, 7), (1, 3), (2, 31), (3, 1),
                                             (3, 63)])
@pytest.mark.parametrize("name", ["vshli", "vshri", "vsari"])
def test_shift_lanes(machine, name: str, vece: int, count: int) -> None:
    bits = 8 << vece
    ref = {"vshli": lambda a: a << count, "vshri": lambda a: a >> count,
           "vsari": lambda a: signed(a, bits) >> count}[name]
    for oprsz in (8, 16):
        run = kernel(machine, lambda b, o=oprsz: b.vector(name, Q[0], (Q[1],), vece, o, count))
        _check_lanes(run, ref, vece, oprsz, 1)


@pytest.mark.parametrize("name", ["vzip1", "vzip2", "vuzp1", "vuzp2", "vtrn1", "vtrn2"])
@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (1, 8), (2, 16), (3, 16)])
def test_permutes(machine, name: str, vece: int, oprsz: int) -> None:
    bits = 8 << vece
    count = oprsz * 8 // bits
    run = kernel(machine, lambda b: b.vector(name, Q[0], (Q[1], Q[2]), vece, oprsz))
    for n_val, m_val in itertools.product(_vectors(bits, 3), repeat=2):
        n, m = split(n_val, bits, count), split(m_val, bits, count)
        half = count // 2
        if name.startswith("vzip"):
            base = 0 if name == "vzip1" else half
            want = [x for i in range(half) for x in (n[base + i], m[base + i])]
        elif name.startswith("vuzp"):
            odd = name == "vuzp2"
            want = (n + m)[odd::2]
        else:
            odd = name == "vtrn2"
            want = [x for i in range(half) for x in (n[2 * i + odd], m[2 * i + odd])]
        assert run(n_val, m_val)[0] == join(want, bits)


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (0, 8), (1, 16), (1, 8), (2, 16),
                                             (3, 16), (3, 8)])
def test_any_permute(machine, vece: int, oprsz: int) -> None:
    bits = 8 << vece
    count, whole = oprsz * 8 // bits, 128 // bits
    rng = random.Random(vece * 100 + oprsz)
    masks = [[rng.randrange(2 * whole) for _ in range(count)] for _ in range(4)]
    masks += [list(range(count)), [2 * whole - 1] * count]
    for indexes in masks:
        run = kernel(machine, lambda b, i=indexes: b.vector("vperm", Q[0], (Q[1], Q[2]),
                                                            vece, oprsz, pack_permute(i)))
        for a_val, b_val in itertools.product(_vectors(bits, 2), repeat=2):
            both = split(a_val, bits, whole) + split(b_val, bits, whole)
            assert run(a_val, b_val)[0] == join([both[i] for i in indexes], bits)


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (0, 8), (1, 16), (2, 8), (3, 16)])
def test_population_count(machine, vece: int, oprsz: int) -> None:
    bits = 8 << vece
    count = oprsz * 8 // bits
    run = kernel(machine, lambda b: b.vector("vctpop", Q[0], (Q[1],), vece, oprsz))
    for v in _vectors(bits, 4):
        assert run(v)[0] == join([bin(x).count("1") for x in split(v, bits, count)], bits)


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (1, 8), (2, 16), (3, 16), (3, 8)])
def test_dup(machine, vece: int, oprsz: int) -> None:
    bits = 8 << vece
    count = oprsz * 8 // bits
    scalar = kernel(machine, lambda b: b.vector("vdup", Q[0], (b.glob("r[6]"),), vece, oprsz))
    element = {i: kernel(machine, lambda b, i=i: b.vector("vdupe", Q[0], (Q[1],), vece,
                                                           oprsz, i))
               for i in range(128 // bits)}
    for v in _vectors(bits, 3):
        assert scalar(0, 0, v)[0] == join([v & ((1 << bits) - 1)] * count, bits)
        for i, run in element.items():
            assert run(v)[0] == join([split(v, bits, 16 // (bits // 8))[i]] * count, bits)


@pytest.mark.parametrize("oprsz", [8, 16])
def test_table_lookup(machine, oprsz: int) -> None:
    run = kernel(machine, lambda b: b.vector("vtbl", Q[0], (Q[1], Q[2], Q[3]), 0, oprsz))
    rng = random.Random(oprsz)
    for _ in range(30):
        table, fallback = rng.getrandbits(128), rng.getrandbits(128)
        indices = join([rng.choice((rng.randrange(16), rng.randrange(256), 16, 0x80, 0xFF))
                        for _ in range(16)], 8)
        t, i, f = split(table, 8, 16), split(indices, 8, oprsz), split(fallback, 8, oprsz)
        want = join([t[x] if x < 16 else y for x, y in zip(i, f, strict=True)], 8)
        assert run(table, indices, fallback)[0] == want


FLOAT_OPS = {"vfadd": (2, sf.add), "vfsub": (2, sf.sub), "vfmul": (2, sf.mul),
             "vfdiv": (2, sf.div), "vfma": (3, sf.fma), "vfsqrt": (1, sf.sqrt)}


@pytest.mark.parametrize(("vece", "oprsz"), [(2, 16), (2, 8), (3, 16), (3, 8)])
@pytest.mark.parametrize("name", sorted(FLOAT_OPS))
def test_float_lanes(machine, name: str, vece: int, oprsz: int) -> None:
    """Each lane is the scalar op's result; the flags are the union of the lanes'."""
    n_in, ref = FLOAT_OPS[name]
    bits = 8 << vece
    fmt = sf.FORMATS[bits]
    count = oprsz * 8 // bits
    values = VALUES[bits]
    rng = random.Random(name + str(vece))
    for rm in (RNE, RUP, DYN):
        run = kernel(machine, lambda b, rm=rm: b.vector(name, Q[0], tuple(Q[1:1 + n_in]),
                                                        vece, oprsz, rm))
        for dyn in (RTZ, RDN) if rm is DYN else (RNE,):
            effective = dyn if rm is DYN else rm
            for _ in range(40):
                # The lanes past oprsz hold signalling NaNs: they must raise nothing.
                operands = [join([rng.choice(values) for _ in range(count)]
                                 + [fmt.inf | 1] * (128 // bits - count), bits)
                            for _ in range(n_in)]
                got, flags = run(*operands, rounding=dyn)
                want, want_flags = [], 0
                for xs in zip(*(split(v, bits, count) for v in operands), strict=True):
                    value, lane_flags = ref(fmt, *xs, effective)
                    want.append(value)
                    want_flags |= int(lane_flags)
                lanes = [fmt.default_nan if fmt.is_nan(x) else x
                         for x in split(got, bits, count)]
                want = [fmt.default_nan if fmt.is_nan(x) else x for x in want]
                assert (lanes, flags, got >> (oprsz * 8)) == (want, want_flags, 0), \
                    f"{effective} {[hex(v) for v in operands]}"


@pytest.mark.parametrize(("vece", "oprsz"), [(2, 16), (2, 8), (3, 16), (3, 8)])
@pytest.mark.parametrize("name", ["vitof", "vutof"])
def test_int_to_float_lanes(machine, name: str, vece: int, oprsz: int) -> None:
    """Each lane converted as the scalar itof/utof converts it (the soft-float
    reference), Inexact the union of the lanes'; nothing above oprsz."""
    bits = 8 << vece
    fmt = sf.FORMATS[bits]
    count = oprsz * 8 // bits
    signed = name == "vitof"
    rng = random.Random(name + str(vece))
    edges = [0, 1, 2, (1 << bits) - 1, 1 << (bits - 1), (1 << (bits - 1)) - 1,
             (1 << 24) + 1, (1 << 53) + 1, 3 << (bits - 3), 12345]
    for rm in (RNE, RTZ, RUP, DYN):
        run = kernel(machine, lambda b, rm=rm: b.vector(name, Q[0], (Q[1],), vece, oprsz, rm))
        for dyn in (RDN, RNE) if rm is DYN else (RNE,):
            effective = dyn if rm is DYN else rm
            for _ in range(40):
                lanes = [rng.choice([rng.getrandbits(bits), *edges]) & (1 << bits) - 1
                         for _ in range(128 // bits)]
                got, flags = run(join(lanes, bits), rounding=dyn)
                want, want_flags = [], 0
                for x in lanes[:count]:
                    value = x - (1 << bits) if signed and x >> (bits - 1) else x
                    lane, lane_flags = sf.from_int(fmt, value, effective)
                    want.append(lane)
                    want_flags |= int(lane_flags)
                assert (split(got, bits, count), flags, got >> (oprsz * 8)) == \
                    (want, want_flags, 0), f"{effective} {[hex(v) for v in lanes]}"


def _float_value(bits: int, x: int) -> float:
    return struct.unpack("<f" if bits == 32 else "<d", x.to_bytes(bits // 8, "little"))[0]


@pytest.mark.parametrize(("vece", "oprsz"), [(2, 16), (2, 8), (3, 16), (3, 8)])
@pytest.mark.parametrize("cond", [FCond.EQ, FCond.LT, FCond.LE, FCond.QLT])
def test_float_compare_lanes(machine, cond: FCond, vece: int, oprsz: int) -> None:
    """Lane masks of the comparison; invalid for a signalling NaN (quiet conditions) or
    any NaN (signalling ones); nothing above oprsz (signalling NaNs there)."""
    bits = 8 << vece
    fmt = sf.FORMATS[bits]
    count = oprsz * 8 // bits
    values = VALUES[bits] + [fmt.inf | 1, fmt.inf | fmt.quiet_bit, 0, 1 << (bits - 1)]
    signalling = cond in (FCond.LT, FCond.LE)
    test = {FCond.EQ: lambda x, y: x == y, FCond.LT: lambda x, y: x < y,
            FCond.LE: lambda x, y: x <= y, FCond.QLT: lambda x, y: x < y}[cond]
    run = kernel(machine, lambda b: b.vector("vfcmp", Q[0], (Q[1], Q[2]), vece, oprsz, cond))
    rng = random.Random(str(cond) + str(vece))
    for _ in range(60):
        operands = [join([rng.choice(values) for _ in range(count)]
                         + [fmt.inf | 1] * (128 // bits - count), bits) for _ in range(2)]
        got, flags = run(*operands)
        want, invalid = [], False
        for x, y in zip(*(split(v, bits, count) for v in operands), strict=True):
            nan = fmt.is_nan(x) or fmt.is_nan(y)
            invalid |= (nan and signalling) or fmt.is_snan(x) or fmt.is_snan(y)
            holds = not nan and test(_float_value(bits, x), _float_value(bits, y))
            want.append((1 << bits) - 1 if holds else 0)
        assert (split(got, bits, count), flags, got >> (oprsz * 8)) == \
            (want, int(FFlag.INVALID) if invalid else 0, 0), [hex(v) for v in operands]


@pytest.mark.parametrize(("vece", "oprsz"), [(2, 16), (2, 8), (3, 16), (3, 8)])
def test_float_to_int_lanes(machine, vece: int, oprsz: int) -> None:
    """Lanes that fit truncated towards zero, Inexact the union of the lanes'."""
    bits = 8 << vece
    count = oprsz * 8 // bits
    pack = "<f" if bits == 32 else "<d"
    run = kernel(machine, lambda b: b.vector("vftosi", Q[0], (Q[1],), vece, oprsz))
    rng = random.Random(vece * 100 + oprsz)
    edges = [0.0, -0.0, 0.5, -0.5, 1.0, -1.75, 2.0 ** 30 + 0.5, -(2.0 ** 31), 1e-40, 1e-310,
             12345.678, -(2.0 ** (bits - 2)) * 1.5]
    for _ in range(60):
        floats = [rng.choice([*edges, rng.uniform(-1e6, 1e6)]) for _ in range(128 // bits)]
        words = [int.from_bytes(struct.pack(pack, f), "little") for f in floats]
        got, flags = run(join(words, bits))
        lanes = [struct.unpack(pack, w.to_bytes(bits // 8, "little"))[0] for w in words]
        want = [int(f) & (1 << bits) - 1 for f in lanes[:count]]
        inexact = any(int(f) != f for f in lanes[:count])
        assert (split(got, bits, count), flags, got >> (oprsz * 8)) == \
            (want, int(FFlag.INEXACT) if inexact else 0, 0), floats


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (0, 8), (1, 16), (3, 16), (3, 8)])
def test_any_lane_set(machine, vece: int, oprsz: int) -> None:
    bits = 8 << vece
    run = kernel(machine, lambda b: b.vector("vany", b.glob("r[0]"), (Q[1],), vece, oprsz))
    assert run(0)[0] & (1 << 64) - 1 == 0
    for lane in range(128 // bits):
        for value in (1, 1 << (bits - 1)):
            got = run(value << (lane * bits))[0] & (1 << 64) - 1
            assert got == int(lane * bits < oprsz * 8), (lane, value)


@pytest.mark.parametrize(("vece", "oprsz"), [(2, 16), (2, 8), (3, 16), (3, 8)])
def test_any_nan(machine, vece: int, oprsz: int) -> None:
    frontend, cpu = machine
    bits = 8 << vece
    fmt = sf.FORMATS[bits]
    count = oprsz * 8 // bits
    run = kernel(machine, lambda b: b.vector("vfanynan", b.glob("r[0]"), (Q[1],), vece,
                                             oprsz))
    snan, qnan, one = fmt.inf | 1, fmt.inf | fmt.quiet_bit, VALUES[bits][2]
    for lane, nan in itertools.product(range(128 // bits), (snan, qnan, fmt.inf)):
        lanes = [one] * (128 // bits)
        lanes[lane] = nan
        got, flags = run(join(lanes, bits))
        assert (got & (1 << 64) - 1, flags) == (int(nan != fmt.inf and lane < count), 0)


def test_text_round_trips() -> None:
    b = Builder(0x1000, LAYOUT.globals())
    t = b.temp(V128)
    b.vector("vadd", t, (Q[1], Q[2]), 0, 16)
    b.vector("vcmp", Q[0], (t, Q[2]), 2, 8, Cond.GTU)
    b.vector("vshri", t, (t,), 3, 16, 5)
    b.vector("vfma", Q[3], (t, Q[1], Q[2]), 3, 16, RoundingMode.DYN)
    b.vector("vdup", t, (b.glob("r[6]"),), 1, 16)
    b.vector("vfanynan", b.glob("r[0]"), (t,), 2, 16)
    b.vector("vperm", t, (t, Q[1]), 1, 8, pack_permute([7, 0, 15, 3]))
    b.exit_tb(ExitReason.HALT)
    block = b.finish()
    text = str(block)
    assert " vcmp q0,tmp0,q2,$0x2,$0x8,gtu\n" in text
    globals_ = {**LAYOUT.globals(), **{q.name: q for q in Q}}
    parsed = parse_block(text, globals_)
    assert parsed.ops == block.ops and parsed.locals == block.locals


@pytest.mark.parametrize(("call", "message"), [
    (lambda b: b.vector("add", Q[0], (Q[1], Q[2]), 0, 16), "not a vector op"),
    (lambda b: b.vector("vadd", Q[0], (Q[1], Q[2]), 4, 16), "bad lanes"),
    (lambda b: b.vector("vadd", Q[0], (Q[1], Q[2]), 0, 4), "bad lanes"),
    (lambda b: b.vector("vadd", b.glob("r[0]"), (Q[1], Q[2]), 0, 16), "not v128"),
    (lambda b: b.vector("vdup", Q[0], (Q[1],), 0, 16), "not i64"),
    (lambda b: b.vector("vfadd", Q[0], (Q[1], Q[2]), 1, 16, DYN), "32 or 64 bits"),
    (lambda b: b.vector("vfadd", Q[0], (Q[1], Q[2]), 2, 16, RMM), "RMM"),
    (lambda b: b.vector("vshli", Q[0], (Q[1],), 2, 16, 32), "below the lane width"),
    (lambda b: b.vector("vdupe", Q[0], (Q[1],), 3, 16, 2), "out of range"),
    (lambda b: b.vector("vcmp", Q[0], (Q[1], Q[2]), 0, 16, "eq"), "not a Cond"),
    (lambda b: b.vector("vtbl", Q[0], (Q[1], Q[2], Q[3]), 1, 16), "bytes"),
    (lambda b: b.vector("vperm", Q[0], (Q[1], Q[2]), 2, 16, pack_permute([0, 1, 2, 8])),
     "out of range"),
    (lambda b: b.vector("vperm", Q[0], (Q[1], Q[2]), 2, 8, pack_permute([0, 1, 2])),
     "out of range"),
])
def test_builder_rejects_malformed_vector_ops(call, message: str) -> None:
    b = Builder(0x1000, LAYOUT.globals())
    with pytest.raises(IRError, match=message):
        call(b)


def test_a_vector_and_its_halves_agree_in_a_hot_region() -> None:
    """A region keeps q1 as one v128 shadow and r[2]/r[3] as its halves: i64 writes
    to the halves are seen by the vector op and the other way round."""
    frontend = FpFrontend()
    cpu = make_cpu(frontend, hot_threshold=20, tier_sync=True)
    loop, done = CODE + 0x7000, CODE + 0x7004

    @frontend.define(loop)
    def _(b: Builder) -> None:
        b.add(b.glob("r[2]"), b.glob("r[2]"), b.const(I64, 1))  # the low half of q1
        b.vector("vadd", Q[1], (Q[1], Q[2]), 3, 16)  # q1 += q2 (both halves)
        b.add(b.glob("r[7]"), b.glob("r[7]"), b.glob("r[3]"))  # reads q1's high half
        b.add(b.glob("r[0]"), b.glob("r[0]"), b.const(I64, 1))
        skip = b.label()
        b.brcond(Cond.GEU, b.glob("r[0]"), b.glob("r[1]"), skip)
        b.goto_tb(0, loop)
        b.set_label(skip)
        b.goto_tb(1, done)

    @frontend.define(done)
    def _(b: Builder) -> None:
        b.exit_tb(ExitReason.HALT)

    n = 200
    for i, v in enumerate([0, n, 5, 7, 1, 2, 0, 0]):
        cpu.state.set("r", v, i)
    cpu.pc = loop
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.tbs.stats["regions_installed"] >= 1
    assert cpu.state.get("r", 2) == 5 + n * 2  # +1 and +1 per iteration
    assert cpu.state.get("r", 3) == 7 + n * 2
    assert cpu.state.get("r", 7) == sum(7 + 2 * k for k in range(1, n + 1))


def test_every_vector_op_is_a_baseline_stencil() -> None:
    """No vector op's stencil is unsupported (a block using it would silently go to
    the LLVM block tier instead)."""
    from llvmtcg.ir.ops import OPS

    frontend = FpFrontend()
    cpu = make_cpu(frontend, baseline=True)
    pc = CODE + 0x6000

    @frontend.define(pc)
    def _(b: Builder) -> None:
        for name, definition in OPS.items():
            if not definition.is_vector:
                continue
            args: tuple = ()
            vece = 2 if name.startswith("vf") or name in ("vitof", "vutof") else 0
            if name == "vcmp":
                args = (Cond.LTU,)
            elif name == "vfcmp":
                args = (FCond.LE,)
            elif name in ("vshli", "vshri", "vsari", "vdupe"):
                args = (1,)
            elif name == "vperm":
                args = (pack_permute([31 - i for i in range(16)]),)
            elif name == "vpmull":
                args = (1,)
            elif vece == 2 and name not in ("vfanynan", "vftosi"):
                args = (RoundingMode.RUP,)
            n_in = definition.n_in
            dst = b.glob("r[0]") if name in ("vfanynan", "vany") else Q[0]
            sources = (b.glob("r[6]"),) if name == "vdup" else tuple(Q[1:1 + n_in])
            b.vector(name, dst, sources, vece, 16, *args)
        b.exit_tb(ExitReason.HALT)

    cpu.pc = pc
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.tbs.stats["baseline_blocks"] == 1 and cpu.tbs.stats["llvm_blocks"] == 0


@pytest.mark.parametrize("tier", list(TIERS))
def test_an_i64_half_read_after_a_vector_write_sees_the_vector_result(tier: str) -> None:
    """The baseline passes an op's i64 result to the next op in a register; a vector
    op writing the v128 over that i64 field must end that (r[2] is q1's low half)."""
    frontend = FpFrontend()
    cpu = make_cpu(frontend, **TIERS[tier])
    pc = CODE + 0x5000

    @frontend.define(pc)
    def _(b: Builder) -> None:
        b.add(b.glob("r[2]"), b.glob("r[2]"), b.const(I64, 1))
        b.vector("vadd", Q[1], (Q[1], Q[2]), 3, 16)
        b.add(b.glob("r[0]"), b.glob("r[2]"), b.const(I64, 0))
        b.exit_tb(ExitReason.HALT)

    for i, v in enumerate([0, 0, 10, 20, 100, 200]):
        cpu.state.set("r", v, i)
    cpu.pc = pc
    assert cpu.run().reason is ExitReason.HALT
    assert (cpu.state.get("r", 0), cpu.state.get("r", 2), cpu.state.get("r", 3)) == (
        111, 111, 220)


def _clz(x: int, bits: int) -> int:
    return bits - x.bit_length()


def _bitrev(x: int, bits: int) -> int:
    return int(f"{x:0{bits}b}"[::-1], 2)


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (0, 8), (1, 16), (2, 8), (3, 16)])
@pytest.mark.parametrize("name", ["vclz", "vbitrev"])
def test_leading_zeros_and_bit_reverse(machine, name: str, vece: int, oprsz: int) -> None:
    bits = 8 << vece
    ref = _clz if name == "vclz" else _bitrev
    run = kernel(machine, lambda b: b.vector(name, Q[0], (Q[1],), vece, oprsz))
    _check_lanes(run, lambda a: ref(a, bits), vece, oprsz, 1)
    assert run(0)[0] == (join([bits] * (oprsz * 8 // bits), bits) if name == "vclz" else 0)


@pytest.mark.parametrize(("vece", "oprsz"), [(0, 16), (1, 8), (1, 16), (2, 16), (3, 16),
                                             (3, 8)])
@pytest.mark.parametrize("name", ["vshlv", "vshrv", "vsarv"])
def test_variable_shift_lanes(machine, name: str, vece: int, oprsz: int) -> None:
    """Each lane by its own count: below the width, the width, above it (and counts
    whose low bits alone would be in range)."""
    bits = 8 << vece
    count = oprsz * 8 // bits
    run = kernel(machine, lambda b: b.vector(name, Q[0], (Q[1], Q[2]), vece, oprsz))
    ref = {"vshlv": lambda a, c: a << c if c < bits else 0,
           "vshrv": lambda a, c: a >> c if c < bits else 0,
           "vsarv": lambda a, c: signed(a, bits) >> min(c, bits - 1)}[name]
    rng = random.Random(vece * 10 + oprsz)
    choices = [0, 1, bits - 1, bits, bits + 1, 2 * bits, (1 << bits) - 1, 1 << (bits - 1)]
    for value in _vectors(bits, 6):
        for _ in range(4):
            counts = [rng.choice(choices + [rng.randrange(bits)] * 4)
                      & ((1 << bits) - 1) for _ in range(128 // bits)]
            c_val = join(counts, bits)
            want = join([ref(a, c) for a, c in zip(split(value, bits, count),
                                                     counts[:count], strict=True)], bits)
            assert hex(run(value, c_val)[0]) == hex(want), (hex(value), counts)
