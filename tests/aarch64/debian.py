"""A sysroot of Debian's dynamic arm64 programs, made at test time from the packages of
the Debian release this machine runs: coreutils and python3.X-minimal (with
libpython3.X-stdlib), their interpreter ld-linux-aarch64.so.1 and every shared library
they depend on, fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``.

Nothing is committed. The sysroot is cached with the other test-time guest programs
(``$LLVMTCG_TOOL_CACHE``, default ~/.cache/llvmtcg-guest-tools) in a directory named after a
hash of the exact package versions, so a second test run downloads nothing and a Debian
update makes a new one; the resolved versions are remembered while apt's lists are
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.user.debian_tools import cache_root

ARCH = "arm64"
# Packages the Depends closure reaches that hold no library these programs load
# (maintainer-script and packaging tools).
_NOT_LIBRARIES = re.compile(r"^(dpkg|tar|install-info|perl.*|debconf.*|.*-common|.*-base)$")
_APT_TIMEOUT = 300


class SysrootUnavailable(Exception):
    """apt cannot provide the packages (no arm64 architecture, offline): tests skip."""


@dataclass(frozen=True)
class DebianSysroot:
    """An unpacked arm64 sysroot: pass ``root`` to ``-L``."""

    root: Path
    python: Path  # /usr/bin/python3.X inside root
    packages: tuple[str, ...]  # name=version, sorted

    def bin(self, name: str) -> Path:
        """The coreutils program ``name`` (Debian keeps some in /bin, most in /usr/bin)."""
        for directory in ("usr/bin", "bin"):
            path = self.root / directory / name
            if path.exists():
                return path
        raise FileNotFoundError(f"{name} is in no bin directory of {self.root}")


def _apt(*args: str) -> str:
    result = subprocess.run(["apt-cache", *args], capture_output=True, text=True,
                            timeout=_APT_TIMEOUT)
    if result.returncode != 0:
        raise SysrootUnavailable(f"apt-cache {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _candidates(names: list[str]) -> dict[str, str]:
    """The version apt would download of each arm64 package in ``names`` (one
    apt-cache run: each one loads apt's whole cache, about a second)."""
    versions = {}
    output = _apt("show", "--no-all-versions", *(f"{name}:{ARCH}" for name in names))
    for stanza in output.split("\n\n"):
        package = re.search(r"^Package: (\S+)", stanza, re.M)
        version = re.search(r"^Version: (\S+)", stanza, re.M)
        if package and version:
            versions[package.group(1)] = version.group(1)
    return versions


def resolve_packages() -> list[tuple[str, str]]:
    """(name, version) of the arm64 packages the sysroot needs: the roots, with
    python3-minimal replaced by the python3.X-minimal it pulls in and
    libpython3.X-stdlib added (what ``import json, hashlib, zlib`` needs), and the
    closure of their Depends/Pre-Depends minus packaging tools and arch-all data."""
    if shutil.which("apt-cache") is None or shutil.which("dpkg-deb") is None:
        raise SysrootUnavailable("no apt-cache or dpkg-deb on this machine")
    depends = _apt("depends", f"python3-minimal:{ARCH}")
    match = re.search(r"(python3\.\d+)-minimal", depends)
    if match is None:
        raise SysrootUnavailable(f"python3-minimal:{ARCH} depends on no python3.X-minimal")
    python = match.group(1)
    roots = ["coreutils", f"{python}-minimal", f"lib{python}-stdlib"]
    closure = _apt("depends", "--recurse", "--no-recommends", "--no-suggests",
                   "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                   *(f"{name}:{ARCH}" for name in roots))
    names = set(roots)
    for line in closure.splitlines():
        # Top-level lines name packages; virtual ones are <bracketed>; arch-all ones
        # and host packages have no :arm64 suffix.
        if line.startswith((" ", "<")) or not line.endswith(f":{ARCH}"):
            continue
        name = line[:-len(ARCH) - 1]
        if not _NOT_LIBRARIES.match(name):
            names.add(name)
    versions = _candidates(sorted(names))
    missing = sorted(names - versions.keys())
    if missing:
        raise SysrootUnavailable(f"apt has no candidate for {', '.join(missing)} ({ARCH})")
    return sorted(versions.items())


def _build(packages: list[tuple[str, str]], target: Path) -> None:
    """Download ``packages`` and unpack them into ``target``/root atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        debs = work / "debs"
        debs.mkdir()
        result = subprocess.run(
            ["apt-get", "download", *(f"{name}:{ARCH}={version}" for name, version in packages)],
            cwd=debs, capture_output=True, text=True, timeout=_APT_TIMEOUT)
        if result.returncode != 0:
            raise SysrootUnavailable(f"apt-get download failed: {result.stderr.strip()[-500:]}")
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True,
                           capture_output=True, timeout=_APT_TIMEOUT)
        shutil.rmtree(debs)
        try:
            work.rename(target)  # another test process may have won the race: fine
        except OSError:
            if not target.exists():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work)


def _apt_state() -> str | None:
    """A fingerprint of what apt resolves from: its package lists and dpkg's
    architectures; None when there are no lists to fingerprint."""
    lists = sorted(Path("/var/lib/apt/lists").glob("*Packages*"))
    if not lists:
        return None
    state = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in lists]
    arch = Path("/var/lib/dpkg/arch")
    state.append(("arch", arch.read_text() if arch.exists() else ""))
    return hashlib.sha256(repr(state).encode()).hexdigest()


def _resolve_cached() -> list[tuple[str, str]]:
    """:func:`resolve_packages`, remembered while apt's lists are unchanged: its three
    apt-cache runs take 3-10 s of a loaded machine."""
    state = _apt_state()
    memo = cache_root() / f"debian-{ARCH}-packages.json"
    if state is not None and memo.exists():
        try:
            saved = json.loads(memo.read_text())
            if saved.get("apt_state") == state:
                return [tuple(p) for p in saved["packages"]]
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: resolve again
    packages = resolve_packages()
    if state is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        temp = memo.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps({"apt_state": state, "packages": packages}))
        temp.replace(memo)
    return packages


def debian_sysroot() -> DebianSysroot:
    """The cached sysroot for this machine's package versions (made on first use).

    Raises:
        SysrootUnavailable: apt cannot resolve or download the packages.
    """
    packages = _resolve_cached()
    pinned = tuple(f"{name}={version}" for name, version in packages)
    key = hashlib.sha256("\n".join(pinned).encode()).hexdigest()[:16]
    target = cache_root() / f"debian-{ARCH}-sysroot-{key}"
    if not target.exists():
        _build(packages, target)
    root = target / "root"
    pythons = sorted((root / "usr" / "bin").glob("python3.*"))
    if not pythons:
        raise SysrootUnavailable(f"no python3.X in {root}/usr/bin")
    return DebianSysroot(root, pythons[0], pinned)
