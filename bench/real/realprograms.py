"""Real programs for bench/run --real: built from Debian source packages at bench time.

Lua 5.4 (an interpreter, running bench/real/bench.lua), SQLite's speedtest1 (an SQL
engine's standard benchmark, in-memory database) and zstd (a compressor, on generated
text). Sources come from `apt-get source` through a private apt configuration under
bench/build/apt (a deb-src line for Debian bookworm; the machine's own apt sources are
not touched), are unpacked under bench/build/src and built, statically for riscv64 with
the Debian cross compiler and natively with gcc, into bench/build/real. Nothing of it is
committed (bench/build is ignored); a second bench run reuses the binaries.

Needs: apt-get and dpkg-source (dpkg-dev), tclsh (the sqlite3 amalgamation is generated
by its build), make, gcc, riscv64-linux-gnu-gcc.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE.parent / "build"
APT = BUILD / "apt"
SOURCES = BUILD / "src"
OUT = BUILD / "real"
DEB_SRC = ("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
           "http://deb.debian.org/debian bookworm main\n")
TARGETS = {"x86_64": ("gcc", []), "riscv64": ("riscv64-linux-gnu-gcc", ["-static"])}


@dataclass(frozen=True, slots=True)
class RealProgram:
    name: str
    package: str  # the Debian source package
    build: Callable[[Path, str, str, list[str], Path], None]  # (source, target, cc, ldflags, out)
    args: Callable[[bool], list[str]]  # command-line arguments (small: tiny inputs)
    # Output lines may carry timings: compared after this (bytes -> bytes).
    normalize: Callable[[bytes], bytes] = lambda out: out


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed:\n{result.stdout[-1500:]}"
                 f"{result.stderr[-1500:]}")


def _apt_options() -> list[str]:
    return ["-o", f"Dir::Etc::SourceList={APT / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={APT / 'lists'}",
            "-o", f"Dir::Cache={APT / 'cache'}",
            "-o", "APT::Sandbox::User=root"]


def source_dir(package: str) -> Path:
    """The unpacked Debian source of ``package`` (fetched with apt-get source once)."""
    found = [d for d in SOURCES.glob(f"{package}-*") if d.is_dir()]
    if found:
        return found[0]
    for tool in ("apt-get", "dpkg-source"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (needed to fetch {package}'s Debian source)")
    (APT / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (APT / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (APT / "sources.list").write_text(DEB_SRC)
    if not any((APT / "lists").glob("*Sources*")):
        _run(["apt-get", *_apt_options(), "update"])
    SOURCES.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", *_apt_options(), "source", package], cwd=SOURCES)
    found = [d for d in SOURCES.glob(f"{package}-*") if d.is_dir()]
    if not found:
        sys.exit(f"bench: apt-get source {package} unpacked nothing under {SOURCES}")
    return found[0]


def binary(program: RealProgram, target: str) -> Path:
    """The program built for ``target`` (x86_64 or riscv64), built now if missing."""
    out = OUT / f"{program.name}.{target}"
    if out.exists():
        return out
    src = source_dir(program.package)
    cc, ldflags = TARGETS[target]
    if shutil.which(cc) is None:
        sys.exit(f"bench: {cc} not found (run `make setup`)")
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"bench: building {program.name} for {target} from {src.name}", file=sys.stderr,
          flush=True)
    tmp = out.with_suffix(f".{target}.tmp")
    program.build(src, target, cc, ldflags, tmp)
    tmp.rename(out)
    return out


# -- the programs ------------------------------------------------------------------------------

def _build_lua(src: Path, target: str, cc: str, ldflags: list[str], out: Path) -> None:
    # Debian's patched luaconf.h includes a header its build generates (module paths).
    include = OUT / f"lua-include-{target}"
    include.mkdir(parents=True, exist_ok=True)
    (include / "lua5.4-deb-multiarch.h").write_text(
        f'#define DEB_HOST_MULTIARCH "{target}-linux-gnu"\n')
    sources = sorted(str(p) for p in (src / "src").glob("*.c") if p.name != "luac.c")
    _run([cc, "-O2", "-std=gnu99", f"-I{include}", "-DLUA_COMPAT_5_3", "-DLUA_USE_POSIX",
          *ldflags, "-o", str(out), *sources, "-lm"])


def _build_speedtest1(src: Path, target: str, cc: str, ldflags: list[str], out: Path) -> None:
    amalgamation = src / "bld" / "sqlite3.c"
    if not amalgamation.exists():
        if shutil.which("tclsh") is None:
            sys.exit("bench: tclsh not found (apt-get install tcl): sqlite3's build "
                     "generates its amalgamation with it")
        (src / "bld").mkdir(exist_ok=True)
        _run(["../configure", "--disable-tcl"], cwd=src / "bld")
        _run(["make", "sqlite3.c"], cwd=src / "bld")
    _run([cc, "-O2", "-DSQLITE_OMIT_LOAD_EXTENSION", "-DSQLITE_THREADSAFE=0",
          f"-I{src / 'bld'}", *ldflags, "-o", str(out), str(src / "test" / "speedtest1.c"),
          str(amalgamation), "-lm"])


def _build_zstd(src: Path, target: str, cc: str, ldflags: list[str], out: Path) -> None:
    tree = OUT / f"zstd-{target}"  # zstd builds in its tree: one copy per target
    if not tree.exists():
        shutil.copytree(src, tree, symlinks=True)
    _run(["make", "-C", str(tree / "programs"), "zstd", f"CC={cc}",
          f"LDFLAGS={' '.join(ldflags)}", "HAVE_ZLIB=0", "HAVE_LZMA=0", "HAVE_LZ4=0",
          "HAVE_THREAD=0", "-j2"])
    shutil.copy(tree / "programs" / "zstd", out)


def zstd_input(small: bool) -> Path:
    """Deterministic, compressible text: words from a fixed vocabulary picked by an
    LCG (4 MiB; 128 KiB small)."""
    size = (128 << 10) if small else (4 << 20)
    path = OUT / f"zstd-input-{size}.txt"
    if path.exists():
        return path
    words = ("emulator translation block region cache guest host register memory page "
             "branch lookup compile native code tier hot cold warm exit chain").split()
    seed, out, length = 12345, [], 0
    while length < size:
        seed = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        word = words[(seed >> 33) % len(words)]
        sep = "\n" if (seed >> 20) % 11 == 0 else " "
        out.append(word + sep)
        length += len(word) + 1
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(out)[:size])
    return path


_TIMING = re.compile(rb"\s+[0-9]+\.[0-9]+s$", re.MULTILINE)

PROGRAMS = [
    RealProgram("lua", "lua5.4", _build_lua,
                lambda small: [str(HERE / "bench.lua"), "1" if small else "32"]),
    RealProgram("speedtest1", "sqlite3", _build_speedtest1,
                lambda small: ["--size", "1" if small else "20", "--memdb"],
                lambda out: _TIMING.sub(b"", out)),
    RealProgram("zstd", "libzstd", _build_zstd,
                lambda small: ["-q", "-c", "-9", str(zstd_input(small))]),
]
