"""The embedding API: :class:`Emulator`, a Unicorn-style engine over the llvmtcg runtime.

Names, arguments and semantics follow Unicorn's (``Uc``'s Python binding), so code
written against Unicorn ports by renaming. The emulator is a layer on the runtime: one
:class:`~llvmtcg.runtime.cpu_exec.Cpu` on one :class:`GuestMemory`, running an
:class:`~llvmtcg.emulator.instrument.InstrumentedArch` that compiles ``until``, ``count``
and hook calls into the translated code (see that module).
"""

from __future__ import annotations

import atexit
import ctypes
import enum
import io
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llvmtcg.arch import CpuModelError, GuestArch, UnknownArchError, UnknownRegisterError
from llvmtcg.arch import arch_by_name as _arch_by_name
from llvmtcg.emulator.inline import CmpLog, Predicate
from llvmtcg.emulator.instrument import (
    API_FIELDS,
    BUDGET_FIELD,
    COUNTS_FIELD,
    COVERAGE_CELL_FIELD,
    COVERAGE_COUNT_FIELD,
    COVERAGE_MAP_FIELD,
    COVERAGE_PREV_FIELD,
    EXCP_API_STOP,
    MEM_INFO_AFTER,
    MEM_INFO_FETCH,
    MEM_INFO_WRITE,
    HookTarget,
    InstrumentedArch,
    TranslationConfig,
    WhenHook,
)
from llvmtcg.emulator.snapshot import DirtyPages, RegionCopy, Snapshot
from llvmtcg.emulator.types import Context, EmulatorError, ErrorKind, Hook, MemAccess, Perm
from llvmtcg.ir.cpu_layout import PAGE_SIZE, RUNTIME_FIELDS
from llvmtcg.ir.ops import ExitReason
from llvmtcg.log import Log
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.exits import (
    EXCP_MEM_FAULT,
    EXCP_MISALIGNED,
    Access,
    CpuExit,
    FaultKind,
    GuestFault,
    MemFault,
)
from llvmtcg.runtime.softmmu import GuestMemory

Register = enum.IntEnum | int | str
_MASK64 = (1 << 64) - 1
# (and the CPU's lookup table, which names this emulator's translations: a context
# restored into another emulator must not carry it)
_RUNTIME_FIELD_NAMES = frozenset(name for name, _ in RUNTIME_FIELDS) | {"tb_table", "tlb_walk"}
# The emulator's default address space: 2**38 bytes reserved (not committed).
DEFAULT_MEMORY_SIZE = 1 << 38
# Translation options: hot regions compile on the run loop's thread, so a background
# compile never installs code translated under a previous run's hooks or `until`.
DEFAULT_EMULATOR_OPTIONS = RuntimeOptions(tier_sync=True)


# (access, fault kind) -> (the error, the MEM_* access a hook sees, the hook type).
_FAULTS: dict[tuple[Access, FaultKind], tuple[ErrorKind, MemAccess, Hook]] = {
    (Access.READ, FaultKind.UNMAPPED):
        (ErrorKind.READ_UNMAPPED, MemAccess.READ_UNMAPPED, Hook.MEM_READ_UNMAPPED),
    (Access.WRITE, FaultKind.UNMAPPED):
        (ErrorKind.WRITE_UNMAPPED, MemAccess.WRITE_UNMAPPED, Hook.MEM_WRITE_UNMAPPED),
    (Access.FETCH, FaultKind.UNMAPPED):
        (ErrorKind.FETCH_UNMAPPED, MemAccess.FETCH_UNMAPPED, Hook.MEM_FETCH_UNMAPPED),
    (Access.READ, FaultKind.PROTECTION):
        (ErrorKind.READ_PROT, MemAccess.READ_PROT, Hook.MEM_READ_PROT),
    (Access.WRITE, FaultKind.PROTECTION):
        (ErrorKind.WRITE_PROT, MemAccess.WRITE_PROT, Hook.MEM_WRITE_PROT),
    (Access.FETCH, FaultKind.PROTECTION):
        (ErrorKind.FETCH_PROT, MemAccess.FETCH_PROT, Hook.MEM_FETCH_PROT),
}
_UNALIGNED = {Access.READ: ErrorKind.READ_UNALIGNED, Access.WRITE: ErrorKind.WRITE_UNALIGNED,
              Access.FETCH: ErrorKind.FETCH_UNALIGNED}
_SUPPORTED_HOOKS = (Hook.INTR | Hook.CODE | Hook.BLOCK | Hook.MEM_READ | Hook.MEM_WRITE
                    | Hook.MEM_FETCH | Hook.MEM_READ_AFTER | Hook.MEM_INVALID
                    | Hook.INSN_INVALID)
_INITIAL_COUNTER_SLOTS = 1024
_HALT = ExitReason.HALT


@dataclass(frozen=True, slots=True)
class Translation:
    """Every stage of the translation of one guest block (:meth:`Emulator.translation`).

    Attributes:
        pc: the block's first guest address.
        guest_size: bytes of guest code it covers.
        guest_asm: the guest instructions, disassembled.
        ir: the llvmtcg IR (with the current run's instrumentation, if any).
        llvm_ir: the LLVM IR after the cheap tier's optimisation pipeline.
        host_asm: the x86-64 assembly LLVM makes of it.
    """

    pc: int
    guest_size: int
    guest_asm: str
    ir: str
    llvm_ir: str
    host_asm: str

    def __str__(self) -> str:
        return "\n".join((self.guest_asm, self.ir, self.llvm_ir, self.host_asm))


@dataclass(slots=True)
class _HookEntry:
    kind: Hook
    callback: Callable[..., Any]
    user_data: Any
    begin: int
    end: int
    when: WhenHook | None = None  # compiled condition (CODE/BLOCK hooks with when=)

    def covers(self, address: int) -> bool:
        return self.begin > self.end or self.begin <= address <= self.end


class Emulator:
    """A guest CPU and its memory, driven as Unicorn drives one.

    Args:
        arch: the guest architecture (``"riscv64"``).
        cpu: the CPU model and properties, as ``-cpu`` takes them (None: the default).
        options: translation and tiering settings (default: hot code compiled
            synchronously).
        memory_size: bytes of guest address space; addresses at or above it cannot be
            mapped.

    Raises:
        EmulatorError: ``ARCH`` for an unknown architecture or CPU model.
    """

    def __init__(self, arch: str, cpu: str | None = None, *,
                 options: RuntimeOptions = DEFAULT_EMULATOR_OPTIONS,
                 memory_size: int = DEFAULT_MEMORY_SIZE) -> None:
        base = _make_arch(arch, cpu)
        self._closed = True  # until there is something to close
        self._events = base.exception_events
        # Native code calls the dispatch object, which holds the emulator weakly.
        self._dispatch = _HookDispatch(self)
        self._arch = InstrumentedArch(base, {HookTarget.CODE: self._dispatch.on_code,
                                             HookTarget.BLOCK: self._dispatch.on_block,
                                             HookTarget.MEM: self._dispatch.on_mem,
                                             HookTarget.WHEN: self._dispatch.on_when,
                                             HookTarget.COUNTER_SLOT: self._dispatch.counter_slot})
        self._memory = GuestMemory(memory_size)
        # The whole guest space as bytes (RAM at base + address): slicing it copies in
        # C, several times faster than a ctypes.memmove call for small copies.
        self._guest = memoryview((ctypes.c_char * memory_size).from_address(
            self._memory.base)).cast("B")
        self._cpu = Cpu(self._arch, self._memory, options)
        self._closed = False
        _close_at_exit(self)
        self._state = self._cpu.state
        self._dispatch.cpu = self._cpu
        self._globals = self._arch.layout.globals()
        self._coverage_prev = ctypes.c_uint64.from_address(
            self._state.address + self._arch.layout.offset(COVERAGE_PREV_FIELD))
        self._register_cells: dict[Register, ctypes.c_uint64] = {}  # plain 64-bit fields
        self._dispatch.pc_cell = ctypes.c_uint64.from_address(
            self._state.address + self._arch.layout.offset("pc"))
        self._exit_request = self._state.cell("exit_request")
        self._page_has_code = self._cpu.tbs.page_has_code
        self._hooks: dict[int, _HookEntry] = {}
        self._hooks_version = 0  # changes with every hook_add and hook_del
        self._configured: tuple[int, bool, int] | None = None  # (until, counting, version)
        self._next_handle = 1
        self._running = False
        self._last_access: tuple[int, int] = (0, 0)  # (size, value) of a faulting access
        self._note_faulting_accesses()
        # Inline instrumentation: what the next run compiles in, and its buffers.
        self._coverage: tuple[Any, int] | None = None  # (ctypes view of the map, bits)
        self._count_ranges: dict[bool, tuple[int, int]] = {}  # block? -> (begin, end)
        self._dispatch.counters.attach(self._state)
        self._cmplog: CmpLog | None = None
        # Snapshots: dirty-page tracking (from the first snapshot on), the snapshot
        # memory last started from, and a version of the mappings.
        self._dirty: DirtyPages | None = None
        self._base: tuple[weakref.ref[Snapshot], int] | None = None  # (it, layout version)
        self._layout_version = 0
        # (offset, size) of the guest's fields in the CPU state: what a Context holds.
        guest = [f for name, f in self._arch.layout.fields.items()
                 if name not in _RUNTIME_FIELD_NAMES and name not in API_FIELDS]
        start = min(f.offset for f in guest)
        size = max(f.offset + f.size for f in guest) - start
        # (a memoryview: slice copies in C, cheaper than a ctypes call per context)
        self._registers = memoryview((ctypes.c_char * size).from_address(
            self._state.address + start)).cast("B")

    @property
    def arch(self) -> GuestArch:
        """The guest architecture (and CPU model) this emulator runs."""
        return self._arch.base

    def close(self) -> None:
        """Release the CPU and the guest address space (the emulator is unusable after;
        closing twice is harmless)."""
        if self._closed:
            return
        self._closed = True
        self._cpu.close()
        self._memory.close()
        if self._dirty is not None:
            self._dirty.close()
        self._guest.release()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):  # (a constructor that failed: nothing)
            self.close()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- memory ---------------------------------------------------------------------------
    def mem_map(self, address: int, size: int, perms: int = Perm.ALL) -> None:
        """Map ``size`` bytes of zeroed memory at ``address``.

        Args:
            address: page aligned.
            size: a positive multiple of the page size.
            perms: a combination of :class:`Perm` flags.

        Raises:
            EmulatorError: ``ARG`` for an unaligned or empty range, a range outside the
                address space or bad permissions; ``MAP`` if it overlaps a mapping.
        """
        self._check_range(address, size)
        self._check_perms(perms)
        if not self._memory.is_free(address, size):
            raise EmulatorError(ErrorKind.MAP, f"{address:#x}+{size:#x} overlaps a mapping",
                                address=address)
        self._memory.map(address, size, int(perms))
        self._layout_version += 1

    def mem_map_ptr(self, address: int, size: int, perms: int, buffer: Any) -> None:
        """Map ``size`` bytes at ``address`` onto the caller's memory, without copying:
        guest accesses and the caller's see the same bytes (Unicorn's
        ``mem_map_ptr``). The memory must be page-aligned *shared* host memory, as
        ``mmap.mmap(-1, size)`` gives: the guest space gets a second mapping of its
        pages (which keeps them alive even if the caller unmaps its own).

        Args:
            address, size, perms: as :meth:`mem_map`.
            buffer: a writable buffer (an ``mmap.mmap``, or a view of one) of at least
                ``size`` bytes, or its host address as an int.

        Raises:
            EmulatorError: ``ARG`` for a bad range, a buffer that is too small,
                read-only, unaligned or not shared memory; ``MAP`` for an overlap.
        """
        self._check_range(address, size)
        self._check_perms(perms)
        if isinstance(buffer, int):
            host = buffer
        else:
            try:
                view = (ctypes.c_char * size).from_buffer(buffer)
            except (TypeError, ValueError) as e:
                raise EmulatorError(ErrorKind.ARG, f"mem_map_ptr: {e}") from None
            host = ctypes.addressof(view)
            del view  # (the alias holds the pages; the caller may close its mapping)
        if host % PAGE_SIZE:
            raise EmulatorError(ErrorKind.ARG, f"mem_map_ptr: host address {host:#x} is not "
                                               f"page aligned")
        if not self._memory.is_free(address, size):
            raise EmulatorError(ErrorKind.MAP, f"{address:#x}+{size:#x} overlaps a mapping",
                                address=address)
        try:
            self._memory.map_alias(address, size, int(perms), host)
        except OSError as e:
            raise EmulatorError(ErrorKind.ARG, f"mem_map_ptr: the host memory at {host:#x} "
                                f"cannot be shared ({e.strerror}); use page-aligned shared "
                                f"memory such as mmap.mmap(-1, size)") from None
        self._layout_version += 1

    def mem_unmap(self, address: int, size: int) -> None:
        """Unmap ``[address, address+size)`` (translated code there is dropped).

        Raises:
            EmulatorError: ``ARG`` for an unaligned range, ``NOMEM`` if part of it is
                not mapped.
        """
        self._check_range(address, size)
        self._check_mapped(address, size)
        self._memory.unmap(address, size)
        self._layout_version += 1

    def mem_protect(self, address: int, size: int, perms: int = Perm.ALL) -> None:
        """Change the permissions of ``[address, address+size)``.

        Raises:
            EmulatorError: ``ARG`` for an unaligned range or bad permissions, ``NOMEM``
                if part of the range is not mapped.
        """
        self._check_range(address, size)
        self._check_perms(perms)
        self._check_mapped(address, size)
        self._memory.protect(address, size, int(perms))
        self._layout_version += 1

    def mem_regions(self) -> list[tuple[int, int, int]]:
        """The mapped regions as ``(begin, end, perms)``, ``end`` inclusive (as
        Unicorn's ``mem_regions``), sorted by address."""
        return [(r.start, r.end - 1, r.perms) for r in self._memory.regions()]

    def mem_read(self, address: int, size: int) -> bytearray:
        """``size`` bytes of guest memory at ``address`` (permissions are not checked).

        Raises:
            EmulatorError: ``READ_UNMAPPED`` if a byte is not mapped.
        """
        if size < 0:
            raise EmulatorError(ErrorKind.ARG, f"negative size {size}")
        if size == 0:
            return bytearray()
        self._check_access_mapped(address, size, ErrorKind.READ_UNMAPPED)
        # Mapped RAM lives at base + address (the API maps no MMIO regions).
        return bytearray(self._guest[address:address + size])

    def mem_write(self, address: int, data: bytes) -> None:
        """Store ``data`` at ``address`` (permissions are not checked). Translations of
        code in the written bytes are dropped, so the next run executes the new code.

        Raises:
            EmulatorError: ``WRITE_UNMAPPED`` if a byte is not mapped.
        """
        if not data:
            return
        size = len(data)
        end = address + size
        memory = self._memory
        region = memory.region(address) if address >= 0 else None
        if region is not None and end <= region.end and region.mmio is None:
            self._guest[address:end] = data  # (one region: no page-by-page check)
        else:
            if address < 0:
                raise EmulatorError(ErrorKind.WRITE_UNMAPPED, f"{address:#x} is not mapped",
                                    address=address)
            try:
                memory.write(address, data if isinstance(data, bytes) else bytes(data),
                             check=None)
            except GuestFault as fault:
                raise EmulatorError(ErrorKind.WRITE_UNMAPPED, f"{fault.fault.addr:#x} is not "
                                    f"mapped", address=fault.fault.addr) from None
        if self._dirty is not None:
            self._dirty.mark(address, end)
        page_has_code = self._page_has_code
        first = address - address % PAGE_SIZE
        if page_has_code(first) or (end - first > PAGE_SIZE and any(
                page_has_code(page) for page in range(first + PAGE_SIZE, end, PAGE_SIZE))):
            self._cpu.invalidate_range(address, end)

    # -- registers ------------------------------------------------------------------------
    def reg_read(self, reg: Register) -> int:
        """The value of ``reg`` (a name such as ``"a0"``, an enum member such as
        ``llvmtcg.riscv64.Reg.A0``, or its number), unsigned. Floating-point
        registers read as their bit pattern.

        Raises:
            EmulatorError: ``ARG`` for a register the architecture does not have.
        """
        cell = self._register_cells.get(reg)
        if cell is not None:
            return cell.value
        try:
            value = self._arch.reg_read(self._state, reg)
        except UnknownRegisterError as e:
            raise EmulatorError(ErrorKind.ARG, str(e)) from None
        self._cache_register_cell(reg)
        return value

    def reg_write(self, reg: Register, value: int) -> None:
        """Write ``value`` (truncated to the register's width) to ``reg``.

        Raises:
            EmulatorError: ``ARG`` for a register the architecture does not have.
        """
        cell = self._register_cells.get(reg)
        if cell is not None:
            cell.value = value & _MASK64
            return
        try:
            self._arch.reg_write(self._state, reg, value)
        except UnknownRegisterError as e:
            raise EmulatorError(ErrorKind.ARG, str(e)) from None
        self._cache_register_cell(reg)

    def _cache_register_cell(self, reg: Register) -> None:
        """Remember a ctypes view of ``reg`` if one 64-bit CPU-state field holds it
        whole (the architecture's ``register_global``): the next access is one
        attribute access instead of the architecture's lookup."""
        try:
            name = self._arch.register_global(self._arch.register(reg))
        except (UnknownRegisterError, TypeError):
            return
        field = self._globals.get(name) if name is not None else None
        if field is not None and field.type.bits == 64:
            self._register_cells[reg] = ctypes.c_uint64.from_address(
                self._state.address + field.offset)

    def reg_read_batch(self, regs: Iterable[Register]) -> tuple[int, ...]:
        """The values of ``regs``, in order.

        Raises:
            EmulatorError: ``ARG`` for an unknown register.
        """
        return tuple(self.reg_read(reg) for reg in regs)

    def reg_write_batch(self, values: Mapping[Register, int] | Iterable[tuple[Register, int]]
                        ) -> None:
        """Write several registers: a mapping or ``(register, value)`` pairs.

        Raises:
            EmulatorError: ``ARG`` for an unknown register (nothing is written then).
        """
        pairs = list(values.items() if isinstance(values, Mapping) else values)
        resolved = [(self._register(reg), value) for reg, value in pairs]
        for reg, value in resolved:
            self._arch.reg_write(self._state, reg, value)

    def context_save(self) -> Context:
        """The registers, to restore with :meth:`context_restore`."""
        return Context(self._arch.name, self._state.pc, bytes(self._registers))

    def context_restore(self, context: Context) -> None:
        """Put back the registers ``context`` saved.

        Raises:
            EmulatorError: ``ARG`` if it was saved from another architecture.
        """
        if context.arch != self._arch.name:
            raise EmulatorError(ErrorKind.ARG, f"a {context.arch} context cannot be "
                                               f"restored into a {self._arch.name} emulator")
        self._registers[:] = context.registers
        self._dispatch.pc_cell.value = context.pc

    # -- hooks ----------------------------------------------------------------------------
    def hook_add(self, htype: int, callback: Callable[..., Any], user_data: Any = None,
                 begin: int = 1, end: int = 0, *, when: Predicate | None = None) -> int:
        """Call ``callback`` on the events of ``htype`` (signatures: :class:`Hook`).

        Args:
            htype: one or more :class:`Hook` flags.
            callback: the function to call.
            user_data: passed to every call as the last argument.
            begin, end: the addresses (inclusive) the hook covers: of the instruction
                (CODE, MEM_FETCH), of the block (BLOCK), of the accessed memory
                (MEM_*). ``begin > end`` (the default) covers everything. For MEM_READ,
                MEM_WRITE and MEM_READ_AFTER the range is tested in translated code,
                so accesses outside it call no Python.
            when: a CODE or BLOCK hook only: a predicate on a register, such as
                ``Reg("a0") == 5``, tested in translated code before each instruction
                (block start) in range; the callback runs only when it holds.

        Returns:
            A handle for :meth:`hook_del`. The hook takes effect on the next run.

        Raises:
            EmulatorError: ``HOOK`` for an unsupported hook type or a ``when`` on
                another type; ``ARG`` for a predicate on a register no single field
                holds (riscv64: x0, the FP CSRs).
        """
        kind = Hook(htype) if htype & ~int(_SUPPORTED_HOOKS) == 0 and htype else None
        if kind is None:
            raise EmulatorError(ErrorKind.HOOK, f"unsupported hook type {htype:#x}")
        handle = self._next_handle
        compiled = None
        if when is not None:
            if kind not in (Hook.CODE, Hook.BLOCK):
                raise EmulatorError(ErrorKind.HOOK, "when= applies to one of Hook.CODE "
                                                    "and Hook.BLOCK")
            reg = self._register(when.register)
            name = self._arch.register_global(reg)
            if name is None:
                raise EmulatorError(ErrorKind.ARG, f"a hook cannot test register "
                                                   f"{reg.name.lower()}")
            compiled = WhenHook(handle, kind is Hook.BLOCK, begin, end, name, when.cond,
                                when.value)
        self._next_handle += 1
        self._hooks[handle] = _HookEntry(kind, callback, user_data, begin, end, compiled)
        self._hooks_version += 1
        return handle

    def hook_del(self, handle: int) -> None:
        """Remove a hook; it no longer fires from the next run on.

        Raises:
            EmulatorError: ``HOOK`` for an unknown handle.
        """
        if self._hooks.pop(handle, None) is None:
            raise EmulatorError(ErrorKind.HOOK, f"no hook with handle {handle!r}")
        self._hooks_version += 1

    # -- inline instrumentation (compiled into the code; no Python per event) --------------
    def coverage_map(self, buffer: Any) -> None:
        """Record AFL-style edge coverage into ``buffer`` from the next run on: at each
        block, ``buffer[location(block) ^ prev] += 1`` (wrapping at 256) and ``prev =
        location(block) >> 1``, with ``location`` =
        :func:`~llvmtcg.emulator.coverage_location` and ``prev`` 0 at each
        ``emu_start``. Translated code writes the buffer directly (no Python).

        Args:
            buffer: a writable bytes-like object (bytearray, memoryview, mmap, numpy
                array) whose length is a power of two >= 2, kept referenced (and, for a
                bytearray, fixed in size) until replaced; None stops recording.

        Raises:
            EmulatorError: ``ARG`` for a read-only buffer or a bad length.
        """
        if buffer is None:
            self._coverage = None
            self._dispatch.coverage = None
        else:
            try:
                view = (ctypes.c_uint8 * memoryview(buffer).nbytes).from_buffer(buffer)
            except (TypeError, ValueError) as e:
                raise EmulatorError(ErrorKind.ARG, f"coverage map: {e}") from None
            size = len(view)
            if size < 2 or size & (size - 1):
                raise EmulatorError(ErrorKind.ARG, f"coverage map: length {size} is not a "
                                                   f"power of two >= 2")
            self._coverage = (view, size.bit_length() - 1)
            self._state.set(COVERAGE_MAP_FIELD, ctypes.addressof(view))
            self._dispatch.coverage = _HeldHits(view, self._state.cell(COVERAGE_CELL_FIELD),
                                                self._state.cell(COVERAGE_COUNT_FIELD))
        self._hooks_version += 1

    def counters_enable(self, kinds: int, begin: int = 1, end: int = 0) -> None:
        """Count executions in translated code from the next run on: of each block
        (``Hook.BLOCK``) and/or each instruction (``Hook.CODE``) whose address is in
        ``[begin, end]`` (``begin > end``: everywhere). Read with :meth:`counts`.

        Raises:
            EmulatorError: ``HOOK`` for kinds other than BLOCK and CODE.
        """
        if not kinds or kinds & ~int(Hook.BLOCK | Hook.CODE):
            raise EmulatorError(ErrorKind.HOOK, f"counters count Hook.BLOCK and/or "
                                                f"Hook.CODE, not {kinds:#x}")
        for block in (True, False):
            if kinds & (Hook.BLOCK if block else Hook.CODE):
                self._count_ranges[block] = (begin, end)
        self._hooks_version += 1

    def counters_disable(self, kinds: int = Hook.BLOCK | Hook.CODE) -> None:
        """Stop counting ``kinds`` from the next run on (the counts stay readable)."""
        for block in (True, False):
            if kinds & (Hook.BLOCK if block else Hook.CODE):
                self._count_ranges.pop(block, None)
        self._hooks_version += 1

    def counts(self, kind: int) -> dict[int, int]:
        """Executions so far by address, of blocks (``Hook.BLOCK``) or instructions
        (``Hook.CODE``); addresses never executed are absent."""
        block = bool(kind & Hook.BLOCK)
        counters = self._dispatch.counters
        counts = counters.array
        return {pc: counts[slot] for (is_block, pc), slot in counters.slots.items()
                if is_block is block and counts[slot]}

    def counters_reset(self) -> None:
        """Set every count to zero."""
        counts = self._dispatch.counters.array
        ctypes.memset(counts, 0, ctypes.sizeof(counts))

    def cmplog(self, capacity: int | None = 4096) -> CmpLog | None:
        """Log comparisons from the next run on: each conditional branch and
        set-on-compare of guest code writes (pc, condition, operands) into a ring of
        ``capacity`` records (translated code writes it; no Python per record).

        Args:
            capacity: records kept (a power of two); None stops logging.

        Returns:
            The log to read (:meth:`CmpLog.records`), or None.

        Raises:
            EmulatorError: ``ARG`` if capacity is not a power of two.
        """
        if capacity is None:
            self._cmplog = None
        else:
            if capacity < 1 or capacity & (capacity - 1):
                raise EmulatorError(ErrorKind.ARG, f"cmplog: capacity {capacity} is not a "
                                                   f"power of two")
            self._cmplog = CmpLog(self._state, capacity)
        self._hooks_version += 1
        return self._cmplog

    # -- snapshots ------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The registers and memory now (every mapped region is copied), for
        :meth:`restore`. From the first snapshot on, translated code marks the pages
        it writes, so restoring the latest snapshot copies back only those.

        Raises:
            EmulatorError: ``ARG`` during a run.
        """
        if self._running:
            raise EmulatorError(ErrorKind.ARG, "snapshot: the emulator is running")
        if self._dirty is None:
            self._dirty = DirtyPages(self._state, self._memory.page_count)
            self._hooks_version += 1  # (the next run compiles the marking in)
        regions = [RegionCopy(r.start, r.end, r.perms, bytes(self._guest[r.start:r.end]))
                   for r in self._memory.regions()]
        self._dirty.take()
        snap = Snapshot(self._arch.name, self.context_save(), tuple(regions))
        self._base = (weakref.ref(snap), self._layout_version)
        return snap

    def restore(self, snapshot: Snapshot) -> None:
        """Put back the registers, mappings and memory of ``snapshot``. Restoring the
        snapshot the memory last started from (the latest snapshot or restore) under
        the same mappings copies only the pages written since; translations of
        rewritten pages are dropped.

        Raises:
            EmulatorError: ``ARG`` during a run or for another architecture's snapshot.
        """
        if self._running:
            raise EmulatorError(ErrorKind.ARG, "restore: the emulator is running")
        if snapshot.arch != self._arch.name:
            raise EmulatorError(ErrorKind.ARG, f"a {snapshot.arch} snapshot cannot be "
                                               f"restored into a {self._arch.name} emulator")
        # (None: every page; an emulator that never took a snapshot tracks nothing yet)
        dirty = self._dirty.take() if self._dirty is not None else None
        base, layout_version = self._base if self._base is not None else (None, -1)
        guest, cpu = self._guest, self._cpu
        if (dirty is not None and base is not None and base() is snapshot
                and layout_version == self._layout_version):
            page_has_code = cpu.tbs.page_has_code
            for page in dirty:
                region = snapshot.region_of(page)
                if region is None:
                    continue  # (a wild address's mark)
                offset = page - region.start
                guest[page:page + PAGE_SIZE] = region.view[offset:offset + PAGE_SIZE]
                if page_has_code(page):
                    cpu.invalidate_range(page, page + PAGE_SIZE)
        else:
            self._restore_mappings(snapshot)
            for region in snapshot.regions:
                guest[region.start:region.end] = region.data
                cpu.invalidate_range(region.start, region.end)
        self.context_restore(snapshot.context)
        self._base = (weakref.ref(snapshot), self._layout_version)

    def _restore_mappings(self, snapshot: Snapshot) -> None:
        """Map, unmap and protect so the regions are the snapshot's (contents follow)."""
        wanted = {(r.start, r.end, r.perms) for r in snapshot.regions}
        current = {(r.start, r.end, r.perms) for r in self._memory.regions()}
        if wanted == current:
            return
        for start, end, _ in current - wanted:
            self._memory.unmap(start, end - start)
        for start, end, perms in sorted(wanted - current):
            self._memory.map(start, end - start, perms)
        self._layout_version += 1

    # -- running --------------------------------------------------------------------------
    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        """Run guest code from ``begin``.

        The run ends before the instruction at ``until`` would execute, after ``count``
        instructions (0: no limit), after ``timeout`` microseconds (0: none), or at
        :meth:`emu_stop`; ``pc`` is then the next instruction to run.

        Raises:
            EmulatorError: an access to unmapped or protected memory no hook handled
                (``READ_UNMAPPED``, ``WRITE_PROT``, ``FETCH_UNMAPPED``, …), an invalid
                instruction (``INSN_INVALID``), an ``ecall``/``ebreak`` without an
                ``INTR`` hook (``EXCEPTION``); ``address`` and ``pc`` say where.
            Exception: whatever a hook callback raised.
        """
        # (A fuzzer calls this for every input: what it does per run is kept short.)
        if self._running:
            raise EmulatorError(ErrorKind.ARG, "emu_start: the emulator is already running")
        if count < 0 or timeout < 0:
            raise EmulatorError(ErrorKind.ARG, "emu_start: count and timeout must be >= 0")
        counting = count > 0
        if (until, counting, self._hooks_version) != self._configured:
            self._configure(until, counting)
        dispatch = self._dispatch
        dispatch.pc_cell.value = begin
        if counting:
            self._state.set(BUDGET_FIELD, count)
        self._coverage_prev.value = 0  # (AFL's prev_loc: every run starts an edge path)
        held = dispatch.coverage
        if held is not None:
            held.reset()
        dispatch.stop_pending = False
        dispatch.redirect = None
        self._cpu.loop.stop_requested = False
        self._exit_request.value = 0
        timer = threading.Timer(timeout / 1e6, self.emu_stop) if timeout else None
        self._running = True
        try:
            if timer is not None:
                timer.start()
            exit_ = self._cpu.run()
            # The usual end, a direct jump to `until`, needs nothing more.
            if exit_.reason is not _HALT or exit_.pc != until:
                self._run_until_done(until, counting, exit_)
        except _Stopped:
            pass
        finally:
            self._running = False
            if timer is not None:
                timer.cancel()
            if held is not None:
                held.flush()  # (the map is complete when emu_start returns)

    def translation(self, pc: int) -> Translation:
        """Translate the block at ``pc`` as a run would now (with the hooks of the last
        run) and return every stage: guest disassembly, IR, LLVM IR, host assembly.
        Installed code is not changed (hot code may since have been recompiled by the
        optimising tier; this shows the first tier's).

        Raises:
            EmulatorError: ``FETCH_UNMAPPED``/``FETCH_PROT`` if ``pc`` is not executable.
        """
        guest_log = io.StringIO()
        try:
            block = self._arch.translate(pc, self._cpu.tb_flags, self._cpu.softmmu.fetch,
                                         Log("in_asm", guest_log))
        except GuestFault as fault:
            error = _FAULTS[fault.fault.access, fault.fault.kind][0]
            raise EmulatorError(error, f"cannot translate at {pc:#x}: {fault.fault}",
                                address=fault.fault.addr, pc=pc) from None
        ir = str(block)
        llvm_text = self._cpu.tbs.lowering.lower_module([block], self._cpu.jit.triple)
        llvm_ir, host_asm = self._cpu.jit.inspect(llvm_text)
        return Translation(pc, block.guest_size, guest_log.getvalue(), ir, llvm_ir, host_asm)

    def emu_stop(self) -> None:
        """Stop the current run: from a hook, before the hooked instruction (or access)
        executes (from a MEM_READ_AFTER hook: at the next hooked instruction or block
        boundary); from another thread, at the next block boundary. Does nothing when
        no run is in progress."""
        if self._running:
            self._dispatch.stop_pending = True
            self._cpu.stop()

    def _run_until_done(self, until: int, counting: bool, exit_: CpuExit) -> None:
        """Handle ``exit_`` (the run's first) and run on until the run is over."""
        last_retry: tuple[int, int] | None = None
        first = True
        held = self._dispatch.coverage
        while True:
            if not first:
                exit_ = self._cpu.run()
            first = False
            if held is not None:
                held.flush()  # (before the callbacks of INTR and invalid-access hooks)
            if exit_.reason is ExitReason.REQUESTED or self._state.pc == until:
                return
            if exit_.reason is _HALT:
                return
            if exit_.reason is ExitReason.SYSCALL and self._events is not None:
                self._interrupt(self._events.syscall,
                                exit_.pc + self._events.syscall_length, exit_)
                continue
            index = exit_.exception_index
            if index == EXCP_API_STOP:
                if self._dispatch.redirect is not None and not self._dispatch.stop_pending:
                    self._state.pc, self._dispatch.redirect = self._dispatch.redirect, None
                    continue
                return
            if index in (EXCP_MEM_FAULT, EXCP_MISALIGNED) and exit_.fault is not None:
                where = (exit_.pc, exit_.fault.addr)
                if self._memory_fault(exit_.fault, exit_.pc, retried=where == last_retry):
                    last_retry = where
                    if counting and exit_.fault.access is not Access.FETCH:
                        # The instruction is run again: its budget was already taken.
                        self._state.set(BUDGET_FIELD, self._state.get(BUDGET_FIELD) + 1)
                    continue
            events = self._events
            if events is not None and index == events.illegal_insn:
                if self._invalid_instruction(exit_.pc):
                    continue
            if events is not None and index == events.breakpoint:
                self._interrupt(index, exit_.pc + self._insn_length(exit_.pc), exit_)
                continue
            raise EmulatorError(ErrorKind.EXCEPTION, f"unhandled CPU exception {index} "
                                f"at pc {exit_.pc:#x}", pc=exit_.pc)

    def _interrupt(self, intno: int, next_pc: int, exit_: CpuExit) -> None:
        """An ecall/ebreak: the INTR hooks run with pc after the instruction; without
        one, the run fails as Unicorn's does (UC_ERR_EXCEPTION)."""
        self._state.pc = next_pc
        hooks = self._hooks_of(Hook.INTR)
        if not hooks:
            raise EmulatorError(ErrorKind.EXCEPTION, f"unhandled CPU exception {intno} "
                                f"(no INTR hook) at pc {exit_.pc:#x}", pc=next_pc)
        for hook in hooks:
            hook.callback(self, intno, hook.user_data)
            if self._dispatch.stop_pending:
                raise _Stopped

    def _memory_fault(self, fault: MemFault, pc: int, *, retried: bool) -> bool:
        """Run the hooks for an invalid access; True: a hook handled it, retry."""
        if fault.kind is FaultKind.MISALIGNED:
            raise EmulatorError(_UNALIGNED[fault.access], f"misaligned {fault.access.name.lower()}"
                                f" at {fault.addr:#x} (pc {pc:#x})", address=fault.addr, pc=pc)
        error, access, hook_type = _FAULTS.get(
            (fault.access, fault.kind), (ErrorKind.EXCEPTION, MemAccess.READ, Hook(0)))
        if fault.access is Access.FETCH:
            fetched = self._arch.last_fetch_fault
            size, value = (fetched[1] if fetched else 2), 0
        else:
            size, value = self._last_access
            value = _as_int64(value)
        handled = False
        if not retried:
            for hook in self._hooks_of(hook_type):
                if hook.covers(fault.addr) and hook.callback(self, access, fault.addr, size,
                                                             value, hook.user_data):
                    handled = True
        if self._dispatch.stop_pending:
            raise _Stopped
        if handled:
            return True
        raise EmulatorError(error, f"{fault} (pc {pc:#x})", address=fault.addr, pc=pc)

    def _invalid_instruction(self, pc: int) -> bool:
        """INSN_INVALID hooks: True if one returned True (continue at the pc it left)."""
        handled = False
        for hook in self._hooks_of(Hook.INSN_INVALID):
            handled = bool(hook.callback(self, hook.user_data)) or handled
        if self._dispatch.stop_pending:
            raise _Stopped
        if handled:
            return True
        raise EmulatorError(ErrorKind.INSN_INVALID, f"invalid instruction at pc {pc:#x}",
                            address=pc, pc=pc)

    # -- internals ------------------------------------------------------------------------
    def _configure(self, until: int, counting: bool) -> None:
        """Make translations match this run's ``until``, counting, hooks and inline
        instrumentation (dropping those made under another configuration), and take
        the run's hook lists."""
        run = self._dispatch  # (the hook lists of this run)
        run.code, run.block = self._hooks_of(Hook.CODE), self._hooks_of(Hook.BLOCK)
        run.read, run.write = self._hooks_of(Hook.MEM_READ), self._hooks_of(Hook.MEM_WRITE)
        run.read_after = self._hooks_of(Hook.MEM_READ_AFTER)
        run.fetch = self._hooks_of(Hook.MEM_FETCH)
        run.when = {handle: hook for handle, hook in self._hooks.items()
                    if hook.when is not None}
        counts = self._count_ranges
        config = TranslationConfig(
            until=until, counting=counting,
            code_ranges=self._ranges(Hook.CODE), block_ranges=self._ranges(Hook.BLOCK),
            read_ranges=self._ranges(Hook.MEM_READ), write_ranges=self._ranges(Hook.MEM_WRITE),
            read_after_ranges=self._ranges(Hook.MEM_READ_AFTER),
            fetch_ranges=self._ranges(Hook.MEM_FETCH),
            when_hooks=tuple(hook.when for hook in run.when.values()),
            coverage_bits=self._coverage[1] if self._coverage else 0,
            block_count_ranges=(counts[True],) if True in counts else (),
            insn_count_ranges=(counts[False],) if False in counts else (),
            cmplog_bits=(self._cmplog.capacity.bit_length() - 1) if self._cmplog else 0,
            dirty_pages=self._dirty.page_count if self._dirty else 0)
        if config != self._arch.config:
            self._arch.config = config
            self._cpu.flush()
        self._configured = (until, counting, self._hooks_version)

    def _hooks_of(self, kind: Hook) -> list[_HookEntry]:
        """The unconditional hooks of ``kind`` (conditional ones have their own calls)."""
        return [hook for hook in self._hooks.values() if hook.kind & kind and hook.when is None]

    def _ranges(self, kind: Hook) -> tuple[tuple[int, int], ...]:
        ranges = tuple(sorted({(hook.begin, hook.end) for hook in self._hooks_of(kind)}))
        return ((1, 0),) if any(begin > end for begin, end in ranges) else ranges

    def _register(self, reg: Register) -> enum.IntEnum:
        try:
            return self._arch.register(reg)
        except UnknownRegisterError as e:
            raise EmulatorError(ErrorKind.ARG, str(e)) from None

    def _insn_length(self, pc: int) -> int:
        parcel = int.from_bytes(self.mem_read(pc, 2), "little")
        return self._arch.insn_length(parcel)

    def _check_range(self, address: int, size: int) -> None:
        if address % PAGE_SIZE or size <= 0 or size % PAGE_SIZE:
            raise EmulatorError(ErrorKind.ARG, f"range {address:#x}+{size:#x} is not page "
                                f"aligned and non-empty (page size {PAGE_SIZE:#x})",
                                address=address)
        if address < 0 or address + size > self._memory.size:
            raise EmulatorError(ErrorKind.ARG, f"range {address:#x}+{size:#x} is outside the "
                                f"address space [0, {self._memory.size:#x})", address=address)

    @staticmethod
    def _check_perms(perms: int) -> None:
        if perms & ~int(Perm.ALL) or perms < 0:
            raise EmulatorError(ErrorKind.ARG, f"bad permissions {perms:#x}")

    def _check_mapped(self, address: int, size: int) -> None:
        for page in range(address, address + size, PAGE_SIZE):
            if self._memory.region(page) is None:
                raise EmulatorError(ErrorKind.NOMEM, f"{page:#x} is not mapped", address=page)

    def _check_access_mapped(self, address: int, size: int, kind: ErrorKind) -> None:
        if address < 0:
            raise EmulatorError(kind, f"{address:#x} is not mapped", address=address)
        page = address - address % PAGE_SIZE
        while page < address + size:
            if self._memory.region(page) is None:
                where = max(page, address)
                raise EmulatorError(kind, f"{where:#x} is not mapped", address=where)
            page += PAGE_SIZE

    def _note_faulting_accesses(self) -> None:
        """Wrap the softmmu's slow paths to remember the size and value of an access
        that faults (memory-fault hooks receive them)."""
        softmmu = self._cpu.softmmu
        load, store, probe = softmmu.load, softmmu.store, softmmu.probe_atomic
        emulator = weakref.ref(self)  # (the softmmu lives as long as the CPU)

        def noting_load(addr, memop, mmu_idx):
            try:
                return load(addr, memop, mmu_idx)
            except GuestFault:
                emulator()._last_access = (memop.size, 0)
                raise

        def noting_store(addr, value, memop, mmu_idx):
            try:
                return store(addr, value, memop, mmu_idx)
            except GuestFault:
                emulator()._last_access = (memop.size, value & ((1 << memop.bits) - 1))
                raise

        def noting_probe(addr, memop, mmu_idx):
            try:
                return probe(addr, memop, mmu_idx)
            except GuestFault:
                emulator()._last_access = (memop.size, 0)
                raise

        softmmu.load, softmmu.store, softmmu.probe_atomic = noting_load, noting_store, noting_probe


class _Counters:
    """The execution counters' array and the slot of each (block or instruction, pc)."""

    __slots__ = ("array", "slots", "state")

    def __init__(self) -> None:
        self.array = (ctypes.c_uint64 * _INITIAL_COUNTER_SLOTS)()
        self.slots: dict[tuple[bool, int], int] = {}
        self.state: Any = None

    def attach(self, state: Any) -> None:
        self.state = state
        state.set(COUNTS_FIELD, ctypes.addressof(self.array))

    def slot(self, block: bool, pc: int) -> int:
        """The counter of (block or instruction, pc), allocated on first use (the
        translator asks while it instruments; the array grows, copied, and the CPU
        state field follows it, so code translated before keeps counting)."""
        key = (block, pc)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = len(self.slots)
            if slot >= len(self.array):
                grown = (ctypes.c_uint64 * (2 * len(self.array)))()
                ctypes.memmove(grown, self.array, ctypes.sizeof(self.array))
                self.array = grown
                self.state.set(COUNTS_FIELD, ctypes.addressof(grown))
        return slot


class _HeldHits:
    """The coverage map's write combining (``InstrumentedArch._cover_edge``): the
    hits of the last edge that translated code has not added to the map yet."""

    __slots__ = ("map", "cell", "count")

    def __init__(self, map_view: Any, cell: Any, count: Any) -> None:
        self.map, self.cell, self.count = map_view, cell, count  # (ctypes views)

    def reset(self) -> None:
        """Nothing held, at a cell of this map."""
        self.cell.value = self.count.value = 0

    def flush(self) -> None:
        """Add the held hits to the map (wrapping, as each increment does)."""
        count = self.count.value
        if count:
            cell = self.cell.value
            self.map[cell] = (self.map[cell] + count) & 0xFF
            self.count.value = 0


class _HookDispatch:
    """What native code calls through the instrumentation helpers, and the state of the
    run it shares with the emulator. The emulator is held by a weak reference (the
    runtime's callback registry keeps the CPU, and so these handlers, alive until
    close()), and the per-instruction path touches nothing but this object: a ctypes
    view of pc, the run's hook lists (made by emu_start: hooks added during a run fire
    from the next one)."""

    __slots__ = ("emulator", "pc_cell", "code", "block", "read", "write", "read_after",
                 "fetch", "when", "counters", "cpu", "stop_pending", "redirect", "coverage")

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = weakref.ref(emulator)
        self.pc_cell = ctypes.c_uint64()  # the CPU state's pc, once there is a CPU
        self.code: list[_HookEntry] = []
        self.block: list[_HookEntry] = []
        self.read: list[_HookEntry] = []
        self.write: list[_HookEntry] = []
        self.read_after: list[_HookEntry] = []
        self.fetch: list[_HookEntry] = []
        self.when: dict[int, _HookEntry] = {}  # conditional hooks by handle
        self.counters = _Counters()
        self.cpu: Any = None  # the Cpu, once there is one
        self.stop_pending = False  # emu_stop() during this run
        self.redirect: int | None = None  # a hook moved pc: resume there
        # The coverage map's held-back hits, added before any callback (which may read
        # the map); None without a map.
        self.coverage: _HeldHits | None = None

    # The handlers are the helpers' ctypes callbacks (registered raw): the first
    # argument is the CPU-state address, and nothing may escape them.
    def on_code(self, state_address: int, pc: int, size: int) -> None:
        try:
            if self.coverage is not None:
                self.coverage.flush()
            emulator = self.emulator()
            for hook in self.code:
                if hook.begin <= pc <= hook.end or hook.begin > hook.end:
                    hook.callback(emulator, pc, size, hook.user_data)
            if self.stop_pending:
                self.cpu.raise_exception(EXCP_API_STOP)
        except BaseException as exc:  # noqa: BLE001 - must not unwind into native code
            self.cpu.record_helper_error(exc)

    def on_block(self, state_address: int, pc: int, size: int) -> None:
        try:
            if self.coverage is not None:
                self.coverage.flush()
            emulator = self.emulator()
            for hook in self.block:
                if hook.begin <= pc <= hook.end or hook.begin > hook.end:
                    hook.callback(emulator, pc, size, hook.user_data)
            if self.stop_pending:
                self.cpu.raise_exception(EXCP_API_STOP)
        except BaseException as exc:  # noqa: BLE001 - must not unwind into native code
            self.cpu.record_helper_error(exc)

    def counter_slot(self, block: bool, pc: int) -> int:
        return self.counters.slot(block, pc)

    def on_when(self, state_address: int, handle: int, pc: int, size: int) -> None:
        try:
            hook = self.when[handle]
            if self.coverage is not None:
                self.coverage.flush()
            hook.callback(self.emulator(), pc, size, hook.user_data)
            if self.stop_pending:
                self.cpu.raise_exception(EXCP_API_STOP)
        except BaseException as exc:  # noqa: BLE001 - must not unwind into native code
            self.cpu.record_helper_error(exc)

    def on_mem(self, state_address: int, pc: int, info: int, address: int,
               value: int) -> None:
        try:
            self.pc_cell.value = pc
            size = info & 0xFF
            if info & MEM_INFO_FETCH:
                hooks, access = self.fetch, MemAccess.FETCH
            elif info & MEM_INFO_WRITE:
                hooks, access = self.write, MemAccess.WRITE
                value = _as_int64(value & (1 << 8 * size) - 1)  # (what is stored)
            elif info & MEM_INFO_AFTER:
                hooks, access = self.read_after, MemAccess.READ_AFTER
                value = _as_int64(value & (1 << 8 * size) - 1)  # (not as extended)
            else:
                hooks, access = self.read, MemAccess.READ
            if self.coverage is not None:
                self.coverage.flush()
            emulator = self.emulator()
            for hook in hooks:
                if hook.covers(address):
                    hook.callback(emulator, access, address, size, value, hook.user_data)
            if access is not MemAccess.READ_AFTER:  # (the load has run: see emu_stop)
                self._leave(self.cpu, pc)
        except BaseException as exc:  # noqa: BLE001 - must not unwind into native code
            self.cpu.record_helper_error(exc)

    def _leave(self, cpu: Cpu, pc: int) -> None:
        """Leave native code before the hooked instruction if a callback stopped the run
        or moved pc (the block exit stores the instruction's pc; the run loop then
        resumes at the new one)."""
        if self.stop_pending:
            cpu.raise_exception(EXCP_API_STOP)
        elif self.pc_cell.value != pc:
            self.redirect = self.pc_cell.value
            cpu.raise_exception(EXCP_API_STOP)


def _as_int64(value: int) -> int:
    """A memory hook's value as Unicorn's Python binding passes it (an int64_t): an
    8-byte value with the top bit set is negative."""
    return value - (1 << 64) if value >> 63 else value


class _Stopped(Exception):
    """emu_stop() inside an INTR hook: end the run (caught by emu_start)."""


_open_emulators: weakref.WeakSet[Emulator] = weakref.WeakSet()
_exit_hook: list[bool] = []  # (registered with atexit: by the first emulator)


def _close_at_exit(emulator: Emulator) -> None:
    """Close ``emulator`` at interpreter exit if it is still open: at the final
    garbage collection its translated code's memory may be released before the
    emulator, whose close() unlinks that code."""
    if not _exit_hook:
        atexit.register(_close_open_emulators)
        _exit_hook.append(True)
    _open_emulators.add(emulator)


def _close_open_emulators() -> None:
    for emulator in list(_open_emulators):
        emulator.close()


def _make_arch(name: str, cpu: str | None) -> GuestArch:
    try:
        cls = _arch_by_name(name)
    except UnknownArchError as e:
        raise EmulatorError(ErrorKind.ARCH, str(e)) from None
    if cpu is None:
        return cls()
    from llvmtcg.user.arch import UnknownUserArchError, user_arch
    try:
        return user_arch(name).make_arch(cpu)
    except (CpuModelError, UnknownUserArchError) as e:
        raise EmulatorError(ErrorKind.ARCH, str(e)) from None
