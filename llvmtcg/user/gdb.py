"""gdb attached to a user-mode process (``llvmtcg-user -g PORT``, QEMU's ``-g``).

All-stop, every guest thread a gdb thread (its id the guest tid). The process waits for
the debugger before its first instruction.

- **Who does what.** One server thread owns the connection: it reads what gdb sends
  and answers it (``GdbStub.feed``), from the guest's stopped state. The guest threads
  run their code through :meth:`UserDebugger.run` instead of ``Cpu.run``; it returns the
  exits the process handles (syscalls, guest exceptions, host signals) and keeps the
  debugger's own stops (breakpoints, steps, watchpoints) to itself. While the guest
  runs, nothing but gdb's Ctrl-C is read; guest code runs without Python in between.
- **Stopping.** A thread that stops for gdb (a breakpoint, the end of its step, a
  watchpoint, a signal about to be delivered) *halts* the process: every other thread
  running guest code is asked to stop (``Cpu.stop``: the exit request native code
  checks at block entries) and parks at its next exit; a thread inside a syscall parks
  when the syscall returns (its registers are stable meanwhile, as a ptrace stop's
  are). Only when no thread runs guest code is the stop reported
  (``T05thread:TID;``), so gdb reads every thread's registers (``Hg`` selects one).
  Ctrl-C halts the same way and reports a SIGINT stop of the thread gdb had selected.
  A stop that comes while the process is already halted waits and is reported at the
  next resume, before anything runs (gdb's "pending events"); a thread parked at a
  breakpoint it has not reported simply hits it again.
- **Resuming.** ``c`` runs every thread; a step runs the stepping thread for one
  instruction and the others as gdb asked (``vCont;s:TID;c``: they run; ``vCont;s:TID``
  alone, or a plain ``s``: they stay parked). Breakpoints and watchpoints, which the
  stub sets on the selected CPU, are copied to every thread's CPU at each resume (and
  to a thread made later).

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
from collections import deque
from dataclasses import dataclass

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

EMULATOR = "llvmtcg-user"


def _is_debug_stop(exit_: CpuExit) -> bool:
    return exit_.reason is ExitReason.EXCEPTION and exit_.exception_index == EXCP_DEBUG


@dataclass(slots=True)
class _Thread:
    """The debugger's record of one guest thread."""

    tid: int
    cpu: Cpu
    in_guest: bool = False  # in Cpu.run/step (its registers are changing)
    report_step: bool = False  # its step ended in a syscall: report it once served
    watch_pc: int | None = None  # where a watchpoint stopped it, before the access
    resume_pc: int | None = None  # the pc it was reported stopped at
    signal_answer: int | None = None  # report_signal's answer, set at the resume


class UserDebugger:
    """The debugger side of one user-mode process (a :class:`DebugTarget`).

    Args:
        cpu: the CPU of the process's first thread.
        listener: the listening socket (``-g``), closed once gdb is connected.
        tid: the first thread's id (the process id).
    """

    def __init__(self, cpu: Cpu, listener: socket.socket, tid: int | None = None) -> None:
        first = os.getpid() if tid is None else tid
        self._listener: socket.socket | None = listener
        self.conn: socket.socket | None = None
        self.stub: GdbStub | None = None
        self._threads: dict[int, _Thread] = {first: _Thread(first, cpu, resume_pc=cpu.pc)}
        self._first = first
        self._selected = first  # Hg: whose registers gdb reads and writes
        self._stop_tid = first  # the thread of the last reported stop
        # _cond guards the thread records, _halted, _action and _pending; _stub_lock
        # the stub (feed and report come from different threads). Never take _stub_lock
        # while holding _cond.
        self._cond = threading.Condition()
        self._stub_lock = threading.RLock()
        self._halted = True  # gdb holds the process stopped
        self._action: Resume | None = None
        self._stepping = 0  # the tid that steps under the current action (0: none)
        self._others_run = True
        self._generation = 0  # counts resumes (a parked thread waits for the next)
        self._pending: deque[tuple[int, Stopped]] = deque()
        self._wake_r, self._wake_w = -1, -1
        self._server: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget_in_child)

    # -- DebugTarget -------------------------------------------------------------------
    @property
    def cpu(self) -> Cpu:
        with self._cond:
            record = self._threads.get(self._selected) or self._threads.get(
                self._stop_tid) or next(iter(self._threads.values()))
            return record.cpu

    def cpus(self) -> list[Cpu]:
        with self._cond:
            return [record.cpu for record in self._threads.values()]

    def thread_ids(self) -> list[int]:
        """The live threads, the one of the last stop first (gdb's current thread)."""
        with self._cond:
            tids = sorted(self._threads)
        if self._stop_tid in tids:
            tids.remove(self._stop_tid)
            tids.insert(0, self._stop_tid)
        return tids

    def current_thread(self) -> int:
        """The thread whose registers and memory gdb accesses (``Hg``; else the
        stopped one)."""
        with self._cond:
            if self._selected in self._threads:
                return self._selected
            if self._stop_tid in self._threads:
                return self._stop_tid
            return next(iter(self._threads))

    def select_thread(self, thread: int) -> None:
        """``Hg``, and the thread of a stop: unknown ids select the stopped thread."""
        if thread <= 0 or thread not in self._threads:
            thread = self._stop_tid
        self._selected = thread

    def thread_info(self, thread: int) -> str:
        with self._cond:
            tids = sorted(self._threads)
        index = tids.index(thread) if thread in tids else 0
        return f"CPU#{index} [running]"  # (QEMU's words for its CPUs)

    def resume(self, action: Resume) -> None:
        thread = action.thread
        stepper = thread if thread > 0 and thread in self._threads else self._stop_tid
        with self._cond:
            self._action = action
            self._stepping = stepper if action.kind is ResumeKind.STEP else 0
            self._others_run = action.kind is ResumeKind.CONTINUE or action.others_continue
            record = self._threads.get(self._stop_tid)
            if record is not None:
                record.signal_answer = action.signal
        self._copy_debug_state()
        self._release()

    def interrupt(self) -> None:
        """Ctrl-C: halt every thread, then report SIGINT (on the server thread)."""
        with self._cond:
            if self._halted:
                return
            self._halt_locked()
            tid = self._selected if self._selected in self._threads else self._stop_tid
        self._wait_quiet()
        self._report(tid, Stopped(signal.SIGINT, tid))

    def detach(self) -> None:
        self._close()

    def kill(self) -> None:
        # As QEMU: the emulator ends, status 0, with one line saying why.
        self._close()
        try:
            os.write(2, f"{EMULATOR}: terminated via the gdbstub\n".encode())
        except OSError:
            pass
        os._exit(0)

    def monitor(self, command: str) -> str | None:
        return None

    # -- threads -----------------------------------------------------------------------
    def add_thread(self, tid: int, cpu: Cpu) -> None:
        """A new guest thread (before it runs guest code): it gets the breakpoints and
        watchpoints, and parks if gdb holds the process."""
        with self._cond:
            self._threads[tid] = _Thread(tid, cpu)
        self._copy_debug_state()

    def remove_thread(self, tid: int) -> None:
        with self._cond:
            self._threads.pop(tid, None)
            self._cond.notify_all()

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
        self.stub.last_stop = Stopped(signal.SIGTRAP, self._first)
        self._wake_r, self._wake_w = os.pipe()
        self._server = threading.Thread(target=self._serve, name="gdbstub", daemon=True)
        self._server.start()

    def _close(self) -> None:
        """Forget the debugger: the guest runs on without it."""
        with self._stub_lock:
            stub, self.stub = self.stub, None
            if stub is not None:
                stub.clear()
            conn, self.conn = self.conn, None
        self._copy_debug_state()
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._wake()
        self._release()

    def _forget_in_child(self) -> None:
        # A forked guest runs without the debugger (as under QEMU); the server thread
        # did not come along, and its locks may have been held at the fork.
        self.stub = None
        self._cond = threading.Condition()
        self._stub_lock = threading.RLock()
        self._halted = False
        self._pending.clear()
        for record in self._threads.values():
            record.cpu.loop.breakpoints = record.cpu.tbs.breakpoints = frozenset()
            record.cpu.set_watchpoints(())
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _serve(self) -> None:
        """The server thread: feed what gdb sends to the stub until it goes away."""
        while True:
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
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._close()
                return
            with self._stub_lock:
                if self.stub is not None:
                    self.stub.feed(data)

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass

    # -- halting and resuming ----------------------------------------------------------
    def _halt_locked(self) -> None:
        """(Holding _cond.) Hold the process: every thread in guest code is asked to
        stop; each parks at its next exit."""
        self._halted = True
        self._action = None
        for record in self._threads.values():
            if record.in_guest:
                record.cpu.stop()

    def _wait_quiet(self) -> None:
        """Wait until no thread runs guest code (after _halt_locked)."""
        with self._cond:
            while self._halted and any(r.in_guest for r in self._threads.values()):
                self._cond.wait(0.5)
                for record in self._threads.values():
                    if record.in_guest:
                        record.cpu.stop()  # (again: it may have just re-entered)

    def _report(self, tid: int, event: Stopped) -> None:
        with self._cond:
            self._stop_tid = self._selected = tid
            record = self._threads.get(tid)
            if record is not None:
                record.resume_pc = record.cpu.pc
        with self._stub_lock:
            if self.stub is not None:
                self.stub.report(event)

    def _release(self) -> None:
        """gdb resumed (or went away): report a pending stop at once, or let the
        threads run."""
        while True:
            with self._cond:
                if self.stub is None or not self._pending:
                    self._halted = False
                    self._generation += 1
                    self._cond.notify_all()
                    return
                tid, event = self._pending.popleft()
                if tid not in self._threads:
                    continue
                self._halted = True
                self._action = None
            self._report(tid, event)
            return

    def _stop_here(self, record: _Thread, event: Stopped) -> None:
        """``record``'s thread stops for gdb: halt the process and report it, or (held
        already) queue it; then park until gdb resumes."""
        with self._cond:
            if self._halted:
                self._pending.append((record.tid, event))
                queued = True
            else:
                self._halt_locked()
                queued = False
        if not queued:
            self._wait_quiet()
            self._report(record.tid, event)
        self._park(record)

    def _park(self, record: _Thread) -> None:
        """Wait while gdb holds the process."""
        with self._cond:
            while self._halted and self.stub is not None:
                self._cond.wait()

    def _copy_debug_state(self) -> None:
        """Every thread's CPU gets the stub's breakpoints and watchpoints (the stub
        sets them on the selected CPU; a thread made later has none)."""
        stub = self.stub
        breakpoints = frozenset(stub.breakpoints) if stub is not None else frozenset()
        chosen = self.cpu
        watchpoints = chosen.softmmu.watchpoints if stub is not None else ()
        for record in list(self._threads.values()):
            cpu = record.cpu
            if cpu.loop.breakpoints != breakpoints:
                cpu.set_breakpoints(breakpoints)
            if cpu.softmmu.watchpoints != watchpoints:
                cpu.set_watchpoints(watchpoints)

    # -- running (on each guest thread) ------------------------------------------------
    def run(self, tid: int | None = None) -> CpuExit:
        """Run thread ``tid`` as gdb says until an exit the process must handle."""
        record = self._threads[self._first if tid is None else tid]
        cpu = record.cpu
        while True:
            if record.report_step:
                record.report_step = False
                self._stop_here(record, Stopped(signal.SIGTRAP, record.tid))
                continue
            with self._cond:
                while self._halted and self.stub is not None:
                    self._cond.wait()
                if self.stub is None:
                    detached = True
                else:
                    detached = False
                    stepping = self._stepping == record.tid
                    if self._stepping and not stepping and not self._others_run:
                        # (gdb steps another thread and holds this one)
                        generation = self._generation
                        while self._generation == generation and self.stub is not None:
                            self._cond.wait()
                        continue
                    first = stepping or record.resume_pc == cpu.pc and (
                        cpu.pc in cpu.breakpoints or cpu.pc == record.watch_pc)
                    record.resume_pc = None
                    record.in_guest = True
            if detached:
                return cpu.run()
            try:
                if first:
                    # A step, or the first instruction of a continue from the breakpoint
                    # or watchpoint this thread stopped at: one instruction, its
                    # breakpoint and watchpoint ignored.
                    exit_ = self._first_step(record)
                else:
                    exit_ = cpu.run()
            finally:
                with self._cond:
                    record.in_guest = False
                    self._cond.notify_all()
            if first:
                if not _is_debug_stop(exit_):
                    if stepping and exit_.reason is ExitReason.SYSCALL:
                        record.report_step = True  # (after the process served it)
                    return exit_
                if stepping or exit_.fault is not None or cpu.pc in cpu.breakpoints:
                    if (other := self._debug_stop(record, exit_)) is not None:
                        return other
                continue
            if _is_debug_stop(exit_):
                if (other := self._debug_stop(record, exit_)) is not None:
                    return other
                continue
            if exit_.reason is ExitReason.REQUESTED and self._halted:
                # Stopped for another thread's event or a Ctrl-C: park, then let the
                # process look at the request (a host signal may have come too).
                self._park(record)
            return exit_

    def _first_step(self, record: _Thread) -> CpuExit:
        """The first instruction of a resume: over the watchpoint that stopped it."""
        cpu = record.cpu
        if record.watch_pc is not None and record.watch_pc == cpu.pc:
            record.watch_pc = None
            return cpu.step_over_watchpoint()
        return cpu.step()

    def _debug_stop(self, record: _Thread, exit_: CpuExit) -> CpuExit | None:
        """Report a breakpoint, a step or a watchpoint (stopped before the access, or
        after the instruction: the architecture's choice). Returns an exit the process
        must handle instead."""
        watch: MemFault | None = exit_.fault
        record.watch_pc = None
        if watch is not None:
            if record.cpu.arch.gdb_stop_before_watchpoint:
                record.watch_pc = record.cpu.pc  # (resuming makes that access)
            else:
                exit_ = record.cpu.step_over_watchpoint()
                if not _is_debug_stop(exit_):
                    return exit_  # (the access faulted: the signal is reported instead)
        self._stop_here(record, Stopped(signal.SIGTRAP, record.tid, watch))
        return None

    def report_signal(self, sig: int, tid: int | None = None) -> int:
        """Thread ``tid`` is about to take (host) signal ``sig``: stop and let gdb
        decide. Returns the signal to deliver (0: none)."""
        record = self._threads.get(self._first if tid is None else tid)
        if self.stub is None or record is None:
            return sig
        record.report_step = False
        record.signal_answer = None
        self._stop_here(record, Stopped(sig, record.tid))
        answer = record.signal_answer
        if self.stub is None or answer is None:  # gdb went away: deliver it
            return sig
        return answer

    def report_end(self, event: Exited | Terminated) -> None:
        """The process ends: tell gdb (W or X packet) and close the connection."""
        with self._stub_lock:
            stub = self.stub
            if stub is None:
                return
            stub.report(event)
            stub.running = True  # (nothing more to answer)
        self._close()
