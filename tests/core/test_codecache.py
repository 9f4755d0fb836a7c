"""The persistent code cache: hits skip translation, bad entries are rebuilt, never run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llvmtcg.ir import ExitReason
from llvmtcg.runtime.codecache import MODULE_PREFIX, CachedHotRegion, CodeCache
from tests.core.support import CODE, HandFrontend, make_cpu
from tests.core.test_runtime import counting_loop

ROOT = Path(__file__).resolve().parents[2]


def run_loop(cache_dir: Path, code: bytes = b"\x13\0\0\0" * 4, **kwargs):
    fe = HandFrontend()
    counting_loop(fe)
    # The code cache stores LLVM-compiled blocks: the LLVM block tier.
    cpu = make_cpu(fe, cache_dir=cache_dir, baseline=False, **kwargs)
    cpu.memory.protect(CODE, 0x1000, 7)
    cpu.memory.write(CODE, code)
    cpu.state.set("r", 1000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 1000
    return fe, cpu


def entries(cache_dir: Path) -> list[Path]:
    """The entries of guest code (not the modules every CPU keeps: its entry
    trampoline and thunks)."""
    return [p for p in cache_dir.glob("*/*")
            if not p.name.endswith(".tmp") and not p.name.startswith(MODULE_PREFIX)]


def test_second_run_links_cached_code_without_translating(tmp_path: Path) -> None:
    fe, cpu = run_loop(tmp_path)
    assert fe.translations == [CODE, CODE + 4]
    assert cpu.tbs.code_cache.stats["stores"] == 1 and len(entries(tmp_path)) == 1
    fe, cpu = run_loop(tmp_path)
    assert fe.translations == []  # frontend, lowering and LLVM all skipped
    assert cpu.tbs.code_cache.stats["hits"] == 1
    assert cpu.jit.stats.get("loaded") == 1
    assert cpu.stats.native_entries == 1  # the cached region came back linked


def test_changed_guest_code_misses(tmp_path: Path) -> None:
    run_loop(tmp_path)
    fe, cpu = run_loop(tmp_path, code=b"\x93\0\0\0" * 4)
    assert fe.translations == [CODE, CODE + 4]
    assert cpu.tbs.code_cache.stats["hits"] == 0
    assert len(entries(tmp_path)) == 2


def test_corrupt_or_truncated_entries_are_ignored_and_rebuilt(tmp_path: Path) -> None:
    run_loop(tmp_path)
    (entry,) = entries(tmp_path)
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped bit inside the object code
    entry.write_bytes(bytes(data))
    fe, cpu = run_loop(tmp_path)
    assert fe.translations == [CODE, CODE + 4]
    assert cpu.tbs.code_cache.stats["corrupt"] == 1
    (entry,) = entries(tmp_path)  # rebuilt
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    fe, cpu = run_loop(tmp_path)
    assert fe.translations == [CODE, CODE + 4]
    fe, _ = run_loop(tmp_path)
    assert fe.translations == []


def test_eviction_bounds_the_cache(tmp_path: Path) -> None:
    for i in range(4):
        run_loop(tmp_path, code=bytes([i]) * 16)
    assert len(entries(tmp_path)) == 4
    cache = CodeCache(tmp_path, "other", max_bytes=1)
    cache.evict()
    assert entries(tmp_path) == [] and cache.stats["evicted"] == 4


def test_concurrent_processes_share_the_cache(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2])\n"
        "from tests.core.test_codecache import run_loop\n"
        "for i in range(6): run_loop(Path(sys.argv[1]), code=bytes([i % 3]) * 16)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(ROOT)])
             for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert 1 <= len(entries(tmp_path)) <= 3 * 3
    fe, _ = run_loop(tmp_path, code=bytes([1]) * 16)
    assert fe.translations == []


def test_hot_regions_are_cached_too(tmp_path: Path) -> None:
    _, cpu = run_loop(tmp_path, hot_threshold=100, tier_sync=True)
    assert cpu.tiering.stats["regions_compiled"] == 1
    assert any(p.name.startswith("r") for p in entries(tmp_path))
    fe, cpu = run_loop(tmp_path, hot_threshold=100, tier_sync=True)
    assert fe.translations == []
    assert cpu.tiering.stats["regions_compiled"] == 0
    assert cpu.tiering.stats["regions_loaded"] == 1 and CODE in cpu.tbs.regions
    # Different bytes in the second block: neither it nor the region matches.
    fe, cpu = run_loop(tmp_path, code=b"\x13\0\0\0\x93\0\0\0" + b"\x13\0\0\0" * 2,
                       hot_threshold=100, tier_sync=True)
    assert cpu.tiering.stats["regions_loaded"] == 0
    assert cpu.tiering.stats["regions_compiled"] == 1


def test_cached_regions_of_one_page_link_together(tmp_path: Path) -> None:
    run_loop(tmp_path, max_region_blocks=1)  # two entries: one per block
    assert len(entries(tmp_path)) == 2
    fe, cpu = run_loop(tmp_path, max_region_blocks=1)
    assert fe.translations == []
    assert cpu.jit.stats["loaded"] == 2 and cpu.jit.stats["loaded_libraries"] == 1
    assert cpu.tbs.lookup(CODE).module is cpu.tbs.lookup(CODE + 4).module


def test_a_lookup_reads_only_the_entry_for_the_code_there_now(tmp_path: Path) -> None:
    """Code rewritten many times at one address leaves many entries for its pc; a
    lookup hashes the code once and reads the one entry named by that digest (reading
    and hashing each entry on every lookup made such programs quadratic)."""
    code = bytearray(16)

    def read(addr: int, size: int) -> bytes:
        return bytes(code[addr - CODE:addr - CODE + size])

    def region(k: int) -> CachedHotRegion:
        return CachedHotRegion(f"rg_{k}", (CODE,), ((CODE, CODE + 16),), {}, (),
                               b"object %d" % k)

    writer = CodeCache(tmp_path, "fp")
    for k in range(300):
        code[:4] = k.to_bytes(4, "little")
        writer.store_hot_region(region(k), read)
    cache = CodeCache(tmp_path, "fp")  # another process's view of the same directory
    for n, k in enumerate((123, 7, 299, 0), start=1):
        code[:4] = k.to_bytes(4, "little")
        assert cache.lookup_hot_region(CODE, read).object == b"object %d" % k
        assert cache.stats["reads"] == n
    code[:4] = (300).to_bytes(4, "little")  # code no entry was made for
    assert cache.lookup_hot_region(CODE, read) is None
    assert cache.stats["reads"] == 4 and cache.stats["misses"] == 1


def _source_tree(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "a.py").write_text("A = 1\n")
    (root / "pkg" / "b.py").write_text("B = 2\n")
    (root / "pkg" / "sub" / "c.py").write_text("C = 3\n")
    (root / "pkg" / "notes.txt").write_text("not source\n")


def test_the_source_digest_memo_gives_the_hash_of_the_files(tmp_path: Path,
                                                            monkeypatch) -> None:
    import os

    from llvmtcg.runtime.codecache import SOURCE_MEMO_PREFIX, tree_digest

    root, memo_dir = tmp_path / "src", tmp_path / "memo"
    _source_tree(root)
    plain = tree_digest(root, None)
    assert tree_digest(root, memo_dir) == plain
    memos = list(memo_dir.glob(SOURCE_MEMO_PREFIX + "*"))
    assert len(memos) == 1 and memos[0].read_text() == plain
    # Unchanged files: the memo answers, no file is read.
    read_bytes = Path.read_bytes

    def no_source(path: Path) -> bytes:
        assert path.suffix != ".py", f"{path} read"
        return read_bytes(path)

    with monkeypatch.context() as m:
        m.setattr(Path, "read_bytes", no_source)
        assert tree_digest(root, memo_dir) == plain
    # A changed file (new size and time) is hashed again; the old memo goes.
    b = root / "pkg" / "b.py"
    b.write_text("B = 22\n")
    changed = tree_digest(root, memo_dir)
    assert changed == tree_digest(root, None) != plain
    assert [p.read_text() for p in memo_dir.glob(SOURCE_MEMO_PREFIX + "*")] == [changed]
    # Same size, another modification time: hashed again too.
    b.write_text("B = 23\n")
    os.utime(b, ns=(1, 1))
    assert tree_digest(root, memo_dir) == tree_digest(root, None) != changed
    # A new file, and text files, count as the hash does (only *.py).
    (root / "pkg" / "notes.txt").write_text("still not source\n")
    assert tree_digest(root, memo_dir) == tree_digest(root, None)
    (root / "pkg" / "sub" / "d.py").write_text("D = 4\n")
    assert tree_digest(root, memo_dir) == tree_digest(root, None)


def test_a_damaged_or_unwritable_source_digest_memo_is_not_trusted(tmp_path: Path) -> None:
    from llvmtcg.runtime.codecache import SOURCE_MEMO_PREFIX, tree_digest

    root, memo_dir = tmp_path / "src", tmp_path / "memo"
    _source_tree(root)
    plain = tree_digest(root, None)
    tree_digest(root, memo_dir)
    (memo,) = memo_dir.glob(SOURCE_MEMO_PREFIX + "*")
    memo.write_text("0" * 63 + "x")
    assert tree_digest(root, memo_dir) == plain
    memo.write_text("")
    assert tree_digest(root, memo_dir) == plain
    # A memo directory that cannot be made (a file is in the way): hashed every time.
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    assert tree_digest(root, blocked / "memo") == plain
