"""Building arm64 guest programs (tests/guest/aarch64) and running them under
llvmtcg-user and qemu-aarch64; Debian's busybox-static:arm64, fetched at test time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.user.support import REPO, Run, run_llvmtcg

GUEST_SRC = REPO / "tests" / "guest" / "aarch64"
CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
QEMU_PATH = shutil.which(QEMU)
needs_cc = pytest.mark.skipif(shutil.which(CC) is None, reason=f"{CC} not installed")
needs_qemu = pytest.mark.skipif(QEMU_PATH is None, reason=f"{QEMU} not installed")


SYSROOT = "/usr/aarch64-linux-gnu"  # Debian's arm64 glibc for dynamic programs (-L)


def build(build_dir: Path, source: str, *flags: str, name: str | None = None,
          static: bool = True) -> Path:
    """Compile tests/guest/aarch64/<source> with -O2 and ``flags``: static, or a PIE
    using the cross toolchain's ld-linux-aarch64.so.1."""
    out = build_dir / (name or Path(source).stem)
    if not out.exists():
        cmd = [CC, *(["-static"] if static else []), "-O2", "-o", str(out),
               str(GUEST_SRC / source), *flags]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, f"building {source} failed:\n{result.stderr}"
    return out


def run_qemu(prog: Path | str, args: list[str] = (), *, options: list[str] = (),
             cwd: Path | None = None, env: dict | None = None,
             stdin: bytes | None = None) -> Run:
    r = subprocess.run([QEMU_PATH or QEMU, *options, str(prog), *args], cwd=cwd, env=env or {},
                       input=stdin, capture_output=True, timeout=120)
    return Run(r.returncode, r.stdout, r.stderr)


def compare(prog: Path, args: list[str] = (), *, options: list[str] = (),
            cwd: Path | None = None, env: dict | None = None,
            stdin: bytes | None = None) -> Run:
    """Run ``prog`` under both emulators (with the same emulator ``options``); stdout
    and the exit status must agree."""
    env = env or {"PATH": "/usr/bin:/bin", "LANG": "C"}
    ours = run_llvmtcg(prog, list(args), options=list(options), cwd=cwd, env=env,
                       stdin=stdin)
    reference = run_qemu(prog, list(args), options=list(options), cwd=cwd, env=env,
                         stdin=stdin)
    assert (ours.stdout, ours.returncode) == (reference.stdout, reference.returncode), (
        f"{prog.name} {' '.join(args)}: llvmtcg-user and qemu-aarch64 differ\n"
        f"=== llvmtcg-user: {ours.describe()}\n=== qemu-aarch64: {reference.describe()}")
    return ours


def fetch_busybox(directory: Path) -> Path | None:
    """Debian's static arm64 BusyBox, downloaded with apt-get and unpacked (never
    committed); None when apt cannot provide it (no arm64 architecture, offline)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return None
    result = subprocess.run(["apt-get", "download", "busybox-static:arm64"], cwd=directory,
                            capture_output=True, text=True, timeout=300)
    debs = sorted(directory.glob("busybox-static_*_arm64.deb"))
    if result.returncode != 0 or not debs:
        return None
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(directory / "root")], check=True)
    busybox = directory / "root" / "bin" / "busybox"
    return busybox if busybox.exists() else None
