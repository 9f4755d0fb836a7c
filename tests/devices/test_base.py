"""The helpers of devices/base.py: VirtualClock, ByteRam, IrqRecorder, AccessRules."""

from __future__ import annotations

import pytest

from devices.base import AccessRules, ByteRam, GuestMemoryError, IrqRecorder, VirtualClock


def test_manual_clock_fires_due_timers_in_deadline_order() -> None:
    clock = VirtualClock.manual()
    fired: list[str] = []
    clock.set_timer(30, lambda: fired.append("c"))
    clock.set_timer(10, lambda: fired.append("a"))
    clock.set_timer(10, lambda: fired.append("b"))  # same deadline: in arming order
    assert clock.next_deadline() == 10
    assert clock.advance(9) == 0 and fired == []
    assert clock.advance(1) == 2 and fired == ["a", "b"]
    assert clock.now_ns() == 10 and clock.next_deadline() == 30
    clock.advance(100)
    assert fired == ["a", "b", "c"] and clock.next_deadline() is None


def test_cancelled_timers_never_fire() -> None:
    clock = VirtualClock.manual()
    fired: list[int] = []
    handle = clock.set_timer(5, lambda: fired.append(5))
    clock.set_timer(7, lambda: fired.append(7))
    handle.cancel()
    assert clock.next_deadline() == 7
    clock.advance(10)
    handle.cancel()  # cancelling again, after the fact, is harmless
    assert fired == [7]


def test_callbacks_may_arm_timers_that_are_already_due() -> None:
    clock = VirtualClock.manual()
    fired: list[str] = []
    clock.set_timer(5, lambda: clock.set_timer(3, lambda: fired.append("late")))
    clock.set_timer(5, lambda: clock.set_timer(50, lambda: fired.append("future")))
    assert clock.advance(10) == 3 and fired == ["late"]
    assert clock.next_deadline() == 50


def test_run_due_with_an_explicit_time() -> None:
    clock = VirtualClock(source=iter(range(0, 10**6, 1000)).__next__)
    fired: list[int] = []
    clock.set_timer(2500, lambda: fired.append(1))
    assert clock.run_due(2499) == 0
    assert clock.run_due(2500) == 1 and fired == [1]


def test_host_clock_starts_near_zero_and_moves_forward() -> None:
    clock = VirtualClock()
    first = clock.now_ns()
    assert 0 <= first < 10**9 and clock.now_ns() >= first
    with pytest.raises(TypeError):
        clock.advance(1)


def test_manual_clock_cannot_go_back() -> None:
    with pytest.raises(ValueError):
        VirtualClock.manual().advance(-1)


def test_byte_ram() -> None:
    ram = ByteRam(0x100, base=0x8000_0000)
    ram.write(0x8000_00FC, b"\x01\x02\x03\x04")
    assert ram.read(0x8000_00FD, 3) == b"\x02\x03\x04"
    assert ram.data[0xFC] == 1
    with pytest.raises(GuestMemoryError):
        ram.read(0x8000_00FD, 4)
    with pytest.raises(GuestMemoryError):
        ram.write(0x7FFF_FFFF, b"\0")


def test_irq_recorder() -> None:
    line = IrqRecorder()
    for level in (True, True, False, True, False, False):
        line(level)
    assert line.level is False and line.raises == 2 and len(line.history) == 6


def test_access_rules() -> None:
    rules = AccessRules(min_size=2, max_size=4)
    assert rules.allows(0, 4, 8) and rules.allows(6, 2, 8)
    assert not rules.allows(0, 1, 8) and not rules.allows(0, 8, 8)
    assert not rules.allows(2, 4, 8)  # unaligned
    assert not rules.allows(8, 2, 8) and not rules.allows(-2, 2, 8)
    assert not rules.allows(0, 3, 8)
    assert AccessRules(unaligned=True).allows(3, 4, 8)
