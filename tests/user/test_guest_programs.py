"""Guest programs from tests/guest/, run under llvmtcg-user and qemu-riscv64: the same
stdout and the same exit status (or death by the same signal)."""

from __future__ import annotations

import signal

import pytest

from tests.user.support import (
    SYSROOT,
    assert_same,
    build,
    fresh_dir,
    needs_cc,
    needs_qemu,
    qemu_wrapper,
    run_llvmtcg,
    run_qemu,
    xfail_if_fp_missing,
)

pytestmark = [needs_cc, needs_qemu]

C_FLAVOURS = ["static", "dynamic", "nolibc"]
PROGRAMS = ["hello", "args", "fileio", "dirlist", "mm", "fork", "pipes", "time", "random"]


def _options(flavour: str) -> list[str]:
    return ["-L", SYSROOT] if flavour == "dynamic" else []


def _compare(guest_build, tmp_path, source, flavour, args=(), workdir_arg=False):
    prog = build(guest_build, source, flavour)
    runs = []
    for name, runner in (("ours", run_llvmtcg), ("qemu", run_qemu)):
        work = fresh_dir(tmp_path, name)
        extra = [str(work)] if workdir_arg else []
        runs.append(runner(prog, [*extra, *args], options=_options(flavour), cwd=work))
    assert_same(runs[0], runs[1], f"{source} ({flavour})")
    return runs[0]


@pytest.mark.parametrize("flavour", C_FLAVOURS)
@pytest.mark.parametrize("program", PROGRAMS)
def test_program(guest_build, tmp_path, program, flavour):
    args = ["one", "two words", ""] if program in ("hello", "args") else []
    _compare(guest_build, tmp_path, f"{program}.c", flavour, args,
             workdir_arg=program in ("fileio", "dirlist", "mm"))


@pytest.mark.parametrize("flavour", C_FLAVOURS)
def test_execve(guest_build, tmp_path, flavour):
    prog = build(guest_build, "execve.c", flavour)
    ours = run_llvmtcg(prog, [str(prog)], options=_options(flavour), cwd=tmp_path)
    # qemu cannot follow a guest execve by itself: its child runs through a wrapper.
    wrapper = qemu_wrapper(tmp_path / "qemu-wrapper", prog, _options(flavour))
    reference = run_qemu(prog, [str(wrapper)], options=_options(flavour), cwd=tmp_path)
    assert_same(ours, reference, f"execve ({flavour})")
    assert ours.returncode == 5


FAULTS = {"null": signal.SIGSEGV, "readonly": signal.SIGSEGV, "noexec": signal.SIGSEGV,
          "unmapped": signal.SIGSEGV, "abort": signal.SIGABRT, "term": signal.SIGTERM,
          "exit": None}


@pytest.mark.parametrize("flavour", C_FLAVOURS)
@pytest.mark.parametrize("how", list(FAULTS))
def test_fault(guest_build, tmp_path, flavour, how):
    if flavour != "nolibc" and how not in ("null", "abort"):
        pytest.skip("covered by the nolibc flavour (each run costs seconds)")
    ours = _compare(guest_build, tmp_path, "fault.c", flavour, [how])
    sig = FAULTS[how]
    if sig is None:
        assert ours.returncode == 42
        return
    assert ours.returncode == -sig
    if sig in (signal.SIGSEGV,):
        lines = ours.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "SIGSEGV" in lines[0] and " pc 0x" in lines[0], lines
        assert "address 0x" in lines[0]


ASM_CASES = [
    ("hello_asm.S", "asm", 3, None),
    ("hello_asm.S", "asm-pie", 3, None),
    ("stack_asm.S", "asm", 0, None),
    ("stack_asm.S", "asm-pie", 0, None),
    ("illegal_asm.S", "asm", -signal.SIGILL, "SIGILL"),
    ("ebreak_asm.S", "asm", -signal.SIGTRAP, "SIGTRAP"),
    ("amo_asm.S", "asm", -signal.SIGBUS, "SIGBUS"),
    ("smc_asm.S", "asm", 12, None),
]


@pytest.mark.parametrize("source,flavour,status,signame", ASM_CASES,
                         ids=[f"{s}-{f}" for s, f, _, _ in ASM_CASES])
def test_asm(guest_build, tmp_path, source, flavour, status, signame):
    ours = _compare(guest_build, tmp_path, source, flavour, ["arg"])
    assert ours.returncode == status
    if signame:
        message = ours.stderr.decode().strip().splitlines()
        assert len(message) == 1 and signame in message[0] and "pc 0x" in message[0]


def test_platform_in_auxv(guest_build, tmp_path):
    """AT_PLATFORM is present (qemu-riscv64 7.2 leaves it out, so this is ours only)."""
    prog = build(guest_build, "args.c", "nolibc")
    ours = run_llvmtcg(prog, env={"T_SHOW_PLATFORM": "1"}, cwd=tmp_path)
    xfail_if_fp_missing(ours)
    assert b"AT_PLATFORM=riscv64\n" in ours.stdout, ours.describe()
