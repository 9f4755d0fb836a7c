"""Opt-in: a Linux kernel boots to its first console lines under our KVM accelerator.

Set ``LLVMTCG_KVM_LINUX_KERNEL`` to an x86-64 kernel — a vmlinux with a PVH note (Debian
12's, extracted from its bzImage as docs/kvm.md shows: about 2 minutes here) or a
bzImage — and run ``pytest -m slow``. On the development machines' nested software KVM
(about a million guest kernel instructions a second) a bzImage's xz decompressor alone
takes many minutes, so the timeout is ``LLVMTCG_KVM_LINUX_TIMEOUT`` seconds (default
3600).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from machines.x86_64_microvm import kvm_available

ROOT = Path(__file__).resolve().parents[2]
KERNEL = os.environ.get("LLVMTCG_KVM_LINUX_KERNEL")
TIMEOUT = float(os.environ.get("LLVMTCG_KVM_LINUX_TIMEOUT", "3600"))
_reason = kvm_available()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(KERNEL is None, reason="set LLVMTCG_KVM_LINUX_KERNEL=bzImage to run"),
    pytest.mark.skipif(_reason is not None, reason=f"KVM unusable here: {_reason}"),
]


def test_linux_prints_its_banner_on_ttys0(tmp_path: Path) -> None:
    assert KERNEL is not None
    serial = tmp_path / "serial.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.system_x86_64", "-accel", "kvm", "-M", "microvm",
         "-m", "256M", "-nodefaults", "-display", "none", "-serial", f"file:{serial}",
         "-kernel", KERNEL, "-append", "console=ttyS0 earlyprintk=serial,ttyS0,115200 "
         "reboot=t panic=-1", "-no-reboot"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if "Linux version" in text and "Command line:" in text:
                break
            time.sleep(5)
        text = serial.read_text(errors="replace") if serial.exists() else ""
    finally:
        proc.kill()
        proc.wait()
    assert "Linux version" in text, text[-2000:]
    assert "Command line: console=ttyS0" in text
