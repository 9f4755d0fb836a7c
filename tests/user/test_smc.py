"""Self-modifying code under many rewrites: the code as it is now always runs, also when
the content memo (TbCache._memo_take) takes back an earlier translation of bytes that
came back — never for other bytes, the same bytes at another pc, or a block of which
one instruction (one byte) changed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.user.support import (
    TEST_ENV,
    assert_same,
    build,
    fresh_dir,
    needs_cc,
    needs_qemu,
    run_llvmtcg,
    run_qemu,
)

pytestmark = [needs_cc, needs_qemu]


def _stats(path: Path) -> dict:
    (line,) = path.read_text().splitlines()
    return json.loads(line)


def test_code_rewritten_back_and_forth_runs_as_it_is_now(guest_build, tmp_path):
    prog = build(guest_build, "smc_memo.c", "static")
    stats = tmp_path / "stats.json"
    env = {**TEST_ENV, "LLVMTCG_STATS": str(stats),
           "LLVMTCG_CACHE_DIR": str(tmp_path / "cache")}
    rounds = "300"
    ours = run_llvmtcg(prog, [rounds], cwd=fresh_dir(tmp_path, "ours"), env=env)
    reference = run_qemu(prog, [rounds], cwd=fresh_dir(tmp_path, "qemu"))
    assert_same(ours, reference, "smc_memo")
    assert ours.stdout.count(b"\n") == 5
    tb = _stats(stats)["tb"]
    # Toggled, partly rewritten and moved code comes back every round or two: most of
    # those misses are memo hits (~3 a round), the fresh bytes never are.
    assert tb["memo_hits"] >= 2 * int(rounds), tb
    assert tb["baseline_blocks"] >= int(rounds), tb  # (the fresh code: translated)


def test_the_memo_is_not_used_while_translations_are_logged(guest_build, tmp_path):
    # (-d in_asm shows every translation: a memo hit would hide one)
    prog = build(guest_build, "smc_memo.c", "static")
    stats = tmp_path / "stats.json"
    env = {**TEST_ENV, "LLVMTCG_STATS": str(stats)}
    log = tmp_path / "log.txt"
    ours = run_llvmtcg(prog, ["20"], options=["-d", "in_asm", "-D", str(log)],
                       cwd=fresh_dir(tmp_path, "ours"), env=env)
    reference = run_qemu(prog, ["20"], cwd=fresh_dir(tmp_path, "qemu"))
    assert_same(ours, reference, "smc_memo -d in_asm")
    assert _stats(stats)["tb"]["memo_hits"] == 0
