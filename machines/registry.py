"""Machine types by name: what ``-M help`` lists and ``-M NAME`` builds.

The table is here, not in the machine modules, so that listing machine types imports
no machine (a machine module pulls in the softmmu and every device it wires): each
:class:`MachineType` names the module whose ``build(options)`` makes the machine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from machines.machine import Machine, MachineOptions

Builder = Callable[["MachineOptions"], "Machine"]


@dataclass(frozen=True, slots=True)
class MachineType:
    name: str
    description: str  # QEMU's mc->desc, as -M help prints it
    module: str  # the module with build(options)
    default: bool = False  # QEMU's mc->is_default: used without -M
    max_cpus: int = 1  # mc->max_cpus as llvmtcg's machine supports it (-smp)
    numa: bool = False  # takes -numa (NUMA nodes: machines.numa)
    default_ram_size: int = 128 << 20  # mc->default_ram_size (-numa's sizes must add up)

    def help_line(self) -> str:
        suffix = " (default)" if self.default else ""
        return f"{self.name:<20} {self.description}{suffix}"

    def builder(self) -> Builder:
        build: Builder = importlib.import_module(self.module).build
        return build


# Each target's machine types (QEMU 7.2's descriptions and default).
TARGET_MACHINES: dict[str, tuple[MachineType, ...]] = {
    "riscv64": (
        MachineType("spike", "RISC-V Spike board", "machines.riscv64_spike", default=True),
        MachineType("virt", "RISC-V VirtIO board", "machines.riscv64_virt", max_cpus=512,
                    numa=True),
    ),
}


def machine_types(target: str) -> list[MachineType]:
    """The target's machine types, sorted by name (as -M help lists them)."""
    return sorted(TARGET_MACHINES[target], key=lambda t: t.name)


def find_machine(target: str, name: str | None) -> MachineType | None:
    """The machine type called ``name`` (None: the target's default)."""
    for machine_type in TARGET_MACHINES[target]:
        if machine_type.name == name or (name is None and machine_type.default):
            return machine_type
    return None


def help_text(target: str) -> str:
    lines = ["Supported machines are:"]
    lines += [t.help_line() for t in machine_types(target)]
    return "\n".join(lines) + "\n"
