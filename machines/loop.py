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

The loop also keeps QEMU's run state (``prelaunch`` with ``-S``, ``running``,
``paused`` after ``stop``, ``shutdown`` with ``-no-shutdown``): while not running it
runs posted work only (the monitor's commands), neither the CPU nor device timers.
Run-state changes are reported to ``listeners`` as QEMU's QAPI events (``STOP``,
``RESUME``, ``RESET``, ``SHUTDOWN``, ``POWERDOWN``) with their data, on this thread.

The I/O thread also serves character devices: ``watch_writable`` (an fd's output
drained) and ``call_later`` (host-time timers, e.g. a socket client's reconnect),
whose callbacks run on the I/O thread like ``watch_fd``'s.
"""

from __future__ import annotations

import enum
import heapq
import itertools
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
from machines.timerfd import MonotonicTimerFd


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
    """End the emulator with this exit status. ``reason`` is QEMU's ShutdownCause as
    the SHUTDOWN event names it."""

    status: int
    reason: str = "guest-shutdown"

    @property
    def guest(self) -> bool:
        return self.reason.startswith("guest")


@dataclass(frozen=True, slots=True)
class Reset:
    """A system reset (``reason``: QEMU's ShutdownCause, e.g. ``guest-reset``)."""

    reason: str = "guest-reset"

    @property
    def guest(self) -> bool:
        return self.reason.startswith("guest")


Request = Shutdown | Reset


class RunState(enum.Enum):
    """QEMU's RunState values the loop can be in (query-status names them)."""

    PRELAUNCH = "prelaunch"  # -S: reset, never run yet
    RUNNING = "running"
    PAUSED = "paused"  # stop
    SAVE_VM = "save-vm"  # savevm in progress
    RESTORE_VM = "restore-vm"  # loadvm in progress
    DEBUG = "debug"  # a debugger's breakpoint or step
    SHUTDOWN = "shutdown"  # the guest powered off under -no-shutdown

# A run-state event: QEMU's QAPI event name and its data (None: no data member).
EventListener = Callable[[str, "dict[str, object] | None"], None]


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
        self.on_drained: Callable[[], None] | None = None  # called when all was delivered

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
            if not self._pending and self.on_drained is not None:
                self.on_drained()

    @property
    def pending(self) -> int:
        return len(self._pending)


_DEADLINE = object()  # the selector key data of the deadline timerfd


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
        # A wake-up written and not drained yet: another one adds nothing (each costs
        # a syscall and this thread taking the GIL from the CPU's thread).
        self._notified = False
        self.stopping = False
        self._lock = threading.Lock()
        self._changes: deque[Callable[[], None]] = deque()
        self._readers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Callable[[], None]] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        # fds epoll refuses (regular files, /dev/null: EPERM) never block, so they are
        # always readable: read them on every pass until their reader unwatches (EOF).
        self._always_ready: dict[int, Callable[[], None]] = {}
        self.kicked_for: int | None = None  # the deadline already kicked for
        self.waiting_for: int | None = None  # the deadline select() waits for
        # A clock that follows CLOCK_MONOTONIC is watched through a timerfd: a new earlier
        # deadline re-arms it from the CPU's thread without waking this one (otherwise
        # select()'s timeout is the deadline, and an earlier one needs a wake-up).
        self._deadline_timer: MonotonicTimerFd | None = None
        if loop.clock.host_epoch_ns() is not None:
            try:
                self._deadline_timer = MonotonicTimerFd()
            except OSError:
                pass
            else:
                self.selector.register(self._deadline_timer.fd, selectors.EVENT_READ, _DEADLINE)

    # Selector changes are made on this thread only (the selector is not thread-safe):
    # from another thread they are queued and the thread is notified.
    def _change(self, change: Callable[[], None]) -> None:
        if threading.current_thread() is self:
            change()
            return
        with self._lock:
            self._changes.append(change)
        self.notify()

    def _apply_changes(self) -> None:
        while True:
            with self._lock:
                if not self._changes:
                    return
                change = self._changes.popleft()
            change()

    def _update(self, fd: int) -> None:
        mask = (selectors.EVENT_READ if fd in self._readers else 0) | (
            selectors.EVENT_WRITE if fd in self._writers else 0)
        try:
            if mask == 0:
                self.selector.unregister(fd)
            else:
                try:
                    self.selector.modify(fd, mask, fd)
                except KeyError:
                    self.selector.register(fd, mask, fd)
        except PermissionError:  # a regular file: always ready
            if fd in self._readers:
                self._always_ready[fd] = self._readers[fd]
        except (KeyError, ValueError, OSError):
            pass  # unregistering an fd already closed/unknown

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        def change() -> None:
            self._readers[fd] = on_readable
            self._update(fd)
        self._change(change)

    def unwatch(self, fd: int) -> None:
        def change() -> None:
            self._always_ready.pop(fd, None)
            if self._readers.pop(fd, None) is not None:
                self._update(fd)
        self._change(change)

    def watch_write(self, fd: int, on_writable: Callable[[], None]) -> None:
        def change() -> None:
            self._writers[fd] = on_writable
            self._update(fd)
        self._change(change)

    def unwatch_write(self, fd: int) -> None:
        def change() -> None:
            if self._writers.pop(fd, None) is not None:
                self._update(fd)
        self._change(change)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        when = time.monotonic() + delay_s
        self._change(lambda: heapq.heappush(self._timers,
                                            (when, next(self._timer_seq), callback)))

    def notify(self) -> None:
        if self._notified:
            return  # (this thread looks at everything again after draining it)
        self._notified = True
        try:
            os.write(self._notify_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is already pending

    def earlier_timer(self, deadline: int) -> None:
        if self._deadline_timer is not None:
            self._arm(deadline)
            return
        waiting = self.waiting_for
        if waiting is None or deadline < waiting:
            self.notify()

    def watch_next(self) -> None:
        """The deadline this thread kicked the CPU for has fired: watch the next one."""
        deadline = self.loop.clock.next_deadline()
        if deadline is None:
            return  # (the next set_timer arms or notifies: any deadline is earlier)
        if self._deadline_timer is not None:
            self._arm(deadline)
        else:
            self.notify()

    def _arm(self, deadline: int) -> None:
        epoch = self.loop.clock.host_epoch_ns()
        if epoch is not None:
            self._deadline_timer.arm_before(epoch + deadline)

    def _deadline_expired(self) -> None:
        """The timerfd fired: kick the CPU if the earliest deadline is due (once per
        deadline: the loop fires it and calls watch_next), else re-arm for it."""
        self._deadline_timer.expired()
        clock = self.loop.clock
        deadline = clock.next_deadline()
        if deadline is None:
            return
        if clock.now_ns() < deadline:
            self._arm(deadline)
        elif self.kicked_for is None or deadline > self.kicked_for:
            self.kicked_for = deadline
            self.loop.kick()

    def run(self) -> None:
        clock = self.loop.clock
        if self._deadline_timer is not None:
            self.watch_next()  # timers armed before the loop started
        while not self.stopping:
            self._apply_changes()
            deadline = None if self._deadline_timer is not None else clock.next_deadline()
            if deadline is not None and self.kicked_for is not None and deadline <= self.kicked_for:
                deadline = None  # already kicked: the loop will fire it and notify us
            self.waiting_for = deadline
            timeout = None if deadline is None else max(0, deadline - clock.now_ns()) / 1e9
            if timeout is not None:
                # A deadline far away (mtimecmp = all ones after reset) overflows epoll's
                # millisecond timeout; waking once an hour to look again costs nothing.
                timeout = min(timeout, 3600.0)
            if self._timers:
                host_wait = max(0.0, self._timers[0][0] - time.monotonic())
                timeout = host_wait if timeout is None else min(timeout, host_wait)
            if self._always_ready:
                timeout = 0
                for on_readable in list(self._always_ready.values()):
                    on_readable()
            events = self.selector.select(timeout)
            self.waiting_for = None
            for key, mask in events:
                if key.data is None:
                    self._drain_notify()
                    continue
                if key.data is _DEADLINE:
                    self._deadline_expired()
                    continue
                fd = key.data
                if mask & selectors.EVENT_READ and fd in self._readers:
                    self._readers[fd]()
                if mask & selectors.EVENT_WRITE and fd in self._writers:
                    self._writers[fd]()
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)[2]()
            if deadline is not None and clock.now_ns() >= deadline:
                self.kicked_for = deadline
                self.loop.kick()

    def _drain_notify(self) -> None:
        try:
            while os.read(self._notify_r, 512):
                pass
        except BlockingIOError:
            pass
        # Only now (the reads may have taken a byte written meanwhile): a notify that
        # skipped its write made its change before this, and this thread looks at
        # everything after; one from now on writes again.
        self._notified = False

    def close(self) -> None:
        self.stopping = True
        self.notify()
        if self.is_alive():
            self.join()
        self.selector.close()
        os.close(self._notify_r)
        os.close(self._notify_w)
        if self._deadline_timer is not None:
            self._deadline_timer.close()


_CONTINUE = object()  # a request was handled and the loop goes on


class MachineLoop:
    """Runs a CPU against a clock and host I/O until shutdown.

    Args:
        cpu: the hart to run.
        clock: the machine's clock (its timers fire only inside this loop).
        reset: puts the machine in its power-on state (``run`` calls it first, and on
            every guest reset).
        no_reboot: a reset ends the loop with status 0 instead (``-no-reboot``).
        no_shutdown: a guest power-off pauses the machine (run state ``shutdown``)
            instead of ending the loop (``-no-shutdown``).
        start_paused: begin in the ``prelaunch`` state (``-S``) until :meth:`resume`.
    """

    def __init__(self, cpu: SystemCpu, clock: MachineClock, reset: Callable[[], None], *,
                 no_reboot: bool = False, no_shutdown: bool = False,
                 start_paused: bool = False) -> None:
        self.cpu = cpu
        self.clock = clock
        self._reset = reset
        self.no_reboot = no_reboot
        self.no_shutdown = no_shutdown
        self.state = RunState.PRELAUNCH if start_paused else RunState.RUNNING
        self.listeners: list[EventListener] = []
        self.powerdown_handler: Callable[[], None] | None = None  # the machine's button
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

    def request_shutdown(self, status: int = 0, reason: str = "guest-shutdown") -> None:
        """End the loop with exit status ``status`` (power-off, quit, a signal). The
        first request wins (a shutdown also wins over a pending reset)."""
        with self._lock:
            if not isinstance(self._request, Shutdown):
                self._request = Shutdown(status, reason)
        self.kick()

    def request_reset(self, reason: str = "guest-reset") -> None:
        with self._lock:
            if self._request is None:
                self._request = Reset(reason)
        self.kick()

    def request_powerdown(self) -> None:
        """QEMU's system_powerdown: report POWERDOWN and press the machine's power
        button if it has one (riscv virt has none: the guest is not told)."""
        def powerdown() -> None:
            self._emit("POWERDOWN", None)
            if self.powerdown_handler is not None:
                self.powerdown_handler()
        self.post(powerdown)

    def watch_writable(self, fd: int, on_writable: Callable[[], None] | None) -> None:
        """Call ``on_writable`` on the I/O thread while ``fd`` is writable (None: stop)."""
        watcher = self._watcher
        if watcher is None:
            raise RuntimeError("watch_writable before the loop runs")
        if on_writable is None:
            watcher.unwatch_write(fd)
        else:
            watcher.watch_write(fd, on_writable)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the I/O thread after ``delay_s`` seconds of host time."""
        watcher = self._watcher
        if watcher is None:
            raise RuntimeError("call_later before the loop runs")
        watcher.call_later(delay_s, callback)

    # -- run state (on the loop's thread) ---------------------------------------------
    @property
    def running(self) -> bool:
        return self.state is RunState.RUNNING

    def pause(self, state: RunState = RunState.PAUSED) -> None:
        """QEMU's ``stop`` (``state``: DEBUG for a debugger's stop): the CPU and device
        timers stop until :meth:`resume`."""
        if self.state is RunState.RUNNING:
            self.state = state
            self._emit("STOP", None)

    def resume(self) -> None:
        """QEMU's ``cont`` (the caller refuses it in the ``shutdown`` state)."""
        if self.state is not RunState.RUNNING:
            self.state = RunState.RUNNING
            self._emit("RESUME", None)

    def emit(self, event: str, data: dict[str, object] | None) -> None:
        """Send a QAPI event to the listeners (the monitors), on the loop's thread:
        events that are not run-state changes (a job's JOB_STATUS_CHANGE)."""
        self._emit(event, data)

    def _emit(self, event: str, data: dict[str, object] | None) -> None:
        for listener in list(self.listeners):
            listener(event, data)

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
    def run(self, *, reset: bool = True) -> int:
        """Reset the machine and run it until a shutdown request; return its status.
        ``reset`` False: the caller has put the machine in its starting state
        (``-loadvm``)."""
        if reset:
            self._reset()
        watcher = self._watcher = _Watcher(self)
        for fd, callback in self._watches:
            watcher.watch(fd, callback)
        self.clock.on_earlier_timer = watcher.earlier_timer
        watcher.start()
        try:
            self._service(timers=False)  # work posted before the start (chardevs opening)
            while True:
                status = self._round() if self.running else self._paused_round()
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
            outcome = self._handle_request()
            if outcome is not None:
                return None if outcome is _CONTINUE else outcome
            if not self.running or not isinstance(event, Idle) or acted:
                return None
            self._sleep()

    def _paused_round(self) -> int | None:
        """Not running: posted work only (no CPU, no device timers), then wait."""
        acted = self._service(timers=False)
        outcome = self._handle_request()
        if outcome is not None:
            return None if outcome is _CONTINUE else outcome
        if not acted and not self.running:
            self._wake.wait()
        return None

    def _handle_request(self) -> object:
        """Act on a pending shutdown/reset: the exit status, _CONTINUE, or None when
        there was no request."""
        with self._lock:
            request, self._request = self._request, None
        match request:
            case Shutdown(status=status, reason=reason):
                self._emit("SHUTDOWN", {"guest": request.guest, "reason": reason})
                if self.no_shutdown and request.guest:
                    self.pause()
                    self.state = RunState.SHUTDOWN
                    return _CONTINUE
                return status
            case Reset(reason=reason):
                if self.no_reboot:  # QEMU turns the reset into a shutdown
                    return self._handle_shutdown_for_reset(reason)
                self._reset()
                self._emit("RESET", {"guest": request.guest, "reason": reason})
                if self.state is not RunState.RUNNING:
                    self.state = RunState.PRELAUNCH  # as QEMU after a reset while stopped
                return _CONTINUE
        return None

    def _handle_shutdown_for_reset(self, reason: str) -> object:
        with self._lock:
            self._request = Shutdown(0, reason)
        return self._handle_request()

    def _service(self, timers: bool = True) -> bool:
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
        if timers and self.clock.run_due():
            acted = True
        watcher = self._watcher
        if watcher is not None and watcher.kicked_for is not None:
            watcher.kicked_for = None  # the kicked-for deadline has fired: watch the next
            watcher.watch_next()
        return acted

    def _sleep(self) -> None:
        """Idle (WFI): wait for the next timer deadline or a wake-up, never spin."""
        self.stats["sleeps"] += 1
        deadline = self.clock.next_deadline()
        if deadline is None:
            self._wake.wait()
        else:
            self._wake.wait(max(0, deadline - self.clock.now_ns()) / 1e9)
