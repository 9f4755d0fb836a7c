"""What the monitors (QMP and HMP) act on: the running machine, seen through one object.

Every method runs on the machine loop's thread (the monitors' input is posted there by
their chardevs), so it may read the CPU state and guest memory between CPU runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from machines.loop import RunState

if TYPE_CHECKING:
    from launcher.chardev import Chardev
    from launcher.net.backends import NetBackends
    from machines.loop import EventListener, MachineLoop
    from machines.machine import Machine

QEMU_VERSION = (7, 2, 0)


class MonitorError(Exception):
    """A command that cannot be done now (QMP GenericError; HMP prints the text)."""


class CpuView(Protocol):
    """The CPUs of a machine as the monitors read them (``cpu``: an index)."""

    @property
    def count(self) -> int: ...

    def pc(self, cpu: int) -> int: ...

    def register(self, name: str, cpu: int) -> int:
        """A register by its QEMU monitor name (``$name``); KeyError if none."""
        ...

    def registers_text(self, cpu: int) -> str:
        """``info registers``, as QEMU's cpu_dump_state prints it."""
        ...

    def translate(self, vaddr: int, cpu: int,
                  read_physical: Callable[[int, int], bytes]) -> int:
        """The physical address of ``vaddr`` in the CPU's current context
        (MonitorError when unmapped)."""
        ...

    def disassembler(self, cpu: int) -> tuple[str, int, int]:
        """(name, capstone architecture, mode) for ``x/i`` in the CPU's current mode."""
        ...

    def cpu_info(self, cpu: int) -> tuple[str, dict[str, int]]:
        """query-cpus-fast's ``qom-path`` and ``props`` of the CPU."""
        ...


@dataclass(frozen=True, slots=True)
class MachineTypeInfo:
    """One entry of query-machines."""

    name: str
    default: bool
    ram_id: str
    cpu_max: int = 1
    default_cpu_type: str = "rv64-riscv-cpu"
    numa_mem_supported: bool = False  # the machine takes -numa node,mem=|memdev=


@dataclass(slots=True)
class Vm:
    """The machine as the monitors see it.

    Args:
        loop: the machine loop (run state, requests, events).
        machine: the built machine (memory, name).
        target: the guest architecture name (``riscv64``).
        package: the version package string (QEMU's is the distribution's).
        chardevs: the character devices by label, in creation order.
        machine_types: what query-machines lists.
        set_log: ``log ITEMS`` (returns an error text or None), when logging is set up.
        gdbserver: starts the gdbstub on a device (``gdbserver``), when one exists.
        cpus: the CPUs' registers and address translation (None: the loop's CPU is
            one riscv hart).
        physical: reads guest-physical memory (None: the machine's ``memory.read``).
    """

    loop: MachineLoop
    machine: Machine
    target: str
    package: str
    chardevs: dict[str, Chardev] = field(default_factory=dict)
    machine_types: list[MachineTypeInfo] = field(default_factory=list)
    set_log: Callable[[str], str | None] | None = None
    set_logfile: Callable[[str], str | None] | None = None
    gdbserver: Callable[[str], str] | None = None
    name: str | None = None
    network: NetBackends | None = None  # -netdev/-nic/-net backends (net_commands.py)
    cpus: CpuView | None = None
    physical: Callable[[int, int], bytes] | None = None
    kvm: bool = False  # the accelerator is KVM (query-kvm, info kvm)
    jobs: dict[str, Any] = field(default_factory=dict)  # QMP jobs by id (snapshot-save, …)

    # -- run state ----------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.loop.state.value

    @property
    def running(self) -> bool:
        return self.loop.running

    def add_listener(self, listener: EventListener) -> None:
        self.loop.listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self.loop.listeners:
            self.loop.listeners.remove(listener)

    def stop(self) -> None:
        self.loop.pause()

    def cont(self) -> None:
        if self.loop.state is RunState.SHUTDOWN:
            raise MonitorError("Resetting the Virtual Machine is required")
        self.loop.resume()

    def system_reset(self) -> None:
        self.loop.request_reset("host-qmp-system-reset")

    def system_powerdown(self) -> None:
        self.loop.request_powerdown()

    def quit(self) -> None:
        self.loop.request_shutdown(0, "host-qmp-quit")

    # -- the CPUs (``cpu``: the index a monitor's commands use) ---------------------------
    @property
    def cpu_view(self) -> CpuView:
        if self.cpus is None:
            self.cpus = RiscvHarts([self.loop.cpu.translated])  # type: ignore[attr-defined]
        return self.cpus

    @property
    def cpu_count(self) -> int:
        return self.cpu_view.count

    def pc(self, cpu: int = 0) -> int:
        return self.cpu_view.pc(cpu)

    @property
    def thread_id(self) -> int:
        return os.getpid() if not hasattr(os, "gettid") else os.gettid()

    def register(self, name: str, cpu: int = 0) -> int:
        """A register by its QEMU/GDB name; KeyError if there is none."""
        return self.cpu_view.register(name, cpu)

    def registers_text(self, cpu: int = 0) -> str:
        """``info registers`` for one CPU, as QEMU prints it."""
        return self.cpu_view.registers_text(cpu)

    # -- memory -------------------------------------------------------------------------
    def read_physical(self, addr: int, size: int) -> bytes:
        """Guest RAM/ROM bytes; MonitorError outside them."""
        read = self.physical or self.machine.memory.read  # type: ignore[attr-defined]
        try:
            return read(addr, size)
        except Exception:  # noqa: BLE001 - any bus error is "cannot access"
            raise MonitorError("Cannot access memory") from None

    def read_virtual(self, addr: int, size: int, cpu: int = 0) -> bytes:
        """Bytes at a virtual address of CPU ``cpu``'s current context (its page
        tables walked without setting A/D bits, as QEMU's debug accesses)."""
        out = bytearray()
        while size > 0:
            chunk = min(size, 4096 - (addr & 0xFFF))
            out += self.read_physical(self.translate(addr, cpu), chunk)
            addr = (addr + chunk) & (1 << 64) - 1
            size -= chunk
        return bytes(out)

    def translate(self, vaddr: int, cpu: int = 0) -> int:
        """The physical address of ``vaddr`` for CPU ``cpu``; MonitorError when
        unmapped."""
        return self.cpu_view.translate(vaddr, cpu, self.read_physical)

    def chardev_info(self) -> list[tuple[str, str, bool]]:
        """(label, filename, frontend-open) per chardev, as query-chardev."""
        return [(label, dev.filename, dev.frontend is not None)
                for label, dev in self.chardevs.items()]


class RiscvHarts:
    """The riscv harts of a machine as the monitors see them (:class:`CpuView`)."""

    def __init__(self, harts: list[object]) -> None:
        self.harts = harts  # llvmtcg.system.SystemCpu (state, arch) per hart

    def _cpu(self, cpu: int = 0):  # the llvmtcg.system.SystemCpu
        return self.harts[cpu]

    @property
    def count(self) -> int:
        return len(self.harts)

    def pc(self, cpu: int = 0) -> int:
        return self._cpu(cpu).state.pc

    def cpu_info(self, cpu: int = 0) -> tuple[str, dict[str, int]]:
        return f"/machine/soc0/harts[{cpu}]", {"core-id": cpu}

    def disassembler(self, cpu: int = 0) -> tuple[str, int, int]:
        import capstone
        return ("riscv64", capstone.CS_ARCH_RISCV,
                capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)

    def register(self, name: str, cpu: int = 0) -> int:
        """A register by GDB/QEMU name (``pc``, ``sp``, ``a0``, ``x5``, ``f1``, a CSR
        name); KeyError if there is none."""
        from llvmtcg.frontends.riscv.priv.csr import Csr
        from llvmtcg.frontends.riscv.priv.state import Priv
        from llvmtcg.frontends.riscv.system import hart_of
        state = self._cpu(cpu).state
        name = name.lower()
        if name == "pc":
            return state.pc
        if name in _GPR_INDEX:
            return state.get("x", _GPR_INDEX[name]) if _GPR_INDEX[name] else 0
        if name in _FPR_INDEX:
            return state.get("f", _FPR_INDEX[name])
        csr_number = getattr(Csr, name.upper(), None)
        if csr_number is None:
            raise KeyError(name)
        return hart_of(state).csr.read(int(csr_number), Priv.M)

    def registers_text(self, cpu: int = 0) -> str:
        """``info registers``: QEMU's riscv_cpu_dump_state with the FPU (a hart without
        the H extension: no V/hstatus lines)."""
        from llvmtcg.frontends.riscv.priv.csr import Csr
        from llvmtcg.frontends.riscv.priv.state import Priv
        from llvmtcg.frontends.riscv.system import hart_of
        state = self._cpu(cpu).state
        csr = hart_of(state).csr
        lines = ["", f"CPU#{cpu}", f" {'pc      '} {state.pc:016x}"]
        for name in _DUMP_CSRS:
            try:
                value = csr.read(int(getattr(Csr, name.upper())), Priv.M)
            except Exception:  # noqa: BLE001 - a CSR this hart lacks is skipped, as QEMU
                continue
            lines.append(f" {name:<8} {value:016x}")
        text = "\n".join(lines) + "\n"
        gprs = [state.get("x", i) if i else 0 for i in range(32)]
        text += _table(_GPR_NAMES, gprs)
        fprs = [state.get("f", i) for i in range(32)]
        text += _table(_FPR_NAMES, fprs)
        return text

    def translate(self, vaddr: int, cpu: int,
                  read_physical: Callable[[int, int], bytes]) -> int:
        """The physical address of ``vaddr``: Sv39/48/57 walk of satp in S/U mode, the
        identity in M mode or with satp Bare. MonitorError when unmapped."""
        from llvmtcg.frontends.riscv.priv.state import Priv
        from llvmtcg.frontends.riscv.system import hart_of
        csr = hart_of(self._cpu(cpu).state).csr
        mode = csr.satp >> 60
        if csr.priv == Priv.M or mode == 0:
            return vaddr
        levels = {8: 3, 9: 4, 10: 5}.get(mode)
        if levels is None:
            raise MonitorError("Cannot access memory")
        table = (csr.satp & ((1 << 44) - 1)) << 12
        for level in reversed(range(levels)):
            index = (vaddr >> (12 + 9 * level)) & 0x1FF
            pte = int.from_bytes(read_physical(table + index * 8, 8), "little")
            if not pte & 1:
                break
            ppn = (pte >> 10) & ((1 << 44) - 1)
            if pte & 0xA:  # R or X: a leaf (a superpage above level 0)
                offset_bits = 12 + 9 * level
                return (ppn << 12 & ~((1 << offset_bits) - 1)) | (vaddr & ((1 << offset_bits) - 1))
            table = ppn << 12
        raise MonitorError("Cannot access memory")


_ABI = ("zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 s2 s3 s4 s5 s6 s7 s8 s9 "
        "s10 s11 t3 t4 t5 t6").split()
_FABI = ("ft0 ft1 ft2 ft3 ft4 ft5 ft6 ft7 fs0 fs1 fa0 fa1 fa2 fa3 fa4 fa5 fa6 fa7 fs2 fs3 "
         "fs4 fs5 fs6 fs7 fs8 fs9 fs10 fs11 ft8 ft9 ft10 ft11").split()
_GPR_NAMES = [f"x{i}/{abi}" for i, abi in enumerate(_ABI)]
_FPR_NAMES = [f"f{i}/{abi}" for i, abi in enumerate(_FABI)]
_GPR_INDEX = {**{abi: i for i, abi in enumerate(_ABI)}, **{f"x{i}": i for i in range(32)},
              "fp": 8}
_FPR_INDEX = {**{abi: i for i, abi in enumerate(_FABI)}, **{f"f{i}": i for i in range(32)}}
_DUMP_CSRS = ("mhartid", "mstatus", "mip", "mie", "mideleg", "medeleg", "mtvec", "stvec",
              "mepc", "sepc", "mcause", "scause", "mtval", "stval", "mscratch", "sscratch",
              "satp")


def _table(names: list[str], values: list[int]) -> str:
    text = ""
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        text += f" {name:<8} {value & (1 << 64) - 1:016x}"
        if i & 3 == 3:
            text += "\n"
    return text
