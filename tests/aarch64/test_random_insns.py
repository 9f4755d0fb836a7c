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
