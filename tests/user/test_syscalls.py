"""The syscall table: numbering checked against the Linux headers of both guest
architectures, the calls real programs use beyond the basics (tests/guest/syscalls2.c)
compared with qemu-riscv64, and unimplemented calls: -ENOSYS with one line under
``-d unimp`` per number."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from llvmtcg.user import syscalls
from llvmtcg.user.syscalls.numbers import ABSENT, NUMBERS
from tests.user.support import (
    build,
    fresh_dir,
    needs_cc,
    needs_qemu,
    run_llvmtcg,
    run_qemu,
)


def header_numbers(compiler: str) -> dict[str, int]:
    """``__NR_*`` of <asm/unistd.h> as the cross compiler's kernel headers define them."""
    result = subprocess.run([compiler, "-dM", "-E", "-"], input="#include <asm/unistd.h>\n",
                            capture_output=True, text=True, check=True)
    defines = dict(re.findall(r"#define (__NR\w+) (.+)$", result.stdout, re.M))
    numbers = {}
    for macro, value in defines.items():
        # (calls with 32- and 64-bit variants: __NR_newfstatat is __NR3264_fstatat;
        # riscv64's own: (__NR_arch_specific_syscall + 15))
        value = defines.get(value, value)
        if offset := re.fullmatch(r"\(__NR_arch_specific_syscall \+ (\d+)\)", value):
            value = str(int(defines["__NR_arch_specific_syscall"]) + int(offset.group(1)))
        if macro.startswith("__NR_") and value.isdigit():
            numbers[macro[5:]] = int(value)
    return numbers


@pytest.mark.parametrize("machine", ["riscv64", "aarch64"])
def test_numbering_matches_the_linux_headers(machine):
    """Every number of the architecture's <asm/unistd.h> has its name here; the names
    here it lacks are exactly those ABSENT says (-ENOSYS for that architecture)."""
    compiler = f"{machine}-linux-gnu-gcc"
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    linux = header_numbers(compiler)
    linux.pop("arch_specific_syscall", None)
    linux.pop("syscalls", None)  # (the count)
    for name, nr in linux.items():
        assert NUMBERS.get(name) == nr, name
    newer = {"riscv_hwprobe"} if machine == "riscv64" else set()  # (Linux 6.4; Debian 12
    # has 6.1's headers)
    missing = {NUMBERS[name] for name in set(NUMBERS) - set(linux) - newer}
    assert missing == ABSENT[machine]


def test_most_of_the_table_is_implemented():
    syscalls.load_handlers()
    assert len(syscalls.TABLE) >= 230
    for name in ("statx", "faccessat2", "close_range", "getrandom", "copy_file_range",
                 "membarrier", "rseq", "epoll_pwait", "timerfd_settime", "inotify_add_watch",
                 "prlimit64", "sched_getaffinity", "memfd_create", "splice"):
        assert NUMBERS[name] in syscalls.TABLE, name


@needs_cc
@needs_qemu
def test_more_syscalls_match_qemu(guest_build, tmp_path):
    prog = build(guest_build, "syscalls2.c", "static")
    ours = run_llvmtcg(prog, options=["-d", "unimp"], cwd=fresh_dir(tmp_path, "ours"))
    reference = run_qemu(prog, cwd=fresh_dir(tmp_path, "qemu"))
    assert ours.returncode == reference.returncode == 0, ours.describe()
    # ptrace: the issue asks for EPERM (Linux's answer to a process that may not be
    # traced); qemu-riscv64 7.2 says ENOSYS.
    mine = ours.stdout.replace(b"ptrace: -1 Operation not permitted",
                               b"ptrace: -1 Function not implemented")
    assert mine == reference.stdout
    assert b"ptrace: -1 Operation not permitted\n" in ours.stdout
    assert b"epoll: 1 events, data deadbeefcafef00d" in ours.stdout
    assert b"sem: nsems 3, values 1 0 3" in ours.stdout
    assert b"again: -1 Function not implemented" in ours.stdout
    # -d unimp: one line for number 258, called twice.
    assert ours.stderr.count(b"riscv_hwprobe: unimplemented syscall 258") == 1, ours.stderr
