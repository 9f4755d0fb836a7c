"""Random-instruction differential test: single A64 instructions drawn from the decoder's
patterns, each run from a random register state by tests/guest/aarch64/insn_harness.c
under llvmtcg-user and under qemu-aarch64, both as an Armv8.0 Cortex-A72 with the crypto
extension; every general and vector register, SP, NZCV, FPSR, FPCR, the signal raised
(SIGILL for unallocated encodings) and the scratch memory must agree."""

from __future__ import annotations

import pytest

from tests.aarch64 import random_insns
from tests.aarch64.support import build, needs_cc, needs_qemu, run_qemu
from tests.user.support import run_llvmtcg

pytestmark = [needs_cc, needs_qemu]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build(tmp_path_factory.mktemp("aarch64-random"), "insn_harness.c")


def run_both(harness, tmp_path, cases: list[random_insns.Case]) -> list[str]:
    """Run ``cases`` under both emulators; the descriptions of those that differ."""
    tests = tmp_path / "tests.bin"
    tests.write_bytes(b"".join(case.packed for case in cases))
    ours = run_llvmtcg(harness, [str(tests)], options=["-cpu", random_insns.REFERENCE_CPU])
    reference = run_qemu(harness, [str(tests)],
                         options=["-cpu", random_insns.REFERENCE_CPU])
    assert reference.returncode == 0, reference.describe()
    assert ours.returncode == 0, ours.describe()
    size = random_insns.RESULT.size
    assert len(reference.stdout) == size * len(cases)
    assert len(ours.stdout) == size * len(cases)
    differences = []
    for i, case in enumerate(cases):
        mine = ours.stdout[i * size:(i + 1) * size]
        theirs = reference.stdout[i * size:(i + 1) * size]
        if mine != theirs:
            differences.append(random_insns.describe_difference(case, mine, theirs))
    return differences


@pytest.mark.parametrize("seed, count", [
    (1, 200),
    pytest.param(2, 3000, marks=pytest.mark.slow),
    pytest.param(3, 3000, marks=pytest.mark.slow),
], ids=["quick", "slow-a", "slow-b"])
def test_random_instructions_match_qemu(harness, tmp_path, seed, count):
    differences = run_both(harness, tmp_path, random_insns.generate(seed, count))
    assert not differences, (f"{len(differences)} of {count} differ:\n"
                             + "\n".join(differences[:30]))


def test_harness_sees_a_difference(harness, tmp_path):
    """The comparison can fail: the same ADD from two different states differs."""
    add_x0 = 0x8B01_0000  # add x0, x0, x1
    cases = random_insns.generate(7, 2, patterns=[random_insns.INSN.pattern("add_r")])
    cases = [random_insns.Case("add_r", add_x0,
                               add_x0.to_bytes(4, "little") + case.packed[4:])
             for case in cases]
    tests = tmp_path / "tests.bin"
    tests.write_bytes(b"".join(case.packed for case in cases))
    out = run_llvmtcg(harness, [str(tests)])
    first, second = (random_insns.RESULT.unpack_from(out.stdout, i * random_insns.RESULT.size)
                     for i in range(2))
    x = [random_insns.TEST.unpack(case.packed)[4:35] for case in cases]
    assert first[1] == 0 and first[3] == (x[0][0] + x[0][1]) & (2**64 - 1)
    assert second[3] == (x[1][0] + x[1][1]) & (2**64 - 1)


def _fp_case(insn: int, fpcr: int, v: dict[int, int]) -> random_insns.Case:
    """One instruction from a zero state but for FPCR and the low halves of some V."""
    halves = [0] * 64
    for reg, value in v.items():
        halves[2 * reg] = value
    packed = random_insns.TEST.pack(insn, 0, 0, fpcr, *[0] * 31, random_insns.SP_OFFSET,
                                    *halves)
    return random_insns.Case("directed", insn, packed)


FZ = random_insns.FPCR_FZ
RUP = 1 << 22


# (name, instruction, FPCR, V registers' low halves, whether the result is flushed)
FZ_CORNER = [
    # (1 - 2**-24) * 2**-126 is a tie just below the smallest normal: rounds up to it.
    ("fmul s", 0x1E22_0820, FZ, {1: 0x3F7F_FFFF, 2: 0x0080_0000}, True),
    # (1 - 2**-24) * (1 + 2**-23) * 2**-126 is above it, rounds down to it: kept.
    ("fmul s above", 0x1E22_0820, FZ, {1: 0x3F7F_FFFF, 2: 0x0080_0001}, False),
    ("fmul d", 0x1E62_0820, FZ, {1: 0x3FEF_FFFF_FFFF_FFFF, 2: 0x0010_0000_0000_0000}, True),
    ("fmul s towards +inf", 0x1E22_0820, FZ | RUP, {1: 0x3F7F_FFFF, 2: 0x0080_0000}, True),
    ("fmadd s", 0x1F02_0C20, FZ, {1: 0x3F7F_FFFF, 2: 0x0080_0000, 3: 0}, True),
    ("fdiv s", 0x1E22_1820, FZ, {1: 0x0080_0000, 2: 0x3F80_0001}, True),
    # A double just below 2**-126 narrowed to single precision.
    ("fcvt d to s", 0x1E62_4020, FZ, {1: 0x380F_FFFF_F000_0000}, True),
    ("fmulx v", 0x4E22_DC20, FZ, {1: 0x3F7F_FFFF, 2: 0x0080_0000}, True),
    ("fmul without FZ", 0x1E22_0820, 0, {1: 0x3F7F_FFFF, 2: 0x0080_0000}, False),
]


def test_fz_flushes_results_that_round_up_to_the_smallest_normal(harness, tmp_path):
    """Arm (and QEMU) flush by the exact result: below the smallest normal is a zero
    with Underflow only, even when rounding would give the smallest normal."""
    cases = [_fp_case(insn, fpcr, v) for _, insn, fpcr, v, _ in FZ_CORNER]
    assert run_both(harness, tmp_path, cases) == []
    ours = run_llvmtcg(harness, [str(tmp_path / "tests.bin")],
                       options=["-cpu", random_insns.REFERENCE_CPU])
    size = random_insns.RESULT.size
    for i, (name, _, fpcr, _, flushed) in enumerate(FZ_CORNER):
        result = dict(zip(random_insns.RESULT_FIELDS,
                          random_insns.RESULT.unpack_from(ours.stdout, i * size), strict=True))
        low = result["v0.lo"] if name.startswith("fmul d") else result["v0.lo"] & 0xFFFF_FFFF
        assert (low == 0) is flushed, f"{name}: {low:#x}"
        ufc, ixc = 1 << 3, 1 << 4
        expected = ufc if flushed else ixc | (0 if fpcr else ufc)
        assert result["fpsr"] & (ufc | ixc) == expected, name


# d - n*m just below 2**-1022 (n*m about 2**-1600) rounds to the smallest normal: Arm
# detects tininess before rounding (Underflow), x86 after (none).
_BELOW_SMALLEST = {0: 0x0010_0000_0000_0000, 29: 0x0080_0180_7F7F_0180,
                   3: 0x1B3F_637A_5921_50F3}


@pytest.mark.parametrize("insn", [0x1F43_83A0, 0x4EE3_CFA0], ids=["fmsub", "fmls_v"])
def test_underflow_before_rounding_without_fz(harness, tmp_path, insn):
    cases = [_fp_case(insn, fpcr, _BELOW_SMALLEST) for fpcr in (0, RUP, FZ)]
    assert run_both(harness, tmp_path, cases) == []
    ours = run_llvmtcg(harness, [str(tmp_path / "tests.bin")],
                       options=["-cpu", random_insns.REFERENCE_CPU])
    first = dict(zip(random_insns.RESULT_FIELDS,
                     random_insns.RESULT.unpack_from(ours.stdout, 0), strict=True))
    assert (first["v0.lo"], first["fpsr"]) == (0x0010_0000_0000_0000, 0x18)
