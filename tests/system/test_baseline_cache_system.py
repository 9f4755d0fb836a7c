"""System mode keeps baseline blocks across boots (runtime/native/baseline_cache.py):
a second run of the same bare-metal programs (M, S and U mode, paging, code rewritten
and reached through an alias) places its stored blocks and computes what the first
run did. Blocks are keyed by virtual pc, the flags (privilege, MMU state) and the guest
bytes, which are read back through the blocks' physical ranges when saving."""

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
