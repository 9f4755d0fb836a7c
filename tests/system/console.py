"""A guest console for system tests: llvmtcg-system-riscv64 (or qemu-system-riscv64) on a
pseudo-terminal, driven with pexpect as a user types at it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO.parent / "shared" / "images" / "riscv64"
UBOOT_M = IMAGES / "u-boot-qemu-riscv64" / "u-boot.bin"
UBOOT_S = IMAGES / "u-boot-qemu-riscv64_smode" / "u-boot.bin"
UBOOT_PROMPT = "=> "


def spawn_llvmtcg(*args: str, timeout: float = 120) -> pexpect.spawn:
    """``llvmtcg-system-riscv64 ARGS`` (this checkout's) on a pty."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return pexpect.spawn(sys.executable, ["-m", "launcher.system_riscv64", *args], env=env,
                         timeout=timeout, encoding="utf-8", codec_errors="replace",
                         dimensions=(50, 200))


def stop_autoboot(console: pexpect.spawn) -> None:
    """Press a key at U-Boot's countdown and wait for its prompt."""
    console.expect("Hit any key to stop autoboot")
    console.send(" ")
    console.expect_exact(UBOOT_PROMPT)


def uboot_command(console: pexpect.spawn, command: str) -> str:
    """Run ``command`` at the U-Boot prompt; its output (without the echo and prompt)."""
    console.sendline(command)
    console.expect_exact(command)  # the echo
    console.expect_exact(UBOOT_PROMPT)
    return console.before.replace("\r", "").strip("\n")


def quit_emulator(console: pexpect.spawn) -> int | None:
    """Ctrl-A x, then the exit status."""
    console.send("\x01x")
    console.expect(pexpect.EOF, timeout=30)
    console.close()
    return console.exitstatus
