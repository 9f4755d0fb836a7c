"""Goldfish RTC: time registers with the TIME_HIGH latch, the alarm and its interrupt."""

from __future__ import annotations

import pytest

from devices.base import IrqRecorder, VirtualClock
from devices.goldfish_rtc import (
    ALARM_HIGH,
    ALARM_LOW,
    ALARM_STATUS,
    CLEAR_ALARM,
    CLEAR_INTERRUPT,
    IRQ_ENABLED,
    TIME_HIGH,
    TIME_LOW,
    GoldfishRtc,
)

WALL0 = 1_700_000_000_123_456_789  # host UTC at creation, in ns
SECOND0 = 1_700_000_000_000_000_000


class Rig:
    def __init__(self) -> None:
        self.clock = VirtualClock.manual()
        self.irq = IrqRecorder()
        self.log: list[str] = []
        # The host's wall clock moves with the machine's clock in these tests.
        self.rtc = GoldfishRtc(self.clock, self.irq, log=self.log.append,
                               wall_time_ns=lambda: WALL0 + self.clock.now_ns())

    def rd(self, offset: int) -> int:
        return self.rtc.read(offset, 4)

    def wr(self, offset: int, value: int) -> None:
        self.rtc.write(offset, 4, value)

    def time(self) -> int:
        low = self.rd(TIME_LOW)
        return self.rd(TIME_HIGH) << 32 | low

    def arm(self, when: int) -> None:
        self.wr(ALARM_HIGH, when >> 32)
        self.wr(ALARM_LOW, when & 0xFFFF_FFFF)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_time_starts_at_the_whole_second_and_runs(rig: Rig) -> None:
    assert rig.time() == SECOND0
    rig.clock.advance(1_500)
    assert rig.time() == SECOND0 + 1_500


def test_time_high_is_latched_by_time_low(rig: Rig) -> None:
    low = rig.rd(TIME_LOW)
    rig.clock.advance(2**33)  # the high half moves on...
    assert rig.rd(TIME_HIGH) == SECOND0 >> 32  # ...but reads what TIME_LOW latched
    assert low == SECOND0 & 0xFFFF_FFFF
    rig.rd(TIME_LOW)
    assert rig.rd(TIME_HIGH) == (SECOND0 + 2**33) >> 32


def test_setting_the_time(rig: Rig) -> None:
    rig.wr(TIME_HIGH, 0x12)
    rig.wr(TIME_LOW, 0x3456_7890)
    assert rig.time() == 0x12_3456_7890
    rig.clock.advance(10)
    assert rig.time() == 0x12_3456_789A


def test_alarm_fires_and_interrupts_until_cleared(rig: Rig) -> None:
    rig.wr(IRQ_ENABLED, 1)
    rig.arm(SECOND0 + 1_000_000)
    assert rig.rd(ALARM_STATUS) == 1 and rig.irq.level is False
    assert (rig.rd(ALARM_HIGH) << 32 | rig.rd(ALARM_LOW)) == SECOND0 + 1_000_000
    rig.clock.advance(1_000_000 - 1)
    assert rig.irq.level is False
    rig.clock.advance(1)
    assert rig.irq.level is True and rig.rd(ALARM_STATUS) == 0
    rig.wr(CLEAR_INTERRUPT, 1)
    assert rig.irq.level is False


def test_alarm_in_the_past_fires_at_once(rig: Rig) -> None:
    rig.wr(IRQ_ENABLED, 1)
    rig.arm(SECOND0 - 5)
    assert rig.irq.level is True and rig.rd(ALARM_STATUS) == 0


def test_irq_enable_masks_the_pending_interrupt(rig: Rig) -> None:
    rig.arm(SECOND0 + 10)
    rig.clock.advance(10)
    assert rig.irq.level is False and rig.rd(IRQ_ENABLED) == 0
    rig.wr(IRQ_ENABLED, 3)
    assert rig.irq.level is True and rig.rd(IRQ_ENABLED) == 1


def test_clear_alarm_and_alarm_high_alone(rig: Rig) -> None:
    rig.wr(IRQ_ENABLED, 1)
    rig.arm(SECOND0 + 100)
    rig.wr(CLEAR_ALARM, 1)
    assert rig.rd(ALARM_STATUS) == 0
    rig.clock.advance(1_000)
    assert rig.irq.level is False
    rig.wr(ALARM_HIGH, 0)  # only ALARM_LOW arms
    assert rig.rd(ALARM_STATUS) == 0 and rig.clock.next_deadline() is None


def test_invalid_accesses(rig: Rig) -> None:
    assert rig.rtc.read(TIME_LOW, 8) == 0 and rig.rtc.read(TIME_LOW, 2) == 0
    assert rig.rd(CLEAR_ALARM) == 0 and rig.rd(0x20) == 0  # write-only, unimplemented
    rig.wr(ALARM_STATUS, 1)
    rig.rtc.write(0x24, 4, 0)  # past the registers
    assert len(rig.log) == 6
