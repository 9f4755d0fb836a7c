"""The KVM vCPU loop: ``KVM_RUN``, typed exits, and what the machine does with each.

One round is ``KVM_RUN`` → :func:`launcher.accel.kvm.decode_exit` → :func:`handle_exit`
→ an :data:`Action` that :meth:`KvmCpu.run` carries out. ``handle_exit`` is the whole
policy (one ``match`` over the exit types) and touches nothing but the machine's
buses, so tests drive it with exits built by hand and real devices, without a VM.

Kicking (QEMU's ``qemu_cpu_kick``): :meth:`KvmCpu.stop` may come from any thread. It
sets a flag and ``kvm_run.immediate_exit`` (a KVM_RUN about to start returns at once)
and sends ``SIGUSR1`` to the vCPU thread (a KVM_RUN in progress returns EINTR). The
signal is blocked in that thread except inside KVM_RUN (``KVM_SET_SIGNAL_MASK``), so
it never reaches a Python handler — it stays pending until the loop consumes it with
``sigtimedwait`` — exactly QEMU's SIG_IPI scheme.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from launcher.accel import kvm
from launcher.accel.kvm import (
    Debug,
    FailEntry,
    Hlt,
    InternalError,
    Interrupted,
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Shutdown,
    SystemEvent,
    SystemEventType,
    Unhandled,
    VcpuExit,
)
from machines.cpu import CpuEvent, Idle, Stopped
from machines.cpu import DebugStop as CpuDebugStop

KICK_SIGNAL = signal.SIGUSR1  # QEMU's SIG_IPI


class IoBuses(Protocol):
    """Where guest port I/O and MMIO go (the machine's two buses)."""

    def pio_read(self, port: int, size: int) -> int: ...

    def pio_write(self, port: int, size: int, value: int) -> None: ...

    def mmio_read(self, addr: int, size: int) -> int: ...

    def mmio_write(self, addr: int, size: int, value: int) -> None: ...


# -- actions --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Resume:
    """Enter the guest again."""


@dataclass(frozen=True, slots=True)
class ReplyIo:
    """Put ``data`` (an IoIn's values) at ``offset`` in the kvm_run page, then resume."""

    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ReplyMmio:
    """Put ``data`` (an MmioRead's value) in kvm_run.mmio.data, then resume."""

    data: bytes


@dataclass(frozen=True, slots=True)
class GoIdle:
    """The vCPU halted (HLT without an in-kernel irqchip): the loop waits for events."""


@dataclass(frozen=True, slots=True)
class CheckStop:
    """KVM_RUN was interrupted (a kick): return to the loop if a stop was asked."""


@dataclass(frozen=True, slots=True)
class ResetMachine:
    """A guest-caused system reset (triple fault, KVM_SYSTEM_EVENT_RESET)."""


@dataclass(frozen=True, slots=True)
class PowerOff:
    status: int


@dataclass(frozen=True, slots=True)
class DebugStop:
    """A guest-debug exit (breakpoint, single step) at ``pc``."""

    pc: int


@dataclass(frozen=True, slots=True)
class Fatal:
    """The vCPU cannot continue; ``message`` is QEMU's report (one or more lines)."""

    message: str


Action = Resume | ReplyIo | ReplyMmio | GoIdle | CheckStop | ResetMachine | PowerOff \
    | DebugStop | Fatal

_RESUME, _IDLE, _CHECK, _RESET = Resume(), GoIdle(), CheckStop(), ResetMachine()


def handle_exit(exit_: VcpuExit, buses: IoBuses) -> Action:
    """What to do after ``exit_``: port and MMIO accesses go to ``buses`` (string I/O
    — ``rep ins``/``outs`` — is ``count`` accesses in order)."""
    match exit_:
        case IoOut(port=port, size=size, count=count, data=data):
            for i in range(count):
                value = int.from_bytes(data[i * size:(i + 1) * size], "little")
                buses.pio_write(port, size, value)
            return _RESUME
        case IoIn(port=port, size=size, count=count, data_offset=offset):
            values = b"".join(buses.pio_read(port, size).to_bytes(size, "little")
                              for _ in range(count))
            return ReplyIo(offset, values)
        case MmioWrite(addr=addr, size=size, value=value):
            buses.mmio_write(addr, size, value)
            return _RESUME
        case MmioRead(addr=addr, size=size):
            return ReplyMmio(buses.mmio_read(addr, size).to_bytes(size, "little"))
        case Hlt():
            return _IDLE
        case Interrupted():
            return _CHECK
        case Shutdown():
            return _RESET  # a triple fault: QEMU requests a system reset
        case SystemEvent(type=SystemEventType.SHUTDOWN):
            return PowerOff(0)
        case SystemEvent(type=SystemEventType.RESET):
            return _RESET
        case SystemEvent(type=SystemEventType.CRASH):
            return Fatal("KVM: guest crashed (KVM_SYSTEM_EVENT_CRASH)")
        case SystemEvent(type=event_type):
            return Fatal(f"KVM: unknown system event {event_type}")
        case InternalError(suberror=suberror, data=data):
            lines = [f"KVM internal error. Suberror: {suberror}"]
            lines += [f"extra data[{i}]: 0x{value:016x}" for i, value in enumerate(data)]
            return Fatal("\n".join(lines))
        case FailEntry(reason=reason, cpu=cpu):
            return Fatal(f"KVM: entry failed, hardware error 0x{reason:x} (cpu {cpu})")
        case Debug(pc=pc):
            return DebugStop(pc)
        case Unhandled(reason=reason, hardware=hardware):
            detail = f", hardware exit reason 0x{hardware:x}" if hardware else ""
            return Fatal(f"KVM: unhandled exit reason {reason}{detail}")
    raise AssertionError(f"unexpected exit {exit_!r}")


# -- the vCPU -------------------------------------------------------------------------------
class KvmCpuError(Exception):
    """The vCPU stopped for good (Fatal); the message is the report."""


class KvmCpu:
    """One x86-64 vCPU as a ``machines.cpu.SystemCpu``-style CPU for ``MachineLoop``:
    ``run()`` → Idle | Stopped | DebugStop (with guest debugging on: kvm_gdb.py),
    thread-safe ``stop()``, ``reset()``.

    Must be created, run and closed on one thread (the vCPU thread); ``stop`` may come
    from any thread.
    """

    def __init__(self, vcpu: kvm.KvmVcpu, buses: IoBuses, *,
                 on_reset: Callable[[], None], on_poweroff: Callable[[int], None],
                 cpuid_version: int = 0) -> None:
        self.vcpu = vcpu
        self._cpuid_version = cpuid_version  # CPUID.1:EAX, in EDX after a reset
        self.buses = buses
        self._on_reset = on_reset
        self._on_poweroff = on_poweroff
        self._stop_requested = False
        self._thread_id = threading.get_ident()
        # KVM's state right after KVM_CREATE_VCPU is the architectural reset state,
        # but for what QEMU's x86_cpu_reset sets: EDX = the CPU signature (the SDM's
        # reset value), MXCSR = 0x1F80 (the SDM's power-up value; KVM leaves it 0).
        self._reset_regs = vcpu.get_regs()
        self._reset_regs.rdx = cpuid_version
        self._reset_sregs = vcpu.get_sregs()
        self._reset_fpu = vcpu.get_fpu()
        self._reset_fpu.mxcsr = 0x1F80
        self.exits = 0
        self.debug_exit: Debug | None = None  # the last KVM_EXIT_DEBUG
        self._previous_handler = signal.signal(KICK_SIGNAL, _ignore_kick)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {KICK_SIGNAL})
        self._was_blocked = KICK_SIGNAL in blocked
        # Inside KVM_RUN the thread's mask without the kick signal.
        vcpu.set_signal_mask(set(blocked) - {KICK_SIGNAL})

    def reset(self) -> None:
        """Architectural reset: CS:IP = F000:FFF0 with CS.base = 0xFFFF0000, real mode."""
        self.vcpu.set_sregs(self._reset_sregs)
        self.vcpu.set_regs(self._reset_regs)
        self.vcpu.set_fpu(self._reset_fpu)

    def stop(self) -> None:
        self._stop_requested = True
        self.vcpu.set_immediate_exit(True)
        if threading.get_ident() != self._thread_id:
            signal.pthread_kill(self._thread_id, KICK_SIGNAL)

    def run(self) -> CpuEvent:
        """Run the guest until a stop request or an idle HLT."""
        vcpu = self.vcpu
        while True:
            if self._stop_requested:
                self._stop_requested = False
                vcpu.set_immediate_exit(False)
                return Stopped()
            exit_ = vcpu.run()
            self.exits += 1
            match handle_exit(exit_, self.buses):
                case Resume():
                    pass
                case ReplyIo(offset=offset, data=data):
                    vcpu.write_io_data(offset, data)
                case ReplyMmio(data=data):
                    vcpu.write_mmio_data(data)
                case GoIdle():
                    return Idle()
                case CheckStop():
                    # Consume the kick signal (pending, blocked outside KVM_RUN).
                    signal.sigtimedwait({KICK_SIGNAL}, 0)
                case ResetMachine():
                    self._on_reset()
                case PowerOff(status=status):
                    self._on_poweroff(status)
                case DebugStop():
                    # A debugger's breakpoint, watchpoint or step (kvm_gdb.py reads
                    # which from the exit).
                    self.debug_exit = exit_
                    return CpuDebugStop()
                case Fatal(message=message):
                    raise KvmCpuError(message)

    def close(self) -> None:
        signal.sigtimedwait({KICK_SIGNAL}, 0)
        if not self._was_blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {KICK_SIGNAL})
        signal.signal(KICK_SIGNAL, self._previous_handler)


def _ignore_kick(signum: int, frame: object) -> None:
    """Never runs (the kick signal is blocked outside KVM_RUN); installed so that the
    signal is not SIG_DFL, whose action would kill the process inside KVM_RUN."""
