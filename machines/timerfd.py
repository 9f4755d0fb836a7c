"""A Linux timerfd on CLOCK_MONOTONIC, through ctypes (``os.timerfd_create`` is
Python 3.13): the machine loop's I/O thread sleeps on it for the virtual clock's next
deadline, and the CPU's thread re-arms it with one system call when the guest sets an
earlier timer, instead of waking the I/O thread to recompute its wait (a wake-up makes
that thread take the GIL from the CPU's; Linux rewrites stimecmp on every tick)."""

from __future__ import annotations

import ctypes
import os
import struct
import threading

_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int,
                                         ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class MonotonicTimerFd:
    """One-shot timer at an absolute ``time.monotonic_ns`` value; ``fd`` becomes
    readable when it expires. ``arm_before`` only ever moves the expiry earlier (or sets
    it when none is armed), so callers on several threads can each ask for their
    deadline and the earliest wins; ``expired`` (after the fd is readable) forgets it."""

    def __init__(self) -> None:
        if _LIBC is None:
            raise OSError("timerfd is not available")
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_CLOEXEC | _TFD_NONBLOCK)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = fd
        self._armed_ns: int | None = None  # the expiry set, until `expired` consumes it
        self._lock = threading.Lock()
        self._spec = _Itimerspec()

    def arm_before(self, when_ns: int) -> None:
        with self._lock:
            if self._armed_ns is not None and self._armed_ns <= when_ns:
                return
            self._armed_ns = when_ns
            # 0 would disarm the timer: a deadline already past is clamped to 1 ns,
            # which has passed too, so the fd is readable at once.
            when_ns = max(when_ns, 1)
            self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(when_ns, 1_000_000_000)
            spec = ctypes.byref(self._spec)
            if _LIBC.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, spec, None) < 0:
                raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def expired(self) -> None:
        """The fd was readable: consume its expiry count; nothing is armed now."""
        with self._lock:
            self._armed_ns = None
            try:
                struct.unpack("=Q", os.read(self.fd, 8))
            except BlockingIOError:
                pass  # re-armed later than now between the wake-up and this read

    def close(self) -> None:
        os.close(self.fd)
