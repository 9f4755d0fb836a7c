"""Persistent code cache: compiled regions on disk, keyed by the guest bytes they came from.

An entry is one compiled module (a region of blocks). Its file name is
``<first pc>.<digest of the region's guest bytes>`` inside a directory named by the
translator fingerprint (llvmtcg's own source, llvmlite/LLVM, the host CPU, the guest
CPU model and the translation options), so any change to any of those starts a new
cache. On a translation miss at pc, the entries recorded for pc are checked by hashing
the guest bytes their blocks cover *now*; a match is linked without running the
frontend, the lowering or LLVM.

Hot regions of the optimising tier are entries too, named ``r<head pc>.<digest>``:
the region's object, its member blocks and exits; a block turning hot looks there
before compiling. So are the *plans* of hot regions (``p<head pc>.<digest>``: which
blocks a region headed there takes), written when a region is formed, before it is
compiled: a later run forms the same region from them whatever its timing, so what a
run did not get to compile is the same region, and the same cache key, in the next.

Files are written to a temporary name and renamed, so concurrent processes never see
a partial entry; each carries a SHA-256 of its contents, and a corrupt, truncated or
unreadable entry is deleted and rebuilt, never run. The directory is bounded: when it
grows past ``max_bytes`` the least recently used entries are evicted.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from llvmtcg.runtime.cachefile import replace_file
from llvmtcg.runtime.host_fds import EMULATOR_FILES
from llvmtcg.runtime.jit import code_identity

MAGIC = b"LLVMTCG1"
PAGE_SIZE = 4096
_HEADER = struct.Struct("<8sI")  # magic, metadata length
DEFAULT_MAX_BYTES = 256 << 20
# Entries that are not keyed by guest code (memory accessors; modules keyed by their
# IR text) start with these; no region entry does (those start with a hex pc, or "r"
# or "p" and one).
ACCESSOR_PREFIX = "xacc."
MODULE_PREFIX = "xmod."


_source_digest: str | None = None
SOURCE_MEMO_PREFIX = "llvmtcg-source."


def source_digest() -> str:
    """A digest of llvmtcg's own Python source: any code change starts a new cache.

    Reading and hashing the source (~1.7 MB) cost ~5 ms of every start, so the digest is
    remembered in the package's ``__pycache__``, where Python keeps the bytecode, and
    under Python's rule (nothing written with ``sys.dont_write_bytecode``): see
    :func:`tree_digest`."""
    global _source_digest
    if _source_digest is None:
        root = Path(__file__).resolve().parents[1]
        _source_digest = tree_digest(
            root, None if sys.dont_write_bytecode else root / "__pycache__")
    return _source_digest


def tree_digest(root: Path, memo_dir: Path | None) -> str:
    """SHA-256 of every ``*.py`` file under ``root`` (relative paths and contents).

    With ``memo_dir``, the digest is kept there under a key made of every file's path,
    size and modification time in nanoseconds (the staleness rule of ``.pyc`` files,
    with finer times): a later call with the same files reads it instead of hashing
    them again (~1 ms: one ``stat`` per file). A memo that cannot be read or written
    is computed again; older memos of the same tree are removed when a new one is
    written."""
    stamps: list[str] = []
    _stamp_files(str(root), "", stamps)
    stamps.sort()
    memo = None
    if memo_dir is not None:
        key = hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:32]
        memo = memo_dir / (SOURCE_MEMO_PREFIX + key)
        try:
            # (bytes: a text read with an encoding would import its codec module)
            text = memo.read_bytes().decode()
            if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
                return text
        except (OSError, ValueError):
            pass
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    digest = h.hexdigest()
    if memo is not None and replace_file(memo, (digest.encode(),)):
        for old in memo.parent.glob(SOURCE_MEMO_PREFIX + "*"):
            if old != memo:
                with contextlib.suppress(OSError):
                    old.unlink()
    return digest


def _stamp_files(directory: str, prefix: str, out: list[str]) -> None:
    """Append ``path size mtime_ns`` of every ``*.py`` file under ``directory`` (the
    files :func:`tree_digest` hashes; ``os.scandir``: a third of ``rglob``'s cost)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir():
                _stamp_files(entry.path, f"{prefix}{entry.name}/", out)
            elif entry.name.endswith(".py"):
                st = entry.stat()
                out.append(f"{prefix}{entry.name}\0{st.st_size}\0{st.st_mtime_ns}")


def fingerprint(*parts: object) -> str:
    """The cache namespace for this translator, host and guest configuration."""
    h = hashlib.sha256()
    for part in (source_digest(), *code_identity(), *parts):
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class BlockMeta:
    """What the runtime needs to install one compiled block."""

    pc: int
    name: str
    ranges: tuple[tuple[int, int], ...]
    slots: tuple[int, ...]  # exit slot numbers (symbols are slot_symbol(name, n))
    targets: tuple[tuple[int, int], ...]  # (slot, destination pc)
    n_insns: int
    return_pc: int | None = None  # Block.return_pc
    indirect: bool = False  # the block ends with an indirect jump (lookup_and_goto_ptr)

    def to_json(self) -> dict:
        # (dataclasses.asdict deep-copies recursively: 10x slower, on every cold miss)
        return {"pc": self.pc, "name": self.name, "ranges": [list(r) for r in self.ranges],
                "slots": list(self.slots), "targets": [list(t) for t in self.targets],
                "n_insns": self.n_insns, "return_pc": self.return_pc,
                "indirect": self.indirect}

    @classmethod
    def from_json(cls, data: dict) -> BlockMeta:
        return cls(data["pc"], data["name"], tuple(map(tuple, data["ranges"])),
                   tuple(data["slots"]), tuple(map(tuple, data["targets"])), data["n_insns"],
                   data.get("return_pc"), data.get("indirect", False))


@dataclass(frozen=True, slots=True)
class CachedRegion:
    blocks: tuple[BlockMeta, ...]
    accessors: tuple[str, ...]
    object: bytes


@dataclass(frozen=True, slots=True)
class CachedHotRegion:
    """A hot region (one function of the optimising tier over several blocks)."""

    name: str
    members: tuple[int, ...]  # pcs of the member blocks, head first
    ranges: tuple[tuple[int, int], ...]  # the guest bytes of all members
    exits: dict[int, int]  # destination pc -> exit slot number
    accessors: tuple[str, ...]
    object: bytes

    @property
    def pc(self) -> int:
        return self.members[0]


@dataclass(frozen=True, slots=True)
class CachedRegionPlan:
    """How a hot region headed at ``members[0]`` was formed (not compiled code)."""

    members: tuple[int, ...]  # pcs of the member blocks, head first
    ranges: tuple[tuple[int, int], ...]  # the guest bytes of all members
    indirect_targets: tuple[int, ...]  # targets its indirect jumps branch to directly
    # Times a run queued it for a compile (the tiering gives up on a plan queued this
    # often that never became a compiled region: see Tiering.max_plan_queued).
    queued: int = 0

    @property
    def pc(self) -> int:
        return self.members[0]


def region_ranges(blocks: Iterable[BlockMeta]) -> list[tuple[int, int]]:
    return sorted({r for b in blocks for r in b.ranges})


class CodeCache:
    """One process's view of the on-disk cache for one translator fingerprint.

    Args:
        directory: the cache root (see :func:`llvmtcg.options.default_cache_dir`).
        fingerprint: from :func:`fingerprint`.
        max_bytes: evict least recently used entries beyond this total size.
    """

    def __init__(self, directory: Path, fingerprint: str,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(directory)
        self.dir = self.root / fingerprint
        self.max_bytes = max_bytes
        # reads: entries read whole (metadata, object and checksum) by lookups
        self.stats = {"hits": 0, "misses": 0, "stores": 0, "corrupt": 0, "evicted": 0,
                      "reads": 0}
        self._index: dict[tuple[str, int], list[str]] | None = None
        self._pages: dict[int, set[int]] = {}  # guest page -> first pcs of block entries
        self._ranges: dict[str, tuple[tuple[int, int], ...]] = {}  # entry -> its ranges
        # For spent_plan_covers: the plans' head pcs, sorted (made once per process), and
        # each plan entry's members, ranges and queued count (read once, when near).
        self._plan_heads: list[int] | None = None
        self._plan_meta: dict[str, tuple[frozenset[int], tuple[tuple[int, int], ...], int]
                              | None] = {}
        # Bytes in the cache root as last counted plus what this process stored since
        # (None: not counted yet); the directory is walked again only when this passes
        # max_bytes, not every few stores (a walk costs a stat per entry).
        self._total_bytes: int | None = None

    def _entries(self) -> dict[tuple[str, int], list[str]]:
        """Entry names by (kind, first pc); kind "" for regions of blocks, "r" for hot
        regions, "p" for plans of hot regions."""
        if self._index is None:
            index: dict[tuple[str, int], list[str]] = {}
            try:
                names = _files(os.listdir, self.dir)
            except OSError:
                names = []
            for name in names:
                key = _entry_key(name)
                if key is not None:
                    index.setdefault(key, []).append(name)
                    self._note_page(key)
            self._index = index
        return self._index

    def _note_page(self, key: tuple[str, int]) -> None:
        kind, pc = key
        if kind == "":
            self._pages.setdefault(pc & ~(PAGE_SIZE - 1), set()).add(pc)

    @staticmethod
    def digest(ranges: Iterable[tuple[int, int]], read: Callable[[int, int], bytes]) -> str:
        h = hashlib.sha256()
        for start, end in ranges:
            h.update(struct.pack("<QQ", start, end))
            h.update(read(start, end - start))
        return h.hexdigest()[:32]

    def lookup(self, pc: int, read: Callable[[int, int], bytes]) -> CachedRegion | None:
        """A cached region starting at pc whose guest bytes equal what ``read`` returns
        now. ``read`` may raise (unmapped code): that entry does not match."""
        return self._lookup("", pc, read, _region_from, lambda r: region_ranges(r.blocks))

    def has_region(self, pc: int) -> bool:
        """Whether some cached region starts at pc (its guest bytes unchecked: a cheap
        test before :meth:`lookup`, which counts a miss)."""
        return bool(self._entries().get(("", pc)))

    def lookup_page(self, page: int, read: Callable[[int, int], bytes],
                    skip: Callable[[int], bool] = lambda pc: False) -> list[CachedRegion]:
        """Every cached region whose first pc is on the guest page at ``page`` (except
        where ``skip(pc)``) and whose guest bytes match ``read``'s now."""
        found = []
        self._entries()
        for pc in sorted(self._pages.get(page, ())):
            if not skip(pc):
                region = self.lookup(pc, read)
                if region is not None:
                    found.append(region)
        return found

    def lookup_hot_region(self, pc: int, read: Callable[[int, int], bytes]
                          ) -> CachedHotRegion | None:
        """A cached hot region headed at pc whose guest bytes equal ``read``'s now."""
        return self._lookup("r", pc, read, _hot_region_from, lambda r: r.ranges)

    def lookup_region_plan(self, pc: int, read: Callable[[int, int], bytes]
                           ) -> CachedRegionPlan | None:
        """The plan of a hot region headed at pc whose guest bytes equal ``read``'s now
        (counted apart from the hits and misses of code: ``plan_hits``)."""
        if not self._entries().get(("p", pc)):
            return None
        hits, misses = self.stats["hits"], self.stats["misses"]
        plan = self._lookup("p", pc, read, _region_plan_from, lambda p: p.ranges)
        self.stats["hits"], self.stats["misses"] = hits, misses
        if plan is not None:
            self.stats["plan_hits"] = self.stats.get("plan_hits", 0) + 1
        return plan

    def spent_plan_covers(self, pc: int, read: Callable[[int, int], bytes],
                          limit: int) -> bool:
        """Whether the block at ``pc`` is a member of a plan (headed elsewhere, within
        ``PLAN_WINDOW`` bytes) that runs queued at least ``limit`` times, for the guest
        bytes there now. Each plan's metadata is read once per process, when a block
        near its head is asked about (~50 us a plan; a cache shared by many programs
        holds thousands)."""
        if self._plan_heads is None:
            self._plan_heads = sorted(pc for kind, pc in self._entries() if kind == "p")
        heads = self._plan_heads
        entries = self._entries()
        for i in range(bisect.bisect_left(heads, pc - PLAN_WINDOW),
                       bisect.bisect_right(heads, pc + PLAN_WINDOW)):
            for name in list(entries.get(("p", heads[i]), ())):
                if name not in self._plan_meta:
                    meta = self._meta(name)
                    try:
                        self._plan_meta[name] = None if meta is None else (
                            frozenset(meta["region_plan"][1:]),
                            tuple(tuple(r) for r in meta["ranges"]), meta.get("queued", 0))
                    except (KeyError, TypeError):
                        self._plan_meta[name] = None
                known = self._plan_meta[name]
                if known is None or known[2] < limit or pc not in known[0]:
                    continue
                try:
                    if name.endswith("." + self.digest(known[1], read)):
                        return True
                except Exception:  # noqa: BLE001 - the guest code is not there any more
                    continue
        return False

    def _meta(self, name: str) -> dict | None:
        """An entry's metadata alone (unverified: a hint, never code), None if unreadable."""
        try:
            meta = json.loads(_files(_read_meta, self.dir / name))
        except (OSError, ValueError, struct.error):
            return None
        return meta if isinstance(meta, dict) else None

    def _lookup(self, kind, pc, read, build, ranges):
        # Entries for one pc differ in their guest bytes (code rewritten at the same
        # address), rarely in their ranges: the current bytes are hashed once per
        # distinct ranges and only the entry whose name carries that digest is read.
        # (Reading and hashing every entry on each lookup made a program that keeps
        # rewriting code at one address quadratic.)
        digests: dict[tuple[tuple[int, int], ...], str | None] = {}
        for name in list(self._entries().get((kind, pc), ())):
            entry_ranges = self._ranges_of(name)
            if entry_ranges is None:
                continue
            if entry_ranges not in digests:
                try:
                    digests[entry_ranges] = self.digest(entry_ranges, read)
                except Exception:  # noqa: BLE001 - the guest code is not there any more
                    digests[entry_ranges] = None
            current = digests[entry_ranges]
            if current is None or not name.endswith("." + current):
                continue
            entry = self._load(name, build)
            if entry is None or tuple(map(tuple, ranges(entry))) != entry_ranges:
                continue
            self.stats["hits"] += 1
            try:
                os.utime(self.dir / name)  # recently used: evicted last
            except OSError:
                pass
            return entry
        self.stats["misses"] += 1
        return None

    def _ranges_of(self, name: str) -> tuple[tuple[int, int], ...] | None:
        """The guest ranges an entry covers, from its metadata alone (remembered: an
        entry's name fixes its contents). The whole entry is verified when it is used."""
        known = self._ranges.get(name)
        if known is not None:
            return known
        try:
            meta = json.loads(_files(_read_meta, self.dir / name))
            if "ranges" in meta:
                found = tuple(tuple(r) for r in meta["ranges"])
            else:
                found = tuple(region_ranges(BlockMeta.from_json(b) for b in meta["blocks"]))
        except FileNotFoundError:
            self._forget(name)
            return None
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            self.stats["corrupt"] += 1
            self._forget(name)
            try:
                (self.dir / name).unlink()
            except OSError:
                pass
            return None
        self._ranges[name] = found
        return found

    def _load(self, name: str, build):
        path = self.dir / name
        self.stats["reads"] += 1
        try:
            data = _files(path.read_bytes)
            magic, meta_len = _HEADER.unpack_from(data)
            if magic != MAGIC or len(data) < _HEADER.size + meta_len + 32:
                raise ValueError("bad header or truncated")
            body, check = data[:-32], data[-32:]
            if hashlib.sha256(body).digest() != check:
                raise ValueError("checksum mismatch")
            meta = json.loads(body[_HEADER.size:_HEADER.size + meta_len])
            return build(meta, body[_HEADER.size + meta_len:])
        except FileNotFoundError:
            self._forget(name)
            return None
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            self.stats["corrupt"] += 1
            self._forget(name)
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def _forget(self, name: str) -> None:
        self._ranges.pop(name, None)
        index = self._entries()
        key = _entry_key(name)
        if key is not None and name in index.get(key, []):
            index[key].remove(name)

    def store(self, blocks: tuple[BlockMeta, ...], accessors: Iterable[str], obj: bytes,
              read: Callable[[int, int], bytes]) -> None:
        """Write an entry (best effort: a full disk or read-only cache is not an error)."""
        meta = {"blocks": [b.to_json() for b in blocks], "accessors": sorted(accessors)}
        self._store("", blocks[0].pc, region_ranges(blocks), meta, obj, read)

    def store_hot_region(self, region: CachedHotRegion,
                         read: Callable[[int, int], bytes]) -> None:
        """Write a hot region's entry (best effort)."""
        meta = {"hot_region": region.name, "members": list(region.members),
                "ranges": [list(r) for r in region.ranges],
                "exits": [[dest, n] for dest, n in region.exits.items()],
                "accessors": sorted(region.accessors)}
        self._store("r", region.pc, region.ranges, meta, region.object, read)

    def store_region_plan(self, plan: CachedRegionPlan,
                          read: Callable[[int, int], bytes]) -> None:
        """Write a hot region's plan (best effort; tiny, and no object code)."""
        meta = {"region_plan": list(plan.members), "ranges": [list(r) for r in plan.ranges],
                "indirect_targets": list(plan.indirect_targets), "queued": plan.queued}
        stores = self.stats["stores"]  # ("stores" counts code)
        self._store("p", plan.pc, plan.ranges, meta, b"", read)
        if self.stats["stores"] != stores:
            self.stats["stores"] = stores
            # (a plan stored again, its queued count raised, is not a new plan)
            counter = "plan_stores" if plan.queued <= 1 else "plan_requeued"
            self.stats[counter] = self.stats.get(counter, 0) + 1

    def lookup_accessor(self, name: str) -> bytes | None:
        """The object code of the memory accessor ``name`` (not keyed by guest code: it
        depends on the translator fingerprint only)."""
        entry = f"{ACCESSOR_PREFIX}{name}"
        if not (self.dir / entry).exists():
            return None
        obj = self._load(entry, lambda meta, obj: obj if meta.get("accessor") == name else None)
        self.stats["hits" if obj is not None else "misses"] += 1
        return obj

    def store_accessor(self, name: str, obj: bytes) -> None:
        self._write(f"{ACCESSOR_PREFIX}{name}", {"accessor": name}, obj)

    def lookup_module(self, key: str) -> bytes | None:
        """The object code of a module keyed by a digest of its IR text (the same in
        every process: the entry trampoline and thunks, the signal catcher)."""
        entry = f"{MODULE_PREFIX}{key}"
        if not (self.dir / entry).exists():
            return None
        obj = self._load(entry, lambda meta, obj: obj if meta.get("module") == key else None)
        if obj is not None:  # (counted apart: "hits" and "misses" are about guest code)
            self.stats["module_hits"] = self.stats.get("module_hits", 0) + 1
        return obj

    def store_module(self, key: str, obj: bytes) -> None:
        self._write(f"{MODULE_PREFIX}{key}", {"module": key}, obj)

    def _store(self, kind: str, pc: int, ranges: Iterable[tuple[int, int]], meta_data: dict,
               obj: bytes, read: Callable[[int, int], bytes]) -> None:
        try:
            digest = self.digest(ranges, read)
        except Exception:  # noqa: BLE001 - code unmapped meanwhile: nothing to key on
            return
        name = f"{kind}{pc:x}.{digest}"
        size = self._write(name, meta_data, obj)
        if not size:
            return
        names = self._entries().setdefault((kind, pc), [])
        if name not in names:
            names.append(name)
        self._ranges[name] = tuple(tuple(r) for r in ranges)
        self._note_page((kind, pc))
        self.stats["stores"] += 1
        if self._total_bytes is None:
            self._total_bytes = self._count_bytes()
        self._total_bytes += size
        if self._total_bytes > self.max_bytes:
            # (down to 7/8: the next stores must not each walk the directory again)
            self.evict(self.max_bytes * 7 // 8)

    def _write(self, name: str, meta_data: dict, obj: bytes) -> int:
        """Write an entry; its size in bytes, 0 if it could not be written."""
        meta = json.dumps(meta_data).encode()
        body = _HEADER.pack(MAGIC, len(meta)) + meta + obj
        if not _files(replace_file, self.dir / name, (body,), True):
            return 0
        return len(body) + 32

    def _count_bytes(self) -> int:
        total = 0
        for path in _files(_glob_entries, self.root):
            try:
                total += path.stat().st_size
            except OSError:
                continue
        return total

    def evict(self, target: int | None = None) -> None:
        """Delete least recently used entries (of every fingerprint) until the cache
        holds at most ``target`` bytes (default: max_bytes)."""
        limit = self.max_bytes if target is None else target
        files = []
        for path in _files(_glob_entries, self.root):
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        self._total_bytes = total
        for _, size, path in sorted(files):
            if total <= limit:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            self._total_bytes = total
            # (the counters are about entries of guest code; modules counted apart)
            counter = "modules_evicted" if path.name.startswith(MODULE_PREFIX) else "evicted"
            self.stats[counter] = self.stats.get(counter, 0) + 1
            if path.parent == self.dir:
                self._forget(path.name)


# The cache's file work goes through EMULATOR_FILES: once the guest has a second
# thread, on a thread whose descriptors are not the guest's (see host_fds).
_files = EMULATOR_FILES.run


def _read_meta(path: Path) -> bytes:
    """An entry's metadata (JSON bytes), read without the rest of it."""
    with open(path, "rb") as f:
        magic, meta_len = _HEADER.unpack(f.read(_HEADER.size))
        if magic != MAGIC:
            raise ValueError("bad header")
        return f.read(meta_len)


def _glob_entries(root: Path) -> list[Path]:
    return list(root.glob("*/*"))


# How far from a block spent_plan_covers looks for the heads of plans that may cover it
# (a region's members are near its head, but for calls into other code).
PLAN_WINDOW = 64 << 10


def _entry_key(name: str) -> tuple[str, int] | None:
    head, dot, _ = name.partition(".")
    if not dot or name.endswith(".tmp"):
        return None
    kind = head[0] if head[:1] in ("r", "p") else ""
    try:
        return kind, int(head[len(kind):], 16)
    except ValueError:
        return None


def _region_from(meta: dict, obj: bytes) -> CachedRegion:
    return CachedRegion(tuple(BlockMeta.from_json(b) for b in meta["blocks"]),
                        tuple(meta["accessors"]), obj)


def _region_plan_from(meta: dict, obj: bytes) -> CachedRegionPlan:
    return CachedRegionPlan(tuple(meta["region_plan"]), tuple(tuple(r) for r in meta["ranges"]),
                            tuple(meta["indirect_targets"]), meta.get("queued", 0))


def _hot_region_from(meta: dict, obj: bytes) -> CachedHotRegion:
    return CachedHotRegion(meta["hot_region"], tuple(meta["members"]),
                           tuple(tuple(r) for r in meta["ranges"]),
                           {dest: n for dest, n in meta["exits"]},
                           tuple(meta["accessors"]), obj)
