"""Bounds on what running costs beyond the guest itself: memory under self-modifying
code, and a persistent cache that stops compiling once it holds a program's hot code
(bench/programs: smc.c, hashtable.c)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "bench" / "programs"

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("riscv64-linux-gnu-gcc", "qemu-riscv64")),
    reason="needs riscv64-linux-gnu-gcc and qemu-riscv64 (make setup)")


def build(name: str, out_dir: Path) -> Path:
    out = out_dir / f"{name}.riscv64"
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-o", str(out),
                    str(PROGRAMS / f"{name}.c"), "-lm"], check=True)
    return out


def peak_rss_kb(prog: Path, *args: str, env: dict[str, str]) -> tuple[int, bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "llvmtcg.user", str(prog), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env})
    # wait4 on the pid: this child's own rusage (RUSAGE_CHILDREN is a maximum over all)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return usage.ru_maxrss, out


def test_memory_stays_flat_while_code_is_rewritten(tmp_path: Path) -> None:
    """Each rewrite invalidates the old translation of the function and translates the
    new one; what is kept per retired block must not add up (the LLJIT-era runtime
    grew ~11.6 KB per rewrite, 11 MB over the runs below)."""
    smc = build("smc", tmp_path)
    env = {"LLVMTCG_CACHE_DIR": str(tmp_path / "cache")}
    few, out_few = peak_rss_kb(smc, "100", env=env)
    many, out_many = peak_rss_kb(smc, "1100", env=env)
    assert out_few == subprocess.run(["qemu-riscv64", str(smc), "100"], capture_output=True,
                                     check=True).stdout
    assert out_many.startswith(b"smc 1100 rewrites x1 calls: ")
    assert (many - few) * 1024 / 1000 < 8192, f"{few} KiB -> {many} KiB"


def test_rewritten_code_is_not_stored_run_after_run(tmp_path: Path) -> None:
    """Runs of the rewrite loop with other counts leave other code at the rewritten
    pc at the end: none of its versions goes to the persistent cache (each was compared
    at every later miss there, and each run wrote the file again), and every output is
    qemu's."""
    smc = build("smc", tmp_path)
    stats = tmp_path / "stats.json"
    env = {"LLVMTCG_CACHE_DIR": str(tmp_path / "cache"), "LLVMTCG_STATS": str(stats)}
    for n in ("300", "400", "500"):
        out = peak_rss_kb(smc, n, env=env)[1]
        assert out == subprocess.run(["qemu-riscv64", str(smc), n], capture_output=True,
                                     check=True).stdout
    runs = [json.loads(line)["baseline_cache"] for line in stats.read_text().splitlines()]
    assert runs[0]["saves"] == 1
    for later in runs[1:]:
        assert later["saves"] == 0 and later["stale"] == 0, runs
        assert later["hits"] == later["file_blocks"] == runs[1]["file_blocks"], runs


@pytest.mark.slow  # three runs with background compiles: a minute or more when loaded
def test_a_second_warm_run_compiles_no_region(tmp_path: Path) -> None:
    """Run 1 fills the cache, run 2 may add regions its own timing formed; run 3 finds
    every region it needs there, and compiles nothing."""
    prog = build("hashtable", tmp_path)
    stats = tmp_path / "stats.json"
    env = {"LLVMTCG_CACHE_DIR": str(tmp_path / "cache"), "LLVMTCG_STATS": str(stats)}
    # (1M operations, ~1 s: long enough that the first region compile, which imports
    # and initialises llvmlite on the compile thread, finishes before the program does;
    # a run of 0.3 s now ends first and compiles nothing at all.)
    outputs = {peak_rss_kb(prog, "1000000", env=env)[1] for _ in range(3)}
    assert len(outputs) == 1
    runs = [json.loads(line)["tier"] for line in stats.read_text().splitlines()]
    assert runs[0]["regions_compiled"] >= 1
    assert runs[2]["regions_compiled"] == 0 and runs[2]["regions_loaded"] >= 1
