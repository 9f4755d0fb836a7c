"""Guest threads (tests/guest/threads.c, built with -static -pthread): each case runs
under llvmtcg-user and qemu-riscv64 on the same binary and must give the same stdout
and exit status (where qemu-riscv64 7.2 fails, against what Linux prints)."""

from __future__ import annotations

import pytest

from tests.user.support import (
    TEST_ENV,
    assert_same,
    build,
    fresh_dir,
    needs_cc,
    needs_qemu,
    run_llvmtcg,
    run_qemu,
)

pytestmark = [needs_cc, needs_qemu]

# case -> the exit status Linux gives
CASES = {"condvar": 0, "atomic": 0, "tls": 0, "many": 0, "exit": 3, "mainexit": 0,
         "signal": 0, "futexsig": 0, "timeout": 0, "robust": 0}


@pytest.mark.parametrize("case", sorted(CASES))
def test_threads_case(guest_build, tmp_path, case):
    prog = build(guest_build, "threads.c", "pthread")
    ours = run_llvmtcg(prog, [case], cwd=fresh_dir(tmp_path, "ours"))
    reference = run_qemu(prog, [case], cwd=fresh_dir(tmp_path, "qemu"))
    assert_same(ours, reference, f"threads {case}")
    assert ours.returncode == CASES[case], ours.describe()


def test_threads_exact_values(guest_build, tmp_path):
    """The atomic counters are exact (AMOs and LR/SC are host atomics across threads)."""
    prog = build(guest_build, "threads.c", "pthread")
    ours = run_llvmtcg(prog, ["atomic"], cwd=fresh_dir(tmp_path, "ours"))
    assert ours.stdout == b"atomic: amo 120000 lrsc 240000 spin 360000\n", ours.describe()


def test_fork_from_threaded_program(guest_build, tmp_path):
    """fork while two threads spin in guest code; the child (one thread) makes a thread
    again. qemu-riscv64 7.2 aborts in the child (an assertion in its plugin code), so
    the output is compared with Linux's."""
    prog = build(guest_build, "threads.c", "pthread")
    ours = run_llvmtcg(prog, ["fork"], cwd=fresh_dir(tmp_path, "ours"))
    expected = "".join(f"fork: child {i} exited {5 + i}\n" for i in range(10)).encode()
    assert ours.returncode == 0 and ours.stdout == expected, ours.describe()


def test_proc_self_task(guest_build, tmp_path):
    """/proc/self/task lists the guest's four threads and no thread of the emulator's
    (compile thread, ...); each one's task/TID/maps and /proc/TID/maps are the guest's,
    /proc/thread-self is the calling thread's. qemu-riscv64 7.2 lists its own RCU thread
    too (5 entries), so the output is compared with Linux's."""
    prog = build(guest_build, "threads.c", "pthread")
    ours = run_llvmtcg(prog, ["task"], cwd=fresh_dir(tmp_path, "ours"),
                       env={**TEST_ENV, "LLVMTCG_HOT_THRESHOLD": "20"})
    expected = b"task: entries 4 known 4 maps 4 thread-self 1 1 1 /proc/tid/maps 1\n"
    assert ours.returncode == 0 and ours.stdout == expected, ours.describe()


def test_access_racing_munmap(guest_build, tmp_path):
    """A thread reads a page while another unmaps and maps it again, 400 times: each
    read sees the page or takes SIGSEGV (the guest's handler recovers); the emulator
    never dies of the host's fault (munmap/mprotect run while no thread is in guest
    code: Process.exclusive)."""
    prog = build(guest_build, "munmap_race.c", "pthread")
    ours = run_llvmtcg(prog, cwd=fresh_dir(tmp_path, "ours"))
    reference = run_qemu(prog, cwd=fresh_dir(tmp_path, "qemu"))
    assert_same(ours, reference, "munmap race")
    assert ours.returncode == 0, ours.describe()


def test_guest_fds_stay_the_lowest_while_run_loops_use_the_code_cache(guest_build, tmp_path):
    """A threaded guest opens /dev/null over and over (it must get 3 every time, as on
    Linux) while its other threads' hot loops turn into regions: their run loops write
    the code cache (a cold cache), then read it (warm). The emulator's cache files are
    never numbered in the guest's table."""
    prog = build(guest_build, "fdrace.c", "pthread")
    env = {**TEST_ENV, "LLVMTCG_HOT_THRESHOLD": "20",
           "LLVMTCG_CACHE_DIR": str(tmp_path / "cache")}
    reference = run_qemu(prog, cwd=fresh_dir(tmp_path, "qemu"))
    assert reference.stdout == b"opens not given the lowest free descriptor: 0\n"
    for run in ("cold", "warm"):
        ours = run_llvmtcg(prog, cwd=fresh_dir(tmp_path, run), env=env)
        assert_same(ours, reference, f"fdrace ({run} cache)")
