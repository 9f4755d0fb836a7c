"""Guest signal delivery (tests/guest/signals.c) and the emulated /proc/self files
(tests/guest/procself.c), each run under llvmtcg-user and qemu-riscv64 on the same
binary: the same stdout and exit status, except where qemu-riscv64 7.2 differs from
Linux (then our output is checked against what Linux prints)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.user.support import (
    QEMU,
    REPO,
    SYSROOT,
    TEST_ENV,
    assert_same,
    build,
    code_cache_dir,
    fresh_dir,
    llvmtcg_command,
    needs_cc,
    needs_qemu,
    run_llvmtcg,
    run_qemu,
)

pytestmark = [needs_cc, needs_qemu]

CASES = ["segv", "resume", "altstack", "alarm", "restart", "queue", "sigchld", "fpregs",
         "abort", "timers"]


def _options(flavour: str) -> list[str]:
    return ["-L", SYSROOT] if flavour == "dynamic" else []


def _both(guest_build, tmp_path, source, flavour, args):
    prog = build(guest_build, source, flavour)
    runs = []
    for name, runner in (("ours", run_llvmtcg), ("qemu", run_qemu)):
        work = fresh_dir(tmp_path, name)
        runs.append(runner(prog, list(args), options=_options(flavour), cwd=work))
    return runs


@pytest.mark.parametrize("case", CASES)
def test_signal_case(guest_build, tmp_path, case):
    ours, qemu = _both(guest_build, tmp_path, "signals.c", "static", [case])
    assert_same(ours, qemu, f"signals {case}")
    if case == "abort":
        assert ours.returncode == -signal.SIGABRT
    else:
        assert ours.returncode == 0, ours.describe()


def test_signals_dynamic(guest_build, tmp_path):
    """The same frame and trampoline under the dynamic loader."""
    ours, qemu = _both(guest_build, tmp_path, "signals.c", "dynamic", ["segv"])
    assert_same(ours, qemu, "signals segv (dynamic)")


def test_signal_content(guest_build, tmp_path):
    """What the handlers saw: si_code/si_addr of faults, the FP state in the frame and
    after sigreturn, restarting (Linux's values, which qemu agrees with)."""
    expected = {
        "segv": ["unmapped: sig 11 code 1 addr 0x10", "read-only: sig 11 code 2 offset 8",
                 "illegal: sig 4 code 1", "ebreak: sig 5 code 1",
                 "segv blocked after longjmp: 0, count 4"],
        "fpregs": ["kill returned 0; in frame fs0 4.60943e+18 fcsr rm 2; after fs0 1.5 "
                   "fs1 2.25 frm 2"],
        "restart": ["without SA_RESTART: read -1 errno EINTR count 1",
                    "with SA_RESTART: read 1 char x count 2"],
        "altstack": ["tiny stack: -1 errno 12",
                     "overflow handler: sig 11 on alt stack 1 ss_flags 1",
                     "after: ss_flags 0 size ok 1", "disabled: ss_flags 2"],
    }
    prog = build(guest_build, "signals.c", "static")
    for case, lines in expected.items():
        ours = run_llvmtcg(prog, [case], cwd=tmp_path)
        assert ours.stdout.decode().splitlines() == lines, ours.describe()


def test_masks_and_sigsuspend(guest_build, tmp_path):
    """sa_mask, SA_NODEFER, SA_RESETHAND, sigpending, sigsuspend, SIG_IGN. qemu 7.2
    leaves sa_mask's SIGUSR2 unblocked in a handler run from sigsuspend; Linux (checked
    natively on the host: blocked = sigsuspend's mask | sa_mask | the signal) blocks it,
    so this compares with Linux's output."""
    prog = build(guest_build, "signals.c", "static")
    ours = run_llvmtcg(prog, ["masks"], cwd=tmp_path)
    assert ours.returncode == 0, ours.describe()
    assert ours.stdout.decode().splitlines() == [
        "pending usr1 1, count 0",
        "handler 10: usr1 blocked 1 usr2 blocked 1",
        "after sigsuspend: count 1 usr1 blocked again 1",
        "handler 12: usr1 blocked 0 usr2 blocked 0",
        "after SA_RESETHAND: count 2 handler default 1",
        "ignored: count 2",
    ]


def test_altstack_autodisarm(guest_build, tmp_path):
    """SS_AUTODISARM as Linux has it since 4.7 (qemu 7.2 answers EINVAL): the handler
    runs on the alternate stack, which reads as disabled meanwhile; uc_stack keeps the
    flags as set, and sigreturn re-arms it."""
    prog = build(guest_build, "signals.c", "static")
    ours = run_llvmtcg(prog, ["autodisarm"], cwd=tmp_path)
    assert ours.returncode == 0, ours.describe()
    assert ours.stdout.decode().splitlines() == [
        "autodisarm: 0",
        "in handler 10: on alt 1 ss_flags 2 saved flags 0x80000000",
        "after handler: ss_flags 0x80000000",
    ]


def _spin_and_signal(command: list[str], env: dict, cwd) -> tuple[int, bytes]:
    """Start the 'spin' case, send SIGUSR1 to the emulator once the guest spins."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=cwd) as p:
        try:
            first = p.stdout.readline()
            assert first == b"ready\n", first
            time.sleep(0.3)  # in the spin loop, in native code
            p.send_signal(signal.SIGUSR1)
            rest = p.stdout.read()
            return p.wait(timeout=60), first + rest
        finally:
            if p.poll() is None:
                p.kill()


def test_signal_from_host(guest_build, tmp_path):
    prog = build(guest_build, "signals.c", "static")
    env = dict(TEST_ENV, PYTHONPATH=str(REPO), LLVMTCG_CACHE_DIR=code_cache_dir())
    ours = _spin_and_signal(llvmtcg_command(str(prog), "spin"), env, tmp_path)
    qemu = _spin_and_signal([QEMU, str(prog), "spin"], dict(TEST_ENV), tmp_path)
    assert ours == qemu
    assert ours == (0, b"ready\nspin: got signal 10\n")


def test_proc_self(guest_build, tmp_path):
    """maps lists guest mappings only; mem reads/writes guest memory and fails (EIO) at
    host addresses taken from the emulator's maps; exe, cmdline, auxv, stat are the
    guest's. qemu 7.2 does not resolve dirfd-relative /proc paths and keeps its own
    argv[0] in cmdline; those lines are checked against Linux's answers."""
    prog = build(guest_build, "procself.c", "static")
    host_maps = tmp_path / "host-maps"
    # A host layout like the emulator's (Python, libLLVM, the heap): this process's.
    import llvmlite.binding  # noqa: F401  (maps libLLVM here too)

    with open(f"/proc/{os.getpid()}/maps") as src:
        host_maps.write_text(src.read())
    ours = run_llvmtcg(prog, [str(host_maps), "one"], cwd=tmp_path)
    qemu = run_qemu(prog, [str(host_maps), "one"], cwd=tmp_path)
    assert ours.returncode == qemu.returncode == 0, ours.describe()
    # (qemu's own answer to the host-address writes depends on where its guest space
    # happens to lie against this process's layout: ours is asserted below)
    differs = ("dirfd exe same", "cmdline:", "host addresses written:")
    mine = [line for line in ours.stdout.decode().splitlines() if not line.startswith(differs)]
    theirs = [line for line in qemu.stdout.decode().splitlines()
              if not line.startswith(differs)]
    assert mine == theirs, ours.describe()
    out = ours.stdout.decode()
    assert "maps: lines>0 1 foreign 0 stack 1 program 1 secret mapped 1" in out
    assert "host addresses written: 0" in out
    assert "mem at 16: -1 errno EIO" in out
    assert "dirfd exe same: 1" in out
    assert f"cmdline: [{prog.name}] [host-maps] [one]" in out


def test_proc_self_maps_not_host(guest_build, tmp_path):
    """Under the emulator, a guest's cat of /proc/self/maps shows no host mapping."""
    prog = build(guest_build, "procself.c", "static")
    ours = run_llvmtcg(prog, [], cwd=tmp_path)
    assert b"foreign 0" in ours.stdout, ours.describe()
