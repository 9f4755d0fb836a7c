"""The gate between the guest's new file descriptors and the emulator's own.

A user-mode guest's file descriptors are the host process's, and Linux gives every
new one the lowest number free. A file the emulator opens at the same moment on
another thread takes that number, and the guest's ``open`` returns the next one: a
program printing the descriptor it got (or relying on 0-2 being reused) then differs
from Linux and qemu. The background compile thread does that once a process: its
first compile imports llvmlite and initialises LLVM (dlopen, /proc and /sys reads).

So the guest's descriptor-making system calls pass :meth:`FdGate.guest_call` and that
first compile runs inside :meth:`FdGate.emulator_files`. Guest calls never wait for
one another (a FIFO's open blocks until its other end opens: both must get in), only
for the emulator's files; the emulator's side waits until no guest call is inside,
so it is the one that waits when a guest call blocks for long (an ``accept``): only a
background compile is late then, never the guest.

The run loop opens files too, on the guest's own threads: code-cache reads when code
turns hot or a new page runs, entry writes. In a single-threaded guest these cannot
race a guest ``open`` (the same thread does both, one after the other); once the guest
has a second thread they can, and the gate cannot hold them back (a guest thread
blocked in ``accept`` would stall another one's run loop, which may be the thread that
was to connect: a deadlock). So :data:`EMULATOR_FILES` runs them, from then on, on a
thread of its own whose descriptor table is private (``unshare(CLONE_FILES)``, then
every copied descriptor closed): what it opens never appears in the guest's numbering.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["EMULATOR_FILES", "FD_GATE", "EmulatorFiles", "FdGate"]

T = TypeVar("T")
CLONE_FILES = 0x400


class FdGate:
    """Guest calls share it; the emulator's file-opening work has it alone."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._guest_calls = 0
        self._emulator = False

    @contextmanager
    def guest_call(self) -> Iterator[None]:
        """Around a guest system call that makes a file descriptor."""
        cond = self._cond
        with cond:
            while self._emulator:
                cond.wait()
            self._guest_calls += 1
        try:
            yield
        finally:
            with cond:
                self._guest_calls -= 1
                if not self._guest_calls:
                    cond.notify_all()

    @contextmanager
    def emulator_files(self) -> Iterator[None]:
        """Around emulator work off the guest's threads that may open files."""
        cond = self._cond
        with cond:
            while self._guest_calls or self._emulator:
                cond.wait()
            self._emulator = True
        try:
            yield
        finally:
            with cond:
                self._emulator = False
                cond.notify_all()


FD_GATE = FdGate()
# A child forked while another thread was inside the gate has that thread no more:
# it starts with the gate open (and a lock no thread holds).
os.register_at_fork(after_in_child=FD_GATE._reset)


class EmulatorFiles:
    """Runs the emulator's file work on a thread with a private descriptor table once
    the guest is multi-threaded (:meth:`guest_threads_started`); on the calling thread
    before (no round trip for single-threaded programs), and if the host refuses the
    private table (then the race stays: the documented limitation of before)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.shared = False  # the guest has (had) a second thread sharing the table
        self._thread: threading.Thread | None = None
        self._jobs = None  # a queue.SimpleQueue, with the thread
        self._start_lock = threading.Lock()
        # Held while the thread runs a job; a fork waits for it (a job may import a
        # module, e.g. tempfile for a write: a child inheriting its import lock held
        # would wait forever at its own import).
        self._busy = threading.Lock()
        self._private: bool | None = None  # whether unshare worked (None: not tried)
        self.calls = 0  # calls run on the private thread (tests, stats)

    def guest_threads_started(self) -> None:
        """The guest made a second thread: its threads can now open files while a run
        loop does (called before that thread runs)."""
        self.shared = True

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)``, on the private thread if the guest is multi-threaded; its
        result, or its exception raised here."""
        if not self.shared or self._private is False:
            return fn(*args)
        thread = self._thread
        if thread is None:
            thread = self._start()
            if self._private is False:
                return fn(*args)
        if threading.current_thread() is thread:
            return fn(*args)
        done = threading.Lock()
        done.acquire()
        box: list = []
        self._jobs.put((fn, args, box, done))
        done.acquire()
        ok, value = box
        if ok:
            return value
        raise value

    def _start(self) -> threading.Thread:
        with self._start_lock:
            if self._thread is None:
                import queue  # noqa: PLC0415 - multi-threaded guests only

                self._jobs = queue.SimpleQueue()
                ready = threading.Event()
                thread = threading.Thread(target=self._serve, args=(ready,),
                                          name="llvmtcg-files", daemon=True)
                # Process signals go to the guest's threads, never here (as for the
                # compile thread: see llvmtcg.user.host_signals): it starts with every
                # signal blocked and keeps them so.
                old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
                try:
                    thread.start()
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
                ready.wait()
                self._thread = thread
            return self._thread

    def _serve(self, ready: threading.Event) -> None:
        self._private = _private_descriptor_table()
        ready.set()
        if not self._private:
            return
        jobs = self._jobs
        while True:
            fn, args, box, done = jobs.get()
            with self._busy:
                try:
                    box[:] = (True, fn(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    box[:] = (False, exc)
                self.calls += 1
            done.release()
            del fn, args, box, done

    def _before_fork(self) -> None:
        self._busy.acquire()

    def _after_fork_in_parent(self) -> None:
        self._busy.release()


def _private_descriptor_table() -> bool:
    """Give the calling thread a descriptor table of its own, empty. Whether it could.

    unshare copies the table: every copy is closed at once (a copy of a guest pipe's
    write end would keep its reader from seeing EOF; POSIX locks belong to the table
    that took them, so closing the copies releases none of the guest's)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_FILES) != 0:
            return False
        close_range = getattr(libc, "close_range", None)
        if close_range is None or close_range(0, 0xFFFF_FFFF, 0) != 0:
            for name in os.listdir("/proc/thread-self/fd"):
                try:
                    os.close(int(name))
                except OSError:
                    pass
        return True
    except (OSError, AttributeError):
        return False


EMULATOR_FILES = EmulatorFiles()
# The child of a fork has one thread, and not the private one (started again on demand).
os.register_at_fork(before=EMULATOR_FILES._before_fork,
                    after_in_parent=EMULATOR_FILES._after_fork_in_parent,
                    after_in_child=EMULATOR_FILES._reset)
