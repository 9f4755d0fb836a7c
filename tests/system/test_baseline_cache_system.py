"""System mode keeps baseline blocks across boots (runtime/native/baseline_cache.py):
a second run of the same bare-metal programs (M, S and U mode, paging, code rewritten
and reached through an alias) places its stored blocks and computes what the first
run did. Blocks are keyed by virtual pc, the flags (privilege, MMU state) and the guest
bytes (fetched when the block is emitted), not by physical page: the same code loaded
on another physical page is placed there."""

from __future__ import annotations

from pathlib import Path

import pytest

from llvmtcg.options import RuntimeOptions
from llvmtcg.system import SYSTEM_OPTIONS
from tests.system import test_riscv_system as bare
from tests.system.test_riscv_system import MiniMachine, build

pytestmark = bare.pytestmark


def boot(image: bytes, options: RuntimeOptions) -> tuple[int, list[int], dict, dict]:
    """Run ``image`` on a MiniMachine whose CPU has ``options``; (exit code, results,
    block cache counters, translation counters), the blocks saved."""
    machine = MiniMachine(image, options)
    code, _ = machine.run()
    cpu = machine.cpu.cpu
    cpu.save_translations()
    cache = cpu.tbs.baseline_cache
    return code, machine.results(16), dict(cache.stats), dict(cpu.tbs.stats)


@pytest.mark.parametrize("program", ["s_paging", "m_traps", "u_mode"])
def test_a_second_boot_places_its_blocks_and_computes_the_same(
        program: str, tmp_path: Path) -> None:
    image = build(program, tmp_path)
    options = RuntimeOptions(**{**{f: getattr(SYSTEM_OPTIONS, f) for f in
                                   ("hot_threshold", "flat_memory")}},
                             cache_dir=tmp_path / "cache", program=program)
    code1, results1, first, tb1 = boot(image, options)
    assert code1 == 0 and first["stored"] > 0 and first["hits"] == 0
    code2, results2, second, tb2 = boot(image, options)
    assert (code2, results2) == (code1, results1)
    assert second["hits"] >= 0.8 * tb1["baseline_blocks"]
    assert tb2["baseline_blocks"] <= tb1["baseline_blocks"] - second["hits"] + 8


PARAM = 0x8001_1000
CODE_PAGES = 0x8004_0000
SNIPPET = 0x14000  # (its virtual page)


def boot_moved(image: bytes, options: RuntimeOptions, page: int, second: int = 0
               ) -> tuple[int, list[int], dict, list[int], list[int]]:
    """Run s_moved with its code on physical page CODE_PAGES + ``page`` pages (and
    ``second`` as its second instruction, if not 0); (exit code, results, block cache
    counters, pcs on the code's page emitted, physical pcs of the blocks there at the
    end), the blocks saved."""
    machine = MiniMachine(image, options)
    machine.memory.write(PARAM, page.to_bytes(8, "little") + second.to_bytes(8, "little"))
    tbs = machine.cpu.cpu.tbs
    emitted = []
    install = tbs._install_baseline

    def record(block, *args):  # noqa: ANN001, ANN202
        if block.pc >> 12 == SNIPPET >> 12:
            emitted.append(block.pc)
        return install(block, *args)

    tbs._install_baseline = record
    code, _ = machine.run()
    phys = sorted(tb.phys_pc for tb in tbs.blocks() if tb.pc >> 12 == SNIPPET >> 12)
    machine.cpu.cpu.save_translations()
    return code, machine.results(3), dict(tbs.baseline_cache.stats), emitted, phys


def test_code_moved_to_another_physical_page_places_its_stored_blocks(
        tmp_path: Path) -> None:
    # Blocks are keyed by virtual pc, flags and bytes: the same code on another
    # physical page hits (its blocks tracked at the new page: the rewrite through the
    # alias invalidates them), other bytes there never do. The first version of the
    # code was invalidated (rewritten) after it ran: stored all the same.
    image = build("s_moved", tmp_path)
    options = RuntimeOptions(**{**{f: getattr(SYSTEM_OPTIONS, f) for f in
                                   ("hot_threshold", "flat_memory")}},
                             cache_dir=tmp_path / "cache", program="s_moved")
    code, results, stats, emitted, phys = boot_moved(image, options, page=1)
    assert (code, results) == (0, [3000, 70, 9])
    assert stats["hits"] == 0 and emitted and stats["stored"] > 0
    assert all(CODE_PAGES + 0x1000 <= p < CODE_PAGES + 0x2000 for p in phys)
    # The same code on another physical page: every block there placed, none emitted.
    code, results, stats, emitted, phys = boot_moved(image, options, page=3)
    assert (code, results) == (0, [3000, 70, 9])
    assert emitted == [] and stats["hits"] > 0 and stats["saves"] == 0
    assert phys and all(CODE_PAGES + 0x3000 <= p < CODE_PAGES + 0x4000 for p in phys)
    # Other bytes at the same virtual pc (addi a0, a0, 5): the stored block is stale.
    code, results, stats, emitted, _ = boot_moved(image, options, page=2,
                                                  second=0x00550513)
    assert (code, results) == (0, [5000, 70, 9])
    assert SNIPPET in emitted and stats["stale"] >= 1
