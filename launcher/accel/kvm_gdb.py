"""The gdbstub with KVM (``llvmtcg-system-x86_64 -accel kvm -s -S``).

The protocol is ``llvmtcg.gdbstub``'s; this module gives it a CPU to debug that is a
KVM vCPU instead of a translating one:

- registers through KVM_GET/SET_REGS, KVM_GET_SREGS and KVM_GET_FPU, described to gdb
  as QEMU describes an x86-64 CPU (``i386:x86-64``: gdb's ``org.gnu.gdb.i386.core`` and
  ``.sse`` features, then QEMU's segment bases and control registers);
- memory through the RAM mapping, at linear addresses translated through the guest's
  page tables (launcher/accel/kvm_monitor.py's walk, the monitor's);
- breakpoints and watchpoints in the debug registers DR0-DR3, single steps with the
  trap flag, all through KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_USE_HW_BP, _SINGLESTEP):
  the guest's own debug registers and memory are left alone. x86 has four debug
  registers: a fifth breakpoint or watchpoint is refused (gdb then says it cannot
  insert it).

:class:`KvmDebugger` stands between the main loop and the vCPU as ``machines/gdb.py``'s
GdbHart stands before the harts: a debugger that connects stops the machine, a
breakpoint or a step stops it in QEMU's ``debug`` run state, ``D`` lets it run on.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from launcher.accel.kvm import Debug, KvmFpu, KvmRegs, KvmSregs
from launcher.accel.kvm_cpu import KvmCpu
from launcher.accel.kvm_monitor import KvmX86Cpus
from launcher.monitor.vm import MonitorError
from llvmtcg.arch.contract import DebugFeature, DebugRegister
from llvmtcg.gdbstub import ResumeKind, Stopped
from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault
from machines.cpu import CpuEvent, DebugStop, Idle
from machines.cpu import Stopped as CpuStopped
from machines.gdb import GdbServer
from machines.loop import RunState

if TYPE_CHECKING:
    pass

# KVM_SET_GUEST_DEBUG control bits (<linux/kvm.h>, x86)
GUESTDBG_ENABLE = 0x1
GUESTDBG_SINGLESTEP = 0x2
GUESTDBG_USE_HW_BP = 0x20000
DEBUG_REGISTERS = 4  # DR0-DR3
_DR6_BS = 1 << 14  # single step
_DR7_FIXED = 0x400  # bit 10 reads as one
_LEN_BITS = {1: 0b00, 2: 0b01, 4: 0b11, 8: 0b10}  # DR7 LENn encodings
_RW_EXECUTE, _RW_WRITE, _RW_ACCESS = 0b00, 0b01, 0b11
THREAD_ID = 1  # gdb's thread for CPU #0

# -- the target description (gdb's 64bit-core.xml and 64bit-sse.xml, QEMU's additions) ----
_EFLAGS_TYPE = ('<flags id="i386_eflags" size="4">' + "".join(
    f'<field name="{name}" start="{bit}" end="{bit}"/>' for name, bit in (
        ("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8),
        ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17),
        ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21))) + "</flags>")
_SSE_TYPES = (
    '<vector id="v4f" type="ieee_single" count="4"/>'
    '<vector id="v2d" type="ieee_double" count="2"/>'
    '<vector id="v16i8" type="int8" count="16"/>'
    '<vector id="v8i16" type="int16" count="8"/>'
    '<vector id="v4i32" type="int32" count="4"/>'
    '<vector id="v2i64" type="int64" count="2"/>'
    '<union id="vec128"><field name="v4_float" type="v4f"/>'
    '<field name="v2_double" type="v2d"/><field name="v16_int8" type="v16i8"/>'
    '<field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/>'
    '<field name="v2_int64" type="v2i64"/><field name="uint128" type="uint128"/></union>'
    '<flags id="i386_mxcsr" size="4">' + "".join(
        f'<field name="{name}" start="{bit}" end="{bit}"/>' for name, bit in (
            ("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6),
            ("IM", 7), ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12),
            ("FZ", 15))) + "</flags>")
_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
         *(f"r{i}" for i in range(8, 16)))
_SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
_X87 = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")


def _core() -> tuple[DebugRegister, ...]:
    regs = [DebugRegister(i, name, 64, "data_ptr" if name in ("rbp", "rsp") else "int64")
            for i, name in enumerate(_GPRS)]
    regs.append(DebugRegister(16, "rip", 64, "code_ptr"))
    regs.append(DebugRegister(17, "eflags", 32, "i386_eflags"))
    regs += [DebugRegister(18 + i, name, 32, "int32") for i, name in enumerate(_SEGMENTS)]
    regs += [DebugRegister(24 + i, f"st{i}", 80, "i387_ext") for i in range(8)]
    regs += [DebugRegister(32 + i, name, 32, "int", "float") for i, name in enumerate(_X87)]
    return tuple(regs)


FEATURES = (
    DebugFeature("org.gnu.gdb.i386.core", _core(), _EFLAGS_TYPE),
    DebugFeature("org.gnu.gdb.i386.sse", tuple(
        [DebugRegister(40 + i, f"xmm{i}", 128, "vec128") for i in range(16)]
        + [DebugRegister(56, "mxcsr", 32, "i386_mxcsr", "vector")]), _SSE_TYPES),
    DebugFeature("org.gnu.gdb.i386.segments", (
        DebugRegister(57, "fs_base", 64, "int64"), DebugRegister(58, "gs_base", 64, "int64"),
        DebugRegister(59, "k_gs_base", 64, "int64"))),
    DebugFeature("org.gnu.gdb.i386.sys", tuple(
        DebugRegister(60 + i, name, 64, "int64")
        for i, name in enumerate(("cr0", "cr2", "cr3", "cr4", "cr8", "efer")))),
)


class KvmDebugState:
    """The vCPU's registers, read once per stop (KVM_GET_*), written through."""

    def __init__(self, cpu: KvmCpu) -> None:
        self._vcpu = cpu.vcpu
        self.invalidate()

    def invalidate(self) -> None:
        """The vCPU ran: read its registers again when asked."""
        self._regs: KvmRegs | None = None
        self._sregs: KvmSregs | None = None
        self._fpu: KvmFpu | None = None

    @property
    def regs(self) -> KvmRegs:
        if self._regs is None:
            self._regs = self._vcpu.get_regs()
        return self._regs

    @property
    def sregs(self) -> KvmSregs:
        if self._sregs is None:
            self._sregs = self._vcpu.get_sregs()
        return self._sregs

    @property
    def fpu(self) -> KvmFpu:
        if self._fpu is None:
            self._fpu = self._vcpu.get_fpu()
        return self._fpu

    def write_regs(self) -> None:
        self._vcpu.set_regs(self.regs)

    @property
    def pc(self) -> int:
        return self.regs.rip

    @pc.setter
    def pc(self, value: int) -> None:
        self.regs.rip = value
        self.write_regs()


class KvmDebugArch:
    """The register contract the protocol engine reads (llvmtcg.arch's ``debug_*``)."""

    name = "x86_64"
    gdb_architecture = "i386:x86-64"
    gdb_stop_before_watchpoint = False  # x86 data breakpoints trap after the access

    def debug_features(self) -> tuple[DebugFeature, ...]:
        return FEATURES

    def debug_reg_read(self, state: KvmDebugState, number: int) -> int | None:
        if number < 16:
            return getattr(state.regs, _GPRS[number])
        if number == 16:
            return state.regs.rip
        if number == 17:
            return state.regs.rflags
        if number < 24:
            return getattr(state.sregs, _SEGMENTS[number - 18]).selector
        if number < 32:  # the 80-bit x87 registers, as FXSAVE stores them
            return int.from_bytes(bytes(state.fpu.fpr[number - 24])[:10], "little")
        if number < 40:
            fpu = state.fpu
            return (fpu.fcw, fpu.fsw, _full_tag_word(fpu), 0, fpu.last_ip & 0xFFFFFFFF, 0,
                    fpu.last_dp & 0xFFFFFFFF, fpu.last_opcode)[number - 32]
        if number < 56:
            return int.from_bytes(bytes(state.fpu.xmm[number - 40]), "little")
        if number == 56:
            return state.fpu.mxcsr
        sregs = state.sregs
        match number:
            case 57:
                return sregs.fs.base
            case 58:
                return sregs.gs.base
            case 59:
                return None  # (KVM_GET_MSRS: not read)
            case 60 | 61 | 62 | 63 | 64 | 65:
                return getattr(sregs, ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")[number - 60])
        return None

    def debug_reg_write(self, state: KvmDebugState, number: int, value: int) -> bool:
        """The general registers, rip and rflags (KVM_SET_REGS); the others are read
        only here."""
        if number < 16:
            setattr(state.regs, _GPRS[number], value)
        elif number == 16:
            state.regs.rip = value
        elif number == 17:
            state.regs.rflags = value | 2  # (bit 1 is always one)
        else:
            return False
        state.write_regs()
        return True


def _full_tag_word(fpu: KvmFpu) -> int:
    """The x87 tag word from FXSAVE's abridged one: empty (3) or valid (0) per
    register (what gdb shows as ftag)."""
    return sum(0 if fpu.ftwx >> i & 1 else 3 << 2 * i for i in range(8))


class KvmDebugCpu:
    """The vCPU as the protocol engine's CPU (``target.cpu``)."""

    system_mode = True

    def __init__(self, cpu: KvmCpu, read: Callable[[int, int], bytes],
                 write: Callable[[int, bytes], None]) -> None:
        self.kvm_cpu = cpu
        self.arch = KvmDebugArch()
        self.state = KvmDebugState(cpu)
        self._view = KvmX86Cpus(cpu)
        self._read, self._write = read, write
        self.breakpoints: frozenset[int] = frozenset()
        self.watchpoints: tuple[tuple[int, int, Access | None], ...] = ()
        self.stepping = False

    def tlb_flush(self) -> None:
        """(Registers changed: nothing is cached but them.)"""

    def _physical(self, addr: int) -> int:
        try:
            return self._view.translate(addr, 0, self._read)
        except MonitorError:
            raise GuestFault(MemFault(addr, Access.READ, FaultKind.PAGE_FAULT)) from None

    def debug_read(self, addr: int, length: int) -> bytes:
        out = bytearray()
        while length > 0:
            chunk = min(length, 4096 - (addr & 0xFFF))
            try:
                out += self._read(self._physical(addr), chunk)
            except GuestFault:
                raise
            except Exception:  # noqa: BLE001 - outside RAM (MMIO, nothing)
                raise GuestFault(MemFault(addr, Access.READ, FaultKind.UNMAPPED)) from None
            addr, length = addr + chunk, length - chunk
        return bytes(out)

    def debug_write(self, addr: int, data: bytes) -> None:
        while data:
            chunk = min(len(data), 4096 - (addr & 0xFFF))
            try:
                self._write(self._physical(addr), data[:chunk])
            except GuestFault:
                raise
            except Exception:  # noqa: BLE001 - outside RAM
                raise GuestFault(MemFault(addr, Access.WRITE, FaultKind.UNMAPPED)) from None
            addr, data = addr + chunk, data[chunk:]

    def set_breakpoints(self, pcs: frozenset[int]) -> None:
        """ValueError when they and the watchpoints need more than four registers."""
        saved, self.breakpoints = self.breakpoints, frozenset(pcs)
        if len(self.slots()) > DEBUG_REGISTERS:
            self.breakpoints = saved
            raise ValueError("no free debug register")

    def set_watchpoints(self, watchpoints: tuple[tuple[int, int, Access | None], ...]
                        ) -> None:
        saved, self.watchpoints = self.watchpoints, tuple(watchpoints)
        if len(self.slots()) > DEBUG_REGISTERS:
            self.watchpoints = saved
            raise ValueError("no free debug register")

    def slots(self) -> list[tuple[int, int, int]]:
        """(address, RW, LEN) per debug register in use: breakpoints, then watchpoints
        (each split into aligned 1/2/4/8-byte pieces, as x86 requires)."""
        slots = [(pc, _RW_EXECUTE, 1) for pc in sorted(self.breakpoints)]
        for start, end, access in self.watchpoints:
            rw = _RW_WRITE if access is Access.WRITE else _RW_ACCESS  # (no read-only)
            addr = start
            while addr < end:
                size = 8
                while addr % size or addr + size > end and size > 1:
                    size //= 2
                slots.append((addr, rw, size))
                addr += size
        return slots

    def apply(self, *, step: bool, breakpoints: bool = True) -> None:
        """KVM_SET_GUEST_DEBUG for the next run: the debug registers (DR7 enables
        each slot: Ln, RWn, LENn), and the trap flag for a step."""
        slots = self.slots() if breakpoints else [
            s for s in self.slots() if s[1] != _RW_EXECUTE]
        control = 0
        registers = [0] * 8
        dr7 = _DR7_FIXED
        for index, (addr, rw, size) in enumerate(slots[:DEBUG_REGISTERS]):
            registers[index] = addr
            dr7 |= 1 << 2 * index | rw << 16 + 4 * index | _LEN_BITS[size] << 18 + 4 * index
        if slots:
            control |= GUESTDBG_ENABLE | GUESTDBG_USE_HW_BP
        if step:
            control |= GUESTDBG_ENABLE | GUESTDBG_SINGLESTEP
        registers[7] = dr7
        self.kvm_cpu.vcpu.set_guest_debug(control, registers if slots else ())
        self.stepping = step

    def hit(self, exit_: Debug | None) -> MemFault | None:
        """The watchpoint a debug exit reports (DR6's Bn bits), or None."""
        if exit_ is None:
            return None
        slots = self.slots()
        for index, (addr, rw, _) in enumerate(slots[:DEBUG_REGISTERS]):
            if exit_.dr6 >> index & 1 and rw != _RW_EXECUTE:
                for start, end, access in self.watchpoints:
                    if start <= addr < end:
                        return MemFault(start, access or Access.WRITE, FaultKind.WATCHPOINT)
        return None


class KvmDebugger(GdbServer):
    """The vCPU under a gdbstub: the main loop's CPU and the engine's DebugTarget.

    Args:
        cpu: the machine's vCPU.
        read, write: guest-physical memory (the RAM mapping).
        listener: the listening socket (``-gdb``), or None (``gdbserver`` may start one).
    """

    def __init__(self, cpu: KvmCpu, read: Callable[[int, int], bytes],
                 write: Callable[[int, bytes], None],
                 listener: socket.socket | None = None) -> None:
        super().__init__(listener)
        self.inner = cpu
        self.debug_cpu = KvmDebugCpu(cpu, read, write)
        self._armed = False  # KVM_SET_GUEST_DEBUG has something on

    # -- the loop's CPU -----------------------------------------------------------------
    def reset(self) -> None:
        self.inner.reset()
        self.debug_cpu.state.invalidate()

    def stop(self) -> None:
        self.inner.stop()

    def run(self) -> CpuEvent:
        if self.paused:
            return Idle()
        debug = self.debug_cpu
        if self.stub is None and not self._resuming:
            if self._armed:  # (the debugger went: the guest runs undisturbed)
                self.inner.vcpu.set_guest_debug(0)
                self._armed = False
            return self.inner.run()
        action, resuming = self.action, self._resuming
        self._resuming = False
        stepping = action is not None and action.kind is ResumeKind.STEP
        if resuming:
            # The first instruction of a continue from a breakpoint is stepped with the
            # breakpoints off (a fault breakpoint would stop there again).
            linear_pc = debug.state.sregs.cs.base + debug.state.regs.rip
            over = not stepping and linear_pc in debug.breakpoints
            debug.state.invalidate()
            if stepping or over:
                debug.apply(step=True, breakpoints=not over)
                self._armed = True
                event = self.inner.run()
                debug.state.invalidate()
                if not isinstance(event, DebugStop):
                    return event  # (a kick: the step is still to come)
                if stepping or debug.hit(self.inner.debug_exit) is not None:
                    return self._stopped(signal.SIGTRAP, debug.hit(self.inner.debug_exit))
            debug.apply(step=False)
            self._armed = True
        elif stepping:
            debug.apply(step=True)
        event = self.inner.run()
        debug.state.invalidate()
        if isinstance(event, DebugStop):
            return self._stopped(signal.SIGTRAP, debug.hit(self.inner.debug_exit))
        return event

    def _stopped(self, sig: int, watch: MemFault | None = None) -> CpuEvent:
        self.paused = True
        self.action = None
        self._resuming = False
        if self.loop is not None:
            self.loop.pause(RunState.PAUSED if sig == signal.SIGINT else RunState.DEBUG)
        if self.stub is not None:
            self.stub.report(Stopped(sig, THREAD_ID, watch))
        return CpuStopped()

    # -- DebugTarget ----------------------------------------------------------------------
    @property
    def cpu(self) -> KvmDebugCpu:  # (what the engine uses of llvmtcg's Cpu)
        return self.debug_cpu

    def cpus(self) -> list[KvmDebugCpu]:
        return [self.debug_cpu]

    def thread_ids(self) -> list[int]:
        return [THREAD_ID]

    def current_thread(self) -> int:
        return THREAD_ID

    def select_thread(self, thread: int) -> None:
        pass  # (one vCPU)

    def thread_info(self, thread: int) -> str:
        return f"CPU#0 [{'halted ' if self.inner.vcpu.halted() else 'running'}]"

    def interrupt(self) -> None:
        if not self.paused:
            self._stopped(signal.SIGINT)

    def _connect_stop(self) -> Stopped:
        self.debug_cpu.state.invalidate()  # (the registers KVM has now)
        return Stopped(signal.SIGTRAP, THREAD_ID)
