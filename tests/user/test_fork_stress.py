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


# A fork while the compile thread translates a region's members (outside the compile
# itself): translating took the frontend's lock (made on first use) and the import
# locks of the modules it imported then. The child inherited them held by a thread it
# does not have and hung at its first translation (warm runs translate first on the
# compile thread: the run loop places every block from the cache).
_FORK_DURING_JOB = """
import os, sys, threading, time
from llvmtcg.runtime import tiering

held = threading.Lock()   # stands for the frontend's lock / a module's import lock
inside = threading.Event()

class Job:
    closed = False
    stats = {"budget_waits": 0}
    plans = [object()]
    def _over_budget(self):
        return 0.0
    def _take_plan(self):
        return self.plans.pop() if self.plans else None
    def _build(self, plan, compiler):
        with held:
            inside.set()
            time.sleep(0.5)
        return plan
    def _delivered(self, built):
        pass

job = Job()
tiering._background().submit(job)
assert inside.wait(30)
pid = os.fork()
if pid == 0:
    os._exit(0 if held.acquire(timeout=5) else 1)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_fork_waits_for_the_compile_threads_whole_job():
    """The at-fork hook waits until the compile thread is between jobs, so the child
    never inherits a lock that thread held."""
    import subprocess
    import sys

    from tests.user.support import REPO

    r = subprocess.run([sys.executable, "-c", _FORK_DURING_JOB], cwd=REPO, timeout=60,
                       env={**TEST_ENV, "PYTHONPATH": str(REPO)}, capture_output=True)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
