"""OpenSBI 1.1 (fw_jump) runs on ``-M virt`` with the translated system-mode CPU and
prints its banner and platform report through the ns16550a UART."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.machines.support import image, needs_images

REPO = Path(__file__).resolve().parents[2]
WANTED = (b"OpenSBI v1.1", b"Platform Name             : riscv-virtio,qemu",
          b"Boot HART MEDELEG         : 0x000000000000b109")


@needs_images
# stdin /dev/null: epoll refuses it (EPERM) -- it must read as an input at EOF, not end
# the emulator with a traceback.
@pytest.mark.parametrize("stdin", [subprocess.PIPE, subprocess.DEVNULL], ids=["pipe", "devnull"])
def test_opensbi_fw_jump_prints_its_banner(stdin: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.system_riscv64", "-M", "virt", "-m", "256M",
         "-nographic", "-bios", image("fw_jump.bin")],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = b""
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while not all(w in out for w in WANTED) and time.monotonic() < deadline:
            if selector.select(timeout=1):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
    finally:
        proc.kill()
        proc.wait()
    for wanted in WANTED:
        assert wanted in out, out.decode(errors="replace")
    assert b"Traceback" not in out, out.decode(errors="replace")
