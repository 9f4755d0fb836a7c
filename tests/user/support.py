"""Building guest programs and running them under llvmtcg-user and qemu-riscv64.

Guest sources live in tests/guest/; they are compiled at test time with the Debian
cross compiler into a per-session build directory, in these flavours:

- ``static``: glibc, ``-static`` (ET_EXEC); ``pthread``: the same with ``-pthread``;
- ``dynamic``: glibc, PIE with PT_INTERP, run with ``-L /usr/riscv64-linux-gnu``;
- ``nolibc``: tests/guest/nolibc.c instead of glibc, static-pie (ET_DYN without
  PT_INTERP; it relocates itself). Debian's riscv64 glibc has no static-pie support
  (no rcrt1.o), so this is the static-pie flavour of the C programs;
- ``asm`` / ``asm-pie``: assembly with no library, static / static-pie.

Every differential test runs the same binary under both emulators with the same
arguments, environment and a fresh working directory each, and compares stdout and
the exit status.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUEST_SRC = REPO / "tests" / "guest"
SYSROOT = "/usr/riscv64-linux-gnu"
CC = "riscv64-linux-gnu-gcc"
QEMU = "qemu-riscv64"
BUSYBOX = (REPO / ".." / "shared" / "images" / "riscv64" / "busybox").resolve()
LLVMTCG_TIMEOUT = 300
TEST_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "LANG": "C",
            "T_VAR": "value with spaces", "T_EMPTY": ""}

have_cc = shutil.which(CC) is not None
QEMU_PATH = shutil.which(QEMU)
have_qemu = QEMU_PATH is not None
needs_cc = pytest.mark.skipif(not have_cc, reason=f"{CC} not installed (make setup)")
needs_qemu = pytest.mark.skipif(not have_qemu, reason=f"{QEMU} not installed (make setup)")

# gcc 12 for riscv64 ignores -static-pie (it still asks for an interpreter): spell it out.
STATIC_PIE = "-Wl,--no-dynamic-linker,-z,text"
FLAVOURS = {
    "static": ["-static", "-O2"],
    "pthread": ["-static", "-pthread", "-O2"],
    "dynamic": ["-O2"],
    "nolibc": ["-nostdlib", "-fPIE", "-pie", STATIC_PIE, "-O2", "-ffreestanding",
               "-fno-stack-protector", "-fno-builtin", "-D_GNU_SOURCE"],
    "asm": ["-nostdlib", "-static"],
    "asm-pie": ["-nostdlib", "-fPIE", "-pie", STATIC_PIE],
}


class BuildError(Exception):
    pass


def build(build_dir: Path, source: str, flavour: str) -> Path:
    """Compile tests/guest/<source> in ``flavour`` (cached in build_dir)."""
    src = GUEST_SRC / source
    out = build_dir / f"{Path(source).stem}.{flavour}"
    if out.exists():
        return out
    cmd = [CC, "-march=rv64gc", "-mabi=lp64d", *FLAVOURS[flavour], "-o", str(out), str(src)]
    if flavour == "nolibc":
        cmd += [str(GUEST_SRC / "nolibc.c"), "-lgcc"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"building {source} ({flavour}) failed:\n{result.stderr}")
    return out


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes

    def describe(self) -> str:
        return (f"status {self.returncode}\n--- stdout\n{self.stdout.decode(errors='replace')}"
                f"\n--- stderr\n{self.stderr.decode(errors='replace')}")


def llvmtcg_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "llvmtcg.user", *options]


def code_cache_dir() -> str:
    """The emulator's code cache for test runs: $LLVMTCG_CACHE_DIR or the user's default
    (not derived from the guests' HOME, which tests set to a path that must not exist)."""
    from llvmtcg.options import default_cache_dir

    return str(default_cache_dir(os.environ))


def run_llvmtcg(prog: Path | str, args: list[str] = (), *, options: list[str] = (),
                cwd: Path | None = None, env: dict | None = None, stdin: bytes | None = None,
                timeout: int = LLVMTCG_TIMEOUT) -> Run:
    full_env = dict(env if env is not None else TEST_ENV)
    full_env["PYTHONPATH"] = str(REPO)
    full_env.setdefault("LLVMTCG_CACHE_DIR", code_cache_dir())
    r = subprocess.run(llvmtcg_command(*options, str(prog), *args), cwd=cwd, env=full_env,
                       input=stdin, capture_output=True, timeout=timeout)
    return Run(r.returncode, r.stdout, r.stderr)


def run_qemu(prog: Path | str, args: list[str] = (), *, options: list[str] = (),
             cwd: Path | None = None, env: dict | None = None, stdin: bytes | None = None,
             timeout: int = 120) -> Run:
    r = subprocess.run([QEMU_PATH or QEMU, *options, str(prog), *args], cwd=cwd,
                       env=dict(env if env is not None else TEST_ENV), input=stdin,
                       capture_output=True, timeout=timeout)
    return Run(r.returncode, r.stdout, r.stderr)


# -- floating point: tests that need it are expected to fail until F/D translate ------
FP_OPCODES = {0x07, 0x27, 0x43, 0x47, 0x4B, 0x4F, 0x53}


def is_fp_instruction(word: int) -> bool:
    if word & 3 == 3:
        return word & 0x7F in FP_OPCODES
    quadrant, funct3 = word & 3, (word >> 13) & 7
    return quadrant in (0, 2) and funct3 in (1, 5)  # c.fld/c.fsd, c.fldsp/c.fsdsp


@functools.cache
def fp_translates() -> bool:
    """Does ``fadd.d`` translate (or is every F/D instruction still illegal)?"""
    from llvmtcg.frontends.riscv.arch import Riscv64Arch
    from llvmtcg.frontends.riscv.cpu import Cause
    from llvmtcg.ir import ExitReason
    from llvmtcg.runtime.cpu_exec import Cpu
    from llvmtcg.runtime.softmmu import GuestMemory, Perm

    memory = GuestMemory(1 << 20)
    memory.map(0x10000, 0x1000, Perm.RX)
    fadd_d, ebreak = 0x02007053, 0x00100073  # fadd.d f0, f0, f0 (dynamic rm); ebreak
    memory.write(0x10000, fadd_d.to_bytes(4, "little") + ebreak.to_bytes(4, "little"),
                 check=None)
    cpu = Cpu(Riscv64Arch(), memory)
    cpu.pc = 0x10000
    exit_ = cpu.run()
    cpu.close()
    return exit_.reason is ExitReason.EXCEPTION and exit_.exception_index == Cause.BREAKPOINT


_ILLEGAL = re.compile(rb"illegal instruction 0x([0-9a-f]+)")


def xfail_if_fp_missing(run: Run) -> None:
    """Mark the test xfail when it died on an F/D instruction and F/D do not translate
    yet (fadd.d is illegal); once they do, the test must pass."""
    if run.returncode not in (-signal.SIGILL, 128 + signal.SIGILL):
        return
    match = _ILLEGAL.search(run.stderr)
    if match and is_fp_instruction(int(match.group(1), 16)) and not fp_translates():
        pytest.xfail(f"needs F/D instructions (fadd.d does not translate yet): "
                     f"{match.group(0).decode()}")


def assert_same(ours: Run, reference: Run, what: str) -> None:
    xfail_if_fp_missing(ours)
    assert ours.stdout == reference.stdout and ours.returncode == reference.returncode, (
        f"{what}: llvmtcg-user and qemu-riscv64 differ\n=== llvmtcg-user: {ours.describe()}"
        f"\n=== qemu-riscv64: {reference.describe()}")


def qemu_wrapper(path: Path, prog: Path, options: list[str] = ()) -> Path:
    """A host script that runs ``prog`` under qemu (qemu cannot follow a guest execve
    without binfmt_misc; llvmtcg-user re-enters itself)."""
    qemu = shutil.which(QEMU) or QEMU
    opts = " ".join(options)
    path.write_text(f'#!/bin/sh\nexec {qemu} {opts} "{prog}" "$@"\n')
    path.chmod(0o755)
    return path


def fresh_dir(base: Path, name: str) -> Path:
    d = base / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d

