"""Indirect branches in native code (runtime/lookup_table.py): a guest whose calls and
returns all conflict in the jump cache leaves native code only to translate, and code
rewritten behind a function pointer, or called from several threads, runs correctly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.user.support import (
    CC,
    FLAVOURS,
    GUEST_SRC,
    TEST_ENV,
    BuildError,
    assert_same,
    build,
    fresh_dir,
    needs_cc,
    needs_qemu,
    run_llvmtcg,
    run_qemu,
)

pytestmark = [needs_cc, needs_qemu]

# 256 functions 8 KiB apart: every call target and every return site falls on one
# entry of the 4096-entry jump cache, so nearly every indirect branch misses it.
SPREAD = ["-DNGROUPS=1", "-DSPREAD=8192"]


def build_dispatch(build_dir: Path, flavour: str) -> Path:
    out = build_dir / f"dispatch-spread.{flavour}"
    if not out.exists():
        cmd = [CC, "-march=rv64gc", "-mabi=lp64d", *FLAVOURS[flavour], *SPREAD, "-o",
               str(out), str(GUEST_SRC / "dispatch.c")]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"building dispatch.c failed:\n{result.stderr}")
    return out


def run_counted(prog: Path, args: list[str], work: Path) -> tuple[dict, int]:
    """Run under llvmtcg with $LLVMTCG_STATS, check the output against qemu's; the
    counters and the indirect branches the guest reports."""
    stats = work / "stats.jsonl"
    run = run_llvmtcg(prog, args, cwd=work, env={**TEST_ENV, "LLVMTCG_STATS": str(stats)})
    assert_same(run, run_qemu(prog, args, cwd=work), f"dispatch {' '.join(args)}")
    branches = int(run.stdout.decode().split("indirect branches ")[1])
    return json.loads(stats.read_text().splitlines()[0]), branches


def test_lookup_exits_stay_below_one_percent_of_indirect_branches(guest_build, tmp_path):
    prog = build_dispatch(guest_build, "static")
    short, short_branches = run_counted(prog, ["8000", "4"], fresh_dir(tmp_path, "short"))
    long_, long_branches = run_counted(prog, ["24000", "4"], fresh_dir(tmp_path, "long"))
    lookups = long_["exits"].get("LOOKUP", 0)
    # Overall (translation misses included) and once the code is translated: the
    # longer run executes 160k more indirect branches with hardly any more LOOKUP exits.
    assert lookups <= 0.01 * long_branches, long_
    extra = lookups - short["exits"].get("LOOKUP", 0)
    assert extra <= 0.01 * (long_branches - short_branches), (short, long_)
    # The jump cache did miss: the native table served the misses.
    assert long_["lookup"]["hits"] >= 0.5 * long_branches


def test_threads_share_the_lookup_table(guest_build, tmp_path):
    prog = build_dispatch(guest_build, "pthread")
    args = ["2000", "4", "3"]
    ours = run_llvmtcg(prog, args, cwd=fresh_dir(tmp_path, "ours"))
    reference = run_qemu(prog, args, cwd=fresh_dir(tmp_path, "qemu"))
    assert_same(ours, reference, "dispatch with threads")


def test_rewritten_code_behind_a_function_pointer_runs_new_code(guest_build, tmp_path):
    prog = build(guest_build, "smc_pointer.c", "static")
    ours = run_llvmtcg(prog, [], cwd=fresh_dir(tmp_path, "ours"))
    reference = run_qemu(prog, [], cwd=fresh_dir(tmp_path, "qemu"))
    assert_same(ours, reference, "smc_pointer")
    assert ours.stdout.count(b"\n") == 50
