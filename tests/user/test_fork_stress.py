"""Fork safety: a BusyBox shell script whose command substitutions fork the emulator
many times while hot regions compile on the background thread (a low hot threshold).
A child that inherited a lock another thread held at fork() would hang; the timeout
turns a hang into a failure. The output is compared with qemu-riscv64's."""

from __future__ import annotations

import pytest

from tests.user.support import BUSYBOX, TEST_ENV, assert_same, needs_qemu, run_llvmtcg, run_qemu

pytestmark = [
    needs_qemu,
    pytest.mark.skipif(not BUSYBOX.exists(),
                       reason=f"BusyBox image not found at {BUSYBOX} (../shared/images)"),
]


def script(rounds: int) -> str:
    # Two command substitutions a round: each forks the shell (no exec).
    return (f"i=0; total=0; while [ $i -lt {rounds} ]; do x=$(echo $i); "
            "y=$(echo $((x * 2)); echo more); total=$((total + x + ${#y})); "
            "i=$((i + 1)); done; echo $total")


HOT_ENV = {**TEST_ENV, "LLVMTCG_HOT_THRESHOLD": "20"}


def test_command_substitution_forks(tmp_path):
    """80 forks with regions compiling meanwhile."""
    args = ["sh", "-c", script(40)]
    ours = run_llvmtcg(BUSYBOX, args, cwd=tmp_path, env=HOT_ENV, timeout=240)
    reference = run_qemu(BUSYBOX, args, cwd=tmp_path)
    assert_same(ours, reference, "command substitution")
    assert ours.stdout == b"1055\n"


@pytest.mark.slow
def test_command_substitution_forks_50_runs(tmp_path):
    """The issue's stress: the script 50 times, none may hang."""
    args = ["sh", "-c", script(10)]
    for run in range(50):
        ours = run_llvmtcg(BUSYBOX, args, cwd=tmp_path, env=HOT_ENV, timeout=120)
        assert ours.returncode == 0 and ours.stdout == b"110\n", f"run {run}: " \
            + ours.describe()
