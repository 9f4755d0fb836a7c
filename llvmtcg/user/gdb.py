"""gdb attached to a user-mode process (``llvmtcg-user -g PORT``, QEMU's ``-g``).

The process waits for the debugger before its first instruction. While the guest is
stopped this thread serves the connection (blocking reads); while it runs, a watcher
thread waits for bytes from gdb and only then asks the CPU to stop (``Cpu.stop``: the
exit request native code checks at block entries), so the guest's code runs without
Python in between. The process's loop calls :meth:`UserDebugger.run` instead of
``Cpu.run``: it returns the exits the process handles (syscalls, guest exceptions,
host signals) and keeps the debugger's stops (breakpoints, steps, Ctrl-C) to itself.
Signals the guest is about to take synchronously are reported to gdb first
(:meth:`report_signal`), which may pass them on, change or drop them; the end of the
process is reported as gdb's W (exit status) or X (signal) packet.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading

from llvmtcg.gdbstub import (
    Exited,
    GdbStub,
    Resume,
    ResumeKind,
    Stopped,
    Terminated,
    accepted,
)
from llvmtcg.ir import ExitReason
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.exits import EXCP_DEBUG, CpuExit, MemFault
from llvmtcg.user.guest import GuestExit


def _is_debug_stop(exit_: CpuExit) -> bool:
    return exit_.reason is ExitReason.EXCEPTION and exit_.exception_index == EXCP_DEBUG


class UserDebugger:
    """The debugger side of one user-mode process (a :class:`DebugTarget`).

    Args:
        cpu: the process's CPU.
        listener: the listening socket (``-g``), closed once gdb is connected.
    """

    def __init__(self, cpu: Cpu, listener: socket.socket) -> None:
        self._cpu = cpu
        self._listener: socket.socket | None = listener
        self.conn: socket.socket | None = None
        self.stub: GdbStub | None = None
        self.action: Resume | None = None
        self._interrupted = False
        self._report_step = False  # a step ended in a syscall: report it when served
        self._watch_pc: int | None = None  # where a watchpoint stopped before an access
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._data_waiting = False
        self._wake_r, self._wake_w = -1, -1
        self._watcher: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget_in_child)

    # -- DebugTarget -------------------------------------------------------------------
    @property
    def cpu(self) -> Cpu:
        return self._cpu

    def cpus(self) -> list[Cpu]:
        return [self._cpu]

    def thread_ids(self) -> list[int]:
        return [os.getpid()]  # one thread; gdb's thread id is the (host) tid

    def current_thread(self) -> int:
        return os.getpid()

    def select_thread(self, thread: int) -> None:
        pass  # (the only thread)

    def thread_info(self, thread: int) -> str:
        return "CPU#0 [running]"  # (QEMU's words for its CPU)

    def resume(self, action: Resume) -> None:
        self.action = action

    def interrupt(self) -> None:
        self._interrupted = True

    def detach(self) -> None:
        self._close()

    def kill(self) -> None:
        # As QEMU: the emulator ends, status 0, with one line saying why.
        self._close()
        try:
            os.write(2, b"llvmtcg-user: terminated via the gdbstub\n")
        except OSError:
            pass
        raise GuestExit(0)

    def monitor(self, command: str) -> str | None:
        return None

    # -- connection --------------------------------------------------------------------
    def wait_for_client(self) -> None:
        """Block until gdb connects; the guest is stopped before its first instruction
        until gdb resumes it."""
        listener, self._listener = self._listener, None
        try:
            self.conn = accepted(listener)
        finally:
            listener.close()
        self.stub = GdbStub(self, self.conn.sendall)
        self.stub.last_stop = Stopped(signal.SIGTRAP, os.getpid())
        self._wake_r, self._wake_w = os.pipe()
        self._watcher = threading.Thread(target=self._watch, name="gdbstub", daemon=True)
        self._watcher.start()

    def _close(self) -> None:
        """Forget the debugger: the guest runs on without it."""
        stub, self.stub = self.stub, None
        if stub is not None:
            stub.clear()
        self.action = None
        with self._lock:
            self._running.clear()
            conn, self.conn = self.conn, None
            if conn is not None:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
        self._wake()

    def _forget_in_child(self) -> None:
        # A forked guest runs without the debugger (as under QEMU); the watcher thread
        # did not come along.
        self.stub = None
        self.action = None
        self._cpu.loop.breakpoints = self._cpu.tbs.breakpoints = frozenset()
        self._cpu.set_watchpoints(())
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self._running = threading.Event()

    def _serve(self) -> None:
        """Answer gdb until it resumes the guest (or goes away)."""
        while self.stub is not None and self.action is None:
            try:
                data = self.conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._close()
                return
            self.stub.feed(data)

    def _read_waiting(self) -> None:
        """While running: take what gdb sent (a Ctrl-C, or a hang-up)."""
        if self.conn is None:
            return
        try:
            data = self.conn.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close()
            return
        self.stub.feed(data)

    # -- the watcher thread --------------------------------------------------------------
    def _watch(self) -> None:
        while True:
            self._running.wait()
            conn = self.conn
            if conn is None:
                return
            try:
                ready, _, _ = select.select([conn, self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 64)
                except OSError:
                    return
                continue
            with self._lock:
                if self._running.is_set():
                    self._running.clear()
                    self._data_waiting = True
                    self._cpu.stop()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass

    def _pause_watcher(self) -> None:
        with self._lock:
            self._running.clear()
        self._wake()

    # -- running -------------------------------------------------------------------------
    def _stop(self, sig: int, watch: MemFault | None = None) -> None:
        self._pause_watcher()
        self._interrupted = False
        self.action = None
        if self.stub is not None:
            self.stub.report(Stopped(sig, os.getpid(), watch))

    def _debug_stop(self, exit_: CpuExit) -> CpuExit | None:
        """Report a breakpoint, a step or a watchpoint (stopped before the access, or
        after the instruction: the architecture's choice). Returns an exit the process
        must handle instead."""
        watch = exit_.fault
        self._watch_pc = None
        if watch is not None:
            if self._cpu.arch.gdb_stop_before_watchpoint:
                self._watch_pc = self._cpu.pc  # (resuming makes that access)
            else:
                exit_ = self._cpu.step_over_watchpoint()
                if not _is_debug_stop(exit_):
                    return exit_  # (the access faulted: the signal is reported instead)
        self._stop(signal.SIGTRAP, watch)
        return None

    def _first_step(self) -> CpuExit:
        """The first instruction of a resume: over the watchpoint that stopped it."""
        cpu = self._cpu
        if self._watch_pc is not None and self._watch_pc == cpu.pc:
            self._watch_pc = None
            return cpu.step_over_watchpoint()
        return cpu.step()

    def run(self) -> CpuExit:
        """Run the guest as gdb says until an exit the process must handle."""
        cpu = self._cpu
        while True:
            if self.stub is None:
                return cpu.run()
            if self._report_step:
                self._report_step = False
                self._stop(signal.SIGTRAP)
            if self.action is None:
                self._serve()
                continue
            if self._data_waiting:
                self._data_waiting = False
                self._read_waiting()
                if self._interrupted:
                    self._stop(signal.SIGINT)
                continue
            stepping = self.action.kind is ResumeKind.STEP
            if stepping or cpu.pc in cpu.breakpoints or cpu.pc == self._watch_pc:
                # A step, or the first instruction of a continue from a breakpoint or
                # a watchpoint: one instruction, its breakpoint and watchpoint ignored.
                exit_ = self._first_step()
                if not _is_debug_stop(exit_):
                    if stepping and exit_.reason is ExitReason.SYSCALL:
                        self._report_step = True  # (after the process served it)
                    return exit_
                if stepping or exit_.fault is not None or cpu.pc in cpu.breakpoints:
                    if (other := self._debug_stop(exit_)) is not None:
                        return other
                    continue
            with self._lock:
                if not self._running.is_set():
                    self._running.set()
            exit_ = cpu.run()
            if _is_debug_stop(exit_):
                if (other := self._debug_stop(exit_)) is not None:
                    return other
                continue
            if exit_.reason is ExitReason.REQUESTED and self._data_waiting:
                continue  # (gdb sent something: read above)
            return exit_

    def report_signal(self, sig: int) -> int:
        """The guest is about to take (host) signal ``sig``: stop and let gdb decide.
        Returns the signal to deliver (0: none)."""
        if self.stub is None:
            return sig
        self._report_step = False
        self._stop(sig)
        self._serve()
        action = self.action
        if action is None:  # gdb went away: deliver it
            return sig
        return action.signal

    def report_end(self, event: Exited | Terminated) -> None:
        """The process ends: tell gdb (W or X packet) and close the connection."""
        if self.stub is None:
            return
        self._pause_watcher()
        self.stub.report(event)
        self.stub.running = True  # (nothing more to answer)
        self._close()
