"""An executable code arena with W^X: one reservation, code never writable where it runs.

Layout (one ``memfd`` of ``code_size + data_size`` bytes, mapped three times into one
address-space reservation made up front)::

    base                      base + code_size          base + code_size + data_size
    | code zone, r-x (runs)   | data zone, rw- (no x)   | code alias, rw- (writes) |

- Code and read-only data (constants, jump tables, GOT entries, stencil copies) are
  executed and read through the **r-x view** and written through the **rw- alias**, which
  maps the same memfd pages ``alias_delta`` bytes higher. No page is ever mapped
  writable and executable at once, so hosts that forbid such mappings (SELinux
  ``execmem``, PaX) accept it, and a stray guest-controlled write cannot land in code.
- Data native code writes (module globals, exit slots, counters) lives in the **data
  zone**, mapped read-write and never executable, right after the code zone.
- Everything a caller gets an address for is inside ``code_size + data_size`` bytes
  (at most 2 GiB), so 32-bit PC-relative jumps, calls and data references between any
  two chunks always reach.
- Pages are committed lazily: the reservation is ``MAP_NORESERVE`` and the memfd is
  sparse; a page takes memory when first written. :meth:`CodeArena.reset` truncates
  the memfd, which returns every page to the kernel (they read as zero again).

Allocation is a bump pointer per zone, in granules of :data:`GRANULE` bytes. A chunk
the caller no longer needs (the code and data of an invalidated block, once no native
frame can be running it) goes back with :meth:`free_code` / :meth:`free_data` to a free
list of its size, and the next request of that size takes it before the bump pointer
moves: a program that rewrites and retranslates the same code (self-modifying code, a
JIT in the guest) keeps reusing the same bytes instead of growing the arena (and the
process's RSS) with every rewrite. There is no coalescing; chunks of sizes never asked
for again stay on their lists until :meth:`reset`. When a zone is full,
:class:`ArenaFull` is raised before anything is written: the caller flushes every
translation and calls :meth:`reset` (QEMU's ``tb_flush``).

Coherence: x86 keeps instruction fetch coherent with stores to the same physical
memory, whichever virtual alias the stores went through, so no cache maintenance is
needed. What is needed is that every byte of a chunk is written before any thread
jumps to it: the writers here are plain stores from the thread that later calls (or
publishes) the code, and the call or the release store that publishes an entry point
orders them. Patching code another thread may be executing (chaining) must write one
aligned 4-byte field per patch (atomic on x86) — the caller's job, noted for the
integration step.

Fork: the memfd is ``MAP_SHARED`` (that is what makes the alias see the same pages), so
after ``fork()`` parent and child would write each other's code. At-fork hooks give
the child a private copy of the used bytes at the same addresses, copied in the parent
before the fork (a copy the child made would race the parent's writes after it).
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import weakref

# The process's own symbols (libc is loaded): ctypes.util.find_library would import
# subprocess, ~10 ms on every start.
_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                  ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_MADV_DONTNEED = 4
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_FIXED = 0x10
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_PROT_NONE = 0
_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_PROT_RX = mmap.PROT_READ | mmap.PROT_EXEC

PAGE_SIZE = mmap.PAGESIZE
MAX_REACH = 1 << 31  # code + data must stay within rel32 reach of each other
DEFAULT_CODE_SIZE = 256 << 20
DEFAULT_DATA_SIZE = 64 << 20
GRANULE = 8  # allocation unit: a freed chunk can hold any request of its rounded size
# Every this many bytes of new code, the rw alias's page mappings are dropped (see
# CodeArena._drop_alias).
ALIAS_DROP_STEP = 1 << 20


class ArenaFull(Exception):
    """A zone of the arena has no room for the requested chunk; nothing was written.
    The caller drops every translation and calls :meth:`CodeArena.reset`."""


def _map(address: int | None, size: int, prot: int, flags: int, fd: int = -1,
         offset: int = 0) -> int:
    result = _mmap(address, size, prot, flags, fd, offset)
    if result in (None, _MAP_FAILED):
        err = ctypes.get_errno()
        raise OSError(err, f"mmap of {size:#x} bytes for the code arena failed: "
                           f"{os.strerror(err)}")
    return result


def _page_ceil(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def _granules(size: int) -> int:
    """``size`` rounded up to whole granules: what a chunk takes, and can hold once freed."""
    return (size + GRANULE - 1) & ~(GRANULE - 1)


def _view(address: int, size: int) -> memoryview:
    return memoryview((ctypes.c_ubyte * size).from_address(address)).cast("B")


class CodeArena:
    """Executable memory for generated code, W^X by construction (see the module doc).

    Args:
        code_size: bytes of the code zone (code and read-only data), reserved up front.
        data_size: bytes of the data zone (writable, never executable).
        name: the memfd's name, shown in ``/proc/<pid>/maps``.

    Raises:
        ValueError: sizes not positive, or together beyond rel32 reach (2 GiB).
        OSError: the host refused the memfd or the mappings.
    """

    def __init__(self, code_size: int = DEFAULT_CODE_SIZE,
                 data_size: int = DEFAULT_DATA_SIZE, name: str = "llvmtcg-code") -> None:
        if code_size <= 0 or data_size <= 0:
            raise ValueError("code arena zone sizes must be positive")
        code_size, data_size = _page_ceil(code_size), _page_ceil(data_size)
        if code_size + data_size > MAX_REACH:
            raise ValueError(f"code arena of {code_size + data_size:#x} bytes is beyond the "
                             f"{MAX_REACH:#x} bytes 32-bit relative jumps reach")
        self.code_size = code_size
        self.data_size = data_size
        self.name = name
        self._fd = _high_memfd(name)
        try:
            os.ftruncate(self._fd, code_size + data_size)
            self.reservation_size = 2 * code_size + data_size
            self.base = _map(None, self.reservation_size, _PROT_NONE,
                             mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
        except BaseException:
            os.close(self._fd)
            raise
        self.code_start = self.base
        self.data_start = self.base + code_size
        self.alias_delta = code_size + data_size  # rw alias address - r-x address
        self._map_views(self._fd)
        self._code_rw = _view(self.code_start + self.alias_delta, code_size)
        self._data_rw = _view(self.data_start, data_size)
        self._code_used = 0
        self._data_used = 0
        self._alias_dropped_at = 0  # code_used when the alias's pages were last dropped
        # Freed chunks by rounded size (see free_code): reused before the bump pointer.
        self._free_code: dict[int, list[int]] = {}
        self._free_data: dict[int, list[int]] = {}
        self.generation = 0  # bumped by reset(): addresses from before are dead
        self._closed = False
        self._fork_fd = -1  # the child's copy, made before a fork
        ref = weakref.ref(self)
        os.register_at_fork(before=lambda: _before_fork(ref),
                            after_in_parent=lambda: _after_fork_in_parent(ref),
                            after_in_child=lambda: _after_fork_in_child(ref))

    def _map_views(self, fd: int) -> None:
        shared_fixed = mmap.MAP_SHARED | _MAP_FIXED
        _map(self.code_start, self.code_size, _PROT_RX, shared_fixed, fd, 0)
        _map(self.data_start, self.data_size, _PROT_RW, shared_fixed, fd, self.code_size)
        _map(self.code_start + self.alias_delta, self.code_size, _PROT_RW, shared_fixed,
             fd, 0)

    # -- allocation --------------------------------------------------------------------

    @property
    def code_used(self) -> int:
        return self._code_used

    @property
    def data_used(self) -> int:
        return self._data_used

    def alloc_code(self, size: int, align: int = 16) -> int:
        """Room for ``size`` bytes of code or read-only data; returns the address it
        runs at (fill it with :meth:`write` before anything executes it).

        Raises:
            ArenaFull: the code zone has no room (nothing was allocated).
        """
        size = _granules(size)
        free = self._free_code.get(size)
        if free and not free[-1] & (align - 1):
            return free.pop()
        start = self._bump(self._code_used, size, align, self.code_size, "code")
        self._code_used = start + size
        if start - self._alias_dropped_at >= ALIAS_DROP_STEP:
            self._drop_alias(start)
        return self.code_start + start

    def _drop_alias(self, end: int) -> None:
        """Unmap the rw alias's pages below code offset ``end`` (MADV_DONTNEED; the
        memfd keeps their bytes). Code is written there once and patched rarely, but a
        page mapped in both views counts twice in the process's RSS: without this, the
        baseline arena's code showed up twice (speedtest1: 23 MB for 11.5 MB of code).
        A later patch faults its page back in."""
        end &= ~(PAGE_SIZE - 1)
        if end > 0:
            _madvise(self.code_start + self.alias_delta, end, _MADV_DONTNEED)
        self._alias_dropped_at = end

    def alloc_data(self, size: int, align: int = 16) -> int:
        """Room for ``size`` bytes of writable, non-executable data; returns its address.
        Fresh chunks read as zero (a reset zeroes every page, and a freed chunk is
        zeroed when it is handed out again).

        Raises:
            ArenaFull: the data zone has no room (nothing was allocated).
        """
        size = _granules(size)
        free = self._free_data.get(size)
        if free and not free[-1] & (align - 1):
            address = free.pop()
            ctypes.memset(address, 0, size)
            return address
        start = self._bump(self._data_used, size, align, self.data_size, "data")
        self._data_used = start + size
        return self.data_start + start

    def free_code(self, address: int, size: int) -> None:
        """Give back a chunk of :meth:`alloc_code` (``size`` as requested): a later
        request of the same rounded size reuses it. Only call when no thread can be
        running or about to enter code in it (nothing links or jumps there any more)."""
        self._free(self._free_code, address, size, self.code_start, self._code_used)

    def free_data(self, address: int, size: int) -> None:
        """Give back a chunk of :meth:`alloc_data` (as :meth:`free_code`; no native
        code may read or write it any more)."""
        self._free(self._free_data, address, size, self.data_start, self._data_used)

    def _free(self, lists: dict[int, list[int]], address: int, size: int, zone: int,
              used: int) -> None:
        size = _granules(size)
        if not (zone <= address and address + size <= zone + used):
            raise ValueError(f"[{address:#x}, +{size:#x}) was not allocated from this "
                             f"code arena")
        lists.setdefault(size, []).append(address)

    @property
    def free_bytes(self) -> int:
        """Bytes on the free lists (code and data), waiting for reuse."""
        return sum(size * len(chunks) for lists in (self._free_code, self._free_data)
                   for size, chunks in lists.items())

    def _bump(self, used: int, size: int, align: int, limit: int, zone: str) -> int:
        if self._closed:
            raise ValueError("code arena is closed")
        if size < 0 or align <= 0 or align & (align - 1):
            raise ValueError(f"bad allocation: size {size}, alignment {align}")
        start = (used + align - 1) & ~(align - 1)
        if start + size > limit:
            raise ArenaFull(f"code arena {zone} zone full: {size} bytes requested, "
                            f"{limit - used} of {limit} free")
        return start

    # -- access ------------------------------------------------------------------------

    def writable(self, address: int, size: int) -> memoryview:
        """A writable view of ``[address, address + size)`` (an arena address, as
        returned by ``alloc_*``): code bytes are reached through the rw- alias.
        ``struct.pack_into`` patches go through it."""
        if self.code_start <= address and address + size <= self.code_start + self.code_size:
            offset = address - self.code_start
            return self._code_rw[offset:offset + size]
        if self.data_start <= address and address + size <= self.data_start + self.data_size:
            offset = address - self.data_start
            return self._data_rw[offset:offset + size]
        raise ValueError(f"[{address:#x}, +{size:#x}) is not inside the code arena")

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` to an arena address (code through the alias, data directly)."""
        self.writable(address, len(data))[:] = data

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.writable(address, size))

    def contains(self, address: int) -> bool:
        """Whether ``address`` is in the code or data zone."""
        return self.code_start <= address < self.data_start + self.data_size

    # -- life cycle --------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every chunk and give all pages back (they read as zero afterwards).
        Callers guarantee no native frame is running in the arena."""
        if self._closed:
            raise ValueError("code arena is closed")
        total = self.code_size + self.data_size
        # Truncating a memfd frees its pages in every mapping; the views stay mapped
        # and fault fresh zero pages in on the next touch.
        os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, total)
        self._code_used = 0
        self._data_used = 0
        self._alias_dropped_at = 0
        self._free_code.clear()
        self._free_data.clear()
        self.generation += 1

    def close(self) -> None:
        """Unmap everything. Callers guarantee no native frame is running in the arena."""
        if self._closed:
            return
        self._closed = True
        self._code_rw.release()
        self._data_rw.release()
        _munmap(self.base, self.reservation_size)
        os.close(self._fd)

    def __enter__(self) -> CodeArena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _snapshot(self) -> int:
        """A memfd holding the used bytes, for a child about to be forked (made in the
        parent before the fork: once the parent runs on, it writes the shared pages —
        exit slots chained to code it translates after the fork — and a copy made by
        the child then would hold pointers to code the child never had)."""
        fd = _high_memfd(self.name)
        try:
            os.ftruncate(fd, self.code_size + self.data_size)
            _write_all(fd, self._code_rw[:self._code_used], 0)
            _write_all(fd, self._data_rw[:self._data_used], self.code_size)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _make_private(self, fd: int) -> None:
        """In a forked child: move onto ``fd`` (the :meth:`_snapshot` taken before the
        fork) at the same addresses, so parent and child stop sharing code and data
        pages."""
        self._map_views(fd)  # MAP_FIXED replaces the shared mappings in place
        os.close(self._fd)
        self._fd = fd


# The lowest fd an arena's memfd takes: a user-mode guest's files are host fds, and
# its open() must return the numbers Linux would (the lowest free one), so the
# emulator's own fds stay out of the low range (the -D log file sits at 1023).
_MEMFD_MIN = 768


def _high_memfd(name: str) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _MEMFD_MIN)
    except OSError:
        return fd  # (a low RLIMIT_NOFILE: keep the low one)
    os.close(fd)
    return high


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _before_fork(ref: weakref.ref[CodeArena]) -> None:
    # (A user-mode fork holds the translation lock: no thread translates or chains.
    # The compile thread may still be loading a region into a JIT arena: the child
    # then gets some torn bytes it never runs — it compiles that region again.)
    arena = ref()
    if arena is not None and not arena._closed:
        arena._fork_fd = arena._snapshot()


def _after_fork_in_parent(ref: weakref.ref[CodeArena]) -> None:
    arena = ref()
    if arena is not None and arena._fork_fd >= 0:
        os.close(arena._fork_fd)
        arena._fork_fd = -1


def _after_fork_in_child(ref: weakref.ref[CodeArena]) -> None:
    arena = ref()
    if arena is not None and arena._fork_fd >= 0:
        fd, arena._fork_fd = arena._fork_fd, -1
        if not arena._closed:
            arena._make_private(fd)
        else:
            os.close(fd)
