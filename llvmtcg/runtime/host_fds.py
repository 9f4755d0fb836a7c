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
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FD_GATE", "FdGate"]


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
