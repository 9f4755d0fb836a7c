"""Persistent baseline blocks: a second run of a program installs its blocks without
decoding or emitting them.

One file per program (``<cache>/<fingerprint>/b.<program key>``, the fingerprint being
the baseline library's: translator source, LLVM, host CPU, guest model, layout, codegen
options) holds every baseline block the program's runs emitted, as installed code:

- the block's code bytes as emitted (its patchable direct jumps unlinked), and the
  *relocations*: the offsets of the 64-bit values in it that belong to the process
  that emitted it — its own exit slots, HOT counter and indirect-target profile (in
  the arena's data zone), the import cells stencils call through, the arena's base
  and the page-flag table. Each is named (``block.slot1``, ``imp.<symbol>@0``, ...) so
  the loading process writes its own value there;
- its guest pc, translation flags, guest ranges and the guest bytes it was translated
  from, its exits (slot numbers, where each direct jump is, destinations), instruction
  count and return hint.

A lookup compares the guest bytes at the block's ranges *now* (through the same fetch
translation uses, so unmapped code never matches) with the recorded ones: equal bytes
at the same pc under the same flags translate to the same code, so any change to the
guest code is a miss. The file is read whole once (one ``read``: a small JSON header,
a binary block table, the records), checked against a SHA-256 trailer and against the
codegen's layout (entry adapter, arena size, flat-memory bounds, constants in code that
are not relocated); a block's record is decoded when its pc is first looked up. A
missing, corrupt, truncated or stale file is ignored (and replaced at the next save),
never a crash.

The relocations are found when the file is written, by looking for this process's
values in the code (emitted code holds host addresses only as 64-bit immediates: import
cells, arena constants and the block's data; constant pools are reached PC-relative).
A block is not stored when that would be ambiguous: a guest constant of the block equal
to one of those values, two candidates overlapping, or a PC-relative reference near a
constant pool (those pools are placed per process).

Writes go to a temporary file renamed into place, so concurrent processes see one
complete file or the other (the last writer's blocks win); a file is bounded by
``max_bytes`` (blocks this run did not use are dropped first), and the code cache's
eviction counts it with its other entries.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llvmtcg.ir.block import Block
from llvmtcg.ir.types import TempKind
from llvmtcg.runtime.cachefile import replace_file
from llvmtcg.runtime.native.baseline import BaselineCodegen, EmittedBlock

__all__ = ["FILE_PREFIX", "BaselineBlockCache", "CachedBlock", "program_key", "wide_values"]

MAGIC = b"LLVMTCGK"
FORMAT_VERSION = 2
FILE_PREFIX = "b."
DEFAULT_MAX_BYTES = 32 << 20
# The file: header; metadata (JSON: codegen layout, fixed values, value names, block
# count); the block table (one entry per block); the records; a SHA-256 of the rest.
_HEADER = struct.Struct("<8sII")  # magic, format version, metadata length
_ENTRY = struct.Struct("<QIII")  # pc, flags, record offset and length (in the records)
# A record: instruction count, return pc, bits (1: has a return pc, 2: indirect exit),
# counts of ranges, guest bytes, code bytes, relocations, jumps, targets; then those.
_RECORD = struct.Struct("<IQBHIIHHH")
_RANGE = struct.Struct("<QQ")  # start, end
_RELOCATION = struct.Struct("<II")  # offset in code, value name (index in the names)
_JUMP = struct.Struct("<Ii")  # exit slot n, offset of its direct jump's rel32 (-1: none)
_TARGET = struct.Struct("<IQ")  # exit slot n, destination pc
_Q = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_H = struct.Struct("<H")
_U64 = ctypes.c_uint64
_WIDE = 1 << 32  # per-process values below this must be equal in the loading process
_MASK64 = (1 << 64) - 1
_PRUNE_MIN = 4096
_CONST = TempKind.CONST


def program_key(*parts: object) -> str:
    """A file key naming a program (user mode: its executable's path, size and mtime;
    system mode: the machine and its images): which blocks load together."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


class InstalledBlock(Protocol):
    """What the cache reads of an installed baseline block when saving it (a
    :class:`~llvmtcg.runtime.tbcache.TranslationBlock`)."""

    pc: int
    flags: int
    ranges: list[tuple[int, int]]
    entry: int
    slots: dict[int, int]
    direct_targets: dict[int, int]
    n_insns: int
    return_pc: int | None
    counter: int
    counter_start: int
    target_cell: int
    valid: bool

    def executions(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CachedBlock:
    """One stored block (see the module docstring)."""

    pc: int
    flags: int
    ranges: tuple[tuple[int, int], ...]
    guest: bytes | memoryview  # (read-only memoryviews of a file hash and compare as bytes)
    code: bytes | memoryview
    relocations: tuple[tuple[int, str], ...]  # (offset in code, value name)
    jumps: tuple[tuple[int, int], ...]  # (exit slot n, offset of its direct jump's rel32 or -1)
    targets: tuple[tuple[int, int], ...]  # (exit slot n, destination pc)
    n_insns: int
    return_pc: int | None
    indirect: bool

    def record(self, names: dict[str, int]) -> bytes:
        """The block's record (``names``: value name -> index, extended as needed)."""
        bits = (1 if self.return_pc is not None else 0) | (2 if self.indirect else 0)
        return b"".join((
            _RECORD.pack(self.n_insns, self.return_pc or 0, bits, len(self.ranges),
                         len(self.guest), len(self.code), len(self.relocations),
                         len(self.jumps), len(self.targets)),
            *(_RANGE.pack(*r) for r in self.ranges),
            *(_RELOCATION.pack(offset, names.setdefault(name, len(names)))
              for offset, name in self.relocations),
            *(_JUMP.pack(*j) for j in self.jumps),
            *(_TARGET.pack(*t) for t in self.targets),
            self.guest, self.code))

    @classmethod
    def from_record(cls, pc: int, flags: int, record: memoryview, names: list[str]
                    ) -> CachedBlock:
        """Raises ValueError, IndexError or struct.error when the record is malformed."""
        (n_insns, return_pc, bits, n_ranges, guest_size, code_size, n_relocations,
         n_jumps, n_targets) = _RECORD.unpack_from(record)
        # (offsets computed inline and each table unpacked by one iter_unpack: this runs
        # once per block placed, thousands of times in a warm start)
        start = _RECORD.size
        end = start + _RANGE.size * n_ranges
        ranges = tuple(_RANGE.iter_unpack(record[start:end]))
        start, end = end, end + _RELOCATION.size * n_relocations
        relocations = tuple([(offset, names[i]) for offset, i
                             in _RELOCATION.iter_unpack(record[start:end])])
        start, end = end, end + _JUMP.size * n_jumps
        jumps = tuple(_JUMP.iter_unpack(record[start:end]))
        start, end = end, end + _TARGET.size * n_targets
        targets = tuple(_TARGET.iter_unpack(record[start:end]))
        guest_end = end + guest_size
        if guest_end + code_size != len(record):
            raise ValueError("record size")
        guest = record[end:guest_end]
        code = record[guest_end:]
        # (slices of the file read, not copies: a boot's file is tens of MB)
        return cls(pc, flags, ranges, guest, code, relocations, jumps, targets, n_insns,
                   return_pc if bits & 1 else None, bool(bits & 2))


class BaselineBlockCache:
    """One process's view of its program's file of baseline blocks.

    Args:
        directory: the code cache root (``RuntimeOptions.cache_dir``).
        fingerprint: the baseline library's fingerprint.
        program: :func:`program_key` of the program.
        codegen: the process's baseline codegen (blocks are placed in its arena).
        max_bytes: the largest file written.
    """

    def __init__(self, directory: Path, fingerprint: str, program: str,
                 codegen: BaselineCodegen, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(directory) / fingerprint / f"{FILE_PREFIX}{program}"
        self.codegen = codegen
        self.max_bytes = max_bytes
        # file_blocks: blocks in the file read; hits: installed from it; stale: a block
        # recorded at the pc whose guest bytes differ now; stored: blocks written;
        # skipped: emitted blocks not stored (ambiguous relocation, unreadable code);
        # unrun: emitted ahead of time and never entered (with HOT counters: not stored)
        self.stats = {"file_blocks": 0, "hits": 0, "stale": 0, "corrupt": 0, "stored": 0,
                      "skipped": 0, "unrun": 0, "saves": 0, "load_seconds": 0.0}
        # The file read: its block table and records (None: not read yet), value
        # names, blocks decoded so far (None: malformed) and block numbers and flags by pc.
        self._table: memoryview | None = None
        self._records: memoryview | None = None
        self._names: list[str] = []
        self._blocks: dict[int, CachedBlock | None] = {}
        self._by_pc: dict[int, list[tuple[int, int]]] = {}  # pc -> [(number, flags)]
        # (pc, flags, guest bytes) of the stored blocks this run used
        self._used: set[tuple[int, int, bytes]] = set()
        self._stamp: tuple[int, int, int] | None = None  # the file as read (see _changed)
        self._values: dict[str, int | None] = {}  # value name -> this process's value
        self._emitted: list[tuple[InstalledBlock, int, frozenset[int]]] = []
        self._prune_at = _PRUNE_MIN

    # -- reading -------------------------------------------------------------------------
    def _read(self) -> None:
        """Read the file (once; again after :meth:`_forget_file`)."""
        if self._table is not None:
            return
        import time  # noqa: PLC0415

        start = time.perf_counter()
        self._table, self._records, self._names = memoryview(b""), memoryview(b""), []
        self._blocks, self._by_pc = {}, {}
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                # Recently used: the code cache's eviction (by mtime) takes it last.
                # (Through the descriptor: the file read, even if renamed over since;
                # a read-only cache is still read.)
                try:
                    os.utime(f.fileno())
                except OSError:
                    pass
                self._stamp = _stamp(os.fstat(f.fileno()))
        except OSError:
            self._stamp = None
            return
        try:
            self._parse(data)
        except (ValueError, KeyError, TypeError, IndexError, struct.error):
            self.stats["corrupt"] += 1
            self._table, self._records, self._names = memoryview(b""), memoryview(b""), []
            self._by_pc = {}
        self.stats["file_blocks"] = len(self._table) // _ENTRY.size
        self.stats["load_seconds"] += time.perf_counter() - start

    def _forget_file(self) -> None:
        self._table = None

    def _parse(self, data: bytes) -> None:
        magic, version, meta_size = _HEADER.unpack_from(data)
        if magic != MAGIC or version != FORMAT_VERSION:
            return  # (another format: the next save replaces the file)
        body = memoryview(data)[:-32]
        if len(data) < _HEADER.size + meta_size + 32 \
                or hashlib.sha256(body).digest() != data[-32:]:
            raise ValueError("truncated or checksum mismatch")
        meta = json.loads(bytes(body[_HEADER.size:_HEADER.size + meta_size]))
        if meta["layout"] != json.loads(json.dumps(self.codegen.layout_key())):
            return  # (another codegen layout)
        for name, value in meta["fixed"]:
            if self._value(name) != value:
                return
        table_start = _HEADER.size + meta_size
        records_start = table_start + _ENTRY.size * meta["blocks"]
        if records_start > len(body):
            raise ValueError("block table truncated")
        table = body[table_start:records_start]
        by_pc: dict[int, list[tuple[int, int]]] = {}
        for i, (pc, flags, _, _) in enumerate(_ENTRY.iter_unpack(table)):
            by_pc.setdefault(pc, []).append((i, flags))
        self._table, self._records = table, body[records_start:]
        self._names, self._by_pc = list(meta["names"]), by_pc

    def _block(self, i: int) -> CachedBlock | None:
        """The file's block i (decoded on first use; None if malformed)."""
        if i in self._blocks:
            return self._blocks[i]
        pc, flags, offset, size = _ENTRY.unpack_from(self._table, i * _ENTRY.size)
        block = None
        if offset + size <= len(self._records):
            try:
                block = CachedBlock.from_record(pc, flags,
                                                self._records[offset:offset + size],
                                                self._names)
            except (ValueError, IndexError, struct.error):
                pass
        if block is None:
            self.stats["corrupt"] += 1
        self._blocks[i] = block
        return block

    def find(self, pc: int, flags: int, fetch: Callable[[int, int], bytes]
             ) -> CachedBlock | None:
        """The stored block at pc for ``flags`` whose guest bytes are what ``fetch``
        returns now (``fetch`` may raise: unmapped code does not match)."""
        self._read()
        for i, stored_flags in self._by_pc.get(pc, ()):
            if stored_flags != flags:
                continue  # (other flags: not decoded)
            block = self._block(i)
            if block is None:
                continue
            try:
                if len(block.ranges) == 1:
                    ((start, end),) = block.ranges
                    current = fetch(start, end - start)
                else:
                    current = b"".join(fetch(s, e - s) for s, e in block.ranges)
            except Exception:  # noqa: BLE001 - the guest code is not there (any more)
                continue
            if current != block.guest:
                self.stats["stale"] += 1
                continue
            self._used.add((block.pc, block.flags, block.guest))
            return block
        return None

    def _changed(self) -> bool:
        """Whether the file is not the one read (written by someone else since)."""
        try:
            now = _stamp(os.stat(self.path))
        except OSError:
            now = None
        return now != self._stamp

    def _value(self, name: str) -> int | None:
        if name not in self._values:
            self._values[name] = self.codegen.process_value(name)
        return self._values[name]

    def place(self, block: CachedBlock) -> EmittedBlock | None:
        """Copy ``block`` into the arena with this process's values written in: what
        emitting it would have given. None if a value it needs has no meaning here.

        Raises:
            ArenaFull: no room (as for emission).
        """
        slots, counter, targets = self.codegen.block_data([n for n, _ in block.jumps],
                                                          block.indirect)
        # (the slots' addresses in slot order: "block.slot<i>" is the i-th)
        local = (*slots.values(), counter, targets)
        code = bytearray(block.code)
        pack = _Q.pack_into
        known = self._values
        for offset, name in block.relocations:
            value = known.get(name)
            if value is None:
                index = _LOCAL_INDEX.get(name)
                if index is not None:
                    if index >= len(slots):
                        return None  # (a slot the block does not have: malformed)
                    value = local[index]
                else:
                    value = self._value(name)
                    if value is None:
                        return None  # (its data stays allocated: a few bytes, once)
            pack(code, offset, value)
        entry = self.codegen.place(code)
        for n, offset in block.jumps:
            if offset >= 0:
                _U64.from_address(slots[n] + 8).value = entry + offset
        self.stats["hits"] += 1
        return EmittedBlock(entry, len(code), slots, counter, targets)

    # -- writing -------------------------------------------------------------------------
    def note_emitted(self, tb: InstalledBlock, size: int, constants: Iterable[int]) -> None:
        """A block was emitted this run (``size`` bytes of code; ``constants``: the
        64-bit values of its guest constants and pcs at least 2**32): store it at the
        next :meth:`save` if it is still valid then."""
        emitted = self._emitted
        emitted.append((tb, size, frozenset(constants)))
        if len(emitted) >= self._prune_at:
            # Blocks invalidated since (rewritten code, an arena flush) are not saved:
            # dropped now and then, so a program that keeps translating does not keep
            # every block it ever had alive (amortised: the list at most doubles).
            emitted[:] = [entry for entry in emitted if entry[0].valid]
            self._prune_at = max(2 * len(emitted), _PRUNE_MIN)

    def save(self, read_guest: Callable[[InstalledBlock], bytes | None]) -> int:
        """Write the file again if this run emitted blocks: the new ones still valid
        and the stored ones (those used this run first, within ``max_bytes``). Best
        effort (a read-only or full disk is not an error). ``read_guest`` gives a
        block's guest bytes now (None: not readable). Returns the blocks written."""
        if not self._emitted:
            return 0
        emitted, self._emitted = self._emitted, []
        # Thousands of small acyclic records: with the collector on, their allocations
        # set off full collections of the whole (large, after translating) heap, which
        # took 2/3 of the time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._save(emitted, read_guest)
        finally:
            if collecting:
                gc.enable()

    def _save(self, emitted: list[tuple[InstalledBlock, int, frozenset[int]]],
              read_guest: Callable[[InstalledBlock], bytes | None]) -> int:
        if self._table is not None and self._changed():
            self._forget_file()  # another process (or hart) saved since: merge with that
        self._read()
        count = len(self._table) // _ENTRY.size
        stored = [b for b in map(self._block, range(count)) if b is not None]
        used = self._used
        # (blocks used this run first: they are kept when the file is full)
        old = [b for b in stored if (b.pc, b.flags, b.guest) in used] + \
            [b for b in stored if (b.pc, b.flags, b.guest) not in used]
        values = self.codegen.process_values()
        relocatable = {v: name for v, name in values.items() if v >= _WIDE}
        fixed = sorted((name, v) for v, name in values.items() if v < _WIDE)
        pools = self.codegen.pool_ranges()
        new: list[CachedBlock] = []
        hot = self.codegen.hot_threshold
        for tb, size, constants in emitted:
            if tb.counter and tb.counter_start == hot and not tb.executions():
                # Translated ahead of a miss, never entered (a third of glibc start-up's
                # blocks): placing it next time would be work for nothing.
                self.stats["unrun"] += 1
                continue
            block = self._capture(tb, size, constants, relocatable, pools, read_guest) \
                if tb.valid else None
            if block is None:
                self.stats["skipped"] += tb.valid
                continue
            new.append(block)
        # A stored block of the same (pc, flags, guest bytes) as a new one is replaced.
        seen = {(b.pc, b.flags, b.guest) for b in new}
        if not seen - {(b.pc, b.flags, b.guest) for b in old}:
            return 0  # (nothing new: blocks re-emitted because they cannot be stored)
        kept = [b for b in old if (b.pc, b.flags, b.guest) not in seen]
        self._write(new + kept, fixed)
        return self.stats["stored"]

    def _capture(self, tb: InstalledBlock, size: int, constants: frozenset[int],
                 relocatable: dict[int, str], pools: list[tuple[int, int]],
                 read_guest: Callable[[InstalledBlock], bytes | None]) -> CachedBlock | None:
        code = bytearray(ctypes.string_at(tb.entry, size))
        jumps = []
        local: dict[int, str] = {}
        for i, (n, slot) in enumerate(sorted(tb.slots.items())):
            jump = BaselineCodegen.jump_of(slot)
            offset = jump - tb.entry if jump else -1
            if jump:  # (unlinked, as emitted: a jump to the next instruction)
                code[offset:offset + 4] = bytes(4)
            jumps.append((n, offset))
            local[slot] = f"{_LOCAL}slot{i}"
        if tb.counter:
            local[tb.counter] = f"{_LOCAL}counter"
        if tb.target_cell:
            local[tb.target_cell] = f"{_LOCAL}targets"
        if local.keys() & relocatable.keys():
            return None  # (the block's data where a process value is: cannot be)
        table = {**relocatable, **local}
        if constants & table.keys():
            return None  # (a guest constant looks like a host address here)
        relocations = _find_values(code, table)
        if relocations is None or any(not name for _, name in relocations) \
                or (pools and _refers_to(code, tb.entry, pools)):
            return None  # (ambiguous, or a constant pool placed by this process)
        guest = read_guest(tb)
        if guest is None:
            return None
        return CachedBlock(tb.pc, tb.flags, tuple(tuple(r) for r in tb.ranges), guest,
                           bytes(code), tuple(relocations), tuple(jumps),
                           tuple(sorted(tb.direct_targets.items())), tb.n_insns,
                           tb.return_pc, bool(tb.target_cell))

    def _write(self, blocks: list[CachedBlock], fixed: list[tuple[str, int]]) -> None:
        names: dict[str, int] = {}
        table = bytearray()
        records = []
        size = 0
        for block in blocks:
            record = block.record(names)
            if size + len(record) + _ENTRY.size > self.max_bytes:
                break
            table += _ENTRY.pack(block.pc, block.flags, size, len(record))
            records.append(record)
            size += len(record)
        stored = len(records)
        meta = json.dumps({"layout": self.codegen.layout_key(), "fixed": fixed,
                           "names": list(names), "blocks": stored},
                          separators=(",", ":")).encode()
        # (written piece by piece: a boot's file is tens of MB, not copied again whole)
        parts = (_HEADER.pack(MAGIC, FORMAT_VERSION, len(meta)), meta, table, *records)
        if not replace_file(self.path, parts, checksum=True):
            return
        self.stats["stored"] = stored
        self.stats["saves"] += 1


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def wide_values(block: Block) -> list[int]:
    """The block's guest values that could be mistaken for host addresses in its code:
    constants and integer arguments (pcs) of at least 2**32, as 64-bit values."""
    out = []
    for op in block.ops:
        for temp in op.inputs:
            if temp.kind is _CONST and type(temp.value) is int \
                    and not 0 <= temp.value < _WIDE:
                out.append(temp.value & _MASK64)
        for arg in op.args:
            if type(arg) is int and not 0 <= arg < _WIDE:
                out.append(arg & _MASK64)
    return out


_LOCAL = "block."  # value names of a block's own data (slots, counter, profile)
# Where :meth:`BaselineBlockCache.place` finds a local value in (slot addresses in slot
# order..., counter, targets): negative indexes, so the slots' count does not matter.
# (A block has at most a few exit slots; more than 64 is not a block the codegen emits.)
_LOCAL_INDEX = {f"{_LOCAL}counter": -2, f"{_LOCAL}targets": -1,
                **{f"{_LOCAL}slot{i}": i for i in range(64)}}


def _find_values(code: bytes | bytearray, table: dict[int, str]
                 ) -> list[tuple[int, str]] | None:
    """(offset, name) of every 8 bytes of ``code`` (at any offset) whose value is in
    ``table``; None if two of them overlap (which one is real is unknown).

    Candidates are found by their top three bytes (a few distinct ones: host addresses
    share them), searched for in C by ``bytes.find``; only those are unpacked."""
    found = []
    n = len(code)
    unpack = _Q.unpack_from
    for top in {value >> 40 for value in table}:
        pattern = (top & 0xFF_FFFF).to_bytes(3, "little")
        position = code.find(pattern, 5)
        while position >= 0:
            offset = position - 5
            if offset + 8 <= n:
                name = table.get(unpack(code, offset)[0])
                if name is not None:
                    found.append((offset, name))
            position = code.find(pattern, position + 1)
    found.sort()
    for (a, _), (b, _) in zip(found, found[1:], strict=False):
        if b < a + 8:
            return None
    return found


def _refers_to(code: bytes | bytearray, address: int, ranges: list[tuple[int, int]]) -> bool:
    """Whether any 4 bytes of ``code`` (placed at ``address``), read as a rel32
    displacement, point into one of ``ranges`` (conservative: a false match only keeps
    a block out of the file).

    A field at offset o reaching [start, end) holds a displacement in [start - (address
    + o + 4), end - (address + o + 4)): over the block's offsets, a span whose top 16
    bits take one or two values, searched for in C."""
    n = len(code)
    unpack = _I32.unpack_from
    for start, end in ranges:
        low = start - (address + n)  # (the smallest: a field at the block's end)
        high = end - (address + 4)  # (the largest: a field at offset 0)
        if high <= -(1 << 31) or low >= 1 << 31:
            continue
        for top in range(max(low, -(1 << 31)) >> 16, (min(high, 1 << 31) >> 16) + 1):
            pattern = _H.pack(top & 0xFFFF)
            position = code.find(pattern, 2)
            while position >= 0:
                offset = position - 2
                if offset + 4 <= n:
                    target = address + offset + 4 + unpack(code, offset)[0]
                    if start <= target < end:
                        return True
                position = code.find(pattern, position + 1)
    return False
