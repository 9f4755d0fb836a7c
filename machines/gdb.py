"""The gdbstub of a system-mode machine (``-gdb tcp::PORT``, ``-s``, ``-S``).

:class:`GdbHart` stands between the main loop and the hart: it is the CPU the loop
runs, and it keeps the hart stopped while gdb looks at it (``run`` then reports Idle,
so the loop sleeps until the next event), single-steps it and reports breakpoints.
The protocol is ``llvmtcg.gdbstub``'s. The listening socket and the connection are
watched by the loop's I/O thread, which only reads bytes and posts them to the loop's
thread (kicking the CPU, as console input does): packets are answered there, between
CPU runs, never while guest code runs. As in QEMU, a debugger that connects stops the
machine, ``D`` (or a debugger that vanishes) lets it run on, ``k`` ends the emulator,
and only one debugger is connected at a time.
"""

from __future__ import annotations

import signal
import socket
from typing import TYPE_CHECKING

from llvmtcg.gdbstub import GdbStub, Resume, ResumeKind, Stopped, accepted
from machines.cpu import CpuEvent, DebugStop, Idle, IrqBit, LlvmtcgHart
from machines.cpu import Stopped as CpuStopped

if TYPE_CHECKING:
    from llvmtcg.runtime.cpu_exec import Cpu
    from machines.loop import MachineLoop

THREAD_ID = 1  # gdb's thread for hart 0 (thread ids are positive)


class GdbHart:
    """A hart under a gdbstub: a :class:`machines.cpu.SystemCpu` for the main loop.

    Args:
        hart: the hart.
        listener: the listening socket (``-gdb``), or None (``-S`` alone).
        paused: start stopped (``-S``) until gdb (or a monitor) continues.
    """

    def __init__(self, hart: LlvmtcgHart, listener: socket.socket | None, *,
                 paused: bool = False) -> None:
        self.hart = hart
        self.listener = listener
        self.paused = paused
        self.action: Resume | None = None
        self.stub: GdbStub | None = None
        self.conn: socket.socket | None = None
        self.loop: MachineLoop | None = None
        self._watch_pc: int | None = None  # where a watchpoint stopped before an access

    def attach(self, loop: MachineLoop) -> None:
        """Serve debuggers through ``loop`` (its I/O thread watches the socket)."""
        self.loop = loop
        if self.listener is not None:
            loop.watch_fd(self.listener.fileno(), self._on_connect)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    # -- SystemCpu, for the loop and the machine ---------------------------------------
    @property
    def translated(self):  # -> llvmtcg.system.SystemCpu
        """The hart's translating CPU (the monitor reads registers from it)."""
        return self.hart.translated

    def reset(self, pc: int, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        self.hart.reset(pc, a0, a1, a2)

    def set_irq(self, irq: IrqBit, level: bool) -> None:
        self.hart.set_irq(irq, level)

    def stop(self) -> None:
        self.hart.stop()

    def run(self) -> CpuEvent:
        if self.paused:
            return Idle()  # (the loop sleeps until a packet or timer arrives)
        hart, action = self.hart, self.action
        cpu = hart.debug_cpu
        stepping = action is not None and action.kind is ResumeKind.STEP
        if stepping or cpu.pc in cpu.breakpoints or cpu.pc == self._watch_pc:
            # A step, or the first instruction of a continue from a breakpoint or a
            # watchpoint: one instruction, its breakpoint and watchpoint ignored.
            over = self._watch_pc is not None and self._watch_pc == cpu.pc
            self._watch_pc = None
            event = hart.step(over_watchpoint=over)
            if stepping or event.watch is not None or cpu.pc in cpu.breakpoints:
                return self._debug_stop(event)
        event = hart.run()
        if isinstance(event, DebugStop):
            return self._debug_stop(event)
        return event

    def _debug_stop(self, event: DebugStop) -> CpuEvent:
        """Report a breakpoint, a step or a watchpoint (before its access, or after
        the instruction: the architecture's choice)."""
        self._watch_pc = None
        if event.watch is not None:
            if self.hart.debug_cpu.arch.gdb_stop_before_watchpoint:
                self._watch_pc = self.hart.debug_cpu.pc
            else:
                self.hart.step(over_watchpoint=True)
        return self._stopped(signal.SIGTRAP, event.watch)

    def _stopped(self, sig: int, watch=None) -> CpuEvent:
        self.paused = True
        self.action = None
        if self.stub is not None:
            self.stub.report(Stopped(sig, THREAD_ID, watch))
        return CpuStopped()

    # -- DebugTarget ---------------------------------------------------------------------
    @property
    def cpu(self) -> Cpu:
        return self.hart.debug_cpu

    def thread_ids(self) -> list[int]:
        return [THREAD_ID]

    def resume(self, action: Resume) -> None:
        self.action = action
        self.paused = False
        self._start_machine()

    def _start_machine(self) -> None:
        # gdb's continue starts a machine that -S or the monitor's stop left stopped
        # (QEMU's gdbstub calls vm_start).
        from machines.loop import RunState
        if self.loop is not None and self.loop.state in (RunState.PRELAUNCH,
                                                         RunState.PAUSED):
            self.loop.resume()

    def interrupt(self) -> None:
        # Packets are handled on the loop's thread between CPU runs: the hart is not
        # running now, so it stops here.
        if not self.paused:
            self._stopped(signal.SIGINT)

    def detach(self) -> None:
        self._drop_client()
        self.action = None
        self.paused = False
        self._start_machine()

    def kill(self) -> None:
        self._drop_client()
        if self.loop is not None:
            self.loop.request_shutdown(0)

    def monitor(self, command: str) -> str | None:
        return None

    # -- connections (I/O thread: read and post; loop thread: the rest) -----------------
    def _on_connect(self) -> None:
        try:
            conn = accepted(self.listener)
        except OSError:
            return
        self.loop.post(lambda: self._connected(conn))

    def _connected(self, conn: socket.socket) -> None:
        if self.conn is not None:  # one debugger at a time
            conn.close()
            return
        self.conn = conn
        conn.setblocking(True)
        self.stub = GdbStub(self, conn.sendall)
        self.stub.last_stop = Stopped(signal.SIGTRAP, THREAD_ID)
        self.paused = True  # a debugger that connects stops the machine
        self.action = None
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
