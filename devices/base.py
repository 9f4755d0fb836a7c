"""The device protocol: what a platform device sees and what it is given.

Devices never know their base address or how their interrupts are delivered (TinyEMU /
Firecracker style). A machine maps ``size`` bytes of a device's register space and
calls ``read``/``write`` with offsets into it; interrupts are level lines handed to the
device as callables; time comes from a ``Clock``; bus masters reach guest memory
through ``GuestRam``.

Access rules. ``read``/``write`` take any size in {1, 2, 4, 8} and any offset inside
``size``. What the real device (QEMU's ``MemoryRegionOps.valid``/``.impl``) does not
accept — a width it rejects, an unaligned access, a hole in the register map — reads as
0 and writes are ignored; nothing raises to the caller. Devices take an optional
``log`` callable (``GuestErrorLog``) that receives one line per such access, for
``-d guest_errors``. Read results are always masked to the access size.

Also here: ``VirtualClock`` (a Clock with a timer queue), ``ByteRam`` (GuestRam on a
bytearray) and ``IrqRecorder`` (a line that records its levels), used by machines and
tests alike.

Saved state (``savevm``/``loadvm``). A device with state implements :class:`Stateful`:
``state_version`` and ``save_state()`` returning plain data (:data:`StateValue`: ints,
bools, strings, bytes, None, lists and string-keyed dicts), and ``load_state(saved)``
that puts the device back exactly — registers, FIFOs, timers re-armed from the
restored clock — and drives its output lines to the restored levels. A state that does
not fit (a missing field, a wrong type or size) raises :class:`StateError`.
:func:`save_fields`/:func:`load_fields` copy a declared tuple of attribute names.
"""

from __future__ import annotations

import heapq
import itertools
import mmap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


class MmioDevice(Protocol):
    name: str  # e.g. "serial", for messages and -device help
    size: int  # bytes of register space

    def read(self, offset: int, size: int) -> int:
        """Value of the ``size``-byte access at ``offset`` (size in {1, 2, 4, 8})."""
        ...

    def write(self, offset: int, size: int, value: int) -> None:
        """Store the low ``size`` bytes of ``value`` at ``offset``."""
        ...


IrqLine = Callable[[bool], None]
"""A level-triggered interrupt line: ``line(True)`` raises, ``line(False)`` lowers.
A device may drive the level it already drives again (QEMU's devices do); receivers
treat that as no change."""

GuestErrorLog = Callable[[str], None]
"""Optional sink for one-line messages about guest accesses the device rejects."""


class TimerHandle(Protocol):
    def cancel(self) -> None:
        """Stop the timer; cancelling a fired or cancelled timer does nothing."""
        ...


class Clock(Protocol):
    """The machine's virtual time, in nanoseconds."""

    def now_ns(self) -> int: ...

    def set_timer(self, deadline_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` once, when virtual time reaches ``deadline_ns``."""
        ...


class GuestRam(Protocol):
    """DMA view of guest physical memory, for bus masters. An access that is not
    entirely inside RAM raises GuestMemoryError."""

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class GuestMemoryError(Exception):
    """A DMA access touched guest-physical addresses that are not RAM."""


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Which accesses reach a device: QEMU's ``MemoryRegionOps.valid`` constraints."""

    min_size: int = 1
    max_size: int = 8
    unaligned: bool = False

    def allows(self, offset: int, size: int, region_size: int) -> bool:
        return (size in (1, 2, 4, 8) and self.min_size <= size <= self.max_size
                and 0 <= offset and offset + size <= region_size
                and (self.unaligned or offset % size == 0))


def size_mask(size: int) -> int:
    return (1 << (8 * size)) - 1


class _Timer:
    __slots__ = ("deadline_ns", "callback", "active")

    def __init__(self, deadline_ns: int, callback: Callable[[], None]) -> None:
        self.deadline_ns = deadline_ns
        self.callback = callback
        self.active = True

    def cancel(self) -> None:
        self.active = False


class VirtualClock:
    """A Clock: host monotonic time since construction, plus a one-shot timer queue.

    Timers fire only inside ``run_due``, which the machine's run loop calls between
    blocks and after an idle sleep (a WFI sleeps until ``next_deadline()``), so device
    callbacks always run on the thread that owns the devices. ``VirtualClock.manual()``
    makes a clock whose time moves only by ``advance(ns)``, for tests.
    """

    def __init__(self, source: Callable[[], int] | None = time.monotonic_ns) -> None:
        self._source = source
        self._epoch = source() if source is not None else 0
        self._manual_ns = 0
        self._queue: list[tuple[int, int, _Timer]] = []
        self._order = itertools.count()  # equal deadlines fire in the order they were set
        self._lock = threading.Lock()  # set_timer may come from an I/O thread

    @classmethod
    def manual(cls) -> VirtualClock:
        return cls(source=None)

    def now_ns(self) -> int:
        if self._source is None:
            return self._manual_ns
        return self._source() - self._epoch

    def host_epoch_ns(self) -> int | None:
        """The host CLOCK_MONOTONIC time (``time.monotonic_ns``) at which this clock
        reads 0, when it follows that clock (now_ns() = monotonic_ns() - epoch), else
        None. ``set_now`` moves it."""
        return self._epoch if self._source is time.monotonic_ns else None

    def set_timer(self, deadline_ns: int, callback: Callable[[], None]) -> TimerHandle:
        timer = _Timer(deadline_ns, callback)
        with self._lock:
            heapq.heappush(self._queue, (deadline_ns, next(self._order), timer))
        return timer

    def next_deadline(self) -> int | None:
        """Deadline of the earliest live timer, or None when none is armed."""
        with self._lock:
            self._drop_cancelled()
            return self._queue[0][0] if self._queue else None

    def run_due(self, now: int | None = None) -> int:
        """Fire every live timer whose deadline is <= now (default: now_ns()), earliest
        first, including timers that the callbacks arm for times already due. Returns
        how many fired."""
        if now is None:
            now = self.now_ns()
        fired = 0
        while True:
            with self._lock:
                self._drop_cancelled()
                if not self._queue or self._queue[0][0] > now:
                    return fired
                _, _, timer = heapq.heappop(self._queue)
            timer.active = False
            timer.callback()
            fired += 1

    def set_now(self, now_ns: int) -> None:
        """Make virtual time read ``now_ns`` from here on (``loadvm``: the saved VM
        clock). Timers still armed keep the time they had left."""
        delta = now_ns - self.now_ns()
        if self._source is None:
            self._manual_ns = now_ns
        else:
            self._epoch -= delta
        with self._lock:
            for _, _, timer in self._queue:
                timer.deadline_ns += delta
            self._queue = [(deadline + delta, order, timer)
                           for deadline, order, timer in self._queue]

    def advance(self, ns: int) -> int:
        """Manual clocks only: move time forward by ``ns`` and fire what became due."""
        if self._source is not None:
            raise TypeError("advance() is for VirtualClock.manual() clocks")
        if ns < 0:
            raise ValueError("virtual time cannot go backwards")
        self._manual_ns += ns
        return self.run_due(self._manual_ns)

    def _drop_cancelled(self) -> None:
        while self._queue and not self._queue[0][2].active:
            heapq.heappop(self._queue)


StateValue = Any
"""Saved device state: int, bool, str, bytes, None, list of StateValue, or dict of
str to StateValue (what machines/vmstate.py can write)."""


class StateError(ValueError):
    """A saved state that does not fit the device loading it."""


class Stateful(Protocol):
    """A device whose state ``savevm`` saves (see the module docstring)."""

    state_version: ClassVar[int]

    def save_state(self) -> dict[str, StateValue]: ...

    def load_state(self, saved: dict[str, StateValue]) -> None: ...


def save_fields(device: object, names: tuple[str, ...]) -> dict[str, StateValue]:
    """The attributes ``names`` of ``device`` (lists copied)."""
    out: dict[str, StateValue] = {}
    for name in names:
        value = getattr(device, name)
        out[name] = list(value) if isinstance(value, list) else value
    return out


def load_fields(device: object, names: tuple[str, ...], saved: dict[str, StateValue]) -> None:
    """Sets the attributes ``names`` of ``device`` from ``saved``; each value must
    have the type (and a list the length) the attribute has now, else StateError
    (before anything is set)."""
    for name in names:
        if name not in saved:
            raise StateError(f"{type(device).__name__}: saved state lacks '{name}'")
        current, value = getattr(device, name), saved[name]
        kind = int if isinstance(current, int) and not isinstance(current, bool) else type(current)
        if current is not None and value is not None and (
                type(value) is not kind and not (kind is int and type(value) is bool)):
            raise StateError(f"{type(device).__name__}: saved '{name}' is a "
                             f"{type(value).__name__}, not a {kind.__name__}")
        if isinstance(current, list) and len(value) != len(current):
            raise StateError(f"{type(device).__name__}: saved '{name}' has {len(value)} "
                             f"entries, not {len(current)}")
    for name in names:
        value = saved[name]
        setattr(device, name, list(value) if isinstance(value, list) else value)


_PAGE = 4096
_ZERO_PAGE = bytes(_PAGE)
_BLOCK = 1 << 16
_ZERO_BLOCK = bytes(_BLOCK)


def nonzero_pages(data: bytes | bytearray | mmap.mmap) -> list[list[StateValue]]:
    """``data`` (e.g. a flash bank's storage) as ``[offset, bytes]`` runs of its
    non-zero 4 KiB pages: what a mostly empty buffer costs in a saved state."""
    # Slices of bytes, bytearray and mmap compare with memcmp (a memoryview's compare
    # element by element), and whole zero blocks are skipped before pages are looked at.
    runs: list[list[StateValue]] = []
    start = None
    size = len(data)
    for block in range(0, size, _BLOCK):
        end = min(size, block + _BLOCK)
        if start is None and data[block:end] == _ZERO_BLOCK[:end - block]:
            continue
        for offset in range(block, end, _PAGE):
            zero = data[offset:offset + _PAGE] == _ZERO_PAGE[:size - offset]
            if zero and start is not None:
                runs.append([start, bytes(data[start:offset])])
                start = None
            elif not zero and start is None:
                start = offset
    if start is not None:
        runs.append([start, bytes(data[start:])])
    return runs


def restore_pages(data: bytearray | memoryview, runs: StateValue) -> None:
    """The inverse of :func:`nonzero_pages`: ``data`` zeroed, then the runs written
    (StateError if they do not fit)."""
    view = memoryview(data)
    checked = []
    for run in runs if isinstance(runs, list) else [None]:
        if (not isinstance(run, list) or len(run) != 2 or not isinstance(run[0], int)
                or not isinstance(run[1], bytes) or run[0] < 0
                or run[0] + len(run[1]) > len(view)):
            raise StateError("saved pages do not fit the buffer")
        checked.append(run)
    for offset in range(0, len(view), 1 << 20):
        end = min(len(view), offset + (1 << 20))
        view[offset:end] = bytes(end - offset)
    for offset, chunk in checked:
        view[offset:offset + len(chunk)] = chunk


class ByteRam:
    """GuestRam over a bytearray of ``size`` bytes at guest-physical ``base``."""

    def __init__(self, size: int, base: int = 0) -> None:
        self.base = base
        self.data = bytearray(size)

    def read(self, addr: int, size: int) -> bytes:
        start = self._offset(addr, size)
        return bytes(self.data[start:start + size])

    def write(self, addr: int, data: bytes) -> None:
        start = self._offset(addr, len(data))
        self.data[start:start + len(data)] = data

    def _offset(self, addr: int, size: int) -> int:
        start = addr - self.base
        if size < 0 or start < 0 or start + size > len(self.data):
            raise GuestMemoryError(f"DMA of {size} bytes at {addr:#x} is outside guest RAM "
                                   f"[{self.base:#x}, {self.base + len(self.data):#x})")
        return start


class IrqRecorder:
    """An IrqLine that remembers its level and every call, for tests."""

    def __init__(self) -> None:
        self.level = False
        self.history: list[bool] = []

    def __call__(self, level: bool) -> None:
        self.level = bool(level)
        self.history.append(self.level)

    @property
    def raises(self) -> int:
        """How many low-to-high transitions the line saw."""
        previous, count = False, 0
        for level in self.history:
            count += level and not previous
            previous = level
        return count
