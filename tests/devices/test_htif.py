"""HTIF: the exit protocol, console putchar/getchar, mailbox layout."""

from __future__ import annotations

import pytest

from devices.htif import Htif, HtifLayout

FROMHOST, TOHOST = 0, 8  # spike's default layout
CONSOLE_PUTC = 1 << 56 | 1 << 48
CONSOLE_GETC = 1 << 56


class Rig:
    def __init__(self, layout: HtifLayout | None = None) -> None:
        self.output = bytearray()
        self.exits: list[int] = []
        self.log: list[str] = []
        self.htif = Htif(self.output.extend, self.exits.append, layout=layout,
                         log=self.log.append)


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.mark.parametrize("code", [0, 3, 2**47 - 1])  # riscv-tests: 0 = pass, n = test n
def test_exit_codes(code: int) -> None:
    rig = Rig()
    rig.htif.write(TOHOST, 8, (code << 1) | 1)
    assert rig.exits == [code]
    # QEMU never returns from exit(): nothing is answered, later requests are dropped.
    assert rig.htif.read(TOHOST, 8) == (code << 1) | 1
    rig.htif.write(TOHOST, 8, CONSOLE_PUTC | ord("A"))
    assert rig.exits == [code] and rig.output == b""


def test_exit_by_32_bit_halves(rig: Rig) -> None:
    rig.htif.write(TOHOST, 4, (21 << 1) | 1)
    assert rig.exits == []  # handled when the high half is written
    rig.htif.write(TOHOST + 4, 4, 0)
    assert rig.exits == [21]


def test_putchar_replies_in_fromhost(rig: Rig) -> None:
    rig.htif.write(TOHOST, 8, CONSOLE_PUTC | ord("A"))
    assert rig.output == b"A"
    assert rig.htif.read(TOHOST, 8) == 0
    assert rig.htif.read(FROMHOST, 8) == CONSOLE_PUTC | 0x141
    assert rig.htif.read(FROMHOST + 4, 4) == CONSOLE_PUTC >> 32


def test_getchar_waits_for_a_request_and_an_empty_fromhost(rig: Rig) -> None:
    assert rig.htif.can_receive() == 0  # nobody asked yet
    rig.htif.write(TOHOST, 8, CONSOLE_GETC)
    assert rig.htif.read(TOHOST, 8) == 0 and rig.htif.read(FROMHOST, 8) == 0
    assert rig.htif.can_receive() == 1
    rig.htif.receive(b"x")
    assert rig.htif.read(FROMHOST, 8) == CONSOLE_GETC | 0x100 | ord("x")
    assert rig.htif.can_receive() == 0  # the guest has not taken it yet
    rig.htif.write(FROMHOST, 8, 0)
    assert rig.htif.can_receive() == 1
    rig.htif.receive(b"yz")  # QEMU takes one byte at a time and ignores more
    assert rig.htif.read(FROMHOST, 8) == 0


def test_low_half_into_a_busy_tohost_is_dropped(rig: Rig) -> None:
    rig.htif.write(TOHOST, 4, 0x41)
    rig.htif.write(TOHOST, 4, 0x42)  # tohost is not empty: closes it
    rig.htif.write(TOHOST + 4, 4, CONSOLE_PUTC >> 32)
    assert rig.output == b"" and rig.htif.read(TOHOST, 4) == 0x41


def test_unknown_device_and_syscall_proxy_are_answered_empty(rig: Rig) -> None:
    rig.htif.write(TOHOST, 8, 5 << 56 | 2 << 48 | 7)
    assert rig.htif.read(FROMHOST, 8) == 5 << 56 | 2 << 48
    rig.htif.write(TOHOST, 8, 0x80001000)  # device 0, even payload: a pk syscall
    assert rig.exits == [] and rig.htif.read(TOHOST, 8) == 0
    assert len(rig.log) == 2


def test_layout_from_elf_symbols() -> None:
    layout = HtifLayout.at(tohost=0x80001000, fromhost=0x80001040)
    assert layout == HtifLayout(0x80001000, 0x48, 0, 0x40)
    rig = Rig(layout)
    rig.htif.write(0, 8, CONSOLE_PUTC | ord("k"))
    assert rig.output == b"k" and rig.htif.read(0x40, 8) == CONSOLE_PUTC | 0x16B
    assert rig.htif.read(0x20, 4) == 0 and rig.log  # between the mailboxes
    with pytest.raises(ValueError):
        HtifLayout.at(tohost=0x1000, fromhost=0x1004)


def test_narrow_and_invalid_accesses(rig: Rig) -> None:
    rig.htif.write(FROMHOST, 8, 0x1122_3344_5566_7788)
    assert rig.htif.read(FROMHOST, 1) == 0x88 and rig.htif.read(FROMHOST, 2) == 0x7788
    assert rig.htif.read(FROMHOST + 1, 1) == 0  # not a register
    assert rig.htif.read(FROMHOST + 4, 8) == 0  # unaligned
    assert rig.htif.read(16, 4) == 0  # outside the 16-byte region
    assert rig.htif.size == 16
