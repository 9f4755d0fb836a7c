"""sifive_test: the power-off / reboot codes."""

from __future__ import annotations

from devices.sifive_test import SifiveTest


class Rig:
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.log: list[str] = []
        self.device = SifiveTest(lambda status: self.events.append(("poweroff", status)),
                                 lambda: self.events.append(("reset", 0)),
                                 log=self.log.append)


def test_pass_fail_and_reset_codes() -> None:
    rig = Rig()
    rig.device.write(0, 4, 0x5555)
    rig.device.write(0, 4, 0x0007_3333)  # fail with code 7
    rig.device.write(0, 4, 0xABCD_5555)  # pass ignores the upper half
    rig.device.write(0, 4, 0x7777)
    assert rig.events == [("poweroff", 0), ("poweroff", 7), ("poweroff", 0), ("reset", 0)]


def test_16_bit_writes_work_and_other_widths_do_not() -> None:
    rig = Rig()
    rig.device.write(0, 2, 0x5555)
    rig.device.write(0, 2, 0x3333)  # a 16-bit fail carries no code: status 0
    rig.device.write(0, 1, 0x55)
    rig.device.write(0, 8, 0x5555)
    assert rig.events == [("poweroff", 0), ("poweroff", 0)]
    assert len(rig.log) == 2


def test_other_values_offsets_and_reads_do_nothing() -> None:
    rig = Rig()
    rig.device.write(0, 4, 0x1234)
    rig.device.write(4, 4, 0x5555)
    assert rig.events == [] and len(rig.log) == 2
    assert rig.device.read(0, 4) == 0 and rig.device.read(0x10, 2) == 0
