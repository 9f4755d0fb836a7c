"""gdb-multiarch with the kernel's symbols (``vmlinux``) against Linux booting under
``llvmtcg-system-riscv64 -s -S``: a breakpoint on ``start_kernel`` (a virtual address,
reached after the kernel turned the MMU on), a backtrace, a variable read through the
kernel's page tables, a step, the registers, a watchpoint on a kernel variable, then
detach and the boot goes on."""

from __future__ import annotations

import re
import time

import pytest

from tests.gdbstub.support import IMAGES, free_port, kill_quietly, needs_gdb, run_gdb
from tests.gdbstub.support import start_system as _start_system

pytestmark = [needs_gdb, pytest.mark.slow,  # a Linux boot: about two minutes here
              pytest.mark.skipif(not (IMAGES / "vmlinux").exists(),
                                 reason="no riscv64 Linux image")]


def test_break_in_start_kernel_with_vmlinux_symbols() -> None:
    port = free_port()
    proc = _start_system(port, "-S", "-m", "256M", "-kernel", str(IMAGES / "Image"),
                         "-initrd", str(IMAGES / "initramfs-poweroff.cpio.gz"),
                         "-append", "console=ttyS0")
    try:
        out = run_gdb(port, ["break start_kernel", "continue", "bt", "x/s &linux_banner",
                             "p/x $satp != 0", "p $priv", "stepi", "x/2i $pc",
                             "info symbol $pc", "info registers pc sp", "delete",
                             # a watchpoint on a kernel variable start_kernel sets
                             # (setup_command_line), through the softmmu slow path
                             "watch *(long *)&saved_command_line", "continue",
                             "delete", "detach"],
                      binary=IMAGES / "vmlinux", timeout=600)
        # (the image's vmlinux has symbols but no debugging information)
        match = re.search(r"^Breakpoint 1 at (0xffffffff8[0-9a-f]+)$", out, re.M)
        assert match, out
        assert f"Breakpoint 1, {match[1]} in start_kernel ()" in out, out
        assert re.search(r"^#0  0x[0-9a-f]+ in start_kernel \(\)\n"
                         r"#1  0x[0-9a-f]+ in _start_kernel \(\)$", out, re.M), out
        # a variable in the kernel's .rodata, read through its page tables
        assert re.search(r'^0xffffffff8[0-9a-f]+ <linux_banner>:\t"Linux version 6\.1\.',
                         out, re.M), out
        values = re.findall(r"^\$\d+ = (.*)$", out, re.M)
        assert values == ["0x1", "1"], out  # paging on, in S mode
        assert re.search(r"^=> 0xffffffff8[0-9a-f]+ <start_kernel\+\d+>:", out, re.M), out
        assert "start_kernel + " in out  # info symbol: still in start_kernel
        assert re.search(r"^pc\s+0xffffffff8[0-9a-f]+\s+0xffffffff8[0-9a-f]+ <start_kernel\+\d+>$",
                         out, re.M), out
        assert re.search(r"^sp\s+0xffffffff8[0-9a-f]+\s", out, re.M), out
        assert re.search(r"^Hardware watchpoint 2: \*\(long \*\)&saved_command_line\n\n"
                         r"Old value = 0\nNew value = -\d+$", out, re.M), out
        assert "Inferior 1 (Remote target) detached" in out, out
        # detached: the boot goes on (the console's first line; the whole boot takes
        # minutes more on a loaded machine)
        deadline = time.monotonic() + 1500
        output = b""
        while b"Linux version 6.1." not in output and time.monotonic() < deadline:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            output += chunk
        assert b"Linux version 6.1." in output, output[-2000:]
    finally:
        kill_quietly(proc)
