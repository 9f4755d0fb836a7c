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
PC-relative references to constant pools (vector shuffle masks, FP constants: the
stencils' pools are placed per process) are relocations too, named by the pool's bytes
(``pool.<hex>@<offset>``): the loading process places one copy of each such pool and
writes the rel32 to it. A block is not stored when that would be ambiguous: a guest
constant of the block equal to one of those values, two candidates overlapping, or 4
bytes reading as a rel32 near a pool that is not a RIP-relative operand into it.

Blocks are stored if they are still valid at the save, or if they ran and were then
invalidated (their code copied out at the invalidation: code a kernel frees after boot,
pages reused): either way with the guest bytes fetched when they were emitted.

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
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.block import Block
from llvmtcg.ir.lower import INDIRECT_TARGETS
from llvmtcg.ir.types import TempKind
from llvmtcg.runtime.cachefile import replace_file
from llvmtcg.runtime.native.baseline import ArenaFull, BaselineCodegen

__all__ = ["FILE_PREFIX", "BaselineBlockCache", "CachedBlock", "PlacedBlock", "program_key",
           "wide_values"]

MAGIC = b"LLVMTCGK"
FORMAT_VERSION = 2
FILE_PREFIX = "b."
DEFAULT_MAX_BYTES = 32 << 20
# A (pc, flags) whose code, once invalidated, is emitted again with this many distinct
# contents in a run is *rewritten code* (a guest JIT, self-modifying code): from then
# on this run stores none of its versions and looks none up in the file. What it will
# be next run is unknowable, each stored version costs every later miss at that pc a
# comparison, and copying each version out at its invalidation cost every rewrite
# (bench/programs/smc.c: 100k versions). Code invalidated and emitted again with the
# same bytes (a program's pages reused by its next run under a kernel, code patched
# and patched back) is not: its versions are few and come back.
REWRITTEN_LIMIT = 16
# Versions of one (pc, flags) the file keeps: a save adds no more beyond this (a
# program run with other inputs may leave other code at a pc each time; every version
# is compared at each miss there, so an unbounded chain made those misses slower with
# every run).
MAX_VERSIONS = 16
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


@dataclass(slots=True)
class PlacedBlock:
    """A stored block copied into the arena (:meth:`BaselineBlockCache.place`): what
    installing it needs (the fields of an :class:`EmittedBlock`, and ``exits``: its
    direct exits, slot n -> destination pc)."""

    pc: int
    ranges: tuple[tuple[int, int], ...]
    n_insns: int
    return_pc: int | None
    entry: int  # its code (``size`` bytes)
    size: int
    slots: dict[int, int]  # exit slot n -> address of the slot
    counter: int  # HOT counter, 0: none
    targets: int  # indirect-target profile, 0: none
    exits: dict[int, int]
    # Direct exits place() linked already, to blocks placed with it: (slot n, index
    # of the destination in the list place() returned). Installing records the links.
    linked: tuple[tuple[int, int], ...] = ()


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
        # file_blocks: blocks in the file read; hits: placed from it; stale: a block
        # recorded at a pc looked up whose guest bytes differ now; stored: blocks
        # written; skipped: emitted blocks not stored (ambiguous relocation, unreadable
        # code); versions_full: new blocks not stored, their (pc, flags) having
        # MAX_VERSIONS stored already; rewritten: (pc, flags) found to be rewritten
        # code (REWRITTEN_LIMIT); unrun: emitted ahead of time and never entered
        # (with HOT counters: not stored); groups: guest pages whose stored blocks were
        # placed together
        self.stats = {"file_blocks": 0, "hits": 0, "stale": 0, "corrupt": 0, "stored": 0,
                      "skipped": 0, "unrun": 0, "saves": 0, "groups": 0, "versions_full": 0,
                      "rewritten": 0,
                      "load_seconds": 0.0}
        # The file read (None: not read yet): its block table and records, and indexes
        # over the table made once — block numbers by pc (the first, then a chain
        # through _next, for the few pcs with several versions) and by (guest page,
        # flags). No Python object per block: tens of thousands of them, long lived,
        # made the collector's full passes a fifth of a warm boot's CPU time.
        self._table: memoryview | None = None
        self._records: memoryview = memoryview(b"")
        self._count = 0
        self._first: dict[int, int] = {}
        self._next = array("i")
        self._groups: dict[tuple[int, int], list[int]] = {}
        self._names: list[str] = []
        # Per value name index: this process's value (resolved when first needed: an
        # import cell may compile a memory accessor), None (no meaning here),
        # _UNRESOLVED, or a _PoolCopy (a constant pool's copy, see _resolve); at the
        # indexes of a block's own data (``_locals``: exit slots (slot k, index), HOT
        # counter, profile; -1: not named), what place() writes for the block being
        # placed.
        self._resolved: list[int | None | object] = []
        self._locals: tuple[tuple[tuple[int, int], ...], int, int] = ((), -1, -1)
        self._pool_indexes: list[int] = []  # value names resolved to pool copies
        self._pool_generation: int | None = None  # (codegen.generation at resolving)
        self._used = bytearray()  # per block number: placed this run
        self._unplaceable: set[int] = set()  # block numbers place() had to leave out
        self._stamp: tuple[int, int, int] | None = None  # the file as read (see _changed)
        self._values: dict[str, int | None] = {}  # value name -> this process's value
        # Blocks emitted this run and still valid: block -> (code size, wide guest
        # constants, the guest bytes it was translated from).
        self._emitted: dict[InstalledBlock, tuple[int, frozenset[int], bytes]] = {}
        # Blocks emitted this run, run, then invalidated (their guest bytes written or
        # freed: a kernel's init code, a program's pages reused), copied out before
        # their code goes (see note_invalidated), at most one per (pc, flags): stored
        # at the save like the valid ones. Without them a Linux boot's 3.6k init-text
        # blocks were emitted again by every warm boot.
        self._freed: dict[tuple[int, int], _Freed] = {}
        self._freed_bytes = 0
        # Per (pc, flags) whose block was invalidated this run: the hashes of the guest
        # bytes emitted there since, or None once they are REWRITTEN_LIMIT (the key is
        # rewritten code, see there).
        self._rewrites: dict[tuple[int, int], set[int] | None] = {}

    # -- reading -------------------------------------------------------------------------
    def _read(self) -> None:
        """Read the file (once; again after :meth:`_forget_file`)."""
        if self._table is not None:
            return
        import time  # noqa: PLC0415

        start = time.perf_counter()
        self._set_empty()
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
            self._set_empty()
        self.stats["file_blocks"] = self._count
        self.stats["load_seconds"] += time.perf_counter() - start

    def _set_empty(self) -> None:
        self._table, self._records, self._count = memoryview(b""), memoryview(b""), 0
        self._first, self._next, self._groups = {}, array("i"), {}
        self._names, self._resolved, self._used = [], [], bytearray()
        self._locals = ((), -1, -1)
        self._pool_indexes = []
        self._unplaceable = set()

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
        count = meta["blocks"]
        records_start = table_start + _ENTRY.size * count
        if records_start > len(body):
            raise ValueError("block table truncated")
        table = body[table_start:records_start]
        first: dict[int, int] = {}
        chain = array("i", bytes(4 * count))
        groups: dict[tuple[int, int], list[int]] = {}
        mask = _PAGE_MASK
        for i, (pc, flags, _, _) in enumerate(_ENTRY.iter_unpack(table)):
            chain[i] = first.get(pc, -1)
            first[pc] = i
            key = (pc & mask, flags)
            group = groups.get(key)
            if group is None:
                groups[key] = [i]
            else:
                group.append(i)
        names = list(meta["names"])
        self._table, self._records, self._count = table, body[records_start:], count
        self._first, self._next, self._groups = first, chain, groups
        self._names = names
        self._resolved = [None if name in _LOCAL_NAMES else _UNRESOLVED for name in names]
        self._locals = _local_indexes(names)
        self._used = bytearray(count)

    def _layout(self, i: int) -> tuple[int, ...] | None:
        """Block i's record as (pc, flags, record offset, n_insns, return pc, bits,
        range count, relocation count, jump count, target count, where its tables,
        guest bytes and code start, code size, i), all offsets into the records; None
        if malformed. (A tuple: one per block placed, and gone once it is.)"""
        try:
            pc, flags, offset, size = _ENTRY.unpack_from(self._table, i * _ENTRY.size)
            (n_insns, return_pc, bits, n_ranges, guest_size, code_size, n_relocations,
             n_jumps, n_targets) = _RECORD.unpack_from(self._records, offset)
        except struct.error:
            return None
        tables = offset + _RECORD.size
        guest = tables + _RANGE.size * n_ranges + _RELOCATION.size * n_relocations \
            + _JUMP.size * n_jumps + _TARGET.size * n_targets
        code = guest + guest_size
        if code + code_size != offset + size or offset + size > len(self._records) \
                or n_ranges == 0:
            return None
        return (pc, flags, offset, n_insns, return_pc, bits, n_ranges, n_relocations,
                n_jumps, n_targets, tables, guest, code, code_size, i)

    def _matches(self, layout: tuple[int, ...], fetch: Callable[[int, int], bytes],
                 fetched: dict[tuple[int, int], bytes] | None = None) -> bool:
        """Whether the guest bytes of the block laid out so are there now. (Fetched
        per block, as translation fetches them, even when its page's other blocks are
        compared too: one fetch of the whole page would check the guest's permission
        at the page's start only, and a PMP entry may split a page. ``fetched``: the
        bytes of single ranges fetched already for this lookup, the versions of one pc
        mostly having the same.)"""
        records = self._records
        tables, n_ranges = layout[10], layout[6]
        try:
            if n_ranges == 1:
                start, end = _RANGE.unpack_from(records, tables)
                if fetched is None:
                    current = fetch(start, end - start)
                else:
                    current = fetched.get((start, end))
                    if current is None:
                        current = fetched[start, end] = fetch(start, end - start)
            else:
                current = b"".join(fetch(s, e - s) for s, e in _RANGE.iter_unpack(
                    records[tables:tables + _RANGE.size * n_ranges]))
        except Exception:  # noqa: BLE001 - the guest code is not there (any more)
            return False
        return current == records[layout[11]:layout[12]]

    def find(self, pc: int, flags: int, fetch: Callable[[int, int], bytes]
             ) -> tuple[int, ...] | None:
        """The stored block at pc for ``flags`` whose guest bytes are what ``fetch``
        returns now (``fetch`` may raise: unmapped code does not match), as laid out
        by :meth:`_layout`; None if there is none."""
        self._read()
        i = self._first.get(pc, -1)
        if i < 0 or (self._rewrites and self._rewrites.get((pc, flags), ()) is None):
            return None  # (rewritten code: see REWRITTEN_LIMIT)
        chain = self._next
        fetched: dict[tuple[int, int], bytes] = {}
        while i >= 0:
            layout = self._layout(i)
            if layout is None:
                self.stats["corrupt"] += 1
            elif layout[1] == flags:
                if self._matches(layout, fetch, fetched):
                    return layout
                self.stats["stale"] += 1
            i = chain[i]
        return None

    def select(self, pc: int, flags: int, fetch: Callable[[int, int], bytes],
               installed: Callable[[int], bool], ahead: int) -> list[tuple[int, ...]]:
        """The stored blocks a translation miss at pc places, pc's first (none if pc's
        is not stored): the first miss on a guest page (under ``flags``) takes every
        stored block of that page whose bytes are unchanged (they ran together
        before); then, up to ``ahead`` more, the stored blocks the direct exits reach,
        breadth first. Blocks at pcs that are ``installed`` already are left out."""
        first = self.find(pc, flags, fetch)
        if first is None:
            return []
        chosen = [first]
        seen = {pc}
        key = (pc & _PAGE_MASK, flags)
        group = self._groups.pop(key, None)  # (each page's group once a process)
        if group is not None and len(group) > 1:
            self.stats["groups"] += 1
            layout_of, matches = self._layout, self._matches
            for i in group:
                layout = layout_of(i)
                if layout is None or layout[1] != flags:
                    continue
                block_pc = layout[0]
                if block_pc in seen or installed(block_pc):
                    continue
                if matches(layout, fetch):
                    seen.add(block_pc)
                    chosen.append(layout)
        limit = len(chosen) + ahead
        records = self._records
        queue = 0
        while queue < len(chosen) and len(chosen) < limit:
            layout = chosen[queue]
            queue += 1
            start = layout[10] + _RANGE.size * layout[6] + _RELOCATION.size * layout[7] \
                + _JUMP.size * layout[8]
            for _, dest in _TARGET.iter_unpack(records[start:start
                                                       + _TARGET.size * layout[9]]):
                if dest not in seen:
                    seen.add(dest)
                    if not installed(dest):
                        found = self.find(dest, flags, fetch)
                        if found is not None:
                            chosen.append(found)
        return chosen

    def _changed(self) -> bool:
        """Whether the file is not the one read (written by someone else since)."""
        try:
            now = _stamp(os.stat(self.path))
        except OSError:
            now = None
        return now != self._stamp

    def _value(self, name: str) -> int | None:
        if name not in self._values:
            try:
                value = self.codegen.process_value(name)
            except Exception:  # noqa: BLE001 - a name this process cannot make a value of
                # (an import no process has: the accessor compiler parses its name and
                # raises; emitting the block instead shows a real error, if any)
                value = None
            self._values[name] = value
        return self._values[name]

    def _resolve(self, index: int) -> int | _PoolCopy | None:
        name = self._names[index]
        if name.startswith(_POOL):
            # A constant pool reached PC-relative: this process's copy of its bytes
            # (plus the offset used), written as a rel32 by _relocate_slowly (not an
            # int, so place()'s one-pack-per-relocation loop hands the block over to
            # it). Not kept in _values: the copies go with an arena reset, see place.
            hexbytes, _, offset = name[len(_POOL):].rpartition("@")
            try:
                value = _PoolCopy(self.codegen.pool_copy(bytes.fromhex(hexbytes))
                                  + int(offset))
            except ValueError:
                value = None  # (malformed)
            else:
                self._pool_indexes.append(index)
        else:
            value = self._value(name)
        self._resolved[index] = value
        return value

    def _relocate_slowly(self, code: bytearray, code_at: int, entry: int,
                         relocations: memoryview) -> bool:
        """:meth:`place`'s relocation of one block (to run at ``entry``) again, after a
        value that was not an int: names not resolved yet are resolved (once a
        process), constant pools' rel32 fields written; False if a value has no
        meaning here (None: the block is left out) or the record is malformed (a name
        the file does not have, a slot the block does not have)."""
        values = self._resolved
        try:
            for offset, index in _RELOCATION.iter_unpack(relocations):
                value = values[index]
                if value is _UNRESOLVED:
                    value = self._resolve(index)
                if type(value) is _PoolCopy:
                    _I32.pack_into(code, code_at + offset,
                                   value.address - (entry + offset + 4))
                    continue
                if type(value) is not int:
                    return False
                _Q.pack_into(code, code_at + offset, value)
        except (IndexError, struct.error):
            return False
        return True

    def place(self, blocks: list[tuple[int, ...]]) -> list[PlacedBlock]:
        """Copy the stored blocks ``blocks`` (of :meth:`select`) into the arena with
        this process's values written in, all in one piece of code and one of data:
        what emitting them would have given. A block a value of which has no meaning
        here is left out (all of them, if the first one). Their direct exits to one
        another are linked (body to body, as ``TbCache.link`` links baseline blocks)
        before the code is written, when the destination's bytes are on its pc's page
        (system mode links others with more care): ``PlacedBlock.linked``.

        Raises:
            ArenaFull: no room (nothing was allocated).
        """
        if self._pool_generation != self.codegen.generation:
            # The arena was reset since pool copies were placed: place them again.
            for index in self._pool_indexes:
                self._resolved[index] = _UNRESOLVED
            self._pool_indexes = []
            self._pool_generation = self.codegen.generation
        records = self._records
        hot = self.codegen.hot_threshold
        pack = _Q.pack_into
        # Where each block's code and data go in the two chunks: code 16-aligned (as
        # alloc_code's), data as block_data lays it out — exit slots (16 bytes each:
        # the slot, then where its direct jump's rel32 is), HOT counter, profile.
        code_size = data_size = 0
        at = []
        for layout in blocks:
            code_at = (code_size + 15) & ~15
            at.append((code_at, data_size))
            code_size = code_at + layout[13]
            data_size += 16 * layout[8] + (8 if hot else 0) \
                + (8 * INDIRECT_TARGETS if hot and layout[5] & 2 else 0)
        if not blocks:
            return []
        arena = self.codegen.arena
        code_base = arena.alloc_code(code_size, 16)
        try:
            data_base = arena.alloc_data(data_size, 8) if data_size else 0
        except ArenaFull:
            arena.free_code(code_base, code_size)
            raise
        code = bytearray(code_size)
        data = bytearray(data_size)
        used = self._used
        placed = []
        # The exits, and the blocks they may be linked to: see _link_placed.
        sites: list[tuple[int, int, int, int]] = []
        where: dict[int, int] = {}
        page_mask, page_size = _PAGE_MASK, abi.PAGE_SIZE
        values = self._resolved
        local_slots, counter_index, targets_index = self._locals
        iter_relocations = _RELOCATION.iter_unpack
        for layout, (code_at, data_at) in zip(blocks, at, strict=True):
            (pc, _, _, n_insns, return_pc, bits, n_ranges, n_relocations, n_jumps,
             n_targets, tables, _, start, size, i) = layout
            entry = code_base + code_at
            address = data_base + data_at
            counter = targets = 0
            if hot:
                counter = address + 16 * n_jumps
                if bits & 2:
                    targets = counter + 8
            code[code_at:code_at + size] = records[start:start + size]
            # The block's own data where its local names are in ``values`` (the
            # process values', resolved once each, are there already), then one
            # pack per relocation: an unresolved or meaningless value (not an int)
            # makes pack_into raise, and the slow path below sorts it out.
            for k, index in local_slots:
                values[index] = address + 16 * k if k < n_jumps else None
            if counter_index >= 0:
                values[counter_index] = counter
            if targets_index >= 0:
                values[targets_index] = targets
            relocations = tables + _RANGE.size * n_ranges
            jumps = relocations + _RELOCATION.size * n_relocations
            ok = True
            try:
                for offset, index in iter_relocations(records[relocations:jumps]):
                    pack(code, code_at + offset, values[index])
            except (struct.error, IndexError):
                # (pack_into zeroes its 8 bytes before it fails: the slow path starts
                # again from the stored bytes, as a pool's rel32 field is 4 of them)
                code[code_at:code_at + size] = records[start:start + size]
                ok = self._relocate_slowly(code, code_at, entry,
                                            records[relocations:jumps])
            if not ok:
                self._unplaceable.add(i)  # (a save replaces it with the block emitted)
                code[code_at:code_at + size] = bytes(size)  # (never entered)
                if not placed:  # (nothing refers to the chunks yet)
                    arena.free_code(code_base, code_size)
                    if data_size:
                        arena.free_data(data_base, data_size)
                    return []
                continue
            used[i] = 1
            slots = {}
            k = data_at
            number = len(placed)
            for n, offset in _JUMP.iter_unpack(records[jumps:jumps + _JUMP.size * n_jumps]):
                slots[n] = data_base + k
                if offset >= 0:
                    pack(data, k + 8, entry + offset)
                    sites.append((number, n, k, code_at + offset))
                else:
                    sites.append((number, n, k, -1))
                k += 16
            if hot:
                _I32.pack_into(data, k, hot)
                if targets:
                    data[k + 8:k + 8 + 8 * INDIRECT_TARGETS] = _NO_TARGETS
            start = jumps + _JUMP.size * n_jumps
            # (tuples: tuples of ints are untracked by the collector after its first
            # look, a list would be scanned by every full pass for the block's life)
            ranges = tuple(_RANGE.iter_unpack(records[tables:relocations]))
            if n_ranges == 1:
                page = pc & page_mask
                if page <= ranges[0][0] and ranges[0][1] <= page + page_size:
                    where[pc] = number
            placed.append(PlacedBlock(
                pc, ranges, n_insns, return_pc if bits & 1 else None, entry, size, slots,
                counter, targets,
                dict(_TARGET.iter_unpack(records[start:start + _TARGET.size * n_targets]))))
        if len(where) > 1:
            self._link_placed(placed, where, sites, code, code_base, data)
        arena.write(code_base, code)
        if data_size:
            arena.write(data_base, data)
        self.stats["hits"] += len(placed)
        return placed

    def _link_placed(self, placed: list[PlacedBlock], where: dict[int, int],
                     sites: list[tuple[int, int, int, int]], code: bytearray,
                     code_base: int, data: bytearray) -> None:
        """Link the direct exits of ``placed`` that reach one another in the chunks
        about to be written: ``sites`` are their exits (block number, slot n, the
        slot's offset in the data, its direct jump's rel32 offset in the code or -1),
        ``where`` the blocks that may be linked to (pc -> block number: those whose
        bytes are on their pc's page). The slot holds the destination's body, the
        jump jumps there."""
        body_offset = self.codegen.body_offset
        pack, pack32 = _Q.pack_into, _I32.pack_into
        linked: dict[int, list[tuple[int, int]]] = {}
        for number, n, slot_at, jump_at in sites:
            index = where.get(placed[number].exits.get(n, -1))
            if index is None:
                continue
            body = placed[index].entry + body_offset
            pack(data, slot_at, body)
            if jump_at >= 0:
                pack32(code, jump_at, body - (code_base + jump_at + 4))
            links = linked.get(number)
            if links is None:
                linked[number] = [(n, index)]
            else:
                links.append((n, index))
        for number, links in linked.items():
            placed[number].linked = tuple(links)

    # -- writing -------------------------------------------------------------------------
    def stores(self, pc: int, flags: int) -> bool:
        """Whether a block emitted at (pc, flags) now may be stored (not rewritten
        code, see REWRITTEN_LIMIT): if not, :meth:`note_emitted` need not be called
        (nor its guest bytes fetched)."""
        return not self._rewrites or self._rewrites.get((pc, flags), ()) is not None

    def note_emitted(self, tb: InstalledBlock, size: int, constants: Iterable[int],
                     guest: bytes) -> None:
        """A block was emitted this run (``size`` bytes of code; ``constants``: the
        64-bit values of its guest constants and pcs at least 2**32; ``guest``: the
        guest bytes it was translated from): store it at the next :meth:`save` if it is
        still valid then, or if it ran before it was invalidated."""
        if self._rewrites:
            contents = self._rewrites.get((tb.pc, tb.flags))
            if contents is not None:  # (invalidated before: new bytes there again?)
                contents.add(hash(guest))
                if len(contents) >= REWRITTEN_LIMIT:
                    self._rewritten((tb.pc, tb.flags))
                    return
        self._emitted[tb] = (size, frozenset(constants), guest)
        if self._freed:
            freed = self._freed.get((tb.pc, tb.flags))
            if freed is not None and freed.guest == guest:
                del self._freed[(tb.pc, tb.flags)]  # (the same block again: this one)
                self._freed_bytes -= len(freed.code)

    def note_arena_reset(self) -> None:
        """The arena is about to be reset (every block invalidated, the constant pools
        gone): nothing emitted so far is stored, as nothing of it can be checked at
        the save any more (and copying out a whole arena would be work for nothing)."""
        self._emitted.clear()
        self._freed.clear()
        self._freed_bytes = 0

    def note_invalidated(self, tb: InstalledBlock) -> None:
        """A block is being invalidated (before its code and data are given back): if
        it was emitted this run and ran, keep a copy of its code for the save. The
        guest bytes recorded at emission are what the copy stands for, whatever the
        guest writes there later (a store invalidates before it writes, DMA may not)."""
        entry = self._emitted.pop(tb, None)
        key = (tb.pc, tb.flags)
        contents = self._rewrites.get(key, ())
        if contents is None:
            return  # (rewritten code: nothing of it stored)
        if contents == ():
            self._rewrites[key] = set()
        if entry is None:
            return
        size, constants, guest = entry
        if tb.counter and tb.counter_start == self.codegen.hot_threshold \
                and not tb.executions():
            return  # (translated ahead, never entered: see _save)
        if self._freed_bytes + size > self.max_bytes:
            return  # (a program that keeps making code: the file could not hold it)
        old = self._freed.get(key)
        if old is not None:
            self._freed_bytes -= len(old.code)
        self._freed[key] = _Freed(tb, constants, guest, ctypes.string_at(tb.entry, size),
                                  _jumps(tb), self.codegen.arena.generation)
        self._freed_bytes += size

    def _rewritten(self, key: tuple[int, int]) -> None:
        """(pc, flags) ``key`` is rewritten code: drop what is held of it."""
        self._rewrites[key] = None
        self.stats["rewritten"] += 1
        freed = self._freed.pop(key, None)
        if freed is not None:
            self._freed_bytes -= len(freed.code)

    def save(self) -> int:
        """Write the file again if this run emitted blocks not stored yet: the new ones
        still valid or that ran before they were invalidated, and the stored ones
        (those used this run first, within ``max_bytes``). Best effort (a read-only or
        full disk is not an error). Returns the blocks written (0: none)."""
        if not self._emitted and not self._freed:
            return 0
        emitted, self._emitted = self._emitted, {}
        freed, self._freed, self._freed_bytes = self._freed, {}, 0
        # Thousands of small acyclic records: with the collector on, their allocations
        # set off full collections of the whole (large, after translating) heap, which
        # took 2/3 of the time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._save(emitted, freed)
        finally:
            if collecting:
                gc.enable()

    def _key(self, i: int) -> tuple[int, int, bytes] | None:
        """Block i's (pc, flags, guest bytes); None if malformed."""
        layout = self._layout(i)
        if layout is None:
            return None
        return layout[0], layout[1], bytes(self._records[layout[11]:layout[12]])

    def _save(self, emitted: dict[InstalledBlock, tuple[int, frozenset[int], bytes]],
              freed: dict[tuple[int, int], _Freed]) -> int:
        if self._table is not None and self._changed():
            # Another process (or hart) saved since: merge with that (what this run
            # used, found by key: the block numbers are the old file's).
            used = {self._key(i) for i, u in enumerate(self._used) if u}
            self._forget_file()
            self._read()
            for i in range(self._count):
                if self._key(i) in used:
                    self._used[i] = 1
        self._read()
        values = self.codegen.process_values()
        relocatable = {v: name for v, name in values.items() if v >= _WIDE}
        fixed = sorted((name, v) for v, name in values.items() if v < _WIDE)
        pools = self.codegen.pools()
        tops = _tops(relocatable)
        new: list[CachedBlock] = []
        hot = self.codegen.hot_threshold
        capture = self._capture
        for tb, (size, constants, guest) in emitted.items():
            if not tb.valid:
                continue  # (invalidated without note_invalidated: not known to have run)
            if tb.counter and tb.counter_start == hot and not tb.executions():
                # Translated ahead of a miss, never entered (a third of glibc start-up's
                # blocks): placing it next time would be work for nothing.
                self.stats["unrun"] += 1
                continue
            block = capture(tb, ctypes.string_at(tb.entry, size), _jumps(tb), constants,
                            guest, relocatable, tops, pools)
            if block is None:
                self.stats["skipped"] += 1
                continue
            new.append(block)
        generation = self.codegen.arena.generation
        for f in freed.values():
            # (of an arena reset since: its constant pools are gone, unchecked)
            block = capture(f.tb, f.code, f.jumps, f.constants, f.guest, relocatable,
                            tops, pools) if f.generation == generation else None
            if block is None:
                self.stats["skipped"] += 1
                continue
            new.append(block)
        # A new block of the same (pc, flags, guest bytes) as a stored one is the same
        # block (it was re-emitted, e.g. after an invalidation of its page): not written
        # again, unless the stored one could not be placed here (it is replaced).
        # At most MAX_VERSIONS per (pc, flags): beyond that a new one is not added.
        keys = {(b.pc, b.flags): None for b in new}
        stored: dict[tuple[int, int, bytes], int] = {}
        versions: dict[tuple[int, int], int] = {}
        for i, (pc, flags, _, _) in enumerate(_ENTRY.iter_unpack(self._table)):
            if (pc, flags) in keys:
                key = self._key(i)
                if key is not None:
                    stored[key] = i
                    versions[pc, flags] = versions.get((pc, flags), 0) + 1
        replaced = set()
        unique = []
        seen = set()
        for block in new:
            key = (block.pc, block.flags, bytes(block.guest))
            if key in seen:
                continue  # (emitted, invalidated, emitted again: once)
            seen.add(key)
            i = stored.get(key)
            if i is not None:
                if i not in self._unplaceable:
                    continue
                replaced.add(i)
            else:
                count = versions.get((block.pc, block.flags), 0)
                if count >= MAX_VERSIONS:
                    self.stats["versions_full"] += 1
                    continue
                versions[block.pc, block.flags] = count + 1
            unique.append(block)
        if not unique:
            return 0  # (nothing new: blocks re-emitted because they cannot be stored)
        self._write(unique, replaced, fixed)
        return self.stats["stored"]

    def _capture(self, tb: InstalledBlock, emitted: bytes, jumps: list[tuple[int, int]],
                 constants: frozenset[int], guest: bytes, relocatable: dict[int, str],
                 tops: frozenset[bytes], pools: list[tuple[int, bytes]]
                 ) -> CachedBlock | None:
        """The record of an emitted block: its code (``emitted``, as it was at
        ``tb.entry``, with the direct jumps ``jumps``: exit slot n -> offset of the
        rel32 or -1) made relocatable, or None when that would be ambiguous."""
        code = bytearray(emitted)
        local: dict[int, str] = {}
        for i, (_, slot) in enumerate(sorted(tb.slots.items())):
            local[slot] = f"{_LOCAL}slot{i}"
        for _, offset in jumps:
            if offset >= 0:  # (unlinked, as emitted: a jump to the next instruction)
                code[offset:offset + 4] = bytes(4)
        if tb.counter:
            local[tb.counter] = f"{_LOCAL}counter"
        if tb.target_cell:
            local[tb.target_cell] = f"{_LOCAL}targets"
        process = relocatable.keys()
        if not process.isdisjoint(local):
            return None  # (the block's data where a process value is: cannot be)
        if constants and not (process.isdisjoint(constants)
                              and local.keys().isdisjoint(constants)):
            return None  # (a guest constant looks like a host address here)
        relocations = _find_values(code, relocatable, local, tops)
        if relocations is None or any(not name for _, name in relocations):
            return None  # (ambiguous)
        if pools:
            pc_relative = _pool_references(code, tb.entry, pools)
            if pc_relative is None:
                return None  # (4 bytes near a pool that are not a reference into it)
            if pc_relative:
                relocations = sorted(relocations + pc_relative)
                if any(b[0] < a[0] + (4 if a[1].startswith(_POOL) else 8)
                       for a, b in zip(relocations, relocations[1:], strict=False)):
                    return None  # (a rel32 field overlapping another relocation)
        return CachedBlock(tb.pc, tb.flags, tuple(tuple(r) for r in tb.ranges), guest,
                           bytes(code), tuple(relocations), tuple(jumps),
                           tuple(sorted(tb.direct_targets.items())), tb.n_insns,
                           tb.return_pc, bool(tb.target_cell))

    def _write(self, new: list[CachedBlock], replaced: set[int],
               fixed: list[tuple[str, int]]) -> None:
        """Write the file: ``new`` blocks and the stored ones but ``replaced``. The
        stored records are copied as they are (the value names keep their numbers,
        new ones are added after them): when all of them are kept, the old block table
        and records go out whole and a save costs what the new blocks cost."""
        names = {name: i for i, name in enumerate(self._names)}
        new_records = [block.record(names) for block in new]
        old_table, old_records = self._table, self._records
        limit = self.max_bytes
        size = len(old_table) + len(old_records) \
            + sum(map(len, new_records)) + _ENTRY.size * len(new_records)
        whole = not replaced and size <= limit and all(
            offset + length <= len(old_records)
            for _, _, offset, length in _ENTRY.iter_unpack(old_table))
        if whole:
            table = bytearray(old_table)
            offset = len(old_records)
            for block, record in zip(new, new_records, strict=True):
                table += _ENTRY.pack(block.pc, block.flags, offset, len(record))
                offset += len(record)
            records = [old_records, *new_records]
            stored = self._count + len(new)
        else:
            # New blocks first, then the stored ones this run used, then the others,
            # as long as the file stays within max_bytes.
            used = self._used
            candidates = [(b.pc, b.flags, r) for b, r in zip(new, new_records, strict=True)]
            old = [i for i in range(self._count) if i not in replaced]
            for i in [i for i in old if used[i]] + [i for i in old if not used[i]]:
                layout = self._layout(i)
                if layout is not None:
                    pc, flags, offset, length = _ENTRY.unpack_from(old_table, i * _ENTRY.size)
                    candidates.append((pc, flags, old_records[offset:offset + length]))
            table = bytearray()
            records = []
            size = offset = 0
            for pc, flags, record in candidates:
                size += len(record) + _ENTRY.size
                if size > limit:
                    break
                table += _ENTRY.pack(pc, flags, offset, len(record))
                records.append(record)
                offset += len(record)
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


@dataclass(slots=True)
class _Freed:
    """An emitted block copied out when it was invalidated (note_invalidated)."""

    tb: InstalledBlock  # (its fields: the code and data they point to are gone)
    constants: frozenset[int]
    guest: bytes
    code: bytes
    jumps: list[tuple[int, int]]  # exit slot n -> offset of its direct jump's rel32, -1
    generation: int  # the arena's: an arena reset since drops it (its pools are gone)


def _jumps(tb: InstalledBlock) -> list[tuple[int, int]]:
    """(exit slot n, offset of its direct jump's rel32 in the code or -1) of an emitted
    block whose data is still there, in slot order."""
    out = []
    for n, slot in sorted(tb.slots.items()):
        jump = BaselineCodegen.jump_of(slot)
        out.append((n, jump - tb.entry if jump else -1))
    return out


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


_POOL = "pool."  # value names of constant pools (by their bytes), reached by rel32
_LOCAL = "block."  # value names of a block's own data (slots, counter, profile)
# The local value names: exit slot k (in slot order), the HOT counter, the target
# profile. (A block has at most a few exit slots; more than 64 is not a block the
# codegen emits.)
_LOCAL_NAMES = frozenset({f"{_LOCAL}counter", f"{_LOCAL}targets",
                          *(f"{_LOCAL}slot{i}" for i in range(64))})
_UNRESOLVED = object()  # (a value name not looked up in this process yet)


class _PoolCopy(NamedTuple):
    """A constant pool's value in the resolved-values list: where this process's copy
    of the pool's bytes is (plus the offset the block uses), reached by a rel32."""

    address: int


def _local_indexes(names: list[str]) -> tuple[tuple[tuple[int, int], ...], int, int]:
    """Where the block-local value names are in ``names``: ((slot k, index), ...),
    the HOT counter's index and the profile's (-1: not there)."""
    index = {name: i for i, name in enumerate(names)}
    slots = tuple((k, index[f"{_LOCAL}slot{k}"]) for k in range(64)
                  if f"{_LOCAL}slot{k}" in index)
    return (slots, index.get(f"{_LOCAL}counter", -1), index.get(f"{_LOCAL}targets", -1))


_NO_TARGETS = b"\xff" * (8 * INDIRECT_TARGETS)  # (an empty indirect-target profile)
_PAGE_MASK = abi.PAGE_MASK


def _tops(values: Iterable[int]) -> frozenset[bytes]:
    """The distinct top three bytes (little-endian) of 64-bit ``values``."""
    return frozenset(((value >> 40) & 0xFF_FFFF).to_bytes(3, "little") for value in values)


def _find_values(code: bytes | bytearray, table: dict[int, str],
                 local: dict[int, str] | None = None, tops: frozenset[bytes] | None = None
                 ) -> list[tuple[int, str]] | None:
    """(offset, name) of every 8 bytes of ``code`` (at any offset) whose value is in
    ``local`` (looked up first) or ``table``; None if two of them overlap (which one
    is real is unknown). ``tops``: ``_tops(table)``, when the caller made it once for
    many blocks (a save: hundreds of process values, tens of thousands of blocks).

    Candidates are found by their top three bytes (a few distinct ones: host addresses
    share them), searched for in C by ``bytes.find``; only those are unpacked."""
    found = []
    n = len(code)
    unpack = _Q.unpack_from
    if tops is None:
        tops = _tops(table)
    if local:
        tops = tops | _tops(local)
    else:
        local = {}
    for pattern in tops:
        position = code.find(pattern, 5)
        while position >= 0:
            offset = position - 5
            if offset + 8 <= n:
                value = unpack(code, offset)[0]
                name = local.get(value)
                if name is None:
                    name = table.get(value)
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
    displacement, point into one of ``ranges``."""
    return any(_rel32_fields(code, address, ranges))


def _pool_references(code: bytes | bytearray, address: int, pools: list[tuple[int, bytes]]
                     ) -> list[tuple[int, str]] | None:
    """The relocations (offset, ``pool.<hex>@<offset in the pool>``) of the rel32
    fields of ``code`` (placed at ``address``) that reach one of ``pools`` ((address,
    bytes) placed by this process); None when some 4 bytes read as a rel32 reach near
    a pool (64 bytes either side: any PC-relative addend) but are not a RIP-relative
    operand into one pool (the ModRM byte before a disp32 is mod 00, r/m 101): which
    they are cannot be told, so the block is not stored (a false match only costs
    that). The offset is from the field's end, as the displacement is: an immediate
    after it (cmpps, vpternlogd ..) makes it up to 4 less than the real one's."""
    found = {}
    for offset, target in _rel32_fields(code, address,
                                        [(start - 64, start + len(data) + 64)
                                         for start, data in pools]):
        # (An immediate after the field moves the real target up by its size, one
        # byte for the SSE/AVX forms: the pool whose bytes the target is in, or up to
        # 4 bytes before. The displacement is relocated the same way whatever it is.)
        reached = [(start, data) for start, data in pools
                   if start - 4 <= target < start + len(data)]
        if len(reached) != 1 or offset < 1 or code[offset - 1] & 0xC7 != 0x05:
            return None
        start, data = reached[0]
        found[offset] = f"{_POOL}{data.hex()}@{target - start}"
    return sorted(found.items())


def _rel32_fields(code: bytes | bytearray, address: int, ranges: list[tuple[int, int]]
                  ) -> Iterator[tuple[int, int]]:
    """(offset, target) of every 4 bytes of ``code`` (placed at ``address``) that,
    read as a rel32 displacement, point into one of ``ranges``.

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
                        yield offset, target
                position = code.find(pattern, position + 1)
