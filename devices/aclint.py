"""The CLINT of QEMU 7.2's virt and spike machines: an ACLINT MSWI at offset 0 and an
MTIMER at 0x4000 (hw/intc/riscv_aclint.c), seen here as one 0x10000-byte device.

    0x0000 + 4*h   msip of hart h (bit 0; 32-bit accesses only)
    0x4000 + 8*h   mtimecmp of hart h (32- or 64-bit accesses)
    0xBFF8         mtime (32- or 64-bit accesses; writable)
    0xC000..       nothing (reads 0)

mtime counts at ``timebase_hz`` (10 MHz on virt) from the Clock: floor(now_ns *
timebase / 1e9) plus an offset that mtime writes set; it starts at 0 on reset. MTIP of a
hart is raised as soon as mtime >= mtimecmp, to the nanosecond: a write of a past
mtimecmp raises it at once, a future one lowers it and arms a Clock timer for the
deadline, and an mtime write re-evaluates every hart. As in QEMU, reset leaves mtimecmp
at 0, so MTIP is up until the firmware programs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from devices.base import (
    AccessRules,
    Clock,
    GuestErrorLog,
    IrqLine,
    StateValue,
    TimerHandle,
    load_fields,
    save_fields,
    size_mask,
)
from devices.fdt import DeviceTree, node_name, reg

VIRT_TIMEBASE_HZ = 10_000_000
MSWI_SIZE = 0x4000
MTIMER_BASE = 0x4000  # the MTIMER's own offsets: mtimecmp at 0, mtime at 0x7ff8
MTIMER_SIZE = 0x8000
MTIMECMP = MTIMER_BASE
MTIME = MTIMER_BASE + 0x7FF8
CLINT_SIZE = 0x10000

IRQ_M_SOFT, IRQ_M_TIMER = 3, 7  # mip bits, for the device tree

_MSWI_RULES = AccessRules(min_size=4, max_size=4)
_MTIMER_RULES = AccessRules(min_size=4, max_size=8)
_MASK64 = size_mask(8)
_INT64_MAX = (1 << 63) - 1
_NS_PER_S = 1_000_000_000


class Aclint:
    name = "clint"
    state_version = 1
    _STATE_FIELDS = ("mtimecmp", "msip", "_time_delta")
    size = CLINT_SIZE

    def __init__(self, clock: Clock, mtip: Sequence[IrqLine], msip: Sequence[IrqLine], *,
                 timebase_hz: int = VIRT_TIMEBASE_HZ,
                 log: GuestErrorLog | None = None) -> None:
        if len(mtip) != len(msip) or not mtip:
            raise ValueError("the CLINT needs one MTIP and one MSIP line per hart")
        if len(mtip) * 4 > MSWI_SIZE:
            raise ValueError(f"{len(mtip)} harts do not fit the CLINT")
        self._clock = clock
        self._mtip = list(mtip)
        self._msip = list(msip)
        self.timebase_hz = timebase_hz
        self._log = log
        self.num_harts = len(mtip)
        self.mtimecmp = [0] * self.num_harts
        self.msip = [0] * self.num_harts
        self._timers: list[TimerHandle | None] = [None] * self.num_harts
        self._time_delta = 0
        # Called after mtime's relation to the host clock changed (time_base): an mtime
        # write, reset, loadvm. Harts computing mtime natively re-read it.
        self.time_base_listeners: list[Callable[[], None]] = []
        self.reset()

    def reset(self) -> None:
        """MSIP cleared, mtime set to 0 (mtimecmp keeps its value, MTIP follows)."""
        for hart, line in enumerate(self._msip):
            self.msip[hart] = 0
            line(False)
        self._write_mtime(0, 0, 8)

    def save_state(self) -> dict[str, StateValue]:
        return save_fields(self, self._STATE_FIELDS)

    def load_state(self, saved: dict[str, StateValue]) -> None:
        """mtimecmp, MSIP and the mtime offset as saved (the clock restored first, so
        mtime reads what it read then); MSIP/MTIP driven and timers re-armed."""
        load_fields(self, self._STATE_FIELDS, saved)
        for hart, line in enumerate(self._msip):
            line(bool(self.msip[hart]))
            self._set_mtimecmp(hart, self.mtimecmp[hart])
        self._time_base_changed()

    def mtime(self) -> int:
        """The current mtime: also what the CPU's ``time`` CSR and Sstc compare with."""
        return (self._raw_ticks() + self._time_delta) & _MASK64

    def time_base(self) -> tuple[int, int, int] | None:
        """:meth:`mtime` as a function of the host's CLOCK_MONOTONIC nanoseconds
        ``host_ns``: ``(epoch, ns_per_tick, delta)`` with mtime = ((host_ns - epoch) //
        ns_per_tick + delta) mod 2**64 from now until ``time_base_listeners`` are
        called (translated code computes the time CSR so: llvmtcg's native_time).
        None when mtime is no such function: a clock that does not follow the host's
        (a manual one), a frequency that is not a whole number of nanoseconds per
        tick, or a clock reading before its epoch."""
        epoch = getattr(self._clock, "host_epoch_ns", lambda: None)()
        if epoch is None or _NS_PER_S % self.timebase_hz or self._clock.now_ns() < 0:
            return None
        # floor(now * hz / 1e9) == floor(now / (1e9 / hz)) when hz divides 1e9.
        return epoch, _NS_PER_S // self.timebase_hz, self._time_delta

    # --- registers ------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset < MSWI_SIZE:
            if _MSWI_RULES.allows(offset, size, MSWI_SIZE) and offset // 4 < self.num_harts:
                return self.msip[offset // 4]
        elif _MTIMER_RULES.allows(offset - MTIMER_BASE, size, MTIMER_SIZE):
            value = self._read_mtimer(offset - MTIMER_BASE, size)
            if value is not None:
                return value & size_mask(size)
        self._bad("read", offset, size)
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        value &= size_mask(size)
        if offset < MSWI_SIZE:
            if _MSWI_RULES.allows(offset, size, MSWI_SIZE) and offset // 4 < self.num_harts:
                hart = offset // 4
                self.msip[hart] = value & 1
                self._msip[hart](bool(value & 1))
                return
        elif _MTIMER_RULES.allows(offset - MTIMER_BASE, size, MTIMER_SIZE):
            if self._write_mtimer(offset - MTIMER_BASE, size, value):
                return
        self._bad("write", offset, size)

    # --- internals ------------------------------------------------------------------

    def _read_mtimer(self, offset: int, size: int) -> int | None:
        if offset < self.num_harts * 8:
            timecmp = self.mtimecmp[offset // 8]
            return timecmp if offset % 8 == 0 else timecmp >> 32
        if offset == MTIME - MTIMER_BASE:
            return self.mtime()
        if offset == MTIME - MTIMER_BASE + 4:
            return self.mtime() >> 32
        return None

    def _write_mtimer(self, offset: int, size: int, value: int) -> bool:
        if offset < self.num_harts * 8:
            hart, half = divmod(offset, 8)
            old = self.mtimecmp[hart]
            if size == 8:
                self._set_mtimecmp(hart, value)
            elif half == 0:
                self._set_mtimecmp(hart, (old & ~0xFFFF_FFFF) | value)
            else:
                self._set_mtimecmp(hart, (value << 32) | (old & 0xFFFF_FFFF))
            return True
        if offset in (MTIME - MTIMER_BASE, MTIME - MTIMER_BASE + 4):
            self._write_mtime(offset - (MTIME - MTIMER_BASE), value, size)
            return True
        return False

    def _write_mtime(self, half: int, value: int, size: int) -> None:
        raw, now = self._raw_ticks(), self.mtime()
        if size == 8:
            new = value
        elif half == 0:
            new = (now & ~0xFFFF_FFFF) | value
        else:
            new = (value << 32) | (now & 0xFFFF_FFFF)
        self._time_delta = (new - raw) & _MASK64
        for hart in range(self.num_harts):
            self._set_mtimecmp(hart, self.mtimecmp[hart])
        self._time_base_changed()

    def _set_mtimecmp(self, hart: int, value: int) -> None:
        self.mtimecmp[hart] = value
        timer = self._timers[hart]
        if timer is not None:
            timer.cancel()
            self._timers[hart] = None
        now = self.mtime()
        if value <= now:
            self._mtip[hart](True)
            return
        self._mtip[hart](False)
        # The first nanosecond at which mtime reaches the value. (QEMU adds the tick
        # difference to now and so can raise MTIP up to a tick after mtime got there.)
        target_ticks = self._raw_ticks() + (value - now)
        deadline = min(-(-target_ticks * _NS_PER_S // self.timebase_hz), _INT64_MAX)
        self._timers[hart] = self._clock.set_timer(deadline, lambda: self._expire(hart))

    def _time_base_changed(self) -> None:
        for listener in self.time_base_listeners:
            listener()

    def _expire(self, hart: int) -> None:
        self._timers[hart] = None
        self._mtip[hart](True)

    def _raw_ticks(self) -> int:
        return self._clock.now_ns() * self.timebase_hz // _NS_PER_S

    def _bad(self, kind: str, offset: int, size: int) -> None:
        if self._log is not None:
            self._log(f"{self.name}: invalid {kind} of {size} bytes at {offset:#x}")


def add_fdt_node(tree: DeviceTree, base: int, cpu_intc_phandles: Sequence[int], *,
                 reg_size: int = CLINT_SIZE, parent: str = "/soc") -> str:
    """QEMU's ``clint@…`` node (M software and M timer interrupt of every hart)."""
    node = tree.node(f"{parent}/{node_name('clint', base)}")
    node.prop_strings("compatible", "sifive,clint0", "riscv,clint0")
    reg(node, base, reg_size)
    cells: list[int] = []
    for intc in cpu_intc_phandles:
        cells += [intc, IRQ_M_SOFT, intc, IRQ_M_TIMER]
    node.prop_u32("interrupts-extended", *cells)
    return node.path
