"""The gdbstub of a system-mode machine (``-gdb tcp::PORT``, ``-s``, ``-S``, and the
monitor's ``gdbserver``).

:class:`GdbHart` stands between the main loop and the harts: it is the CPU the loop
runs, and it keeps the harts stopped while gdb looks at them (``run`` then reports
Idle, so the loop sleeps until the next event), single-steps one and reports
breakpoints. Every hart is a gdb thread (thread ``i + 1`` is hart ``i``, as QEMU
numbers CPUs); a stop stops them all (all-stop mode), a step steps the thread gdb names
while the others wait, and a continue runs them round-robin starting with the current
one. The protocol is ``llvmtcg.gdbstub``'s. The listening socket and the connection are
watched by the loop's I/O thread, which only reads bytes and posts them to the loop's
thread (kicking the CPU, as console input does): packets are answered there, between
CPU runs, never while guest code runs. As in QEMU, a debugger that connects stops the
machine, ``D`` (or a debugger that vanishes) lets it run on, ``k`` ends the emulator,
and only one debugger is connected at a time. ``monitor CMD`` (qRcmd) runs a human
monitor command, given one (:attr:`GdbHart.monitor_command`).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from llvmtcg.gdbstub import GdbStub, Resume, ResumeKind, Stopped, accepted
from machines.cpu import CpuEvent, DebugStop, HartGroup, Idle, IrqBit, LlvmtcgHart, SystemCpu
from machines.cpu import Stopped as CpuStopped
from machines.loop import RunState

if TYPE_CHECKING:
    from llvmtcg.runtime.cpu_exec import Cpu
    from machines.loop import MachineLoop


def harts_of(cpu: SystemCpu) -> list[LlvmtcgHart]:
    """The harts of a machine's CPU (one, or a HartGroup's), in hart order."""
    return list(cpu.harts) if isinstance(cpu, HartGroup) else [cpu]  # type: ignore[list-item]


class GdbServer:
    """What every machine CPU under a gdbstub shares (the TCG harts here, the KVM vCPU
    in launcher/accel/kvm_gdb.py): the listening socket, one debugger at a time served
    on the machine loop (its I/O thread reads and posts; the loop's thread answers), the
    machine started and stopped with the debugger, and gdb's ``monitor`` as HMP.

    Subclasses say which stop a connecting debugger sees (:meth:`_connect_stop`).
    """

    def __init__(self, listener: socket.socket | None, *, paused: bool = False) -> None:
        self.listener = listener
        self.paused = paused
        self.action: Resume | None = None
        self.stub: GdbStub | None = None
        self.conn: socket.socket | None = None
        self.loop: MachineLoop | None = None
        self.monitor_command: Callable[[str], str] | None = None  # qRcmd -> HMP
        self._resuming = False  # the first run after a resume (steps over a breakpoint)

    def _connect_stop(self) -> Stopped:
        """The stop a debugger that connects is told about (and any state to refresh)."""
        raise NotImplementedError

    def attach(self, loop: MachineLoop) -> None:
        """Serve debuggers through ``loop`` (its I/O thread watches the socket)."""
        self.loop = loop
        if self.listener is not None:
            loop.watch_fd(self.listener.fileno(), self._on_connect)

    def serve(self, listener: socket.socket | None) -> None:
        """Listen on ``listener`` instead (None: no more debuggers), as the monitor's
        ``gdbserver`` does: a connected debugger is dropped and the machine runs on."""
        if self.stub is not None:
            self.detach()
        old, self.listener = self.listener, listener
        if old is not None:
            if self.loop is not None:
                self.loop.unwatch_fd(old.fileno())
            old.close()
        if listener is not None and self.loop is not None:
            self.loop.watch_fd(listener.fileno(), self._on_connect)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def resume(self, action: Resume) -> None:
        self.action = action
        self.paused = False
        self._resuming = True
        self._start_machine()

    def _start_machine(self) -> None:
        # gdb's continue starts a machine that -S, a stop or the monitor's stop left
        # stopped (QEMU's gdbstub calls vm_start).
        if self.loop is not None and self.loop.state in (RunState.PRELAUNCH,
                                                         RunState.PAUSED, RunState.DEBUG):
            self.loop.resume()

    def detach(self) -> None:
        self._drop_client()
        self.action = None
        self.paused = False
        self._resuming = False
        self._start_machine()

    def kill(self) -> None:
        self._drop_client()
        if self.loop is not None:
            self.loop.request_shutdown(0)

    def monitor(self, command: str) -> str | None:
        if self.monitor_command is None:
            return None
        return self.monitor_command(command)

    # -- connections (I/O thread: read and post; loop thread: the rest) -----------------
    def _on_connect(self) -> None:
        listener = self.listener
        if listener is None:
            return
        try:
            conn = accepted(listener)
        except OSError:
            return
        self.loop.post(lambda: self._connected(conn))

    def _connected(self, conn: socket.socket) -> None:
        if self.conn is not None or self.listener is None:  # one debugger at a time
            conn.close()
            return
        self.conn = conn
        conn.setblocking(True)
        self.stub = GdbStub(self, conn.sendall)
        self.stub.last_stop = self._connect_stop()
        self.paused = True  # a debugger that connects stops the machine
        self.action = None
        if self.loop is not None:
            self.loop.pause(RunState.PAUSED)
        fd = conn.fileno()

        def on_readable() -> None:
            try:
                data = conn.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.loop.unwatch_fd(fd)
            self.loop.post(lambda: self._received(conn, data))
        self.loop.watch_fd(fd, on_readable)

    def _received(self, conn: socket.socket, data: bytes) -> None:
        if conn is not self.conn or self.stub is None:
            return
        if not data:  # the debugger went away: the machine runs on
            self.detach()
            return
        self.stub.feed(data)

    def _drop_client(self) -> None:
        stub, self.stub = self.stub, None
        if stub is not None:
            stub.clear()
        conn, self.conn = self.conn, None
        if conn is not None and self.loop is not None:
            self.loop.unwatch_fd(conn.fileno())
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


class GdbHart(GdbServer):
    """The harts under a gdbstub: a :class:`machines.cpu.SystemCpu` for the main loop.

    Args:
        cpu: the machine's CPU (a hart, or a HartGroup).
        listener: the listening socket (``-gdb``), or None (the monitor's
            ``gdbserver`` may start one later).
        paused: start stopped until gdb (or a monitor) continues.
    """

    def __init__(self, cpu: SystemCpu, listener: socket.socket | None = None, *,
                 paused: bool = False) -> None:
        super().__init__(listener, paused=paused)
        self.inner = cpu
        self.harts = harts_of(cpu)
        self.current = 0  # the hart gdb reads and writes (Hg, the last stop's)
        self._watch_pc: tuple[int, int] | None = None  # (hart, pc) a watchpoint stopped

    # -- SystemCpu, for the loop and the machine ---------------------------------------
    @property
    def translated(self):  # -> llvmtcg.system.SystemCpu
        """Hart 0's translating CPU."""
        return self.harts[0].translated

    def reset(self, pc: int, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        self.inner.reset(pc, a0, a1, a2)

    def set_irq(self, irq: IrqBit, level: bool) -> None:
        self.inner.set_irq(irq, level)

    def stop(self) -> None:
        self.inner.stop()

    def run(self) -> CpuEvent:
        if self.paused:
            return Idle()  # (the loop sleeps until a packet or timer arrives)
        if self.stub is None and not self._resuming:
            return self.inner.run()  # no debugger: no breakpoints, nothing to look at
        action, resuming = self.action, self._resuming
        self._resuming = False
        stepping = action is not None and action.kind is ResumeKind.STEP
        index = self.current
        if stepping and action.thread:
            index = action.thread - 1
        hart = self.harts[index]
        cpu = hart.debug_cpu
        at_watch = self._watch_pc == (index, cpu.pc)
        if stepping or (resuming and (cpu.pc in cpu.breakpoints or at_watch)):
            # A step, or the first instruction of a continue from a breakpoint or a
            # watchpoint: one instruction, its breakpoint and watchpoint ignored.
            self._watch_pc = None
            event = hart.step(over_watchpoint=at_watch)
            if stepping or event.watch is not None or cpu.pc in cpu.breakpoints:
                return self._debug_stop(event, index)
        if resuming and isinstance(self.inner, HartGroup):
            self.inner.run_next(index)
        event = self.inner.run()
        if isinstance(event, DebugStop):
            return self._debug_stop(event, event.hart)
        return event

    def _debug_stop(self, event: DebugStop, index: int) -> CpuEvent:
        """Report a breakpoint, a step or a watchpoint (before its access, or after
        the instruction: the architecture's choice) of hart ``index``."""
        self._watch_pc = None
        cpu = self.harts[index].debug_cpu
        if event.watch is not None:
            if cpu.arch.gdb_stop_before_watchpoint:
                self._watch_pc = (index, cpu.pc)
            else:
                self.harts[index].step(over_watchpoint=True)
        return self._stopped(signal.SIGTRAP, index, event.watch)

    def _stopped(self, sig: int, index: int, watch=None) -> CpuEvent:
        self.paused = True
        self.action = None
        self._resuming = False
        self.current = index
        # The machine stops as QEMU's: "paused (debug)" after a breakpoint or a step,
        # "paused" after Ctrl-C (STOP events for the monitors).
        self._pause_machine(RunState.PAUSED if sig == signal.SIGINT else RunState.DEBUG)
        if self.stub is not None:
            self.stub.report(Stopped(sig, index + 1, watch))
        return CpuStopped()

    # -- DebugTarget ---------------------------------------------------------------------
    @property
    def cpu(self) -> Cpu:
        return self.harts[self.current].debug_cpu

    def cpus(self) -> list[Cpu]:
        return [hart.debug_cpu for hart in self.harts]

    def thread_ids(self) -> list[int]:
        return list(range(1, len(self.harts) + 1))

    def current_thread(self) -> int:
        return self.current + 1

    def select_thread(self, thread: int) -> None:
        self.current = thread - 1

    def thread_info(self, thread: int) -> str:
        halted = not self.harts[thread - 1].ready()  # (waiting in WFI)
        return f"CPU#{thread - 1} [{'halted ' if halted else 'running'}]"

    def _pause_machine(self, state: RunState) -> None:
        if self.loop is not None:
            self.loop.pause(state)

    def _connect_stop(self) -> Stopped:
        return Stopped(signal.SIGTRAP, self.current + 1)

    def interrupt(self) -> None:
        # Packets are handled on the loop's thread between CPU runs: the harts are not
        # running now, so they stop here.
        if not self.paused:
            self._stopped(signal.SIGINT, self.current)
