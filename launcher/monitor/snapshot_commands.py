"""The monitors' VM snapshot commands (HMP ``savevm``, ``loadvm``, ``delvm``, ``info
snapshots``; QMP's ``snapshot-save``/``-load``/``-delete`` jobs with ``query-jobs`` and
``job-dismiss``) over machines/snapshots.py, with QEMU 7.2's run-state handling: the VM
is stopped (run state ``save-vm``/``restore-vm``, a STOP event) while its state is
taken or restored, and runs again afterwards if it ran before — after a failed loadvm
it stays stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


# -- QMP: snapshot-save / snapshot-load / snapshot-delete jobs ----------------------------------

@dataclass(slots=True)
class SnapshotJob:
    """A QMP job (QEMU's JOB_MANUAL_DISMISS snapshot jobs): concluded until
    ``job-dismiss``, with the error text of a failed one."""

    id: str
    type: str
    status: str = "created"
    error: str | None = None

    def info(self) -> dict[str, object]:
        """The job as query-jobs lists it."""
        entry: dict[str, object] = {"current-progress": 1, "status": self.status,
                                    "total-progress": 1, "type": self.type, "id": self.id}
        if self.error is not None:
            entry["error"] = self.error
        return entry


def _set_status(vm: Vm, job: SnapshotJob, status: str) -> None:
    job.status = status
    vm.loop.emit("JOB_STATUS_CHANGE", {"status": status, "id": job.id})


def start_job(vm: Vm, kind: str, job_id: str, work: Callable[[Machine], None],
              run_state: RunState | None) -> None:
    """Starts job ``job_id``: it is created and running when the command returns, and
    does its work on the loop right after (the reply goes out first, as QEMU's
    coroutine lets it), stopping the VM meanwhile when ``run_state`` is given."""
    if job_id in vm.jobs:
        raise MonitorError(f"Job ID '{job_id}' already in use")
    machine = _machine(vm)
    job = vm.jobs[job_id] = SnapshotJob(job_id, kind)
    _set_status(vm, job, "created")
    _set_status(vm, job, "running")

    def run() -> None:
        was_running = vm.loop.running
        if run_state is not None:
            vm.loop.pause(run_state)
        try:
            work(machine)
        except SnapshotError as exc:
            job.error = str(exc).split("\n")[0]
            if vm.loop.state is RunState.RESTORE_VM:
                vm.loop.state = RunState.PAUSED
            elif was_running:
                vm.loop.resume()
            _set_status(vm, job, "aborting")
        else:
            if was_running:
                vm.loop.resume()
            _set_status(vm, job, "waiting")
            _set_status(vm, job, "pending")
        _set_status(vm, job, "concluded")

    vm.loop.post(run)


def qmp_snapshot_save(vm: Vm, arguments: dict[str, Any]) -> object:
    tag, state, devices = arguments["tag"], arguments["vmstate"], list(arguments["devices"])
    start_job(vm, "snapshot-save", arguments["job-id"],
              lambda machine: save_vm(machine, tag, overwrite=False, devices=devices,
                                      vmstate_disk=state), RunState.SAVE_VM)
    return {}


def qmp_snapshot_load(vm: Vm, arguments: dict[str, Any]) -> object:
    tag, state, devices = arguments["tag"], arguments["vmstate"], list(arguments["devices"])
    start_job(vm, "snapshot-load", arguments["job-id"],
              lambda machine: load_vm(machine, tag, devices=devices, vmstate_disk=state),
              RunState.RESTORE_VM)
    return {}


def qmp_snapshot_delete(vm: Vm, arguments: dict[str, Any]) -> object:
    tag, devices = arguments["tag"], list(arguments["devices"])
    start_job(vm, "snapshot-delete", arguments["job-id"],
              lambda machine: delete_vm(machine, tag, devices=devices), None)
    return {}


def qmp_query_jobs(vm: Vm, _: dict[str, Any]) -> object:
    """The jobs, newest first (QEMU keeps them in a list it inserts at the head of)."""
    return [job.info() for job in reversed(vm.jobs.values())]


def qmp_job_dismiss(vm: Vm, arguments: dict[str, Any]) -> object:
    job = vm.jobs.get(arguments["id"])
    if job is None:
        raise MonitorError("Job not found")
    if job.status != "concluded":
        raise MonitorError(f"Job '{job.id}' in state '{job.status}' cannot accept command "
                           "verb 'dismiss'")
    del vm.jobs[job.id]
    _set_status(vm, job, "null")
    return {}
