"""SiFive PLIC: priorities, enables, thresholds, claim/complete, as QEMU 7.2 virt."""

from __future__ import annotations

import pytest

from devices.base import IrqRecorder
from devices.plic import Plic

M, S = 0, 1
CLAIM = {M: 0x200004, S: 0x201004}
THRESHOLD = {M: 0x200000, S: 0x201000}
ENABLE = {M: 0x2000, S: 0x2080}


class Rig:
    def __init__(self) -> None:
        self.meip = IrqRecorder()
        self.seip = IrqRecorder()
        self.log: list[str] = []
        self.plic = Plic([self.meip, self.seip], log=self.log.append)
        self.lines = {n: self.plic.source_line(n) for n in (1, 2, 3, 10, 33, 95)}

    def rd(self, offset: int) -> int:
        return self.plic.read(offset, 4)

    def wr(self, offset: int, value: int) -> None:
        self.plic.write(offset, 4, value)

    def enable(self, context: int, *sources: int) -> None:
        words = [0, 0, 0]
        for source in sources:
            words[source // 32] |= 1 << (source % 32)
        for word, bits in enumerate(words):
            self.wr(ENABLE[context] + 4 * word, bits)

    def claim(self, context: int) -> int:
        return self.rd(CLAIM[context])

    def complete(self, context: int, source: int) -> None:
        self.wr(CLAIM[context], source)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_outputs_start_low(rig: Rig) -> None:
    assert rig.meip.history == [False] and rig.seip.history == [False]


def test_priority_registers_are_warl(rig: Rig) -> None:
    rig.wr(0x4 * 10, 5)
    assert rig.rd(0x4 * 10) == 5
    rig.wr(0x4 * 10, 0xF)  # 3 priority bits: the rest is dropped
    assert rig.rd(0x4 * 10) == 7
    rig.wr(THRESHOLD[S], 9)
    assert rig.rd(THRESHOLD[S]) == 1
    assert rig.rd(0x0) == 0 and rig.log  # source 0 has no register
    rig.log.clear()
    rig.wr(0x180, 1)  # source 96 does not exist on virt (sources 1..95)
    assert rig.rd(0x180) == 0 and len(rig.log) == 2


def test_a_pending_enabled_source_above_threshold_interrupts_its_context(rig: Rig) -> None:
    rig.wr(0x4 * 10, 1)
    rig.lines[10](True)
    assert rig.rd(0x1000) == 1 << 10
    assert not rig.seip.level  # not enabled anywhere yet
    rig.enable(S, 10)
    assert rig.seip.level and not rig.meip.level
    rig.wr(THRESHOLD[S], 1)  # priority must exceed the threshold
    assert not rig.seip.level and rig.claim(S) == 0
    rig.wr(THRESHOLD[S], 0)
    assert rig.seip.level


def test_priority_zero_never_interrupts(rig: Rig) -> None:
    rig.enable(M, 1)
    rig.lines[1](True)
    assert not rig.meip.level and rig.claim(M) == 0


def test_claim_takes_highest_priority_then_lowest_number(rig: Rig) -> None:
    for source, priority in ((1, 2), (2, 5), (3, 5), (33, 7), (95, 1)):
        rig.wr(4 * source, priority)
        rig.lines[source](True)
    rig.enable(M, 1, 2, 3, 33, 95)
    assert rig.rd(0x1000) == 0b1110 and rig.rd(0x1004) == 0b10
    assert rig.rd(0x1008) == 1 << 31
    assert [rig.claim(M) for _ in range(6)] == [33, 2, 3, 1, 95, 0]
    assert not rig.meip.level
    assert [rig.rd(0x1000 + 4 * w) for w in range(3)] == [0, 0, 0]  # claims clear pending


def test_claimed_source_waits_for_complete(rig: Rig) -> None:
    rig.wr(4 * 10, 1)
    rig.enable(S, 10)
    rig.lines[10](True)
    assert rig.claim(S) == 10 and not rig.seip.level
    rig.lines[10](True)  # driven again while in service: no new request yet
    assert rig.rd(0x1000) == 0 and not rig.seip.level and rig.claim(S) == 0
    rig.complete(S, 10)  # still high: requested again
    assert rig.seip.level and rig.claim(S) == 10


def test_a_pulse_during_service_is_not_a_new_request(rig: Rig) -> None:
    rig.wr(4 * 10, 1)
    rig.enable(S, 10)
    rig.lines[10](True)
    assert rig.claim(S) == 10
    rig.lines[10](True)  # e.g. the UART re-driving its line while the handler runs
    rig.lines[10](False)  # ... which has served the device
    rig.complete(S, 10)
    assert not rig.seip.level and rig.claim(S) == 0  # no spurious claim


def test_complete_repends_a_line_that_is_still_high(rig: Rig) -> None:
    rig.wr(4 * 3, 1)
    rig.enable(M, 3)
    rig.lines[3](True)
    assert rig.claim(M) == 3
    rig.complete(M, 3)  # the device still holds the line: a new request
    assert rig.meip.level and rig.claim(M) == 3
    rig.lines[3](False)
    rig.complete(M, 3)
    assert not rig.meip.level and rig.claim(M) == 0


def test_lowering_a_line_does_not_clear_pending(rig: Rig) -> None:
    rig.wr(4 * 2, 1)
    rig.enable(M, 2)
    rig.lines[2](True)
    rig.lines[2](False)  # QEMU 7.2.x latches the request
    assert rig.meip.level and rig.claim(M) == 2
    rig.complete(M, 2)
    assert not rig.meip.level


def test_complete_is_not_tied_to_the_claiming_context(rig: Rig) -> None:
    rig.wr(4 * 10, 1)
    rig.enable(M, 10)
    rig.enable(S, 10)
    rig.lines[10](True)
    assert rig.meip.level and rig.seip.level
    assert rig.claim(S) == 10
    assert not rig.meip.level and not rig.seip.level  # claimed for everyone
    rig.lines[10](False)
    rig.complete(M, 10)
    rig.lines[10](True)
    assert rig.claim(M) == 10
    rig.complete(S, 96)  # beyond the sources: ignored
    rig.complete(S, 0xFFFF_FFFF)
    assert rig.claim(S) == 0


def test_enable_write_takes_effect_at_once(rig: Rig) -> None:
    rig.wr(4 * 33, 4)
    rig.lines[33](True)
    rig.wr(ENABLE[M] + 4, 1 << 1)
    assert rig.rd(ENABLE[M] + 4) == 2 and rig.meip.level
    rig.wr(ENABLE[M] + 4, 0)
    assert not rig.meip.level


def test_invalid_accesses(rig: Rig) -> None:
    rig.wr(4 * 10, 3)
    assert rig.plic.read(4 * 10, 8) == 0 and rig.plic.read(4 * 10, 1) == 0
    rig.plic.write(4 * 10, 2, 1)
    assert rig.rd(4 * 10) == 3
    assert rig.plic.read(4 * 10 + 2, 4) == 0  # unaligned
    rig.wr(0x1000, 0xFFFF_FFFF)  # pending is read-only
    assert rig.rd(0x1000) == 0
    assert rig.rd(ENABLE[M] + 12) == 0  # only 3 enable words
    assert rig.rd(0x200008) == 0  # no register after claim
    assert rig.rd(0x202000) == 0  # context 2 does not exist with one hart
    assert len(rig.log) == 8


def test_source_line_range() -> None:
    plic = Plic([IrqRecorder()])
    with pytest.raises(ValueError):
        plic.source_line(0)
    with pytest.raises(ValueError):
        plic.source_line(96)


def test_reset_clears_state(rig: Rig) -> None:
    rig.wr(4 * 10, 1)
    rig.enable(M, 10)
    rig.lines[10](True)
    assert rig.meip.level
    rig.plic.reset()
    assert not rig.meip.level and rig.rd(4 * 10) == 0 and rig.rd(ENABLE[M]) == 0
