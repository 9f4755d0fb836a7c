"""The baseline block cache (runtime/native/baseline_cache.py): a later run installs the
stored blocks of a program instead of translating them, in another arena (other
addresses: every relocation must land), and never runs a block whose guest bytes
changed or whose file is damaged.

Each "run" here is an Emulator of its own (its own arena, import cells and block data,
so stored code is relocated as in a new process); tests/user/test_baseline_cache.py
runs llvmtcg-user processes.
"""

from __future__ import annotations

import ctypes
import json
import struct
from pathlib import Path

import pytest

from llvmtcg.emulator import Emulator
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.native.baseline_cache import (
    FILE_PREFIX,
    FORMAT_VERSION,
    MAGIC,
    MAX_VERSIONS,
    REWRITTEN_LIMIT,
    BaselineBlockCache,
    _find_values,
    _pool_references,
    _refers_to,
)

CODE = 0x10000
LOOP = [
    0x00000513,  # li a0, 0
    0x00350513,  # loop: addi a0, a0, 3
    0xFFF58593,  # addi a1, a1, -1
    0xFE059CE3,  # bnez a1, loop
    0x00092637,  # lui a2, 0x92       (li a2, 0x123456789: a 64-bit constant)
    0xA2B6061B,  # addiw a2, a2, -1493
    0x00D61613,  # slli a2, a2, 13
    0x78960613,  # addi a2, a2, 1929
    0x00000013,  # end: nop
]
END = CODE + 4 * (len(LOOP) - 1)


def code(step: int = 3) -> bytes:
    words = list(LOOP)
    words[1] = (step << 20) | 0x00050513  # addi a0, a0, step
    return struct.pack(f"<{len(words)}I", *words)


def run(cache: Path, program: str | None = "prog", step: int = 3, n: int = 1000,
        hot_threshold: int = 0) -> tuple[int, int, dict[str, float]]:
    """Run the loop in a fresh emulator; (a0, a2, the block cache's counters)."""
    options = RuntimeOptions(tier_sync=True, hot_threshold=hot_threshold, cache_dir=cache,
                             program=program)
    with Emulator("riscv64", options=options) as emu:
        emu.mem_map(CODE, 0x1000)
        emu.mem_write(CODE, code(step))
        emu.reg_write("a1", n)
        emu.emu_start(CODE, END)
        block_cache = emu._cpu.tbs.baseline_cache
        a0, a2 = emu.reg_read("a0"), emu.reg_read("a2")
    # (closing the emulator saved the file)
    return a0, a2, dict(block_cache.stats) if block_cache is not None else {}


def block_file(cache: Path) -> Path:
    (path,) = cache.glob(f"*/{FILE_PREFIX}*")
    return path


def test_a_second_run_installs_the_stored_blocks_in_another_arena(tmp_path: Path) -> None:
    # (blocks with HOT counters, which never reach 0 here)
    options = RuntimeOptions(tier_sync=True, hot_threshold=1 << 30, cache_dir=tmp_path,
                             program="prog")
    with Emulator("riscv64", options=options) as first, \
            Emulator("riscv64", options=options) as second:
        for emu in (first, second):
            emu.mem_map(CODE, 0x1000)
            emu.mem_write(CODE, code())
            emu.reg_write("a1", 1000)
        first.emu_start(CODE, END)
        assert first._cpu.save_translations() >= 2
        # The first emulator still holds its arena, import cells and block data, so
        # the second one's are elsewhere: stored code must hold none of the first's.
        second.emu_start(CODE, END)
        assert (second.reg_read("a0"), second.reg_read("a2")) == (3000, 0x123456789)
        stats = second._cpu.tbs.baseline_cache.stats
        assert stats["hits"] >= 2 and stats["stale"] == 0
        assert second._cpu.tbs.stats["baseline_blocks"] == 0  # (nothing emitted)
        firsts = {**first._cpu.tbs.baseline.process_values()}
        for tb in first._cpu.tbs.blocks():
            firsts.update({a: "slot" for a in tb.slots.values()})
            assert tb.counter
            firsts[tb.counter] = "counter"
        firsts.pop(0, None)
        placed = list(second._cpu.tbs.blocks())
        assert placed and first._cpu.arena.code_start != second._cpu.arena.code_start
        for tb in placed:
            assert second._cpu.arena.contains(tb.entry)
            assert _find_values(second._cpu.arena.read(tb.entry, 256), firsts) == []


def test_changed_guest_code_is_a_miss_never_the_stored_block(tmp_path: Path) -> None:
    assert run(tmp_path, step=3)[0] == 3000
    a0, _, stats = run(tmp_path, step=5)
    assert a0 == 5000  # (the stored loop adds 3)
    assert stats["stale"] >= 1
    # Both versions are kept: each hits afterwards.
    assert run(tmp_path, step=3)[0] == 3000
    a0, _, stats = run(tmp_path, step=5)
    assert a0 == 5000 and stats["hits"] >= 2


def _versions(cache: Path, pc: int) -> int:
    """Stored blocks at pc in the program's file."""
    data = block_file(cache).read_bytes()
    _, _, meta_size = struct.unpack_from("<8sII", data)
    count = json.loads(data[16:16 + meta_size])["blocks"]
    table = data[16 + meta_size:16 + meta_size + 20 * count]
    return sum(entry[0] == pc for entry in struct.iter_unpack("<QIII", table))


def test_a_pc_keeps_a_bounded_number_of_versions(tmp_path: Path) -> None:
    # Runs that leave other code at the loop each time: each version compared at every
    # later miss there, so the file keeps MAX_VERSIONS of them, the first ones.
    for step in range(1, MAX_VERSIONS + 3):
        a0, _, stats = run(tmp_path, step=step)
        assert a0 == 1000 * step
    # (the blocks at CODE and CODE + 4 both hold the word that changes)
    assert _versions(tmp_path, CODE) == _versions(tmp_path, CODE + 4) == MAX_VERSIONS
    assert stats["versions_full"] == 2
    assert run(tmp_path, step=1)[2]["hits"] >= 2
    a0, _, stats = run(tmp_path, step=MAX_VERSIONS + 2)  # (not stored: translated)
    assert a0 == 1000 * (MAX_VERSIONS + 2) and stats["hits"] < 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "index"])
def test_a_damaged_file_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    run(tmp_path)
    path = block_file(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        del data[len(data) // 3:]
    elif damage == "empty":
        data = bytearray()
    else:  # a well-formed file (checksum right) whose block table points nowhere
        import hashlib
        import json

        meta = json.dumps({"layout": _layout(tmp_path), "fixed": [], "names": [],
                           "blocks": 1}).encode()
        body = struct.pack("<8sII", MAGIC, FORMAT_VERSION, len(meta)) + meta \
            + struct.pack("<QIII", CODE, 0, 0, 1000)
        data = bytearray(body + hashlib.sha256(body).digest())
    path.write_bytes(bytes(data))
    a0, a2, stats = run(tmp_path)
    assert (a0, a2) == (3000, 0x123456789)
    assert stats["hits"] == 0 and stats["saves"] == 1
    if damage != "empty":
        assert stats["corrupt"] == 1
    assert run(tmp_path)[2]["hits"] >= 2  # (rewritten whole)


def _layout(cache: Path) -> tuple:
    options = RuntimeOptions(tier_sync=True, hot_threshold=0, cache_dir=cache,
                             program="prog")
    with Emulator("riscv64", options=options) as emu:
        return emu._cpu.tbs.baseline.layout_key()


def test_without_a_program_name_or_cache_directory_nothing_is_kept(tmp_path: Path) -> None:
    assert run(tmp_path, program=None)[0] == 3000
    assert not list(tmp_path.glob(f"*/{FILE_PREFIX}*"))


def test_programs_have_files_of_their_own(tmp_path: Path) -> None:
    run(tmp_path, program="one")
    _, _, stats = run(tmp_path, program="two")
    assert stats["hits"] == 0 and stats["file_blocks"] == 0
    assert len(list(tmp_path.glob(f"*/{FILE_PREFIX}*"))) == 2


def test_values_are_found_at_any_offset_and_overlaps_are_refused() -> None:
    a, b = 0x7F12_3456_7000, 0x7F12_3456_8000
    code = b"\x90" * 3 + struct.pack("<Q", a) + b"\x90" + struct.pack("<Q", b)
    assert _find_values(code, {a: "a", b: "b"}) == [(3, "a"), (12, "b")]
    # (a block's own values apart from the process's, found all the same)
    assert _find_values(code, {a: "a"}, {b: "b"}) == [(3, "a"), (12, "b")]
    # Two candidates sharing bytes: which one is real cannot be told.
    overlapping = struct.pack("<Q", a) + struct.pack("<Q", a)[:4]
    c = struct.unpack_from("<Q", overlapping, 4)[0]
    assert _find_values(overlapping, {a: "a", c: "c"}) is None


def test_pc_relative_references_to_constant_pools_are_seen() -> None:
    address, pool = 0x7F00_0000_0000, 0x7F00_0010_0000
    displacement = pool - (address + 2 + 4)  # (a rel32 field at offset 2)
    code = b"\xf2\x0f" + struct.pack("<i", displacement) + b"\x90" * 4
    assert _refers_to(code, address, [(pool - 64, pool + 64)])
    assert not _refers_to(b"\x90" * 10, address, [(pool - 64, pool + 64)])


def test_blocks_invalidated_before_saving_are_not_kept_alive(tmp_path: Path) -> None:
    # Code rewritten and translated again and again at a few pcs: what is kept for the
    # save is the valid blocks and, per (pc, flags), the last invalidated one that ran.
    class Block:
        valid = True
        entry = 0
        slots: dict[int, int] = {}  # noqa: RUF012
        counter = counter_start = 0  # (no HOT counter: counted as run)

        def __init__(self, pc: int) -> None:
            self.pc, self.flags = pc, 0

    class Codegen:
        hot_threshold = 0
        arena = type("Arena", (), {"generation": 0})

    cache = BaselineBlockCache(tmp_path, "fingerprint", "prog", codegen=Codegen())
    kept = []
    for i in range(50_000):
        block = Block(CODE + 4 * (i % 100))
        cache.note_emitted(block, 0, (), i.to_bytes(4, "little"))
        if i % 10:
            block.valid = False  # (rewritten code: retranslated many times)
            cache.note_invalidated(block)
        else:
            kept.append(block)
    assert set(cache._emitted) == set(kept)
    # The 90 pcs invalidated got new bytes hundreds of times: rewritten code, none of
    # their versions is kept, none looked up in the file, none stored from now on.
    assert not cache._freed
    assert not cache.stores(CODE + 4, 0) and cache.stores(CODE, 0)  # (CODE: never)
    # Code invalidated and emitted again with the same bytes, many times (a program's
    # pages reused by its next run under a kernel): not rewritten code; its last
    # version that ran is kept.
    for _ in range(10):
        block = Block(CODE - 4)
        cache.note_emitted(block, 0, (), b"same")
        assert cache.stores(CODE - 4, 0)
        block.valid = False
        cache.note_invalidated(block)
    assert list(cache._freed) == [(CODE - 4, 0)]
    # New bytes after an invalidation, REWRITTEN_LIMIT distinct ones (b"same" was the
    # first): rewritten code.
    for i in range(REWRITTEN_LIMIT - 2):
        block = Block(CODE - 4)
        cache.note_emitted(block, 0, (), i.to_bytes(4, "little"))
        assert cache.stores(CODE - 4, 0) and block in cache._emitted
        block.valid = False
        cache.note_invalidated(block)
        assert cache._freed[(CODE - 4, 0)].guest == i.to_bytes(4, "little")
    block = Block(CODE - 4)
    cache.note_emitted(block, 0, (), b"last")
    assert not cache.stores(CODE - 4, 0) and block not in cache._emitted
    assert not cache._freed


def test_blocks_that_ran_then_were_invalidated_are_stored(tmp_path: Path) -> None:
    # Code freed after it ran (a kernel's init text) is stored all the same: a later
    # run that has the same bytes there places it; one that has others does not.
    hot = 1 << 30  # (blocks with HOT counters: those never entered are not stored)
    options = RuntimeOptions(tier_sync=True, hot_threshold=hot, cache_dir=tmp_path,
                             program="prog")
    with Emulator("riscv64", options=options) as emu:
        emu.mem_map(CODE, 0x1000)
        emu.mem_write(CODE, code())
        emu.reg_write("a1", 1000)
        emu.emu_start(CODE, END)
        emitted = emu._cpu.tbs.stats["baseline_blocks"]
        emu.mem_write(CODE, bytes(len(code())))  # (the code freed: invalidated)
        assert not list(emu._cpu.tbs.blocks())
    assert emitted >= 2
    a0, a2, stats = run(tmp_path, hot_threshold=hot)
    assert (a0, a2) == (3000, 0x123456789)
    assert stats["hits"] == emitted and stats["saves"] == 0  # (nothing new to store)
    a0, _, stats = run(tmp_path, step=5, hot_threshold=hot)
    assert a0 == 5000 and stats["stale"] >= 1


def test_an_arena_reset_copies_nothing_out_and_the_rest_is_stored(tmp_path: Path) -> None:
    # 1,024 blocks (addi a0, a0, 1; j next) in a 64 KiB arena: it is reset on the
    # way. The blocks from before a reset are dropped, not copied out (their constant
    # pools are gone); those after it are stored and placed by the next run.
    words = [0x00150513, 0x0040006F] * 1024  # addi a0, a0, 1; jal zero, +4
    image = struct.pack(f"<{len(words)}I", *words)
    end = CODE + len(image)
    options = RuntimeOptions(tier_sync=True, hot_threshold=0, cache_dir=tmp_path,
                             program="chain", arena_size=1 << 16)
    results = []
    for _ in range(2):
        with Emulator("riscv64", options=options) as emu:
            emu.mem_map(CODE, 0x3000)
            emu.mem_write(CODE, image)
            emu.emu_start(CODE, end)
            tbs = emu._cpu.tbs
            assert emu.reg_read("a0") == 1024
            results.append((tbs.stats["arena_flushes"], tbs.stats["baseline_blocks"],
                            tbs.baseline_cache.stats["hits"], not tbs.baseline_cache._freed))
    (flushes, emitted, hits, nothing_copied), (_, _, hits2, _) = results
    assert flushes >= 1 and hits == 0 and nothing_copied
    assert 0 < hits2 < emitted


def test_a_save_merges_with_what_another_process_saved_meanwhile(tmp_path: Path) -> None:
    options = RuntimeOptions(tier_sync=True, hot_threshold=0, cache_dir=tmp_path,
                             program="prog")
    other = CODE + 0x1000
    with Emulator("riscv64", options=options) as first, \
            Emulator("riscv64", options=options) as second:
        for emu, base in ((first, CODE), (second, other)):
            emu.mem_map(base, 0x1000)
            emu.mem_write(base, code())
            emu.reg_write("a1", 10)
        second.emu_start(other, other + END - CODE)  # (reads the file: none yet)
        first.emu_start(CODE, END)
        first._cpu.save_translations()
        second._cpu.save_translations()  # (the file changed since it was read)
    with Emulator("riscv64", options=options) as third:
        third.mem_map(CODE, 0x2000)
        third.mem_write(CODE, code())
        third.mem_write(other, code())
        for base in (CODE, other):
            third.reg_write("a1", 10)
            third.emu_start(base, base + END - CODE)
            assert third.reg_read("a0") == 30
        assert third._cpu.tbs.stats["baseline_blocks"] == 0  # (both placed)


# A block reaching another on its page through an indirect jump only (no direct exit
# leads there): auipc t0, 0; addi t0, t0, 0x40; jr t0 ... CODE+0x40: addi a0, a0, step.
JUMPER = struct.pack("<3I", 0x00000297, 0x04028293, 0x00028067)
TARGET = CODE + 0x40


def jumper(step: int) -> bytes:
    return struct.pack("<2I", (step << 20) | 0x00050513, 0x00000013)  # addi; nop


def run_jumper(cache: Path, step: int, max_bytes: int | None = None
               ) -> tuple[int, dict[str, float], dict[str, float]]:
    """(a0, the block cache's counters, the translation counters) of a run."""
    options = RuntimeOptions(tier_sync=True, hot_threshold=0, cache_dir=cache,
                             program="prog")
    with Emulator("riscv64", options=options) as emu:
        emu.mem_map(CODE, 0x1000)
        emu.mem_write(CODE, JUMPER)
        emu.mem_write(TARGET, jumper(step))
        emu.reg_write("a0", 0)
        emu.emu_start(CODE, TARGET + 4)
        tbs = emu._cpu.tbs
        if max_bytes is not None:
            tbs.baseline_cache.max_bytes = max_bytes
        a0 = emu.reg_read("a0")
    return a0, dict(tbs.baseline_cache.stats), dict(tbs.stats)


def test_the_first_miss_on_a_page_places_its_stored_blocks_with_unchanged_bytes(
        tmp_path: Path) -> None:
    assert run_jumper(tmp_path, 7)[0] == 7
    a0, stats, tb = run_jumper(tmp_path, 7)
    # Both blocks in one load, though only an indirect jump leads to the second.
    assert a0 == 7 and stats["hits"] == 2 and stats["groups"] == 1
    assert tb["cache_loads"] == 1 and tb["baseline_blocks"] == 0
    # The second block's bytes changed: the page's other block is placed, not it.
    a0, stats, tb = run_jumper(tmp_path, 9)
    assert a0 == 9 and stats["hits"] == 1 and tb["baseline_blocks"] == 1
    assert stats["stale"] == 1  # (its own miss found the stored version stale)


def test_a_save_keeps_the_stored_records_as_they_were(tmp_path: Path) -> None:
    run(tmp_path)
    before = block_file(tmp_path).read_bytes()
    run_jumper(tmp_path, 7)  # (another page: new blocks added to the file)
    after = block_file(tmp_path).read_bytes()
    # The first file's block table and records are in the new one byte for byte.
    meta_size = struct.unpack_from("<8sII", before)[2]
    count = json.loads(before[16:16 + meta_size])["blocks"]
    table_end = 16 + meta_size + struct.calcsize("<QIII") * count
    assert before[16 + meta_size:table_end] in after
    assert before[table_end:-32] in after and len(after) > len(before)
    # Every block of both programs is placed afterwards.
    assert run(tmp_path)[2]["hits"] >= 2
    assert run_jumper(tmp_path, 7)[1]["hits"] == 2


def test_a_full_file_keeps_the_new_blocks_first(tmp_path: Path) -> None:
    # What the jumper's two blocks take in a file (its block table and records).
    run_jumper(tmp_path / "alone", 7)
    alone = block_file(tmp_path / "alone").read_bytes()
    room = len(alone) - 16 - struct.unpack_from("<8sII", alone)[2] - 32
    run(tmp_path)
    # Room for the jumper's blocks only: the loop's (not used in this run) go.
    _, stats, _ = run_jumper(tmp_path, 7, max_bytes=room)
    assert stats["saves"] == 1 and stats["stored"] == 2
    assert run_jumper(tmp_path, 7)[1]["hits"] == 2
    assert run(tmp_path)[2]["hits"] == 0


def test_a_block_needing_a_value_unknown_here_is_emitted_instead(tmp_path: Path) -> None:
    import hashlib

    run(tmp_path)
    path = block_file(tmp_path)
    data = path.read_bytes()
    meta_size = struct.unpack_from("<8sII", data)[2]
    meta = json.loads(data[16:16 + meta_size])
    assert any(not n.startswith("block.") for n in meta["names"])
    # Every process value renamed to a symbol no process has.
    meta["names"] = [n if n.startswith("block.") else f"imp.no_such_symbol_{i}@0"
                     for i, n in enumerate(meta["names"])]
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    body = struct.pack("<8sII", MAGIC, FORMAT_VERSION, len(encoded)) + encoded \
        + data[16 + meta_size:-32]
    path.write_bytes(body + hashlib.sha256(body).digest())
    a0, a2, stats = run(tmp_path)
    assert (a0, a2) == (3000, 0x123456789)
    assert stats["hits"] == 0 and stats["corrupt"] == 0 and stats["saves"] == 1
    assert run(tmp_path)[2]["hits"] >= 2  # (the emitted blocks replaced them)


def test_blocks_placed_together_come_linked_and_unlink_when_invalidated(
        tmp_path: Path) -> None:
    from llvmtcg.runtime.native.baseline import BaselineCodegen

    run(tmp_path)
    options = RuntimeOptions(tier_sync=True, hot_threshold=0, cache_dir=tmp_path,
                             program="prog")
    with Emulator("riscv64", options=options) as emu:
        emu.mem_map(CODE, 0x1000)
        emu.mem_write(CODE, code())
        emu.reg_write("a1", 1000)
        emu.emu_start(CODE, END)
        assert (emu.reg_read("a0"), emu.reg_read("a2")) == (3000, 0x123456789)
        tbs = emu._cpu.tbs
        assert tbs.stats["baseline_blocks"] == 0 and tbs.stats["cache_loads"] == 1
        blocks = {tb.pc: tb for tb in tbs.blocks()}
        body = tbs.baseline.body_offset
        links = [(src, n, dst) for src in blocks.values()
                 for n, dst in src.linked.items()]
        # place() linked the loop to itself and to what follows it (in the chunks it
        # wrote): the slot holds the destination's body and so does the direct jump,
        # and the links are recorded as TbCache.link records them.
        assert len(links) >= 2
        for src, n, dst in links:
            assert dst is blocks[src.direct_targets[n]]
            assert (src, n) in dst.incoming
            slot = src.slots[n]
            assert ctypes.c_uint64.from_address(slot).value == dst.entry + body
            jump = BaselineCodegen.jump_of(slot)
            if jump:
                rel = ctypes.c_int32.from_address(jump).value
                assert jump + 4 + rel == dst.entry + body
        # Invalidating a destination undoes the links into it.
        src, n, dst = links[0]
        tbs.invalidate(dst)
        slot = src.slots[n]
        assert ctypes.c_uint64.from_address(slot).value == 0 and n not in src.linked
        jump = BaselineCodegen.jump_of(slot)
        assert not jump or ctypes.c_int32.from_address(jump).value == 0
        # ...and the code still computes the same.
        emu.reg_write("a1", 10)
        emu.emu_start(CODE, END)
        assert (emu.reg_read("a0"), emu.reg_read("a2")) == (30, 0x123456789)


# Float conversions whose stencils reach constant pools (the conversion bounds).
POOL_CODE = [
    0xF2058053,  # fmv.d.x ft0, a1
    0xC2201553,  # fcvt.l.d a0, ft0, rtz
    0xC2301653,  # fcvt.lu.d a2, ft0, rtz
    0xC20076D3,  # fcvt.w.d a3, ft0
    0xD035F0D3,  # fcvt.s.lu ft1, a1
    0xE0008753,  # fmv.x.w a4, ft1
    0x00000013,  # end: nop
]


def run_pools(cache: Path | None, x: float, flush: bool = False
              ) -> tuple[list[int], dict[str, float], int]:
    """The conversions of x in a fresh emulator: (a0, a2, a3, a4), the block cache's
    counters, blocks emitted. ``flush``: run, flush the arena (the pools placed go
    with it), run again."""
    options = RuntimeOptions(tier_sync=True, hot_threshold=0, cache_dir=cache,
                             program="pools" if cache else None)
    end = CODE + 4 * (len(POOL_CODE) - 1)
    with Emulator("riscv64", options=options) as emu:
        emu.mem_map(CODE, 0x1000)
        emu.mem_write(CODE, struct.pack(f"<{len(POOL_CODE)}I", *POOL_CODE))
        for _ in range(2 if flush else 1):
            emu.reg_write("a1", struct.unpack("<Q", struct.pack("<d", x))[0])
            emu.emu_start(CODE, end)
            if flush:
                emu._cpu.tbs.flush_arena()
                flush = False
        out = [emu.reg_read(r) for r in ("a0", "a2", "a3", "a4")]
        block_cache = emu._cpu.tbs.baseline_cache
        emitted = emu._cpu.tbs.stats["baseline_blocks"]
    return out, dict(block_cache.stats) if block_cache is not None else {}, emitted


@pytest.mark.parametrize("flush", [False, True])
def test_blocks_reaching_constant_pools_are_stored_and_relocated(tmp_path: Path,
                                                                 flush: bool) -> None:
    # The first run stores the block (it reaches the conversions' constant pools
    # PC-relative); later runs place it with those fields aimed at their own copy of
    # the pools, and convert other values as the block emitted afresh does.
    _, stats, _ = run_pools(tmp_path, 1e19)
    assert stats["stored"] == 1 and stats["skipped"] == 0
    for x in (1e19, -2.5, 3.75e9, float("nan"), -1e30, 12345.5):
        expected = run_pools(None, x)[0]
        out, stats, emitted = run_pools(tmp_path, x, flush=flush)
        assert out == expected, x
        assert stats["hits"] == 1 + flush and emitted == 0


def test_pool_references_are_relocations_unless_ambiguous() -> None:
    address, pool = 0x7F00_0000_0000, 0x7F00_0010_0000
    data = bytes(range(32))
    # movsd xmm0, [rip + pool + 16]: F2 0F 10 05 disp32 (ModRM 05: RIP-relative)
    code = b"\xf2\x0f\x10\x05" + struct.pack("<i", pool + 16 - (address + 8)) + b"\x90"
    assert _pool_references(code, address, [(pool, data)]) == [(4, f"pool.{data.hex()}@16")]
    assert _pool_references(b"\x90" * 16, address, [(pool, data)]) == []
    # The same displacement after a ModRM that is not RIP-relative, or aimed just
    # past the pool's bytes: not known to be a reference, so not stored.
    other = b"\xf2\x0f\x10\x04" + code[4:]
    assert _pool_references(other, address, [(pool, data)]) is None
    past = b"\xf2\x0f\x10\x05" + struct.pack("<i", pool + 40 - (address + 8)) + b"\x90"
    assert _pool_references(past, address, [(pool, data)]) is None
    # cmpps xmm0, [rip + pool], 1: the displacement is from the immediate's end, so
    # from the field's end it reaches 1 byte before the pool; but not when that byte
    # is another pool's (which one it is cannot be told).
    cmpps = b"\x0f\xc2\x05" + struct.pack("<i", pool - (address + 8)) + b"\x01"
    assert _pool_references(cmpps, address, [(pool, data)]) == [(3, f"pool.{data.hex()}@-1")]
    assert _pool_references(cmpps, address, [(pool, data), (pool - 32, data)]) is None
