"""What the monitors (QMP and HMP) act on: the running machine, seen through one object.

Every method runs on the machine loop's thread (the monitors' input is posted there by
their chardevs), so it may read the CPU state and guest memory between CPU runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from machines.loop import RunState

if TYPE_CHECKING:
    from launcher.chardev import Chardev
    from launcher.net.backends import NetBackends
    from machines.loop import EventListener, MachineLoop
    from machines.machine import Machine

QEMU_VERSION = (7, 2, 0)


class MonitorError(Exception):
    """A command that cannot be done now (QMP GenericError; HMP prints the text)."""


@dataclass(frozen=True, slots=True)
class MachineTypeInfo:
    """One entry of query-machines."""

    name: str
    default: bool
    ram_id: str
    cpu_max: int = 1
    default_cpu_type: str = "rv64-riscv-cpu"


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

    # -- the CPU ------------------------------------------------------------------------
    def _cpu(self):  # the llvmtcg.system.SystemCpu (state, arch)
        return self.loop.cpu.translated  # type: ignore[attr-defined]

    @property
    def pc(self) -> int:
        return self._cpu().state.pc

    @property
    def thread_id(self) -> int:
        return os.getpid() if not hasattr(os, "gettid") else os.gettid()

    def register(self, name: str) -> int:
        """A register by GDB/QEMU name (``pc``, ``sp``, ``a0``, ``x5``, ``f1``, a CSR
        name); KeyError if there is none."""
        from llvmtcg.frontends.riscv.priv.csr import Csr
        from llvmtcg.frontends.riscv.priv.state import Priv
        from llvmtcg.frontends.riscv.system import hart_of
        cpu = self._cpu()
        state = cpu.state
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

    def registers_text(self) -> str:
        """``info registers``: QEMU's riscv_cpu_dump_state with the FPU (a hart without
        the H extension: no V/hstatus lines)."""
        from llvmtcg.frontends.riscv.priv.csr import Csr
        from llvmtcg.frontends.riscv.priv.state import Priv
        from llvmtcg.frontends.riscv.system import hart_of
        cpu = self._cpu()
        state = cpu.state
        csr = hart_of(state).csr
        lines = ["", "CPU#0", f" {'pc      '} {state.pc:016x}"]
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

    # -- memory -------------------------------------------------------------------------
    def read_physical(self, addr: int, size: int) -> bytes:
        """Guest RAM/ROM bytes; MonitorError outside them."""
        try:
            return self.machine.memory.read(addr, size)
        except Exception:  # noqa: BLE001 - any bus error is "cannot access"
            raise MonitorError("Cannot access memory") from None

    def read_virtual(self, addr: int, size: int) -> bytes:
        """Bytes at a virtual address of the current context (the page tables of satp,
        walked without setting A/D bits, as QEMU's debug accesses)."""
        out = bytearray()
        while size > 0:
            chunk = min(size, 4096 - (addr & 0xFFF))
            out += self.read_physical(self.translate(addr), chunk)
            addr = (addr + chunk) & (1 << 64) - 1
            size -= chunk
        return bytes(out)

    def translate(self, vaddr: int) -> int:
        """The physical address of ``vaddr``: Sv39/48/57 walk of satp in S/U mode, the
        identity in M mode or with satp Bare. MonitorError when unmapped."""
        from llvmtcg.frontends.riscv.priv.state import Priv
        from llvmtcg.frontends.riscv.system import hart_of
        csr = hart_of(self._cpu().state).csr
        mode = csr.satp >> 60
        if csr.priv == Priv.M or mode == 0:
            return vaddr
        levels = {8: 3, 9: 4, 10: 5}.get(mode)
        if levels is None:
            raise MonitorError("Cannot access memory")
        table = (csr.satp & ((1 << 44) - 1)) << 12
        for level in reversed(range(levels)):
            index = (vaddr >> (12 + 9 * level)) & 0x1FF
            pte = int.from_bytes(self.read_physical(table + index * 8, 8), "little")
            if not pte & 1:
                break
            ppn = (pte >> 10) & ((1 << 44) - 1)
            if pte & 0xA:  # R or X: a leaf (a superpage above level 0)
                offset_bits = 12 + 9 * level
                return (ppn << 12 & ~((1 << offset_bits) - 1)) | (vaddr & ((1 << offset_bits) - 1))
            table = ppn << 12
        raise MonitorError("Cannot access memory")

    def chardev_info(self) -> list[tuple[str, str, bool]]:
        """(label, filename, frontend-open) per chardev, as query-chardev."""
        return [(label, dev.filename, dev.frontend is not None)
                for label, dev in self.chardevs.items()]


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
