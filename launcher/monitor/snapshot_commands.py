"""The monitors' VM snapshot commands (HMP ``savevm``, ``loadvm``, ``delvm``, ``info
snapshots``) over machines/snapshots.py, with QEMU 7.2's run-state handling: the VM
is stopped (run state ``save-vm``/``restore-vm``, a STOP event) while its state is
taken or restored, and runs again afterwards if it ran before — after a failed loadvm
it stays stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from launcher.monitor.vm import MonitorError
from machines.loop import RunState
from machines.machine import Machine
from machines.snapshots import SnapshotError, delete_vm, info_snapshots, load_vm, save_vm

if TYPE_CHECKING:
    from launcher.monitor.vm import Vm


def _machine(vm: Vm) -> Machine:
    if not isinstance(vm.machine, Machine):
        raise MonitorError("VM snapshots are not supported with this accelerator")
    return vm.machine


def savevm(vm: Vm, name: str | None) -> str:
    """HMP ``savevm [tag]``: a snapshot of that name replaces one that exists."""
    machine = _machine(vm)
    was_running = vm.loop.running
    vm.loop.pause(RunState.SAVE_VM)
    try:
        save_vm(machine, name or None)
    except SnapshotError as exc:
        raise MonitorError(str(exc)) from None
    finally:
        if was_running:
            vm.loop.resume()
    return ""


def loadvm(vm: Vm, name: str) -> str:
    """HMP ``loadvm tag``."""
    machine = _machine(vm)
    was_running = vm.loop.running
    vm.loop.pause(RunState.RESTORE_VM)
    try:
        load_vm(machine, name)
    except SnapshotError as exc:
        if vm.loop.state is RunState.RESTORE_VM:
            vm.loop.state = RunState.PAUSED  # (stays stopped, as QEMU leaves it)
        raise MonitorError(str(exc)) from None
    if was_running:
        vm.loop.resume()
    return ""


def delvm(vm: Vm, name: str) -> str:
    """HMP ``delvm tag``."""
    try:
        delete_vm(_machine(vm), name)
    except SnapshotError as exc:
        raise MonitorError(str(exc)) from None
    return ""


def info(vm: Vm) -> str:
    """HMP ``info snapshots`` (its error is printed without "Error: ", as QEMU does)."""
    try:
        return info_snapshots(_machine(vm))
    except SnapshotError as exc:
        return f"{exc}\n"
