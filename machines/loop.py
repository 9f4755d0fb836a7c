"""The machine's main loop: the CPU, the virtual clock and host I/O, on one thread.

Devices are not thread-safe, so everything that touches them runs on the thread that
calls :meth:`MachineLoop.run`: the CPU (MMIO from guest code), timer callbacks (fired
by ``clock.run_due`` between CPU runs) and work that host I/O posts with
:meth:`MachineLoop.post`. One helper thread, started by ``run`` and stopped before it
returns, waits for what can happen while the CPU runs native code: a timer deadline,
a readable file descriptor (console input, the signal wake-up pipe) or a post. It then
calls ``cpu.stop()`` — QEMU's ``qemu_cpu_kick`` — so ``run`` returns and the loop
services it.

One round of the loop: run the CPU until its next event; service (posted work, due
timers); handle a shutdown or reset request; if the CPU went idle (WFI) and servicing
did nothing, sleep until the next deadline or a wake-up. A CPU that stays idle is never
polled: each extra round is caused by an event.
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from devices.base import TimerHandle, VirtualClock
from machines.cpu import Idle, SystemCpu


class MachineClock(VirtualClock):
    """A VirtualClock that tells a listener when a timer is armed before the deadline
    the listener is waiting for (the I/O thread must then wake earlier)."""

    def __init__(self, source: Callable[[], int] | None = time.monotonic_ns) -> None:
        super().__init__(source)
        self.on_earlier_timer: Callable[[int], None] | None = None

    @classmethod
    def manual(cls) -> MachineClock:
        return cls(source=None)

    def set_timer(self, deadline_ns: int, callback: Callable[[], None]) -> TimerHandle:
        handle = super().set_timer(deadline_ns, callback)
        if self.on_earlier_timer is not None:
            self.on_earlier_timer(deadline_ns)
        return handle


@dataclass(frozen=True, slots=True)
class Shutdown:
    """End the emulator with this exit status."""

    status: int


@dataclass(frozen=True, slots=True)
class Reset:
    """A guest-requested system reset."""


Request = Shutdown | Reset


class Resettable(Protocol):
    def reset(self) -> None:
        """Put the machine (devices, memory images, CPU) in its power-on state."""
        ...


class SerialFrontend(Protocol):
    """A device receiving console input (UART, HTIF): QEMU's chr_can_read/chr_read."""

    def can_receive(self) -> int: ...

    def receive(self, data: bytes) -> None: ...


class SerialInput:
    """Console input waiting for the guest: delivered as the frontend makes room
    (``pump`` after input arrives and whenever the guest reads a byte)."""

    def __init__(self, frontend: SerialFrontend | None = None) -> None:
        self.frontend = frontend
        self._pending: deque[int] = deque()

    def push(self, data: bytes) -> None:
        self._pending.extend(data)
        self.pump()

    def pump(self) -> None:
        if self.frontend is None:
            self._pending.clear()
            return
        while self._pending:
            room = self.frontend.can_receive()
            if room <= 0:
                return
            chunk = bytes(self._pending.popleft() for _ in range(min(room, len(self._pending))))
            self.frontend.receive(chunk)

    @property
    def pending(self) -> int:
        return len(self._pending)


class _Watcher(threading.Thread):
    """The I/O thread: sleeps in select() until a watched fd is readable, a timer
    deadline passes, or it is notified, and kicks the CPU for each of them."""

    def __init__(self, loop: MachineLoop) -> None:
        super().__init__(name="machine-io", daemon=True)
        self.loop = loop
        self.selector = selectors.DefaultSelector()
        self._notify_r, self._notify_w = os.pipe()
        os.set_blocking(self._notify_r, False)
        os.set_blocking(self._notify_w, False)
        self.selector.register(self._notify_r, selectors.EVENT_READ, None)
        self.stopping = False
        # fds epoll refuses (regular files, /dev/null: EPERM) never block, so they are
        # always readable: read them on every pass until their reader unwatches (EOF).
        self._always_ready: dict[int, Callable[[], None]] = {}
        self.kicked_for: int | None = None  # the deadline already kicked for
        self.waiting_for: int | None = None  # the deadline select() waits for

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        try:
            self.selector.register(fd, selectors.EVENT_READ, on_readable)
        except PermissionError:
            self._always_ready[fd] = on_readable
        self.notify()

    def unwatch(self, fd: int) -> None:
        self._always_ready.pop(fd, None)
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def notify(self) -> None:
        try:
            os.write(self._notify_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is already pending

    def earlier_timer(self, deadline: int) -> None:
        waiting = self.waiting_for
        if waiting is None or deadline < waiting:
            self.notify()

    def run(self) -> None:
        clock = self.loop.clock
        while not self.stopping:
            deadline = clock.next_deadline()
            if deadline is not None and self.kicked_for is not None and deadline <= self.kicked_for:
                deadline = None  # already kicked: the loop will fire it and notify us
            self.waiting_for = deadline
            timeout = None if deadline is None else max(0, deadline - clock.now_ns()) / 1e9
            if timeout is not None:
                # A deadline far away (mtimecmp = all ones after reset) overflows epoll's
                # millisecond timeout; waking once an hour to look again costs nothing.
                timeout = min(timeout, 3600.0)
            if self._always_ready:
                timeout = 0
                for on_readable in list(self._always_ready.values()):
                    on_readable()
            events = self.selector.select(timeout)
            self.waiting_for = None
            for key, _ in events:
                if key.data is None:
                    self._drain_notify()
                else:
                    key.data()
            if deadline is not None and clock.now_ns() >= deadline:
                self.kicked_for = deadline
                self.loop.kick()

    def _drain_notify(self) -> None:
        try:
            while os.read(self._notify_r, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.stopping = True
        self.notify()
        if self.is_alive():
            self.join()
        self.selector.close()
        os.close(self._notify_r)
        os.close(self._notify_w)


class MachineLoop:
    """Runs a CPU against a clock and host I/O until shutdown.

    Args:
        cpu: the hart to run.
        clock: the machine's clock (its timers fire only inside this loop).
        reset: puts the machine in its power-on state (``run`` calls it first, and on
            every guest reset).
        no_reboot: a guest reset ends the loop with status 0 instead (``-no-reboot``).
    """

    def __init__(self, cpu: SystemCpu, clock: MachineClock, reset: Callable[[], None], *,
                 no_reboot: bool = False) -> None:
        self.cpu = cpu
        self.clock = clock
        self._reset = reset
        self.no_reboot = no_reboot
        self._lock = threading.Lock()
        self._posted: deque[Callable[[], None]] = deque()
        self._request: Request | None = None
        self._wake = threading.Event()
        self._watcher: _Watcher | None = None
        self._watches: list[tuple[int, Callable[[], None]]] = []
        self.stats = {"rounds": 0, "sleeps": 0, "kicks": 0}

    # -- thread-safe requests -------------------------------------------------------------
    def kick(self) -> None:
        """Make the loop look at its work now: stop the CPU and end an idle sleep."""
        self.stats["kicks"] += 1
        self.cpu.stop()
        self._wake.set()

    def post(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the loop's thread soon (from any thread)."""
        with self._lock:
            self._posted.append(work)
        self.kick()

    def request_shutdown(self, status: int = 0) -> None:
        """End the loop with exit status ``status`` (power-off, quit, a signal). The
        first request wins (a shutdown also wins over a pending reset)."""
        with self._lock:
            if not isinstance(self._request, Shutdown):
                self._request = Shutdown(status)
        self.kick()

    def request_reset(self) -> None:
        with self._lock:
            if self._request is None:
                self._request = Reset()
        self.kick()

    def watch_fd(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable`` on the I/O thread whenever ``fd`` is readable; it must
        read what is there (and post work for the devices, never touch them)."""
        self._watches.append((fd, on_readable))
        if self._watcher is not None:
            self._watcher.watch(fd, on_readable)

    def unwatch_fd(self, fd: int) -> None:
        self._watches = [(f, cb) for f, cb in self._watches if f != fd]
        if self._watcher is not None:
            self._watcher.unwatch(fd)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Reset the machine and run it until a shutdown request; return its status."""
        self._reset()
        watcher = self._watcher = _Watcher(self)
        for fd, callback in self._watches:
            watcher.watch(fd, callback)
        self.clock.on_earlier_timer = watcher.earlier_timer
        watcher.start()
        try:
            while True:
                status = self._round()
                if status is not None:
                    return status
        finally:
            self.clock.on_earlier_timer = None
            self._watcher = None
            watcher.close()

    def _round(self) -> int | None:
        """One CPU run and what follows it; the exit status when the loop ends."""
        self.stats["rounds"] += 1
        event = self.cpu.run()
        while True:
            acted = self._service()
            with self._lock:
                request, self._request = self._request, None
            match request:
                case Shutdown(status=status):
                    return status
                case Reset():
                    if self.no_reboot:
                        return 0
                    self._reset()
                    return None
            if not isinstance(event, Idle) or acted:
                return None
            self._sleep()

    def _service(self) -> bool:
        """Run posted work and due timers; True if anything ran (the CPU may have an
        interrupt to take now)."""
        self._wake.clear()
        acted = False
        while True:
            with self._lock:
                if not self._posted:
                    break
                work = self._posted.popleft()
            work()
            acted = True
        if self.clock.run_due():
            acted = True
        watcher = self._watcher
        if watcher is not None and watcher.kicked_for is not None:
            watcher.kicked_for = None  # the kicked-for deadline has fired: watch the next
            watcher.notify()
        return acted

    def _sleep(self) -> None:
        """Idle (WFI): wait for the next timer deadline or a wake-up, never spin."""
        self.stats["sleeps"] += 1
        deadline = self.clock.next_deadline()
        if deadline is None:
            self._wake.wait()
        else:
            self._wake.wait(max(0, deadline - self.clock.now_ns()) / 1e9)
