"""The ns16550a UART as QEMU 7.2 emulates it (hw/char/serial.c, serial-mm with
regshift 0: eight byte registers, as on the virt machine).

Registers (DLAB = LCR bit 7 swaps offsets 0 and 1 for the divisor latch):

    0  RBR (read) / THR (write) / DLL      4  MCR
    1  IER / DLM                           5  LSR (writes ignored)
    2  IIR (read) / FCR (write)            6  MSR (writes ignored)
    3  LCR                                 7  SCR

Transmission is immediate: a THR write hands the byte to ``write`` at once, so THRE
and TEMT are set again before the guest's next access (QEMU does the same when its
chardev accepts the byte). When ``write`` returns 0 (the backend is backed up) the byte
stays in the transmit shift register and ``write_watch`` is asked to call back when
the backend takes bytes again: until then TEMT stays clear and, once THR/the FIFO is
full too, THRE — the guest's flow control, as QEMU's serial_xmit retries (at most
``MAX_XMIT_RETRY`` times per byte, then the byte is dropped).

Input comes from ``receive``; ``can_receive()`` says how many bytes the device takes
now (QEMU's rule, which honours the FIFO trigger level), and ``accept_input`` is called
when the guest reads RBR, so a backend knows when to offer more. The character timeout
interrupt fires 4 character times after the last received byte or RBR read, as QEMU
approximates it; the character time follows the divisor and LCR, with QEMU's odd virt
baud base (399193 Hz).
"""

from __future__ import annotations

from collections import deque
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

VIRT_BAUDBASE = 399193  # what QEMU's virt passes to serial_mm_init (not the DT's clock)
FDT_CLOCK_FREQUENCY = 3686400  # what QEMU's virt writes to the device tree
FIFO_LENGTH = 16
MAX_XMIT_RETRY = 64  # QEMU's retries of one byte before dropping it

# Register offsets
RBR = THR = DLL = 0
IER = DLM = 1
IIR = FCR = 2
LCR, MCR, LSR, MSR, SCR = 3, 4, 5, 6, 7

IER_RDI, IER_THRI, IER_RLSI, IER_MSI = 0x01, 0x02, 0x04, 0x08

IIR_NO_INT = 0x01
IIR_ID = 0x06
IIR_MSI, IIR_THRI, IIR_RDI, IIR_RLSI, IIR_CTI = 0x00, 0x02, 0x04, 0x06, 0x0C
IIR_FIFO_ENABLED = 0xC0

FCR_FE, FCR_RFR, FCR_XFR = 0x01, 0x02, 0x04
FCR_STICKY = 0xC9  # the bits of FCR that QEMU keeps: trigger level, DMA mode, enable
TRIGGER_LEVELS = {0x00: 1, 0x40: 4, 0x80: 8, 0xC0: 14}

LCR_DLAB = 0x80

MCR_DTR, MCR_RTS, MCR_OUT1, MCR_OUT2, MCR_LOOP = 0x01, 0x02, 0x04, 0x08, 0x10

LSR_DR, LSR_OE, LSR_PE, LSR_FE, LSR_BI = 0x01, 0x02, 0x04, 0x08, 0x10
LSR_THRE, LSR_TEMT = 0x20, 0x40
LSR_INT_ANY = LSR_OE | LSR_PE | LSR_FE | LSR_BI

MSR_DCTS, MSR_DDSR, MSR_TERI, MSR_DDCD = 0x01, 0x02, 0x04, 0x08
MSR_CTS, MSR_DSR, MSR_RI, MSR_DCD = 0x10, 0x20, 0x40, 0x80
MSR_ANY_DELTA = 0x0F

_RULES = AccessRules(min_size=1, max_size=8)
_NS_PER_S = 1_000_000_000


# What savevm keeps of the UART (besides the FIFOs and the timeout's deadline).
_STATE_FIELDS = ("rbr", "thr", "ier", "iir", "lcr", "lsr", "msr", "divider", "mcr", "scr",
                 "fcr", "_rx_trigger", "char_time_ns", "_timeout_pending", "_thr_pending",
                 "_tsr", "_tsr_retry")


class Uart16550:
    name = "serial"
    size = 8
    state_version = 1

    def __init__(self, clock: Clock, irq: IrqLine, write: Callable[[bytes], object], *,
                 baudbase: int = VIRT_BAUDBASE,
                 accept_input: Callable[[], None] | None = None,
                 write_watch: Callable[[Callable[[], None]], None] | None = None,
                 log: GuestErrorLog | None = None) -> None:
        self._clock = clock
        self._irq = irq
        self._write = write
        self._write_watch = write_watch
        self._accept_input = accept_input
        self._log = log
        self.baudbase = baudbase
        self._rx: deque[int] = deque()
        self._tx: deque[int] = deque()
        self._timeout_timer: TimerHandle | None = None
        self._timeout_deadline = 0  # when the armed timeout fires
        # Not touched by reset, as in QEMU: FCR survives a system reset.
        self.fcr = 0
        self._rx_trigger = 0
        self.reset()

    def reset(self) -> None:
        self.rbr = 0
        self.thr = 0
        self.ier = 0
        self.iir = IIR_NO_INT
        self.lcr = 0
        self.lsr = LSR_TEMT | LSR_THRE
        self.msr = MSR_DCD | MSR_DSR | MSR_CTS
        self.divider = 0x0C
        self.mcr = MCR_OUT2
        self.scr = 0
        self.char_time_ns = (_NS_PER_S // 9600) * 10
        self._timeout_pending = False
        self._cancel_timeout()
        self._rx.clear()
        self._tx.clear()
        self._thr_pending = False
        self._tsr = 0
        self._tsr_retry = 0
        self._irq(False)

    # --- savevm ---------------------------------------------------------------------

    def save_state(self) -> dict[str, StateValue]:
        state = save_fields(self, _STATE_FIELDS)
        state["rx"] = bytes(self._rx)
        state["tx"] = bytes(self._tx)
        state["timeout_deadline"] = (self._timeout_deadline if self._timeout_timer is not None
                                     else None)
        return state

    def load_state(self, saved: dict[str, StateValue]) -> None:
        """Registers and FIFOs as saved; the character timeout re-armed on the restored
        clock; a byte that was waiting for the backend is offered to it again."""
        rx, tx = saved.get("rx"), saved.get("tx")
        deadline = saved.get("timeout_deadline", "missing")
        if (not isinstance(rx, bytes) or not isinstance(tx, bytes) or len(rx) > FIFO_LENGTH
                or len(tx) > FIFO_LENGTH or not isinstance(deadline, int | None)):
            raise StateError("serial: saved FIFOs or timeout do not fit a 16550")
        load_fields(self, _STATE_FIELDS, saved)
        self._rx = deque(rx)
        self._tx = deque(tx)
        self._cancel_timeout()
        if deadline is not None:
            self._timeout_deadline = deadline
            self._timeout_timer = self._clock.set_timer(deadline, self._on_timeout)
        self._update_irq()
        if self._tsr_retry:
            self._transmit()

    # --- the register interface ---------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if not _RULES.allows(offset, size, self.size):
            self._bad("read", offset, size)
            return 0
        if offset == RBR:
            return self.divider & 0xFF if self.lcr & LCR_DLAB else self._read_rbr()
        if offset == IER:
            return self.divider >> 8 if self.lcr & LCR_DLAB else self.ier
        if offset == IIR:
            value = self.iir
            if value & IIR_ID == IIR_THRI:  # reading IIR acknowledges THR empty
                self._thr_pending = False
                self._update_irq()
            return value
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            value = self.lsr
            if self.lsr & (LSR_BI | LSR_OE):
                self.lsr &= ~(LSR_BI | LSR_OE)
                self._update_irq()
            return value
        if offset == MSR:
            return self._read_msr()
        return self.scr

    def write(self, offset: int, size: int, value: int) -> None:
        if not _RULES.allows(offset, size, self.size):
            self._bad("write", offset, size)
            return
        value &= 0xFF
        if offset == THR:
            if self.lcr & LCR_DLAB:
                self._set_divider((self.divider & 0xFF00) | value)
            else:
                self._write_thr(value)
        elif offset == IER:
            if self.lcr & LCR_DLAB:
                self._set_divider((self.divider & 0x00FF) | value << 8)
            else:
                self._write_ier(value)
        elif offset == FCR:
            self._write_fcr(value)
        elif offset == LCR:
            self.lcr = value
            self._update_parameters()
        elif offset == MCR:
            self.mcr = value & 0x1F
        elif offset == SCR:
            self.scr = value
        # LSR and MSR are read-only.

    # --- the backend side ---------------------------------------------------------

    def can_receive(self) -> int:
        """How many bytes ``receive`` takes now without an overrun (QEMU's
        serial_can_receive: up to the trigger level, then one at a time)."""
        if self.fcr & FCR_FE:
            count = len(self._rx)
            if count >= FIFO_LENGTH:
                return 0
            return self._rx_trigger - count if count <= self._rx_trigger else 1
        return 0 if self.lsr & LSR_DR else 1

    def receive(self, data: bytes) -> None:
        """Bytes arriving on the line. More than ``can_receive()`` overruns, as on the
        chip: the FIFO drops them, the holding register is overwritten; LSR.OE is set."""
        if not data:
            return
        if self.fcr & FCR_FE:
            for byte in data:
                self._rx_put(byte)
            self.lsr |= LSR_DR
            self._arm_timeout()
        else:
            for byte in data:
                if self.lsr & LSR_DR:
                    self.lsr |= LSR_OE
                self.rbr = byte
                self.lsr |= LSR_DR
        self._update_irq()

    def receive_break(self) -> None:
        """A break condition on the line (QEMU's CHR_EVENT_BREAK)."""
        self.rbr = 0
        self._rx_put(0)
        self.lsr |= LSR_BI | LSR_DR
        self._update_irq()

    def set_modem_inputs(self, *, cts: bool, dsr: bool, dcd: bool, ri: bool) -> None:
        """New levels of the modem input lines (a backend that is a real serial port).
        Changes set the MSR delta bits; TERI only on RI going from on to off."""
        old = self.msr
        lines = (MSR_CTS * cts) | (MSR_DSR * dsr) | (MSR_DCD * dcd) | (MSR_RI * ri)
        self.msr = (self.msr & MSR_ANY_DELTA) | lines
        if self.msr != old:
            self.msr |= (self.msr >> 4) ^ (old >> 4)
            if self.msr & MSR_TERI and not old & MSR_RI:
                self.msr &= ~MSR_TERI
            self._update_irq()

    # --- internals ------------------------------------------------------------------

    def _update_irq(self) -> None:
        fifo = bool(self.fcr & FCR_FE)
        if self.ier & IER_RLSI and self.lsr & LSR_INT_ANY:
            cause = IIR_RLSI
        elif self.ier & IER_RDI and self._timeout_pending:
            cause = IIR_CTI  # masked by IER.RDI: not in the datasheet, seen on chips
        elif (self.ier & IER_RDI and self.lsr & LSR_DR
              and (not fifo or len(self._rx) >= self._rx_trigger)):
            cause = IIR_RDI
        elif self.ier & IER_THRI and self._thr_pending:
            cause = IIR_THRI
        elif self.ier & IER_MSI and self.msr & MSR_ANY_DELTA:
            cause = IIR_MSI
        else:
            cause = IIR_NO_INT
        self.iir = cause | (self.iir & 0xF0)
        self._irq(cause != IIR_NO_INT)

    def _read_rbr(self) -> int:
        if self.fcr & FCR_FE:
            value = self._rx.popleft() if self._rx else 0
            if not self._rx:
                self.lsr &= ~(LSR_DR | LSR_BI)
            else:
                self._arm_timeout()
            self._timeout_pending = False
        else:
            value = self.rbr
            self.lsr &= ~(LSR_DR | LSR_BI)
        self._update_irq()
        if not self.mcr & MCR_LOOP and self._accept_input is not None:
            self._accept_input()
        return value

    def _read_msr(self) -> int:
        if self.mcr & MCR_LOOP:  # the modem outputs are wired to the inputs
            return ((self.mcr & (MCR_OUT1 | MCR_OUT2)) << 4 | (self.mcr & MCR_RTS) << 3
                    | (self.mcr & MCR_DTR) << 5)
        value = self.msr
        if self.msr & MSR_ANY_DELTA:
            self.msr &= 0xF0
            self._update_irq()
        return value

    def _write_thr(self, value: int) -> None:
        self.thr = value
        if self.fcr & FCR_FE:
            if len(self._tx) >= FIFO_LENGTH:  # transmit overruns overwrite the oldest
                self._tx.popleft()
            self._tx.append(value)
        self._thr_pending = False
        self.lsr &= ~(LSR_THRE | LSR_TEMT)
        self._update_irq()
        if self._tsr_retry == 0:  # else the byte in the shift register is still waiting
            self._transmit()

    def _transmit(self) -> None:
        """QEMU's serial_xmit: move bytes to the shift register and out."""
        while True:
            if self._tsr_retry == 0:
                if self.fcr & FCR_FE:
                    if not self._tx:
                        self.lsr |= LSR_THRE
                        break
                    self._tsr = self._tx.popleft()
                    if not self._tx:
                        self.lsr |= LSR_THRE
                else:
                    self._tsr = self.thr
                    self.lsr |= LSR_THRE
                if self.lsr & LSR_THRE and not self._thr_pending:
                    self._thr_pending = True
                    self._update_irq()
            if self.mcr & MCR_LOOP:
                self.receive(bytes((self._tsr,)))
            elif (self._write(bytes((self._tsr,))) == 0 and self._write_watch is not None
                  and self._tsr_retry < MAX_XMIT_RETRY):
                self._tsr_retry += 1
                self._write_watch(self._retry_transmit)
                return
            self._tsr_retry = 0
            if self.lsr & LSR_THRE:
                break
        self.lsr |= LSR_TEMT

    def _retry_transmit(self) -> None:
        """The backend takes bytes again: send the waiting byte and what follows."""
        if self._tsr_retry:
            self._transmit()

    def _write_ier(self, value: int) -> None:
        changed = (self.ier ^ value) & 0x0F
        self.ier = value & 0x0F
        # Enabling THRI while THR is empty raises the interrupt again even if an IIR
        # read had acknowledged it (QEMU, after Bochs: Windows relies on it).
        if changed & IER_THRI:
            self._thr_pending = bool(self.ier & IER_THRI and self.lsr & LSR_THRE)
        if changed:
            self._update_irq()

    def _write_fcr(self, value: int) -> None:
        if (value ^ self.fcr) & FCR_FE:  # toggling the FIFOs flushes both
            value |= FCR_XFR | FCR_RFR
        if value & FCR_RFR:
            self.lsr &= ~(LSR_DR | LSR_BI)
            self._cancel_timeout()
            self._timeout_pending = False
            self._rx.clear()
        if value & FCR_XFR:
            self.lsr |= LSR_THRE
            self._thr_pending = True
            self._tx.clear()
        self.fcr = value & FCR_STICKY
        if self.fcr & FCR_FE:
            self.iir |= IIR_FIFO_ENABLED
            self._rx_trigger = TRIGGER_LEVELS[self.fcr & 0xC0]
        else:
            self.iir &= ~IIR_FIFO_ENABLED
        self._update_irq()

    def _set_divider(self, divider: int) -> None:
        self.divider = divider
        self._update_parameters()

    def _update_parameters(self) -> None:
        frame_bits = 1 + (self.lcr & 0x03) + 5 + (2 if self.lcr & 0x04 else 1)
        if self.lcr & 0x08:
            frame_bits += 1  # parity
        speed = 3500.0 if self.divider == 0 else self.baudbase / self.divider
        self.char_time_ns = int(_NS_PER_S / speed * frame_bits)

    def _rx_put(self, byte: int) -> None:
        if len(self._rx) < FIFO_LENGTH:
            self._rx.append(byte)
        else:  # receive overruns keep the FIFO contents
            self.lsr |= LSR_OE

    def _arm_timeout(self) -> None:
        self._cancel_timeout()
        deadline = self._timeout_deadline = self._clock.now_ns() + 4 * self.char_time_ns
        self._timeout_timer = self._clock.set_timer(deadline, self._on_timeout)

    def _cancel_timeout(self) -> None:
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
            self._timeout_timer = None

    def _on_timeout(self) -> None:
        self._timeout_timer = None
        if self._rx:
            self._timeout_pending = True
            self._update_irq()

    def _bad(self, kind: str, offset: int, size: int) -> None:
        if self._log is not None:
            self._log(f"{self.name}: invalid {kind} of {size} bytes at {offset:#x}")


def add_fdt_node(tree: DeviceTree, base: int, irq: int, plic_phandle: int, *,
                 reg_size: int = 0x100, parent: str = "/soc") -> str:
    """QEMU virt's ``serial@…`` node; returns its path (for /chosen stdout-path)."""
    node = tree.node(f"{parent}/{node_name('serial', base)}")
    node.prop_str("compatible", "ns16550a")
    reg(node, base, reg_size)
    node.prop_u32("clock-frequency", FDT_CLOCK_FREQUENCY)
    node.prop_u32("interrupt-parent", plic_phandle)
    node.prop_u32("interrupts", irq)
    return node.path
