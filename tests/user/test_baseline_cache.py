"""llvmtcg-user keeps a program's baseline blocks (runtime/native/baseline_cache.py):
the second run of a program installs them instead of translating, the file is shared
safely by processes running at once, and ``-no-cache`` keeps nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llvmtcg.options import default_stencil_dir
from tests.user.support import REPO, SYSROOT, TEST_ENV, build, needs_cc

HELLO = b"hello, world from riscv64\n"


def run_counting(prog: Path, cache: Path, stats: Path, *options: str
                 ) -> subprocess.CompletedProcess:
    """Run ``prog`` with the code cache in ``cache``; its counters are appended to
    ``stats`` (one JSON line per process)."""
    env = {**TEST_ENV, "PYTHONPATH": str(REPO), "LLVMTCG_STATS": str(stats),
           # (the user's stencil library: built once, not by every test)
           "LLVMTCG_STENCIL_DIR": str(default_stencil_dir(os.environ))}
    return subprocess.run([sys.executable, "-m", "llvmtcg.user", "-cache-dir", str(cache),
                           *options, str(prog)], env=env, capture_output=True, timeout=300)


def counters(stats: Path) -> list[dict]:
    return [json.loads(line) for line in stats.read_text().splitlines()]


def block_files(cache: Path) -> list[Path]:
    return list(cache.glob("*/b.*"))


@needs_cc
def test_a_second_run_installs_its_blocks_instead_of_translating(
        guest_build: Path, tmp_path: Path) -> None:
    prog = build(guest_build, "hello.c", "static")
    stats = tmp_path / "stats"
    cold = run_counting(prog, tmp_path / "cache", stats)
    warm = run_counting(prog, tmp_path / "cache", stats)
    for r in (cold, warm):
        assert r.returncode == 0 and r.stdout == HELLO, r.stderr.decode()[-2000:]
    first, second = counters(stats)
    assert first["tb"]["baseline_blocks"] > 300
    assert first["baseline_cache"]["stored"] > 300
    translated = second["tb"]["translated"]
    assert second["baseline_cache"]["hits"] >= 0.95 * translated
    assert second["tb"]["baseline_blocks"] <= 0.02 * translated
    assert second["baseline_cache"]["saves"] == 0  # (nothing new to keep)
    assert len(block_files(tmp_path / "cache")) == 1


@needs_cc
def test_a_dynamically_linked_program_hits_too(guest_build: Path, tmp_path: Path) -> None:
    prog = build(guest_build, "hello.c", "dynamic")
    stats = tmp_path / "stats"
    for _ in range(2):
        r = run_counting(prog, tmp_path / "cache", stats, "-L", SYSROOT)
        assert r.returncode == 0 and r.stdout == HELLO, r.stderr.decode()[-2000:]
    first, second = counters(stats)
    assert second["baseline_cache"]["hits"] >= 0.9 * first["baseline_cache"]["stored"]


@needs_cc
def test_no_cache_keeps_no_blocks(guest_build: Path, tmp_path: Path) -> None:
    prog = build(guest_build, "hello.c", "static")
    r = run_counting(prog, tmp_path / "cache", tmp_path / "stats", "-no-cache")
    assert r.returncode == 0 and r.stdout == HELLO
    assert not block_files(tmp_path / "cache")
    assert "baseline_cache" not in counters(tmp_path / "stats")[0]


@needs_cc
def test_processes_writing_the_file_at_once_leave_one_whole_file(
        guest_build: Path, tmp_path: Path) -> None:
    prog = build(guest_build, "hello.c", "static")
    cache, stats = tmp_path / "cache", tmp_path / "stats"
    env = {**TEST_ENV, "PYTHONPATH": str(REPO), "LLVMTCG_STATS": str(stats),
           "LLVMTCG_STENCIL_DIR": str(default_stencil_dir(os.environ))}
    command = [sys.executable, "-m", "llvmtcg.user", "-cache-dir", str(cache), str(prog)]
    running = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE) for _ in range(4)]
    for p in running:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and out == HELLO, err.decode()[-2000:]
    assert len(block_files(cache)) == 1
    assert not list(cache.glob("*/*.tmp"))
    r = run_counting(prog, cache, stats)
    assert r.returncode == 0 and r.stdout == HELLO
    last = counters(stats)[-1]["baseline_cache"]
    assert last["corrupt"] == 0 and last["hits"] >= 0.95 * last["file_blocks"]
