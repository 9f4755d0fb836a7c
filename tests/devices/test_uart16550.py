"""ns16550a register behaviour, as QEMU 7.2's serial.c and the 16550A datasheet."""

from __future__ import annotations

import pytest

from devices.base import IrqRecorder, VirtualClock
from devices.uart16550 import (
    DLL,
    DLM,
    FCR,
    FCR_FE,
    IER,
    IER_MSI,
    IER_RDI,
    IER_RLSI,
    IER_THRI,
    IIR,
    LCR,
    LSR,
    LSR_BI,
    LSR_DR,
    LSR_OE,
    LSR_TEMT,
    LSR_THRE,
    MCR,
    MSR,
    RBR,
    SCR,
    THR,
    VIRT_BAUDBASE,
    Uart16550,
)


class Rig:
    def __init__(self) -> None:
        self.clock = VirtualClock.manual()
        self.irq = IrqRecorder()
        self.output = bytearray()
        self.accepts = 0
        self.log: list[str] = []
        self.uart = Uart16550(self.clock, self.irq, self.output.extend,
                              accept_input=self._accept, log=self.log.append)

    def _accept(self) -> None:
        self.accepts += 1

    def rd(self, offset: int, size: int = 1) -> int:
        return self.uart.read(offset, size)

    def wr(self, offset: int, value: int, size: int = 1) -> None:
        self.uart.write(offset, size, value)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_reset_values(rig: Rig) -> None:
    assert [rig.rd(r) for r in (IER, IIR, LCR, MCR, LSR, MSR, SCR)] == [
        0x00, 0x01, 0x00, 0x08, LSR_TEMT | LSR_THRE, 0xB0, 0x00]
    assert rig.irq.level is False


def test_transmit_reaches_output_and_thre_interrupt_is_acknowledged_by_iir(rig: Rig) -> None:
    rig.wr(THR, ord("h"))
    assert rig.output == b"h" and rig.irq.level is False  # THRI not enabled
    rig.wr(IER, IER_THRI)  # enabling THRI while THR is empty raises it
    assert rig.irq.level is True and rig.rd(IIR) == 0x02
    assert rig.irq.level is False and rig.rd(IIR) == 0x01  # the IIR read acknowledged it
    rig.wr(THR, ord("i"))  # the byte leaves at once: THR empty again, interrupt again
    assert rig.output == b"hi"
    assert rig.rd(LSR) & (LSR_THRE | LSR_TEMT) == LSR_THRE | LSR_TEMT
    assert rig.irq.history[-2:] == [False, True]
    assert rig.rd(IIR) == 0x02


def test_ier_write_retriggers_thre_only_when_thri_changes(rig: Rig) -> None:
    rig.wr(IER, IER_THRI)
    rig.rd(IIR)  # acknowledge
    rig.wr(IER, IER_THRI)  # unchanged: stays acknowledged
    assert rig.irq.level is False
    rig.wr(IER, 0)
    rig.wr(IER, IER_THRI | IER_RDI)
    assert rig.irq.level is True and rig.rd(IIR) == 0x02


def test_divisor_latch(rig: Rig) -> None:
    rig.wr(LCR, 0x83)  # DLAB, 8N1
    rig.wr(DLL, 0x02)
    rig.wr(DLM, 0x01)
    assert (rig.rd(DLL), rig.rd(DLM)) == (0x02, 0x01)
    assert rig.output == b"" and rig.rd(IER) == 0x01  # DLM, not IER
    rig.wr(LCR, 0x03)
    assert (rig.rd(RBR), rig.rd(IER)) == (0, 0)
    # 10 bits a character at VIRT_BAUDBASE / 0x102 baud
    assert rig.uart.char_time_ns == int(1e9 / (VIRT_BAUDBASE / 0x102) * 10)
    rig.wr(LCR, 0x1F)  # 8 data bits, even parity, 2 stop bits: 12 bits
    assert rig.uart.char_time_ns == int(1e9 / (VIRT_BAUDBASE / 0x102) * 12)


def test_rx_without_fifo_and_overrun(rig: Rig) -> None:
    rig.wr(IER, IER_RDI | IER_RLSI)
    assert rig.uart.can_receive() == 1
    rig.uart.receive(b"a")
    assert rig.uart.can_receive() == 0
    assert rig.irq.level is True and rig.rd(IIR) == 0x04 and rig.rd(LSR) & LSR_DR
    rig.uart.receive(b"b")  # not read yet: overrun, the holding register is overwritten
    assert rig.rd(IIR) == 0x06  # line status outranks received data
    assert rig.rd(LSR) & LSR_OE  # the read clears OE...
    assert rig.rd(IIR) == 0x04 and not rig.rd(LSR) & LSR_OE
    assert rig.rd(RBR) == ord("b")
    assert not rig.rd(LSR) & LSR_DR and rig.irq.level is False
    assert rig.accepts == 1


def test_fifo_trigger_levels(rig: Rig) -> None:
    rig.wr(IER, IER_RDI)
    for fcr, level in ((0x01, 1), (0x41, 4), (0x81, 8), (0xC1, 14)):
        rig.wr(FCR, fcr | 0x02)  # and reset the receive FIFO
        assert rig.rd(IIR) & 0xC0 == 0xC0
        rig.uart.receive(b"x" * (level - 1))
        assert rig.irq.level is False
        rig.uart.receive(b"y")
        assert rig.irq.level is True and rig.rd(IIR) == 0xC4


def test_can_receive_advertises_up_to_the_trigger_level(rig: Rig) -> None:
    rig.wr(FCR, 0xC1)  # FIFO on, trigger 14
    assert rig.uart.can_receive() == 14
    rig.uart.receive(b"x" * 10)
    assert rig.uart.can_receive() == 4
    rig.uart.receive(b"x" * 4)
    assert rig.uart.can_receive() == 0  # at the trigger level: wait for the guest
    rig.uart.receive(b"x")  # a backend that pushes anyway
    assert rig.uart.can_receive() == 1  # above it: one at a time
    rig.uart.receive(b"x")
    assert rig.uart.can_receive() == 0  # full


def test_fifo_overrun_keeps_contents(rig: Rig) -> None:
    rig.wr(FCR, 0x01)
    rig.uart.receive(bytes(range(17)))
    assert rig.rd(LSR) & LSR_OE
    assert [rig.rd(RBR) for _ in range(16)] == list(range(16))
    assert not rig.rd(LSR) & LSR_DR
    assert rig.rd(RBR) == 0  # empty FIFO reads 0


def test_character_timeout(rig: Rig) -> None:
    rig.wr(IER, IER_RDI)
    rig.wr(FCR, 0x81)  # trigger 8
    char = rig.uart.char_time_ns
    rig.uart.receive(b"ab")
    assert rig.irq.level is False
    rig.clock.advance(4 * char - 1)
    assert rig.irq.level is False
    rig.clock.advance(1)
    assert rig.irq.level is True and rig.rd(IIR) == 0xCC
    assert rig.rd(RBR) == ord("a")  # reading clears the timeout, and re-arms it
    assert rig.irq.level is False and rig.rd(IIR) == 0xC1
    rig.clock.advance(4 * char)
    assert rig.rd(IIR) == 0xCC
    assert rig.rd(RBR) == ord("b")
    rig.clock.advance(10 * char)  # empty: no more timeouts
    assert rig.irq.level is False and rig.clock.next_deadline() is None


def test_timeout_is_masked_by_rdi(rig: Rig) -> None:
    rig.wr(FCR, 0x81)
    rig.uart.receive(b"a")
    rig.clock.advance(4 * rig.uart.char_time_ns)
    assert rig.irq.level is False and rig.rd(IIR) == 0xC1
    rig.wr(IER, IER_RDI)
    assert rig.rd(IIR) == 0xCC


def test_fcr_resets_and_toggling_flushes(rig: Rig) -> None:
    rig.wr(FCR, 0x01)
    rig.uart.receive(b"abc")
    rig.wr(FCR, 0x03)  # receive FIFO reset
    assert not rig.rd(LSR) & LSR_DR and rig.rd(RBR) == 0
    rig.uart.receive(b"abc")
    rig.wr(FCR, 0x00)  # disabling the FIFOs flushes them
    assert not rig.rd(LSR) & LSR_DR and rig.rd(IIR) & 0xC0 == 0
    rig.wr(IER, IER_THRI)
    rig.rd(IIR)
    rig.wr(FCR, 0x05)  # transmit FIFO reset: THR empty, interrupt again
    assert rig.rd(IIR) == 0xC2


def test_priorities_rlsi_then_rdi_then_thri_then_msi(rig: Rig) -> None:
    rig.wr(IER, IER_RDI | IER_THRI | IER_RLSI | IER_MSI)
    rig.uart.set_modem_inputs(cts=False, dsr=True, dcd=True, ri=False)
    rig.uart.receive(b"a")
    rig.uart.receive(b"b")  # overrun
    assert rig.rd(IIR) == 0x06
    rig.rd(LSR)
    assert rig.rd(IIR) == 0x04
    rig.rd(RBR)
    assert rig.rd(IIR) == 0x02
    assert rig.rd(IIR) == 0x00  # THRI acknowledged by the previous read: modem status
    assert rig.rd(MSR) == 0xA1  # DSR, DCD, delta CTS
    assert rig.rd(IIR) == 0x01 and rig.irq.level is False


def test_modem_status_deltas_and_trailing_edge_ri(rig: Rig) -> None:
    rig.wr(IER, IER_MSI)
    rig.uart.set_modem_inputs(cts=True, dsr=True, dcd=True, ri=True)
    assert rig.irq.level is False  # RI rising is not a trailing edge
    rig.uart.set_modem_inputs(cts=True, dsr=True, dcd=True, ri=False)
    assert rig.irq.level is True and rig.rd(MSR) == 0xB4
    assert rig.rd(MSR) == 0xB0 and rig.irq.level is False


def test_loopback(rig: Rig) -> None:
    rig.wr(IER, IER_RDI)
    rig.wr(MCR, 0x10)
    rig.wr(THR, ord("z"))
    assert rig.output == b"" and rig.irq.level is True
    assert rig.rd(RBR) == ord("z") and rig.accepts == 0
    rig.wr(MCR, 0x1F)  # the modem outputs appear on the inputs
    assert rig.rd(MSR) == 0xF0
    rig.wr(MCR, 0x11)  # DTR -> DSR
    assert rig.rd(MSR) == 0x20
    rig.wr(MCR, 0x02)
    rig.wr(THR, ord("y"))
    assert rig.output == b"y"


def test_break(rig: Rig) -> None:
    rig.wr(IER, IER_RLSI)
    rig.uart.receive_break()
    assert rig.rd(IIR) == 0x06
    assert rig.rd(LSR) & (LSR_BI | LSR_DR) == LSR_BI | LSR_DR
    assert rig.rd(IIR) == 0x01


def test_scratch_and_read_only_registers(rig: Rig) -> None:
    rig.wr(SCR, 0x5A)
    rig.wr(LSR, 0x00)
    rig.wr(MSR, 0x00)
    assert (rig.rd(SCR), rig.rd(LSR), rig.rd(MSR)) == (0x5A, 0x60, 0xB0)


def test_access_rules(rig: Rig) -> None:
    rig.wr(SCR, 0x77)
    assert rig.uart.read(SCR, 8) == 0 and rig.log  # 8 bytes at 7 cross the end
    rig.log.clear()
    assert rig.uart.read(1, 2) == 0 and rig.log  # unaligned
    assert rig.uart.read(8, 1) == 0  # outside the 8 registers
    rig.uart.write(0, 4, 0x12345641)  # wide writes take the low byte
    assert rig.output == b"A"
    assert rig.uart.read(4, 4) == 0x08  # wide reads return the register
    rig.uart.write(6, 2, 0xFFFF)
    assert rig.rd(SCR) == 0x77


def test_reset_keeps_fcr_like_qemu(rig: Rig) -> None:
    rig.wr(FCR, 0xC1)
    rig.wr(IER, IER_THRI)
    rig.uart.reset()
    assert rig.irq.level is False and rig.rd(IIR) == 0x01 and rig.uart.fcr == 0xC1


def test_a_backed_up_backend_holds_thre_and_temt_until_its_watch_fires() -> None:
    """QEMU's serial_xmit retry: a byte the backend refuses stays in the shift register
    (TEMT clear); with the FIFO full too THRE stays clear, so a polling guest waits;
    the watch resends it and what follows, in order."""
    clock = VirtualClock.manual()
    sent = bytearray()
    accepting = [False]
    watches: list = []

    def write(data: bytes) -> int:
        if not accepting[0]:
            return 0
        sent.extend(data)
        return len(data)

    uart = Uart16550(clock, IrqRecorder(), write, write_watch=watches.append)
    uart.write(FCR, 1, FCR_FE)
    uart.write(THR, 1, ord("a"))
    assert len(watches) == 1 and not sent
    lsr = uart.read(LSR, 1)
    assert lsr & LSR_THRE and not lsr & LSR_TEMT  # 'a' waits in the shift register
    for char in b"bcdefghijklmnopq":  # 16 more fill the FIFO
        uart.write(THR, 1, char)
    assert not uart.read(LSR, 1) & (LSR_THRE | LSR_TEMT)
    assert len(watches) == 1  # one watch for the waiting byte
    accepting[0] = True
    watches.pop()()
    assert bytes(sent) == b"abcdefghijklmnopq"
    assert uart.read(LSR, 1) & (LSR_THRE | LSR_TEMT) == LSR_THRE | LSR_TEMT
