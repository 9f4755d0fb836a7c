"""Guest signals: dispositions recorded from rt_sigaction, mirrored on the host where
that gives the guest Linux's behaviour, and death by signal.

Guest handlers are recorded but not yet delivered (see docs/ARCHITECTURE.md, "User
mode"): a guest SIG_DFL or SIG_IGN becomes the same host disposition, so a signal from
outside (Ctrl-C, a broken pipe, kill) kills or is ignored by the emulator exactly as it
would the guest, and ignored signals and the signal mask are inherited across fork and
execve by the host itself. A synchronous fault (illegal instruction, bad access,
ebreak) kills the process with the matching signal; :func:`die_by_signal` makes the
emulator itself die of that signal, so the parent sees the status Linux would give
(128+n from a shell), as qemu-user does.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import sys
from dataclasses import dataclass, field

SIG_DFL, SIG_IGN = 0, 1
NSIG = 64
SA_RESTORER = 0x04000000  # absent on riscv64; accepted and ignored
UNCATCHABLE = (signal.SIGKILL, signal.SIGSTOP)
# Signals whose default action is to be ignored (or to stop/continue).
DEFAULT_IGNORE = {signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT}
SIGNAL_DESCRIPTIONS = {
    signal.SIGILL: "Illegal instruction", signal.SIGSEGV: "Segmentation fault",
    signal.SIGBUS: "Bus error", signal.SIGTRAP: "Trace/breakpoint trap",
    signal.SIGFPE: "Floating point exception", signal.SIGABRT: "Aborted",
}


@dataclass(slots=True)
class SigAction:
    handler: int = SIG_DFL
    flags: int = 0
    mask: int = 0

    def pack(self) -> bytes:
        # riscv64's struct sigaction: handler, flags, mask (no sa_restorer field).
        return struct.pack("<QQQ", self.handler, self.flags, self.mask)


@dataclass
class SignalState:
    actions: dict[int, SigAction] = field(default_factory=dict)
    mask: int = 0
    altstack: tuple[int, int, int] = (0, 2, 0)  # ss_sp, ss_flags (SS_DISABLE), ss_size

    def action(self, sig: int) -> SigAction:
        return self.actions.setdefault(sig, SigAction())

    def set_action(self, sig: int, act: SigAction) -> None:
        self.actions[sig] = act
        apply_host_disposition(sig, act.handler)

    def ignored_signals(self) -> list[int]:
        return sorted(s for s, a in self.actions.items() if a.handler == SIG_IGN)


def apply_host_disposition(sig: int, handler: int) -> None:
    """Mirror a guest disposition on the host (a guest handler: the default action for
    now, since handlers are not delivered yet)."""
    if sig in UNCATCHABLE:
        return
    try:
        signal.signal(sig, signal.SIG_IGN if handler == SIG_IGN else signal.SIG_DFL)
    except (OSError, ValueError):
        pass  # signals Python refuses (32, 33: used by the host libc's threads)


def setup_host_signals(state: SignalState, ignored: set[int]) -> None:
    """At start: every catchable signal at its default, except the ones the guest
    inherited as ignored (passed on by our own execve: Python's start-up resets some)."""
    for sig in range(1, NSIG + 1):
        if sig in UNCATCHABLE or sig in (32, 33):
            continue
        handler = SIG_IGN if sig in ignored else SIG_DFL
        if handler == SIG_IGN:
            state.actions[sig] = SigAction(SIG_IGN)
        apply_host_disposition(sig, handler)


def set_host_mask(mask: int) -> None:
    sigs = {s for s in range(1, NSIG + 1) if mask >> (s - 1) & 1 and s not in UNCATCHABLE
            and s not in (32, 33)}
    signal.pthread_sigmask(signal.SIG_SETMASK, sigs)


def die_by_signal(sig: int) -> None:
    """Terminate this process with ``sig`` (no core file), like the guest would be."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    try:
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
    except (OSError, ValueError):
        pass
    os._exit(128 + sig)  # a signal whose default action does not kill
