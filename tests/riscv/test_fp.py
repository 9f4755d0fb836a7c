"""RISC-V F and D: edge values per instruction, and a differential run against qemu-riscv64.

The differential test builds one static ELF per batch (tests/riscv/fp_programs.py) whose
kernels run every F/D instruction over edge-value tables in every rounding mode
(static rm and dyn with frm), and compares the destination register (raw 64 bits, NaN
boxing included) and fflags row by row between qemu-riscv64 and our JIT. Every row is
also checked against the exact reference model (tests/riscv/fp_reference.py), so a
disagreement says who departs from the spec.
"""

from __future__ import annotations

import itertools
import random
import signal
import struct
import subprocess

import pytest

from llvmtcg.frontends.riscv.cpu import Cause
from llvmtcg.ir import ExitReason
from tests.riscv import fp_programs as fpp
from tests.riscv import fp_reference as ref
from tests.riscv.harness import CODE, assemble, needs_cross, run, run_ok, x

SEED = 20191213
NV, DZ, OF, UF, NX = 16, 8, 4, 2, 1
BOX = 0xFFFF_FFFF_0000_0000


def f32(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def f64(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


# -- instruction table -----------------------------------------------------------------------

def _specs() -> list[fpp.InsnSpec]:
    S = fpp.InsnSpec
    specs = []
    for p in ("s", "d"):
        specs += [S(f"f{op}.{p}", "ff", "f") for op in ("add", "sub", "mul", "div")]
        specs += [S(f"f{op}.{p}", "fff", "f") for op in ("madd", "msub", "nmsub", "nmadd")]
        specs += [S(f"fsqrt.{p}", "f", "f")]
        specs += [S(f"f{op}.{p}", "ff", "f", False)
                  for op in ("sgnj", "sgnjn", "sgnjx", "min", "max")]
        specs += [S(f"f{op}.{p}", "ff", "x", False) for op in ("eq", "lt", "le")]
        specs += [S(f"fclass.{p}", "f", "x", False)]
        specs += [S(f"fcvt.{i}.{p}", "f", "x") for i in ("w", "wu", "l", "lu")]
        for i, rs2 in (("w", 0), ("wu", 1), ("l", 2), ("lu", 3)):
            raw = (0x69, rs2) if p == "d" and i in ("w", "wu") else None
            specs.append(S(f"fcvt.{p}.{i}", "x", "f", True, raw))
    specs += [S("fcvt.s.d", "f", "f"), S("fcvt.d.s", "f", "f", True, (0x21, 0))]
    specs += [S("fmv.x.w", "f", "x", False), S("fmv.w.x", "x", "f", False),
              S("fmv.x.d", "f", "x", False), S("fmv.d.x", "x", "f", False)]
    return specs


SPECS = _specs()


# -- edge values -----------------------------------------------------------------------------

SINGLES = [
    0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x3FC00000, 0xBFC00000,  # 0, 1, 1.5
    0x40200000, 0xC0200000, 0x40600000, 0x3F000000, 0xBF000000,  # 2.5, 3.5, 0.5
    0x3EFFFFFF, 0xBEFFFFFF, 0x3F800001, 0x3F7FFFFF, 0x3F400000, 0xBF400000,  # near 0.5/1
    0x00800000, 0x80800000, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF,  # tiny
    0x00400000, 0x00800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000, 0x7EFFFFFF,  # huge
    0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FC12345,  # inf, qNaN
    0x7F800001, 0xFF800001, 0x7FA00000,  # sNaN
    0x4B000001, 0x4B800000, 0x4EFFFFFF, 0x4F000000, 0xCF000000, 0xCF000001,  # int limits
    0x4F7FFFFF, 0x4F800000, 0x5EFFFFFF, 0x5F000000, 0xDF000000, 0xDF000001,
    0x5F7FFFFF, 0x5F800000, 0x3EAAAAAB, 0x40490FDB, 0x33800000, 0x34000000, 0x1F800000,
]
DOUBLES = [
    0x0, 0x8000000000000000, f64(1.0), f64(-1.0), f64(1.5), f64(-1.5), f64(2.5), f64(-2.5),
    f64(3.5), f64(0.5), f64(-0.5), 0x3FDFFFFFFFFFFFFF, 0xBFDFFFFFFFFFFFFF,
    0x3FF0000000000001, 0x3FEFFFFFFFFFFFFF, f64(0.75), f64(-0.75),
    0x0010000000000000, 0x8010000000000000, 0x1, 0x8000000000000001,
    0x000FFFFFFFFFFFFF, 0x800FFFFFFFFFFFFF, 0x0008000000000000, 0x0010000000000001,
    0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x7FE0000000000000, 0x7FDFFFFFFFFFFFFF,
    0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0xFFF8000000000000,
    0x7FF8000012345678, 0x7FF0000000000001, 0xFFF0000000000001, 0x7FF4000000000000,
    f64(2.0**31 - 0.5), f64(2.0**31 - 1), f64(2.0**31), f64(-2.0**31), f64(-2.0**31 - 1),
    f64(-2.0**31 - 0.5), f64(2.0**32 - 0.5), f64(2.0**32), f64(2.0**32 - 1),
    f64(2.0**63), 0x43DFFFFFFFFFFFFF, f64(-2.0**63), 0xC3E0000000000001, f64(2.0**64),
    0x43EFFFFFFFFFFFFF, f64(1 / 3), f64(3.141592653589793), f64(2.0**-53), f64(2.0**-52),
    f64(2.0**52 + 1), f64(2.0**53), f64(-1e-310), f64(1e300), f64(1.25e-300),
    f64(3.4028235677973366e38), f64(1.1754942807573643e-38), f64(1.401298464324817e-45 / 2),
    f64(3.4028235e38 * 1.0000001), f64(-0.49999999999999994), f64(0.49999999999999994),
]
UNBOXED = [0x0000000040000000, 0x7FFFFFFF3F800000, 0xFFFFFFFE7FC00000, 0x00000000FFC00000]
INTEGERS = [
    0, 1, -1, 2, -2, 3, 7, 2**24 + 1, -(2**24 + 1), 2**24 + 3, 2**31 - 1, -(2**31),
    2**31, 2**32 - 1, 2**32 + 2**31, 2**53 + 1, -(2**53 + 1), 2**63 - 1, -(2**63), 2**64 - 1,
    0x0123456789ABCDEF, 0xFEDCBA9876543210, 0x7FFFFF8000000000, 0x7FFFFFC000000001,
    0x00000000FFFFFF80, 0x00000000FFFFFFC1, 0x8000004000000000, 0xFFFFFFFF80000080,
]


def _random_values(rng: random.Random, bits: int, n: int) -> list[int]:
    man = 23 if bits == 32 else 52
    exp_max = (1 << (bits - 1 - man)) - 1
    values = []
    for _ in range(n):
        exp = rng.choice([rng.randrange(exp_max + 1), rng.randrange(exp_max // 2 - 30,
                                                                   exp_max // 2 + 30)])
        values.append(rng.getrandbits(1) << (bits - 1) | exp << man | rng.getrandbits(man))
    return values


def _float_operands(bits: int) -> list[int]:
    edges = SINGLES if bits == 32 else DOUBLES
    return [(v | BOX) if bits == 32 else v for v in edges]


def _rows(spec: fpp.InsnSpec, rng: random.Random) -> list[tuple[int, int, int]]:
    """Operand tuples for one instruction."""
    if spec.srcs == "x":
        ints = INTEGERS + [rng.getrandbits(64) for _ in range(40)]
        return [(v, 0, 0) for v in ints]
    bits = spec.fmt_bits
    edges = _float_operands(bits)
    randoms = [(v | BOX) if bits == 32 else v for v in _random_values(rng, bits, 40)]
    extra = UNBOXED if bits == 32 else []
    pool = edges + randoms + extra
    if len(spec.srcs) == 1:
        return [(v, 0, 0) for v in pool]
    if len(spec.srcs) == 2:
        # Every pair of a core subset (all classes, rounding boundaries), plus random pairs.
        core = edges[::2] + extra[:2]
        pairs = list(itertools.product(core, repeat=2))
        pairs += [(rng.choice(pool), rng.choice(pool)) for _ in range(700)]
        return [(a, b, 0) for a, b in pairs]
    triples = [(rng.choice(pool), rng.choice(pool), rng.choice(pool)) for _ in range(1500)]
    inf, nan, one = (0x7F800000 | BOX, 0x7FC00000 | BOX, 0x3F800000 | BOX) if bits == 32 else (
        0x7FF0000000000000, 0x7FF8000000000000, f64(1.0))
    zero = BOX if bits == 32 else 0
    triples += [(inf, zero, nan), (zero, inf, nan), (inf, zero, one), (zero, inf, zero)]
    # Products that cancel exactly against the addend (sign of zero per rounding mode).
    triples += [(one, one, one ^ (1 << (bits - 1))), (zero, one, zero ^ (1 << (bits - 1)))]
    return triples


def make_kernels(specs: list[fpp.InsnSpec], seed: int = SEED) -> list[fpp.Kernel]:
    """Static rm 0-4 over every operand tuple; dyn (rm=7) with frm 0-4 rotating."""
    rng = random.Random(seed)
    kernels = []
    for spec in specs:
        operands = _rows(spec, rng)
        if not spec.has_rm and spec.raw is None:
            kernels.append(fpp.Kernel(spec, 0, [(*o, 0) for o in operands]))
            continue
        for rm in range(5):
            kernels.append(fpp.Kernel(spec, rm, [(*o, 0) for o in operands]))
        kernels.append(fpp.Kernel(spec, 7, [(*o, i % 5) for i, o in enumerate(operands)]))
    return kernels


def _describe(k: fpp.Kernel, row, got, want) -> str:
    a, b, c, frm = row
    return (f"{k.spec.text(k.rm)} frm={frm} inputs a={a:#018x} b={b:#018x} c={c:#018x}: "
            f"{got[0]:#018x} fflags={got[1]:#04x} vs {want[0]:#018x} fflags={want[1]:#04x}")


def _reference(k: fpp.Kernel, row) -> tuple[int, int]:
    a, b, c, frm = row
    rm = ref.MODES[frm if k.rm == 7 else k.rm] if k.spec.has_rm or k.spec.raw else ref.MODES[0]
    return ref.execute(k.spec.mnemonic, rm, a, b, c)


BATCHES = {
    "single": [s for s in SPECS if s.fmt_bits == 32 and not s.mnemonic.startswith("fmv")],
    "double": [s for s in SPECS if s.fmt_bits == 64 and not s.mnemonic.startswith("fmv")],
    "moves": [s for s in SPECS if s.mnemonic.startswith("fmv")],
}


@needs_cross
@pytest.mark.skipif(not fpp.have_tools(), reason="needs riscv64-linux-gnu-gcc and qemu-riscv64")
@pytest.mark.parametrize("batch", sorted(BATCHES))
def test_differential_against_qemu(batch, tmp_path):
    kernels = make_kernels(BATCHES[batch])
    elf = fpp.build(kernels, tmp_path)
    ours = fpp.split_results(kernels, fpp.run_jit(elf))
    theirs = fpp.split_results(kernels, fpp.run_qemu(elf))
    vs_qemu, vs_spec = [], []
    for k, our_rows, qemu_rows in zip(kernels, ours, theirs, strict=True):
        for row, got, want in zip(k.rows, our_rows, qemu_rows, strict=True):
            if got != want:
                vs_qemu.append(_describe(k, row, got, want))
            expected = _reference(k, row)
            if got != expected:
                vs_spec.append(_describe(k, row, got, expected))
    assert not vs_qemu, (f"{len(vs_qemu)} rows differ from qemu (ours vs qemu), e.g.\n"
                         + "\n".join(vs_qemu[:20]))
    assert not vs_spec, (f"{len(vs_spec)} rows differ from the reference model "
                         f"(ours vs model), e.g.\n" + "\n".join(vs_spec[:20]))


# -- edge values per instruction, with hand-computed results ---------------------------------

ONE_S, TWO_M24_S, ONE_P_S = 0x3F800000, 0x33800000, 0x3F800001  # 1, 2**-24, 1 + 2**-23
MAX_S, MIN_S, QNAN_S, SNAN_S = 0x7F7FFFFF, 0x00800000, 0x7FC00000, 0x7F800001
INF_S, NINF_S = 0x7F800000, 0xFF800000
QNAN_D, SNAN_D, INF_D = 0x7FF8000000000000, 0x7FF0000000000001, 0x7FF0000000000000
UNBOXED_ONE = 0x000000003F800000  # 1.0 in the low word, upper word not all ones


def S(bits: int) -> int:
    """A NaN-boxed single as the f register holds it."""
    return bits | BOX


def fs(value: float) -> int:
    return S(f32(value))


def _case(insn: str, f=(), want: int = 0, flags: int = 0, frm: int = 0, xs=()):
    return pytest.param(insn, tuple(f), tuple(xs), frm, want, flags,
                        id=f"{insn}|{','.join(f'{v:x}' for v in (*f, *xs))}|frm{frm}")


M64 = (1 << 64) - 1
EDGE_CASES = [
    # fadd.s: halfway cases in every mode (1 + 2**-24 is a tie between 1 and 1 + 2**-23).
    _case("fadd.s f4, f1, f2, rne", [S(ONE_S), S(TWO_M24_S)], S(ONE_S), NX),
    _case("fadd.s f4, f1, f2, rtz", [S(ONE_S), S(TWO_M24_S)], S(ONE_S), NX),
    _case("fadd.s f4, f1, f2, rdn", [S(ONE_S), S(TWO_M24_S)], S(ONE_S), NX),
    _case("fadd.s f4, f1, f2, rup", [S(ONE_S), S(TWO_M24_S)], S(ONE_P_S), NX),
    _case("fadd.s f4, f1, f2, rmm", [S(ONE_S), S(TWO_M24_S)], S(ONE_P_S), NX),
    _case("fadd.s f4, f1, f2, rne", [S(ONE_P_S), S(TWO_M24_S)], S(0x3F800002), NX),
    _case("fadd.s f4, f1, f2, rtz", [S(ONE_P_S), S(TWO_M24_S)], S(ONE_P_S), NX),
    _case("fadd.s f4, f1, f2, rmm", [S(0xBF800000), S(0xB3800000)], S(0xBF800001), NX),
    _case("fadd.s f4, f1, f2, rdn", [S(0xBF800000), S(0xB3800000)], S(0xBF800001), NX),
    _case("fadd.s f4, f1, f2, rup", [S(0xBF800000), S(0xB3800000)], S(0xBF800000), NX),
    # dyn takes frm, including ties-to-away (which the host cannot round in).
    _case("fadd.s f4, f1, f2, dyn", [S(ONE_S), S(TWO_M24_S)], S(ONE_P_S), NX, frm=4),
    _case("fadd.s f4, f1, f2, dyn", [S(ONE_S), S(TWO_M24_S)], S(ONE_P_S), NX, frm=3),
    _case("fadd.s f4, f1, f2, dyn", [S(ONE_S), S(TWO_M24_S)], S(ONE_S), NX, frm=1),
    # Overflow per mode; exact zeros; invalid; NaNs are canonical; unboxed is a qNaN.
    _case("fadd.s f4, f1, f2, rne", [S(MAX_S), S(MAX_S)], S(INF_S), OF | NX),
    _case("fadd.s f4, f1, f2, rtz", [S(MAX_S), S(MAX_S)], S(MAX_S), OF | NX),
    _case("fadd.s f4, f1, f2, rdn", [S(MAX_S), S(MAX_S)], S(MAX_S), OF | NX),
    _case("fadd.s f4, f1, f2, rup", [S(MAX_S), S(MAX_S)], S(INF_S), OF | NX),
    _case("fadd.s f4, f1, f2, rdn", [S(0xFF7FFFFF), S(0xFF7FFFFF)], S(NINF_S), OF | NX),
    _case("fadd.s f4, f1, f2, rup", [S(0xFF7FFFFF), S(0xFF7FFFFF)], S(0xFF7FFFFF), OF | NX),
    _case("fadd.s f4, f1, f2, rne", [S(ONE_S), S(0xBF800000)], S(0), 0),
    _case("fadd.s f4, f1, f2, rdn", [S(ONE_S), S(0xBF800000)], S(0x80000000), 0),
    _case("fadd.s f4, f1, f2, rne", [S(0x80000000), S(0x80000000)], S(0x80000000), 0),
    _case("fadd.s f4, f1, f2, rne", [S(0), S(0x80000000)], S(0), 0),
    _case("fadd.s f4, f1, f2, rdn", [S(0), S(0x80000000)], S(0x80000000), 0),
    _case("fadd.s f4, f1, f2, rne", [S(INF_S), S(NINF_S)], S(QNAN_S), NV),
    _case("fadd.s f4, f1, f2, rne", [S(0x7FC12345), S(ONE_S)], S(QNAN_S), 0),
    _case("fadd.s f4, f1, f2, rne", [S(0xFFC00000), S(ONE_S)], S(QNAN_S), 0),
    _case("fadd.s f4, f1, f2, rne", [S(SNAN_S), S(ONE_S)], S(QNAN_S), NV),
    _case("fadd.s f4, f1, f2, rne", [UNBOXED_ONE, S(ONE_S)], S(QNAN_S), 0),
    _case("fsub.s f4, f1, f2, rne", [S(0x00800001), S(MIN_S)], S(0x00000001), 0),  # exact
    # fmul.s: subnormal results; tininess is detected after rounding.
    _case("fmul.s f4, f1, f2, rne", [S(MIN_S), fs(0.5)], S(0x00400000), 0),
    _case("fmul.s f4, f1, f2, rne", [S(0x00800001), fs(0.5)], S(0x00400000), UF | NX),
    _case("fmul.s f4, f1, f2, rup", [S(0x00800001), fs(0.5)], S(0x00400001), UF | NX),
    _case("fmul.s f4, f1, f2, rne", [S(0x3F7FFEEE), S(0x00800089)], S(MIN_S), NX),
    _case("fmul.s f4, f1, f2, rtz", [S(0x3F7FFEEE), S(0x00800089)], S(0x007FFFFF), UF | NX),
    _case("fmul.s f4, f1, f2, rne", [S(0x3F7FF448), S(0x008005DC)], S(MIN_S), UF | NX),
    _case("fmul.s f4, f1, f2, rup", [S(0x3F7FF448), S(0x008005DC)], S(MIN_S), NX),
    _case("fmul.s f4, f1, f2, rne", [S(INF_S), S(0)], S(QNAN_S), NV),
    _case("fmul.s f4, f1, f2, rne", [S(0x00000001), S(0x00000001)], S(0), UF | NX),
    _case("fmul.s f4, f1, f2, rup", [S(0x00000001), S(0x00000001)], S(1), UF | NX),
    # fdiv.s / fsqrt.s
    _case("fdiv.s f4, f1, f2, rne", [S(ONE_S), S(0)], S(INF_S), DZ),
    _case("fdiv.s f4, f1, f2, rne", [S(0xBF800000), S(0)], S(NINF_S), DZ),
    _case("fdiv.s f4, f1, f2, rne", [S(0), S(0)], S(QNAN_S), NV),
    _case("fdiv.s f4, f1, f2, rne", [S(INF_S), S(INF_S)], S(QNAN_S), NV),
    _case("fdiv.s f4, f1, f2, rne", [S(ONE_S), fs(3.0)], S(0x3EAAAAAB), NX),
    _case("fdiv.s f4, f1, f2, rtz", [S(ONE_S), fs(3.0)], S(0x3EAAAAAA), NX),
    _case("fdiv.s f4, f1, f2, rmm", [S(ONE_S), fs(3.0)], S(0x3EAAAAAB), NX),
    _case("fsqrt.s f4, f1, rne", [fs(2.0)], S(0x3FB504F3), NX),
    _case("fsqrt.s f4, f1, rup", [fs(2.0)], S(0x3FB504F4), NX),
    _case("fsqrt.s f4, f1, rmm", [fs(2.0)], S(0x3FB504F3), NX),
    _case("fsqrt.s f4, f1, rne", [fs(4.0)], fs(2.0), 0),
    _case("fsqrt.s f4, f1, rne", [S(0x80000000)], S(0x80000000), 0),
    _case("fsqrt.s f4, f1, rne", [fs(-1.0)], S(QNAN_S), NV),
    _case("fsqrt.s f4, f1, rne", [S(NINF_S)], S(QNAN_S), NV),
    _case("fsqrt.s f4, f1, rne", [S(SNAN_S)], S(QNAN_S), NV),
    # Fused multiply-add: one rounding; invalid for inf*0 even with a quiet-NaN addend.
    _case("fmadd.s f4, f1, f2, f3, rne", [S(0x3F800800), S(0x3F800800), fs(-1.0)],
          S(0x3A000400), 0),
    _case("fmadd.s f4, f1, f2, f3, rne", [S(INF_S), S(0), S(QNAN_S)], S(QNAN_S), NV),
    _case("fmadd.s f4, f1, f2, f3, rne", [S(0), S(INF_S), S(0x7FC12345)], S(QNAN_S), NV),
    _case("fmadd.s f4, f1, f2, f3, rne", [S(QNAN_S), S(ONE_S), S(ONE_S)], S(QNAN_S), 0),
    _case("fmadd.s f4, f1, f2, f3, rne", [S(ONE_S), S(ONE_S), fs(-1.0)], S(0), 0),
    _case("fmadd.s f4, f1, f2, f3, rdn", [S(ONE_S), S(ONE_S), fs(-1.0)], S(0x80000000), 0),
    _case("fmsub.s f4, f1, f2, f3, rne", [S(0), S(ONE_S), S(0)], S(0), 0),
    _case("fmsub.s f4, f1, f2, f3, rdn", [S(0), S(ONE_S), S(0)], S(0x80000000), 0),
    _case("fnmsub.s f4, f1, f2, f3, rne", [fs(2.0), fs(3.0), fs(1.0)], fs(-5.0), 0),
    _case("fnmadd.s f4, f1, f2, f3, rne", [fs(2.0), fs(3.0), fs(1.0)], fs(-7.0), 0),
    _case("fnmadd.s f4, f1, f2, f3, rne", [S(0), S(ONE_S), S(0x80000000)], S(0), 0),
    _case("fnmadd.s f4, f1, f2, f3, rne", [S(0), S(ONE_S), S(0)], S(0x80000000), 0),
    _case("fmadd.d f4, f1, f2, f3, rne", [INF_D, 0, QNAN_D], QNAN_D, NV),
    _case("fmadd.d f4, f1, f2, f3, rmm", [f64(1.0), f64(2.0**-53), f64(1.0)],
          0x3FF0000000000001, NX),
    # Sign injection keeps payloads (no canonicalisation, no flags), unboxes its inputs.
    _case("fsgnj.s f4, f1, f2", [fs(1.0), fs(-2.0)], fs(-1.0), 0),
    _case("fsgnjn.s f4, f1, f2", [fs(1.0), fs(1.0)], fs(-1.0), 0),
    _case("fsgnjx.s f4, f1, f2", [fs(-1.0), fs(-1.0)], fs(1.0), 0),
    _case("fsgnj.s f4, f1, f2", [S(SNAN_S), fs(-1.0)], S(0xFF800001), 0),
    _case("fsgnjn.s f4, f1, f2", [UNBOXED_ONE, fs(1.0)], S(0xFFC00000), 0),
    _case("fsgnj.s f4, f1, f1", [UNBOXED_ONE], S(QNAN_S), 0),
    _case("fsgnjx.d f4, f1, f2", [SNAN_D, f64(-1.0)], SNAN_D | 1 << 63, 0),
    # minimumNumber / maximumNumber.
    _case("fmin.s f4, f1, f2", [S(0x80000000), S(0)], S(0x80000000), 0),
    _case("fmin.s f4, f1, f2", [S(0), S(0x80000000)], S(0x80000000), 0),
    _case("fmax.s f4, f1, f2", [S(0x80000000), S(0)], S(0), 0),
    _case("fmin.s f4, f1, f2", [S(QNAN_S), fs(1.0)], fs(1.0), 0),
    _case("fmax.s f4, f1, f2", [fs(1.0), S(SNAN_S)], fs(1.0), NV),
    _case("fmin.s f4, f1, f2", [S(0x7FC12345), S(0xFFC00000)], S(QNAN_S), 0),
    _case("fmax.s f4, f1, f2", [S(SNAN_S), S(QNAN_S)], S(QNAN_S), NV),
    _case("fmin.s f4, f1, f2", [S(NINF_S), fs(1.0)], S(NINF_S), 0),
    _case("fmax.s f4, f1, f2", [fs(-3.0), UNBOXED_ONE], fs(-3.0), 0),
    _case("fmin.d f4, f1, f2", [f64(-2.0), f64(-3.0)], f64(-3.0), 0),
    _case("fmax.d f4, f1, f2", [QNAN_D, f64(-3.0)], f64(-3.0), 0),
    # Compares: feq quiet, flt/fle signalling.
    _case("feq.s a0, f1, f2", [S(QNAN_S), fs(1.0)], 0, 0),
    _case("feq.s a0, f1, f2", [S(SNAN_S), fs(1.0)], 0, NV),
    _case("flt.s a0, f1, f2", [S(QNAN_S), fs(1.0)], 0, NV),
    _case("fle.s a0, f1, f2", [fs(1.0), S(QNAN_S)], 0, NV),
    _case("feq.s a0, f1, f2", [S(0x80000000), S(0)], 1, 0),
    _case("flt.s a0, f1, f2", [S(0x80000000), S(0)], 0, 0),
    _case("fle.s a0, f1, f2", [S(0x80000000), S(0)], 1, 0),
    _case("flt.s a0, f1, f2", [S(NINF_S), S(INF_S)], 1, 0),
    _case("feq.s a0, f1, f2", [UNBOXED_ONE, UNBOXED_ONE], 0, 0),
    _case("flt.d a0, f1, f2", [f64(1.0), f64(2.0)], 1, 0),
    _case("fle.d a0, f1, f2", [QNAN_D, QNAN_D], 0, NV),
    # fclass: one bit per class, RISC-V order.
    _case("fclass.s a0, f1", [S(NINF_S)], 1 << 0),
    _case("fclass.s a0, f1", [fs(-1.0)], 1 << 1),
    _case("fclass.s a0, f1", [S(0x807FFFFF)], 1 << 2),
    _case("fclass.s a0, f1", [S(0x80000000)], 1 << 3),
    _case("fclass.s a0, f1", [S(0)], 1 << 4),
    _case("fclass.s a0, f1", [S(0x00000001)], 1 << 5),
    _case("fclass.s a0, f1", [S(MIN_S)], 1 << 6),
    _case("fclass.s a0, f1", [S(INF_S)], 1 << 7),
    _case("fclass.s a0, f1", [S(SNAN_S)], 1 << 8),
    _case("fclass.s a0, f1", [S(QNAN_S)], 1 << 9),
    _case("fclass.s a0, f1", [UNBOXED_ONE], 1 << 9),
    _case("fclass.d a0, f1", [0x8000000000000001], 1 << 2),
    _case("fclass.d a0, f1", [SNAN_D], 1 << 8),
    # Float -> integer: rounding, saturation, NaN -> maximum, 32-bit results sign-extended.
    _case("fcvt.w.s a0, f1, rne", [fs(2.5)], 2, NX),
    _case("fcvt.w.s a0, f1, rup", [fs(2.5)], 3, NX),
    _case("fcvt.w.s a0, f1, rmm", [fs(2.5)], 3, NX),
    _case("fcvt.w.s a0, f1, rne", [fs(-2.5)], -2 & M64, NX),
    _case("fcvt.w.s a0, f1, rdn", [fs(-2.5)], -3 & M64, NX),
    _case("fcvt.w.s a0, f1, rtz", [fs(-2.5)], -2 & M64, NX),
    _case("fcvt.w.s a0, f1, rmm", [fs(-2.5)], -3 & M64, NX),
    _case("fcvt.w.s a0, f1, dyn", [fs(-2.5)], -3 & M64, NX, frm=4),
    _case("fcvt.w.s a0, f1, rtz", [S(0x4F000000)], 0x7FFFFFFF, NV),
    _case("fcvt.w.s a0, f1, rtz", [S(0xCF000000)], -(2**31) & M64, 0),
    _case("fcvt.w.s a0, f1, rtz", [S(0x4EFFFFFF)], 0x7FFFFF80, 0),
    _case("fcvt.w.s a0, f1, rtz", [S(QNAN_S)], 0x7FFFFFFF, NV),
    _case("fcvt.w.s a0, f1, rtz", [S(0xFFC00000)], 0x7FFFFFFF, NV),
    _case("fcvt.w.s a0, f1, rtz", [S(NINF_S)], -(2**31) & M64, NV),
    _case("fcvt.w.s a0, f1, rtz", [UNBOXED_ONE], 0x7FFFFFFF, NV),
    _case("fcvt.wu.s a0, f1, rtz", [fs(-1.0)], 0, NV),
    _case("fcvt.wu.s a0, f1, rtz", [fs(-0.5)], 0, NX),
    _case("fcvt.wu.s a0, f1, rne", [fs(-0.5)], 0, NX),
    _case("fcvt.wu.s a0, f1, rdn", [fs(-0.5)], 0, NV),
    _case("fcvt.wu.s a0, f1, rtz", [S(0x80000000)], 0, 0),
    _case("fcvt.wu.s a0, f1, rtz", [S(0x4F800000)], M64, NV),
    _case("fcvt.wu.s a0, f1, rtz", [S(0x4F7FFFFF)], 0xFFFFFFFFFFFFFF00, 0),
    _case("fcvt.wu.s a0, f1, rtz", [S(QNAN_S)], M64, NV),
    _case("fcvt.l.s a0, f1, rtz", [S(0x5F000000)], 2**63 - 1, NV),
    _case("fcvt.l.s a0, f1, rtz", [S(0xDF000000)], 2**63, 0),
    _case("fcvt.lu.s a0, f1, rtz", [S(0x5F800000)], M64, NV),
    _case("fcvt.lu.s a0, f1, rtz", [S(0x5F7FFFFF)], 0xFFFFFF0000000000, 0),
    _case("fcvt.w.d a0, f1, rne", [f64(2.0**31 - 0.5)], 0x7FFFFFFF, NV),
    _case("fcvt.w.d a0, f1, rtz", [f64(2.0**31 - 0.5)], 0x7FFFFFFF, NX),
    _case("fcvt.w.d a0, f1, rdn", [f64(2.0**31 - 0.5)], 0x7FFFFFFF, NX),
    _case("fcvt.w.d a0, f1, rup", [f64(2.0**31 - 0.5)], 0x7FFFFFFF, NV),
    _case("fcvt.w.d a0, f1, rne", [f64(-2.0**31 - 0.5)], -(2**31) & M64, NX),
    _case("fcvt.w.d a0, f1, rmm", [f64(-2.0**31 - 0.5)], -(2**31) & M64, NV),
    _case("fcvt.w.d a0, f1, rtz", [f64(-2.0**31 - 1)], -(2**31) & M64, NV),
    _case("fcvt.w.d a0, f1, rne", [f64(0.5)], 0, NX),
    _case("fcvt.w.d a0, f1, rmm", [f64(0.5)], 1, NX),
    _case("fcvt.w.d a0, f1, rmm", [f64(0.49999999999999994)], 0, NX),
    _case("fcvt.l.d a0, f1, rtz", [f64(2.0**63)], 2**63 - 1, NV),
    _case("fcvt.l.d a0, f1, rtz", [f64(-2.0**63)], 2**63, 0),
    _case("fcvt.l.d a0, f1, rtz", [0xC3E0000000000001], 2**63, NV),
    _case("fcvt.l.d a0, f1, rtz", [0x43DFFFFFFFFFFFFF], 0x7FFFFFFFFFFFFC00, 0),
    _case("fcvt.l.d a0, f1, rtz", [INF_D], 2**63 - 1, NV),
    _case("fcvt.lu.d a0, f1, rtz", [f64(2.0**64)], M64, NV),
    _case("fcvt.lu.d a0, f1, rtz", [f64(-0.3)], 0, NX),
    _case("fcvt.lu.d a0, f1, rtz", [0x43EFFFFFFFFFFFFF], 0xFFFFFFFFFFFFF800, 0),
    _case("fcvt.lu.d a0, f1, rtz", [SNAN_D], M64, NV),
    # Integer -> float.
    _case("fcvt.s.w f4, a1, rne", xs=[2**24 + 1], want=S(0x4B800000), flags=NX),
    _case("fcvt.s.w f4, a1, rup", xs=[2**24 + 1], want=S(0x4B800001), flags=NX),
    _case("fcvt.s.w f4, a1, rmm", xs=[2**24 + 1], want=S(0x4B800001), flags=NX),
    _case("fcvt.s.w f4, a1, rne", xs=[2**24 + 3], want=S(0x4B800002), flags=NX),
    _case("fcvt.s.w f4, a1, rdn", xs=[-(2**24 + 1) & M64], want=S(0xCB800001), flags=NX),
    _case("fcvt.s.w f4, a1, rne", xs=[0x1_0000_0005], want=fs(5.0), flags=0),
    _case("fcvt.s.wu f4, a1, rne", xs=[0xFFFFFFFF], want=S(0x4F800000), flags=NX),
    _case("fcvt.s.wu f4, a1, rtz", xs=[0xFFFFFFFF], want=S(0x4F7FFFFF), flags=NX),
    _case("fcvt.s.lu f4, a1, rne", xs=[M64], want=S(0x5F800000), flags=NX),
    _case("fcvt.s.lu f4, a1, rtz", xs=[M64], want=S(0x5F7FFFFF), flags=NX),
    _case("fcvt.s.l f4, a1, rmm", xs=[2**63], want=S(0xDF000000), flags=0),
    _case("fcvt.d.l f4, a1, rne", xs=[2**53 + 1], want=f64(2.0**53), flags=NX),
    _case("fcvt.d.l f4, a1, rmm", xs=[2**53 + 1], want=f64(2.0**53 + 2), flags=NX),
    _case("fcvt.d.lu f4, a1, rdn", xs=[M64], want=0x43EFFFFFFFFFFFFF, flags=NX),
    _case("fcvt.d.wu f4, a1", xs=[0xFFFFFFFF], want=f64(4294967295.0), flags=0),
    _case("fcvt.d.w f4, a1", xs=[0x80000000], want=f64(-2.0**31), flags=0),
    # Between formats.
    _case("fcvt.s.d f4, f1, rne", [f64(1 / 3)], S(0x3EAAAAAB), NX),
    _case("fcvt.s.d f4, f1, rne", [0x7FEFFFFFFFFFFFFF], S(INF_S), OF | NX),
    _case("fcvt.s.d f4, f1, rtz", [0x7FEFFFFFFFFFFFFF], S(MAX_S), OF | NX),
    _case("fcvt.s.d f4, f1, rne", [f64(1e-310)], S(0), UF | NX),
    _case("fcvt.s.d f4, f1, rup", [f64(1e-310)], S(1), UF | NX),
    _case("fcvt.s.d f4, f1, rne", [f64((1 - 2.0**-25) * 2.0**-126)], S(MIN_S), NX),
    _case("fcvt.s.d f4, f1, rtz", [f64((1 - 2.0**-25) * 2.0**-126)], S(0x007FFFFF), UF | NX),
    _case("fcvt.s.d f4, f1, rne", [0x7FF8000012345678], S(QNAN_S), 0),
    _case("fcvt.s.d f4, f1, rne", [SNAN_D], S(QNAN_S), NV),
    _case("fcvt.d.s f4, f1", [S(SNAN_S)], QNAN_D, NV),
    _case("fcvt.d.s f4, f1", [S(0x7FC12345)], QNAN_D, 0),
    _case("fcvt.d.s f4, f1", [S(0x80000000)], 1 << 63, 0),
    _case("fcvt.d.s f4, f1", [S(0x00000001)], f64(2.0**-149), 0),
    _case("fcvt.d.s f4, f1", [UNBOXED_ONE], QNAN_D, 0),
    # Moves transfer raw bits: no unboxing, no canonicalisation.
    _case("fmv.x.w a0, f1", [0x1234567887654321], 0xFFFFFFFF87654321, 0),
    _case("fmv.x.w a0, f1", [0xFFFFFFFF7F800001], 0x7F800001, 0),
    _case("fmv.w.x f4, a1", xs=[0x1234567887654321], want=0xFFFFFFFF87654321),
    _case("fmv.x.d a0, f1", [SNAN_D], SNAN_D),
    _case("fmv.d.x f4, a1", xs=[0x0123456789ABCDEF], want=0x0123456789ABCDEF),
]


def run_fp(body: str, f=(), xs=(), frm: int = 0, **kwargs):
    """Run F/D code with f1.. = f (raw 64-bit patterns), a1.. = xs, frm set and fflags
    clear; fflags afterwards lands in t6."""
    lines = [f"li t0, {frm}", "fsrm t0"]
    for i, value in enumerate(f):
        lines += [f"li t0, {value:#x}", f"fmv.d.x f{1 + i}, t0"]
    lines += ["fsflags zero", body, "frflags t6"]
    regs = {11 + i: v for i, v in enumerate(xs)}
    return run_ok("\n".join(lines), regs=regs, **kwargs)


@needs_cross
@pytest.mark.parametrize(("insn", "f", "xs", "frm", "want", "flags"), EDGE_CASES)
def test_edge_values(insn, f, xs, frm, want, flags):
    cpu = run_fp(insn, f, xs, frm)
    rd = insn.split()[1].rstrip(",")
    got = cpu.state.get("f", int(rd[1:])) if rd.startswith("f") else x(cpu, 10)
    assert (hex(got), x(cpu, 31)) == (hex(want), flags)
    # The reference model agrees with the hand-computed expectation.
    mnemonic = insn.split()[0]
    rm_name = insn.split()[-1] if insn.split()[-1] in fpp.RM_NAMES else "dyn"
    rm = ref.MODES[frm if rm_name == "dyn" else fpp.RM_NAMES.index(rm_name)]
    operands = (*f, *xs, 0, 0, 0)[:3]
    assert ref.execute(mnemonic, rm, *operands) == (want, flags)


# -- reserved rounding modes, disabled extensions ---------------------------------------------

def _insn_word(text: str) -> int:
    return int.from_bytes(assemble(text)[:4], "little")


ILLEGAL_CASES = [
    pytest.param(".insn r 0x53, 5, 0x00, f4, f1, f2", 0, id="fadd.s rm=5"),
    pytest.param(".insn r 0x53, 6, 0x01, f4, f1, f2", 0, id="fadd.d rm=6"),
    pytest.param(".insn r 0x53, 5, 0x21, f4, f1, f0", 0, id="fcvt.d.s rm=5"),
    pytest.param(".insn r 0x53, 6, 0x60, a0, f1, x0", 0, id="fcvt.w.s rm=6"),
    pytest.param("fadd.s f4, f1, f2, dyn", 5, id="fadd.s dyn frm=5"),
    pytest.param("fmadd.d f4, f1, f2, f3, dyn", 6, id="fmadd.d dyn frm=6"),
    pytest.param(".insn r 0x53, 7, 0x21, f4, f1, f0", 7, id="fcvt.d.s dyn frm=7"),
    pytest.param(".insn r 0x53, 7, 0x69, f4, a1, x0", 7, id="fcvt.d.w dyn frm=7"),
]


@needs_cross
@pytest.mark.parametrize(("insn", "frm"), ILLEGAL_CASES)
def test_reserved_rounding_mode_is_illegal(insn, frm):
    """Precise: the trap reports this instruction, which changed nothing (f4, fflags);
    the instructions before it in the block did run."""
    source = "\n".join([
        "li t0, 0x3ff0000000000000", "fmv.d.x f4, t0", f"csrwi frm, {frm}", "fsflags zero",
        f"li t0, {S(ONE_S):#x}", "fmv.d.x f1, t0", f"li t0, {S(0):#x}", "fmv.d.x f2, t0",
        "fdiv.s f5, f1, f2, rne", insn])
    cpu, exit_ = run(source)
    assert exit_.reason is ExitReason.EXCEPTION and exit_.exception_index == Cause.ILLEGAL_INSN
    ebreak = len(assemble(""))
    assert exit_.pc == CODE + len(assemble(source)) - ebreak - 4
    assert cpu.state.get("badinsn") == _insn_word(insn)
    assert cpu.state.get("f", 4) == 0x3FF0000000000000
    assert cpu.state.get("f", 5) == S(INF_S) and cpu.state.get("fflags") == DZ


@needs_cross
def test_static_rounding_ignores_invalid_frm():
    cpu = run_fp("fadd.s f4, f1, f2, rup", [S(ONE_S), S(TWO_M24_S)], frm=7)
    assert cpu.state.get("f", 4) == S(ONE_P_S) and x(cpu, 31) == NX


@needs_cross
@pytest.mark.parametrize("insn", ["flw f1, 0(a0)", "fadd.s f1, f2, f3", "fld f1, 0(a0)",
                                  "fmv.x.d a0, f1", "csrr a0, fflags"])
def test_fp_disabled_is_illegal(insn):
    from llvmtcg.frontends.riscv.cpu import CpuModel

    cpu, exit_ = run(insn, regs={10: 0x80000}, model=CpuModel.parse("rv64,f=off,d=off"))
    assert exit_.reason is ExitReason.EXCEPTION and exit_.exception_index == Cause.ILLEGAL_INSN


@needs_cross
def test_d_disabled_keeps_f():
    from llvmtcg.frontends.riscv.cpu import CpuModel

    model = CpuModel.parse("rv64,d=off")
    run_ok("fadd.s f1, f2, f3", model=model)
    _, exit_ = run("fadd.d f1, f2, f3", model=model)
    assert exit_.exception_index == Cause.ILLEGAL_INSN


@needs_cross
@pytest.mark.skipif(not fpp.have_tools(), reason="needs riscv64-linux-gnu-gcc and qemu-riscv64")
@pytest.mark.parametrize(("insn", "frm"), ILLEGAL_CASES)
def test_qemu_agrees_reserved_rounding_mode_is_illegal(insn, frm, tmp_path):
    source = "\n".join([".globl _start", "_start:", f"csrwi frm, {frm}", insn,
                        "li a0, 0", "li a7, 93", "ecall"])
    (tmp_path / "p.S").write_text(source + "\n")
    subprocess.run([fpp.GCC, "-nostdlib", "-static", "-o", "p", "p.S"], cwd=tmp_path,
                   check=True, capture_output=True)
    result = subprocess.run([fpp.QEMU, str(tmp_path / "p")], capture_output=True)
    assert result.returncode == -signal.SIGILL


# -- fflags, frm and fcsr across blocks and CSR accesses --------------------------------------

@needs_cross
def test_flags_accrue_across_chained_blocks_and_csr_reads():
    cpu = run_ok("""
        li t0, 0x3ff0000000000000
        fmv.d.x f1, t0
        fmv.d.x f2, zero
        fsflags zero
        li t1, 3
    1:  fdiv.d f3, f1, f2          # DZ, in a loop of chained blocks
        addi t1, t1, -1
        bnez t1, 1b
        frflags a0                 # live flags, read inside native code
        fsqrt.d f4, f1             # exact: nothing
        li t0, 0x4000000000000000
        fmv.d.x f5, t0
        fsqrt.d f6, f5             # NX
        beqz zero, 2f
    2:  csrrs a1, fflags, zero     # DZ|NX
        fscsr a2, zero             # fcsr = frm << 5 | fflags; clears both
        fadd.d f7, f1, f1          # exact
        frcsr a3
        li t0, 0x7ff0000000000001
        fmv.d.x f8, t0
        feq.d a4, f8, f8           # NV, never read by the guest
    """)
    assert (x(cpu, 10), x(cpu, 11), x(cpu, 12), x(cpu, 13)) == (DZ, DZ | NX, DZ | NX, 0)
    assert cpu.state.get("fflags") == NV  # collected when native code returned


@needs_cross
def test_frm_write_affects_the_next_chained_block():
    """fsrm is translated inline: it changes the live rounding mode, later DYN ops in the
    same block check frm again, and chained blocks (entered by native tail calls, with
    no return to the run loop) round in the new mode."""
    cpu = run_ok("""
        li t0, 0x3f800000
        fmv.w.x f1, t0
        li t0, 0x33800000
        fmv.w.x f2, t0
        li t1, 2
        li t2, 3              # RUP on the second pass
        li a0, 0
    1:  fadd.s f3, f1, f2     # 1 + 2**-24: a tie
        fmv.x.w a1, f3
        add a0, a0, a1
        fsrm t2
        addi t1, t1, -1
        bnez t1, 1b
        li t2, 4              # RMM through the soft-float path
        fsrm t2
        fadd.s f4, f1, f2
        fmv.x.w a2, f4
        fsrm zero
        fadd.s f5, f1, f2
        fmv.x.w a3, f5
        frrm a4
    """)
    assert x(cpu, 10) == 0x3F800000 + 0x3F800001
    assert (x(cpu, 12), x(cpu, 13), x(cpu, 14)) == (0x3F800001, 0x3F800000, 0)
    assert cpu.state.get("frm") == 0


@needs_cross
def test_fp_csr_read_modify_write():
    cpu = run_ok("""
        li a0, 0x7f
        fscsr a1, a0              # frm = 3 (RUP), fflags = 0x1f; old fcsr = 0
        frrm a2
        frflags a3
        csrrci a4, fflags, 1      # returns 0x1f, leaves 0x1e
        li a5, 0x21
        csrrw a5, fflags, a5      # rd == rs1: old value 0x1e, writes 0x01 (masked)
        csrrs a6, fcsr, zero      # read only: frm=3, fflags=1
        li t0, 0x3f800000
        fmv.w.x f1, t0
        li t0, 0x33800000
        fmv.w.x f2, t0
        fadd.s f3, f1, f2         # a tie, RUP: 1 + 2**-23
        fmv.x.w a7, f3
        csrrc s2, frm, a2         # frm = 0
        fadd.s f4, f1, f2         # same block: RNE now
        fmv.x.w s3, f4
    """)
    assert [x(cpu, r) for r in (11, 12, 13, 14, 15, 16, 17, 18, 19)] == [
        0, 3, 0x1F, 0x1F, 0x1E, 0x61, 0x3F800001, 3, 0x3F800000]
    assert (cpu.state.get("frm"), cpu.state.get("fflags")) == (0, NX)


@needs_cross
def test_host_fp_environment_is_restored():
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("m"))
    before = libc.fegetround()
    run_fp("fdiv.d f4, f1, f2", [f64(1.0), 0], frm=1)  # RTZ, divide by zero
    assert libc.fegetround() == before and libc.fetestexcept(0x3F) & 0x04 == 0
    assert 1 / 3 == 0.3333333333333333  # Python floats still round to nearest


@needs_cross
@pytest.mark.parametrize("optimize", [0, 1])
def test_dead_result_still_raises_flags(optimize):
    """The optimising tier may drop the first store to f5, but not the op's flags; a
    compare into x0 still signals."""
    cpu = run_fp("fdiv.s f5, f1, f2\nfsgnj.s f5, f3, f3\nfeq.s zero, f4, f4",
                 [fs(1.0), fs(3.0), fs(2.0), S(SNAN_S)], optimize=optimize)
    assert x(cpu, 31) == NX | NV
    assert cpu.state.get("f", 5) == fs(2.0)


def _compare(kernels, ours, theirs) -> list[str]:
    return [_describe(k, row, got, want)
            for k, our_rows, their_rows in zip(kernels, ours, theirs, strict=True)
            for row, got, want in zip(k.rows, our_rows, their_rows, strict=True)
            if got != want]


@needs_cross
@pytest.mark.skipif(not fpp.have_tools(), reason="needs riscv64-linux-gnu-gcc and qemu-riscv64")
def test_differential_optimising_tier(tmp_path):
    """The optimising tier (instcombine, GVN, O2 codegen) must not fold, merge or reorder
    strict FP ops: a sample of every kernel kind, both formats."""
    kernels = [k for k in make_kernels([s for s in SPECS if not s.mnemonic.startswith("fmv")])
               if k.rm in (0, 1, 4, 7)]  # compiling at O2 dominates: a sample of modes
    for k in kernels:
        k.rows = k.rows[::7]
    elf = fpp.build(kernels, tmp_path)
    ours = fpp.split_results(kernels, fpp.run_jit(elf, optimize=1))
    theirs = fpp.split_results(kernels, fpp.run_qemu(elf))
    differ = _compare(kernels, ours, theirs)
    assert not differ, f"{len(differ)} rows differ (ours vs qemu), e.g.\n" + "\n".join(differ[:20])


@needs_cross
@pytest.mark.skipif(not fpp.have_tools(), reason="needs riscv64-linux-gnu-gcc and qemu-riscv64")
def test_fused_multiply_add_without_host_fma(tmp_path, monkeypatch):
    """On a host without FMA, LLVM calls libm's fma (correctly rounded in glibc, honours
    MXCSR's rounding mode and raises the right flags); x86's missing invalid for
    0*inf + qNaN is fixed up either way."""
    from llvmtcg.runtime import jit

    cpu_name, features = jit.host_target()
    no_fma = ",".join("-fma" if f == "+fma" else f for f in features.split(","))
    monkeypatch.setattr(jit, "host_target", lambda: (cpu_name, no_fma))
    cpu = fpp.make_jit_cpu()
    assert "-fma" in cpu.jit.cpu_features.split(",")
    kernels = make_kernels([s for s in SPECS if "madd" in s.mnemonic or "msub" in s.mnemonic])
    elf = fpp.build(kernels, tmp_path)
    ours = fpp.split_results(kernels, fpp.run_jit(elf, cpu=cpu))
    theirs = fpp.split_results(kernels, fpp.run_qemu(elf))
    differ = _compare(kernels, ours, theirs)
    assert not differ, f"{len(differ)} rows differ (ours vs qemu), e.g.\n" + "\n".join(differ[:20])
