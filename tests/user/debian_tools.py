"""Real threaded programs for the differential tests: ``xz`` and ``zstd`` built for
riscv64 (static, with their thread pools) from Debian's source packages at test time.

The sources come from ``apt-get source`` (the machine needs a ``deb-src`` line, which
``scripts/setup.sh`` adds); builds are cached in ``$LLVMTCG_TOOL_CACHE`` (default
``~/.cache/llvmtcg-guest-tools``), keyed by the source version, so only the first run
pays (about a minute of CPU each). Where the sources cannot be had, the tests skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CROSS = "riscv64-linux-gnu-"


@dataclass(frozen=True, slots=True)
class Tool:
    source_package: str
    binary: str  # inside the unpacked source tree
    build: tuple[str, ...]  # shell commands, run in the tree


TOOLS = {
    "zstd": Tool("libzstd", "programs/zstd", (
        f"make -C programs zstd CC={CROSS}gcc LDFLAGS=-static HAVE_ZLIB=0 HAVE_LZMA=0 "
        "HAVE_LZ4=0 -j2",)),
    "xz": Tool("xz-utils", "src/xz/xz", (
        f"./configure --host=riscv64-linux-gnu CC={CROSS}gcc --disable-shared "
        "--enable-static --disable-nls --disable-doc --disable-scripts --disable-xzdec "
        "--disable-lzmadec --disable-lzmainfo CFLAGS=-O2",
        "make -C src/liblzma -j2",
        "make -C src/xz -j2 LDFLAGS=-all-static")),
}


def cache_root() -> Path:
    root = os.environ.get("LLVMTCG_TOOL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "llvmtcg-guest-tools"


def _source_versions(package: str) -> list[str]:
    result = subprocess.run(["apt-cache", "showsrc", package], capture_output=True,
                            text=True)
    return [line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
            if line.startswith("Version:")]


def _run(command: str | list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, shell=isinstance(command, str),
                          capture_output=True, text=True)


def debian_tool(name: str) -> Path:
    """The riscv64 static ``name`` (``xz`` or ``zstd``), built once; skips the test if
    the source package cannot be fetched or built here."""
    tool = TOOLS[name]
    if shutil.which(f"{CROSS}gcc") is None or shutil.which("apt-get") is None:
        pytest.skip(f"{name}: needs apt-get and {CROSS}gcc")
    versions = _source_versions(tool.source_package)
    if not versions:
        pytest.skip(f"{name}: no source package {tool.source_package} (no deb-src line?)")
    root = cache_root()
    for version in sorted(set(versions), reverse=True):
        built = root / f"{name}-{version}" / name
        if built.exists():
            return built
    root.mkdir(parents=True, exist_ok=True)
    errors = []
    for version in sorted(set(versions), reverse=True):  # (a security update may be gone)
        with tempfile.TemporaryDirectory(dir=root) as work:
            fetched = _run(["apt-get", "source", "-q", "-d",
                            f"{tool.source_package}={version}"], Path(work))
            dsc = glob.glob(os.path.join(work, "*.dsc"))
            if fetched.returncode != 0 or not dsc:
                errors.append(f"{version}: {fetched.stderr.strip()[-200:]}")
                continue
            unpacked = _run(["dpkg-source", "--no-check", "-x", dsc[0], "tree"], Path(work))
            if unpacked.returncode != 0:
                errors.append(f"{version}: dpkg-source: {unpacked.stderr.strip()[-200:]}")
                continue
            tree = Path(work) / "tree"
            for command in tool.build:
                result = _run(command, tree)
                if result.returncode != 0:
                    pytest.fail(f"{name} {version}: `{command}` failed:\n"
                                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            target = root / f"{name}-{version}"
            target.mkdir(exist_ok=True)
            shutil.copy2(tree / tool.binary, target / (name + ".tmp"))
            os.replace(target / (name + ".tmp"), target / name)
            return target / name
    pytest.skip(f"{name}: cannot fetch {tool.source_package}: {'; '.join(errors)}")
