"""CLINT (ACLINT MSWI + MTIMER): mtime from the clock, mtimecmp deadlines, MSIP."""

from __future__ import annotations

import pytest

from devices.aclint import MTIME, MTIMECMP, Aclint
from devices.base import IrqRecorder, VirtualClock

TICK_NS = 100  # 10 MHz


class Rig:
    def __init__(self, harts: int = 1) -> None:
        self.clock = VirtualClock.manual()
        self.mtip = [IrqRecorder() for _ in range(harts)]
        self.msip = [IrqRecorder() for _ in range(harts)]
        self.log: list[str] = []
        self.clint = Aclint(self.clock, self.mtip, self.msip, log=self.log.append)

    def rd(self, offset: int, size: int = 4) -> int:
        return self.clint.read(offset, size)

    def wr(self, offset: int, value: int, size: int = 4) -> None:
        self.clint.write(offset, size, value)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_reset_state_mtip_up_because_mtimecmp_is_zero(rig: Rig) -> None:
    assert rig.clint.mtime() == 0 and rig.rd(MTIMECMP, 8) == 0
    assert rig.mtip[0].level is True and rig.msip[0].level is False


def test_mtime_counts_at_10mhz(rig: Rig) -> None:
    rig.clock.advance(1234)
    assert rig.clint.mtime() == 12 and rig.rd(MTIME, 8) == 12
    rig.clock.advance(2**32 * TICK_NS)
    assert rig.rd(MTIME) == 12 and rig.rd(MTIME + 4) == 1
    assert rig.rd(MTIME, 8) == 2**32 + 12


def test_mtimecmp_deadline_fires_exactly(rig: Rig) -> None:
    rig.wr(MTIMECMP, 100, size=8)
    assert rig.mtip[0].level is False
    assert rig.clock.next_deadline() == 100 * TICK_NS
    rig.clock.advance(100 * TICK_NS - 1)
    assert rig.clint.mtime() == 99 and rig.mtip[0].level is False
    rig.clock.advance(1)
    assert rig.clint.mtime() == 100 and rig.mtip[0].level is True


def test_deadline_from_a_mid_tick_time(rig: Rig) -> None:
    rig.clock.advance(250)  # mtime 2, half a tick in
    rig.wr(MTIMECMP, 5, size=8)
    rig.clock.advance(299)
    assert rig.clint.mtime() == 5 and rig.mtip[0].level is True


def test_mtimecmp_in_the_past_raises_at_once_and_moving_it_away_lowers(rig: Rig) -> None:
    rig.clock.advance(1000 * TICK_NS)
    rig.wr(MTIMECMP, 2000, size=8)
    assert rig.mtip[0].level is False
    rig.wr(MTIMECMP, 1000, size=8)
    assert rig.mtip[0].level is True and rig.clock.next_deadline() is None
    rig.wr(MTIMECMP, 1001, size=8)
    assert rig.mtip[0].level is False
    rig.clock.advance(TICK_NS)
    assert rig.mtip[0].level is True


def test_mtimecmp_halves(rig: Rig) -> None:
    rig.wr(MTIMECMP + 4, 0x1)  # high half first, as RV32 code does
    assert rig.mtip[0].level is False
    rig.wr(MTIMECMP, 0x2345_6789)
    assert rig.rd(MTIMECMP, 8) == 0x1_2345_6789
    assert (rig.rd(MTIMECMP), rig.rd(MTIMECMP + 4)) == (0x2345_6789, 1)
    assert rig.clock.next_deadline() == 0x1_2345_6789 * TICK_NS


def test_mtimecmp_all_ones_never_fires(rig: Rig) -> None:
    rig.wr(MTIMECMP, 2**64 - 1, size=8)
    assert rig.mtip[0].level is False
    assert rig.clock.next_deadline() == 2**63 - 1  # QEMU's clamp
    rig.clock.advance(10**15)
    assert rig.mtip[0].level is False


def test_mtime_write_reevaluates_timers(rig: Rig) -> None:
    rig.wr(MTIMECMP, 500, size=8)
    rig.wr(MTIME, 600, size=8)
    assert rig.clint.mtime() == 600 and rig.mtip[0].level is True
    rig.wr(MTIME, 400, size=8)
    assert rig.mtip[0].level is False
    rig.clock.advance(100 * TICK_NS)
    assert rig.clint.mtime() == 500 and rig.mtip[0].level is True


def test_mtime_half_writes_keep_the_other_half(rig: Rig) -> None:
    rig.wr(MTIME, 0x5_0000_0010, size=8)
    rig.wr(MTIME + 4, 0x7)
    assert rig.clint.mtime() == 0x7_0000_0010
    rig.wr(MTIME, 0x20)
    assert rig.clint.mtime() == 0x7_0000_0020
    rig.clock.advance(10 * TICK_NS)
    assert rig.clint.mtime() == 0x7_0000_002A


def test_msip(rig: Rig) -> None:
    rig.wr(0x0, 1)
    assert rig.msip[0].level is True and rig.rd(0x0) == 1
    rig.wr(0x0, 2)  # only bit 0 counts
    assert rig.msip[0].level is False and rig.rd(0x0) == 0


def test_two_harts() -> None:
    rig = Rig(harts=2)
    rig.wr(0x4, 1)
    assert [line.level for line in rig.msip] == [False, True]
    rig.wr(MTIMECMP + 8, 10, size=8)
    rig.wr(MTIMECMP, 20, size=8)
    rig.clock.advance(10 * TICK_NS)
    assert [line.level for line in rig.mtip] == [False, True]
    rig.clock.advance(10 * TICK_NS)
    assert [line.level for line in rig.mtip] == [True, True]


def test_invalid_accesses(rig: Rig) -> None:
    rig.wr(0x0, 1, size=8)  # MSIP takes 32-bit accesses only
    assert rig.msip[0].level is False and rig.rd(0x0, 2) == 0
    assert rig.rd(0x4) == 0  # no hart 1
    assert rig.rd(MTIME, 2) == 0  # the timer takes 32 and 64 bits
    assert rig.rd(MTIMECMP + 8, 8) == 0  # no hart 1
    assert rig.rd(MTIMECMP + 4, 8) == 0  # unaligned
    assert rig.rd(0xC000) == 0 and rig.rd(0xFFFC) == 0  # past the MTIMER
    rig.clock.advance(5 * TICK_NS)
    rig.wr(MTIME, 0, size=2)
    assert rig.clint.mtime() == 5
    assert len(rig.log) == 9


def test_reset_zeroes_mtime_and_msip(rig: Rig) -> None:
    rig.clock.advance(1000 * TICK_NS)
    rig.wr(MTIMECMP, 5000, size=8)
    rig.wr(0x0, 1)
    rig.clint.reset()
    assert rig.clint.mtime() == 0 and rig.msip[0].level is False
    assert rig.mtip[0].level is False
    assert rig.clock.next_deadline() == (1000 + 5000) * TICK_NS
