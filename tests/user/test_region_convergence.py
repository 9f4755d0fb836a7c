"""A persistent code cache that converges (runtime/tiering.py, runtime/codecache.py):
the same program forms the same regions, under the same cache keys, in every run, and
a warm run compiles nothing once the cache holds its hot regions."""

from __future__ import annotations

import json
from pathlib import Path

from tests.user.support import (
    TEST_ENV,
    assert_same,
    build,
    needs_cc,
    needs_qemu,
    run_llvmtcg,
    run_qemu,
)

pytestmark = [needs_cc, needs_qemu]

ARGS = ["20"]


def run_counted(prog: Path, cache: Path, work: Path, sync: bool) -> dict:
    """One run (regions compiled at once if ``sync``, else in the background as by
    default): its tiering counters; the output must be qemu's."""
    work.mkdir(parents=True, exist_ok=True)
    stats = work / "stats.jsonl"
    env = {**TEST_ENV, "LLVMTCG_CACHE_DIR": str(cache), "LLVMTCG_STATS": str(stats),
           "LLVMTCG_HOT_THRESHOLD": "200", **({"LLVMTCG_TIER_SYNC": "1"} if sync else {})}
    run = run_llvmtcg(prog, ARGS, env=env)
    assert_same(run, run_qemu(prog, ARGS), f"regions {' '.join(ARGS)}")
    return json.loads(stats.read_text().splitlines()[0])["tier"]


def region_keys(cache: Path) -> set[str]:
    """Names of the hot regions' entries and plans: head pc and digest of guest code."""
    return {p.name for p in cache.glob("*/*") if p.name[:1] in ("r", "p")
            and not p.name.endswith(".tmp")}


def test_the_same_program_forms_the_same_regions(guest_build, tmp_path):
    prog = build(guest_build, "regions.c", "static")
    first = run_counted(prog, tmp_path / "a", tmp_path / "run-a", sync=True)
    second = run_counted(prog, tmp_path / "b", tmp_path / "run-b", sync=True)
    assert first["regions_compiled"] >= 5  # an interpreter, loops, calls: several regions
    assert second["regions_compiled"] == first["regions_compiled"]
    assert region_keys(tmp_path / "a") == region_keys(tmp_path / "b") != set()


def test_a_warm_run_compiles_no_region(guest_build, tmp_path):
    prog = build(guest_build, "regions.c", "static")
    cache = tmp_path / "cache"
    fill = run_counted(prog, cache, tmp_path / "fill", sync=True)
    keys = region_keys(cache)
    for i in range(2):  # background compiles, as by default: nothing left to compile
        warm = run_counted(prog, cache, tmp_path / f"warm{i}", sync=False)
        assert warm["regions_compiled"] == 0, warm
        assert warm["regions_loaded"] == fill["regions_installed"]
        assert warm["region_load_seconds"] < 0.5  # (target 50 ms: a loaded host)
        assert region_keys(cache) == keys
