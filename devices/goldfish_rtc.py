"""The Goldfish RTC as QEMU 7.2 has it (hw/rtc/goldfish_rtc.c): a 64-bit nanosecond
wall clock with one alarm. 32-bit registers, 32-bit accesses only:

    0x00 TIME_LOW    read: low half of the time, latching the high half; write: set it
    0x04 TIME_HIGH   read: the high half latched by the last TIME_LOW read; write: set
    0x08 ALARM_LOW   write arms the alarm at ALARM_HIGH:ALARM_LOW (fires at once if due)
    0x0c ALARM_HIGH  write only stores the high half
    0x10 IRQ_ENABLED bit 0
    0x14 CLEAR_ALARM write disarms the alarm
    0x18 ALARM_STATUS 1 while an alarm is armed
    0x1c CLEAR_INTERRUPT write clears the pending interrupt

The time is ``wall_time_ns()`` (host UTC by default, as QEMU's default rtc clock) plus
an offset that starts it at the whole second of the device's creation (QEMU 7.2.x sets
it at realize, not at reset) and that time writes move. The alarm waits on the
machine's Clock. The interrupt line is high while an alarm fired and is not cleared
and IRQ_ENABLED is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from devices.base import (
    AccessRules,
    Clock,
    GuestErrorLog,
    IrqLine,
    StateError,
    StateValue,
    TimerHandle,
    load_fields,
    save_fields,
)
from devices.fdt import DeviceTree, node_name, reg

TIME_LOW, TIME_HIGH = 0x00, 0x04
ALARM_LOW, ALARM_HIGH = 0x08, 0x0C
IRQ_ENABLED, CLEAR_ALARM, ALARM_STATUS, CLEAR_INTERRUPT = 0x10, 0x14, 0x18, 0x1C

_RULES = AccessRules(min_size=4, max_size=4)
_MASK64 = (1 << 64) - 1
_NS_PER_S = 1_000_000_000


class GoldfishRtc:
    name = "rtc"
    state_version = 1
    _STATE_FIELDS = ("alarm_next", "irq_pending", "irq_enabled", "time_high")
    size = 0x24  # QEMU's region; the device tree gives the 0x1000 window

    def __init__(self, clock: Clock, irq: IrqLine, *,
                 wall_time_ns: Callable[[], int] = time.time_ns,
                 log: GuestErrorLog | None = None) -> None:
        self._clock = clock
        self._irq = irq
        self._wall_time_ns = wall_time_ns
        self._log = log
        now = wall_time_ns()
        self._tick_offset = (now // _NS_PER_S * _NS_PER_S - now) & _MASK64
        self._timer: TimerHandle | None = None
        self.time_high = 0  # survives reset, as in QEMU
        self.reset()

    def reset(self) -> None:
        self._clear_alarm()
        self.alarm_next = 0
        self.irq_pending = False
        self.irq_enabled = False
        self._update()

    def save_state(self) -> dict[str, StateValue]:
        state = save_fields(self, self._STATE_FIELDS)
        state["time_ns"] = self.time_ns()
        state["alarm_armed"] = self._timer is not None
        return state

    def load_state(self, saved: dict[str, StateValue]) -> None:
        """The guest's time goes on from the saved value (as QEMU's goldfish_rtc
        post_load does); an armed alarm is armed again."""
        now, armed = saved.get("time_ns"), saved.get("alarm_armed")
        if not isinstance(now, int) or not isinstance(armed, bool):
            raise StateError("rtc: saved time or alarm state missing")
        load_fields(self, self._STATE_FIELDS, saved)
        self._set_time(now)
        self._clear_alarm()
        if armed:
            self._set_alarm()
        self._update()

    def time_ns(self) -> int:
        """The time the guest reads, in ns since the epoch."""
        return (self._tick_offset + self._wall_time_ns()) & _MASK64

    # --- registers ------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if _RULES.allows(offset, size, self.size):
            if offset == TIME_LOW:
                now = self.time_ns()
                self.time_high = now >> 32
                return now & 0xFFFF_FFFF
            if offset == TIME_HIGH:
                return self.time_high
            if offset == ALARM_LOW:
                return self.alarm_next & 0xFFFF_FFFF
            if offset == ALARM_HIGH:
                return self.alarm_next >> 32
            if offset == IRQ_ENABLED:
                return int(self.irq_enabled)
            if offset == ALARM_STATUS:
                return int(self._timer is not None)
        self._bad("read", offset, size)
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if not _RULES.allows(offset, size, self.size):
            self._bad("write", offset, size)
            return
        value &= 0xFFFF_FFFF
        if offset == TIME_LOW:
            self._set_time((self.time_ns() & ~0xFFFF_FFFF) | value)
        elif offset == TIME_HIGH:
            self._set_time((value << 32) | (self.time_ns() & 0xFFFF_FFFF))
        elif offset == ALARM_LOW:
            self.alarm_next = (self.alarm_next & ~0xFFFF_FFFF) | value
            self._set_alarm()
        elif offset == ALARM_HIGH:
            self.alarm_next = (value << 32) | (self.alarm_next & 0xFFFF_FFFF)
        elif offset == IRQ_ENABLED:
            self.irq_enabled = bool(value & 1)
            self._update()
        elif offset == CLEAR_ALARM:
            self._clear_alarm()
        elif offset == CLEAR_INTERRUPT:
            self.irq_pending = False
            self._update()
        else:
            self._bad("write", offset, size)

    # --- internals ------------------------------------------------------------------

    def _set_time(self, new: int) -> None:
        self._tick_offset = (self._tick_offset + new - self.time_ns()) & _MASK64

    def _set_alarm(self) -> None:
        now = self.time_ns()
        if self.alarm_next <= now:
            self._clear_alarm()
            self._fire()
        else:
            self._clear_alarm()
            deadline = self._clock.now_ns() + (self.alarm_next - now)
            self._timer = self._clock.set_timer(deadline, self._fire)

    def _clear_alarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self.irq_pending = True
        self._update()

    def _update(self) -> None:
        self._irq(self.irq_pending and self.irq_enabled)

    def _bad(self, kind: str, offset: int, size: int) -> None:
        if self._log is not None:
            self._log(f"{self.name}: invalid {kind} of {size} bytes at {offset:#x}")


def add_fdt_node(tree: DeviceTree, base: int, irq: int, plic_phandle: int, *,
                 reg_size: int = 0x1000, parent: str = "/soc") -> str:
    """QEMU virt's ``rtc@…`` node."""
    node = tree.node(f"{parent}/{node_name('rtc', base)}")
    node.prop_str("compatible", "google,goldfish-rtc")
    reg(node, base, reg_size)
    node.prop_u32("interrupt-parent", plic_phandle)
    node.prop_u32("interrupts", irq)
    return node.path
