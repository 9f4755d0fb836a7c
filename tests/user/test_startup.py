"""Start-up without LLVM: a run whose code the code cache already holds never imports
llvmlite (its code is loaded by our own loader; only compiling imports LLVM)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.user.support import REPO, TEST_ENV, build, needs_cc


def run_importing(prog: Path, cache_dir: Path, **env_vars: str) -> tuple[bytes, set[str]]:
    """Run ``prog`` under llvmtcg-user; its stdout and the modules the emulator imported
    (from ``python -X importtime``, which lists every import on stderr)."""
    # Hot regions compile on the run loop's thread and are installed (and cached) at
    # once, so a second run finds every region the first one made.
    env = {**TEST_ENV, "PYTHONPATH": str(REPO), "LLVMTCG_TIER_SYNC": "1", **env_vars}
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "llvmtcg.user",
                        "-cache-dir", str(cache_dir), str(prog)],
                       env=env, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    modules = {line.split("|")[-1].strip() for line in r.stderr.decode().splitlines()
               if line.startswith("import time:") and "|" in line}
    return r.stdout, modules


@needs_cc
def test_a_warm_run_imports_no_llvmlite(guest_build: Path, tmp_path: Path) -> None:
    prog = build(guest_build, "hello.c", "static")
    # (a stencil directory of its own: the translator's objects kept there would spare
    # the cold run LLVM, see the next test)
    stencils = str(tmp_path / "stencils")
    out, cold = run_importing(prog, tmp_path, LLVMTCG_STENCIL_DIR=stencils)
    assert "llvmlite.binding" in cold  # the cold run compiled: LLVM was needed
    assert out == b"hello, world from riscv64\n"
    out, warm = run_importing(prog, tmp_path, LLVMTCG_STENCIL_DIR=stencils)
    assert out == b"hello, world from riscv64\n"
    assert "llvmtcg.runtime.jit" in warm  # (the list is complete)
    assert not {m for m in warm if m == "llvmlite" or m.startswith("llvmlite.")}


@needs_cc
def test_an_empty_code_cache_with_a_warm_stencil_directory_imports_no_llvmlite(
        guest_build: Path, tmp_path: Path) -> None:
    # The translator-only objects (memory accessors, entry glue, signal catcher) are
    # kept with the stencil library too, so a fresh code cache needs no LLVM (until
    # code turns hot: hot regions off here).
    prog = build(guest_build, "hello.c", "static")
    stencils = {"LLVMTCG_STENCIL_DIR": str(tmp_path / "stencils"),
                "LLVMTCG_HOT_THRESHOLD": "0"}
    out, first = run_importing(prog, tmp_path / "cache1", **stencils)
    assert out == b"hello, world from riscv64\n" and "llvmlite.binding" in first
    out, second = run_importing(prog, tmp_path / "cache2", **stencils)
    assert out == b"hello, world from riscv64\n"
    assert "llvmtcg.runtime.jit" in second  # (the list is complete)
    assert not {m for m in second if m == "llvmlite" or m.startswith("llvmlite.")}
    assert any(p.name.startswith("xacc.") for p in (tmp_path / "cache2").glob("*/*"))


@needs_cc
def test_a_warm_run_imports_only_what_running_needs(guest_build: Path, tmp_path: Path) -> None:
    # A warm run decodes no instruction (its blocks are placed from the block cache),
    # so neither the decode tables nor the decode tree machinery are imported; socket
    # is for the gdb stub alone (-g); the binfmt_misc tool is not needed to read the
    # auxiliary vector (llvmtcg.user.auxv); nothing is translated or lowered, so neither
    # the RISC-V frontend nor the lowering's rule table is imported. Hot regions off: a
    # region that is built (when formation differs from the first run's) translates its
    # blocks again.
    prog = build(guest_build, "hello.c", "static")
    env = {"LLVMTCG_STENCIL_DIR": str(tmp_path / "stencils"), "LLVMTCG_HOT_THRESHOLD": "0"}
    run_importing(prog, tmp_path, **env)
    out, warm = run_importing(prog, tmp_path, **env)
    assert out == b"hello, world from riscv64\n"
    assert "llvmtcg.runtime.run_loop" in warm  # (the list is complete)
    lazy = {"socket", "llvmtcg.user.gdb", "llvmtcg.gdbstub", "llvmtcg.frontends.decodetree",
            "llvmtcg.frontends.riscv.insn32", "llvmtcg.frontends.riscv.insn16",
            "llvmtcg.frontends.riscv.decode_tables", "llvmtcg.user.binfmt",
            "llvmtcg.ir.lower.table", "llvmtcg.ir.lower.rule",
            "llvmtcg.frontends.riscv.frontend", "llvmtcg.ir.recording"}
    assert not lazy & warm


# A program making dataclasses of every kind of generated method, run with the kept
# method code in a file of the test's (argv[1]): it checks what the methods do and
# prints how many method sources it compiled.
_DATACLASSES = '''
import dataclasses, sys
from dataclasses import dataclass, field
from llvmtcg import dataclass_code
dataclass_code.install(sys.argv[1])

@dataclass(frozen=True, slots=True, order=True)
class Point:
    x: int
    y: int = 2
    tags: tuple = ()

@dataclass(kw_only=True)
class Box:
    items: list = field(default_factory=list)
    label: str = "box"
    def __post_init__(self):
        self.label = self.label.upper()

p, q = Point(1), Point(1, 3)
assert p == Point(1, 2) and p < q and hash(p) == hash(Point(1, 2)) and p != q
assert repr(p) == "Point(x=1, y=2, tags=())"
try:
    p.x = 5
except dataclasses.FrozenInstanceError:
    pass
else:
    raise AssertionError("not frozen")
b, b2 = Box(label="a"), Box()
assert b.label == "A" and b.items == [] and b2.items is not b.items
try:
    Box([])
except TypeError:
    pass
else:
    raise AssertionError("not keyword-only")
# (compiled as dataclasses compiles them: the annotations are objects, not strings)
assert Point.__init__.__annotations__ == {"x": int, "y": int, "tags": tuple,
                                          "return": None}
print(dataclass_code.compiled)
dataclass_code.save()
'''


def _make_dataclasses(kept: Path) -> int:
    env = {**TEST_ENV, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", _DATACLASSES, str(kept)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout)


def test_dataclass_methods_are_compiled_once(tmp_path: Path) -> None:
    kept = tmp_path / "methods.marshal"
    assert _make_dataclasses(kept) > 0 and kept.exists()
    written = kept.stat().st_mtime_ns
    assert _make_dataclasses(kept) == 0  # (the same classes, the same methods)
    assert kept.stat().st_mtime_ns == written  # (nothing new: not written again)
    kept.write_bytes(kept.read_bytes()[:100])  # damaged: ignored, then replaced
    assert _make_dataclasses(kept) > 0
    assert _make_dataclasses(kept) == 0


@needs_cc
def test_a_warm_run_compiles_no_dataclass_method(guest_build: Path, tmp_path: Path) -> None:
    # The generated methods of the dataclasses llvmtcg-user makes are kept by the first
    # run (llvmtcg/dataclass_code.py), so the second compiles none of them.
    prog = build(guest_build, "hello.c", "static")
    stats = tmp_path / "stats"
    env = {"LLVMTCG_STENCIL_DIR": str(tmp_path / "stencils"), "LLVMTCG_HOT_THRESHOLD": "0",
           "LLVMTCG_STATS": str(stats)}
    run_importing(prog, tmp_path, **env)
    out, _ = run_importing(prog, tmp_path, **env)
    assert out == b"hello, world from riscv64\n"
    import json

    first, second = (json.loads(line) for line in stats.read_text().splitlines())
    assert second["dataclass_methods_compiled"] == 0


def test_the_runtime_is_imported_with_the_collector_paused() -> None:
    # Importing the runtime makes tens of thousands of long-lived objects: with the
    # collector running, ~20 young collections scan them (cli.main pauses it first).
    code = (
        "import gc, sys\n"
        "from llvmtcg.user import cli\n"
        "seen = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and seen.append(1))\n"
        "try:\n"
        "    cli.main(['-version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'llvmtcg.runtime.run_loop' in sys.modules\n"
        "print(len(seen))\n")
    r = subprocess.run([sys.executable, "-c", code], env={**TEST_ENV, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == "0"
