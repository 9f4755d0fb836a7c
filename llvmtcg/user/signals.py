"""Guest signals: dispositions from rt_sigaction, the mask, the alternate stack, signals
waiting for delivery, how each disposition is mirrored on the host, and death by signal.

Where signals come from (docs/ARCHITECTURE.md, "User mode: signals"):

- From the host (``kill`` from outside, timers, SIGCHLD, SIGPIPE, the guest's own
  ``kill``): a signal with a guest handler gets the native catcher
  (:mod:`llvmtcg.user.host_signals`) as host disposition; the process delivers what it
  recorded between blocks or after the syscall it interrupted. The guest's SIG_IGN is
  the host's SIG_IGN and its SIG_DFL the host's SIG_DFL (so Ctrl-C, SIGPIPE or SIGTERM
  end the emulator as they would the guest, and ignored signals survive fork and execve
  through the host itself), except for signals whose default action dumps core: those
  are caught too and end the emulator without a core file of its own.
  The guest's mask is the host's, so the host keeps blocked signals pending.
- From the guest's CPU (faults, illegal instructions, ebreak): synchronous, delivered
  to a handler at once, or the process dies (a blocked or ignored one too, as Linux's
  ``force_sig``). The host keeps SIG_DFL for these numbers (a host fault of the
  emulator itself must kill it); the guest's ``kill`` of itself with one of them is
  queued here instead of going through the host.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import sys
from dataclasses import dataclass, field
from typing import Protocol

from llvmtcg.user.host_signals import set_host_disposition

SIG_DFL, SIG_IGN = 0, 1
NSIG = 64
# sa_flags (asm-generic). riscv64's struct sigaction has no sa_restorer field, so
# SA_RESTORER is accepted and has no effect: handlers return through our trampoline.
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 1, 2, 4
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x08000000, 0x10000000, 0x40000000, \
    0x80000000
SA_RESTORER = 0x04000000
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048
# si_code values (asm-generic siginfo.h).
SI_USER, SI_TKILL = 0, -6
SEGV_MAPERR, SEGV_ACCERR, BUS_ADRALN, ILL_ILLOPC, TRAP_BRKPT = 1, 2, 1, 1, 1
UNCATCHABLE = (signal.SIGKILL, signal.SIGSTOP)
UNBLOCKABLE_MASK = (1 << (signal.SIGKILL - 1)) | (1 << (signal.SIGSTOP - 1))
# glibc keeps these two for its threads; neither the host nor Python lets us have them.
HOST_RESERVED = (32, 33)
# Default actions (signal(7)): ignore, stop; every other signal terminates.
DEFAULT_IGNORE = frozenset({signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT})
DEFAULT_STOP = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
DEFAULT_CORE = frozenset({signal.SIGQUIT, signal.SIGILL, signal.SIGTRAP, signal.SIGABRT,
                          signal.SIGBUS, signal.SIGFPE, signal.SIGSEGV, signal.SIGXCPU,
                          signal.SIGXFSZ, signal.SIGSYS})
# Raised by the CPU; on the host they mean the emulator itself crashed.
SYNCHRONOUS = frozenset({signal.SIGILL, signal.SIGTRAP, signal.SIGBUS, signal.SIGFPE,
                         signal.SIGSEGV})
SIGNAL_DESCRIPTIONS = {
    signal.SIGILL: "Illegal instruction", signal.SIGSEGV: "Segmentation fault",
    signal.SIGBUS: "Bus error", signal.SIGTRAP: "Trace/breakpoint trap",
    signal.SIGFPE: "Floating point exception", signal.SIGABRT: "Aborted",
}


def sigbit(sig: int) -> int:
    return 1 << (sig - 1)


@dataclass(slots=True)
class SigAction:
    handler: int = SIG_DFL
    flags: int = 0
    mask: int = 0

    def pack(self) -> bytes:
        # riscv64's struct sigaction: handler, flags, mask (no sa_restorer field).
        return struct.pack("<QQQ", self.handler, self.flags, self.mask)

    @property
    def is_handler(self) -> bool:
        return self.handler not in (SIG_DFL, SIG_IGN)


def make_siginfo(sig: int, code: int, *, pid: int = 0, uid: int = 0, addr: int | None = None
                 ) -> bytes:
    """A 128-byte siginfo: _kill (si_pid, si_uid) or, with ``addr``, _sigfault."""
    if addr is not None:
        head = struct.pack("<iii4xQ", sig, 0, code, addr)
    else:
        head = struct.pack("<iii4xiI", sig, 0, code, pid, uid)
    return head.ljust(128, b"\0")


class HostCatcher(Protocol):
    def catch(self, sig: int, flags: int = 0) -> None: ...


@dataclass
class SignalState:
    """One thread's signal state: its mask, alternate stack and waiting signals, and
    the process's dispositions (``actions``, one dict shared by its threads).

    ``queued`` holds signals waiting for delivery with their siginfo: caught from the
    host, or raised by the guest at itself without the host. ``restore_mask`` is the
    mask rt_sigsuspend replaced, put back by the handler's sigreturn.
    """

    actions: dict[int, SigAction] = field(default_factory=dict)
    mask: int = 0
    altstack: tuple[int, int, int] = (0, SS_DISABLE, 0)  # ss_sp, ss_flags, ss_size
    queued: dict[int, bytes] = field(default_factory=dict)
    restore_mask: int | None = None
    catcher: HostCatcher | None = None

    def action(self, sig: int) -> SigAction:
        return self.actions.setdefault(sig, SigAction())

    def set_action(self, sig: int, act: SigAction) -> None:
        self.actions[sig] = act
        self.apply_host_disposition(sig, act.handler, act.flags)

    def ignored_signals(self) -> list[int]:
        return sorted(s for s, a in self.actions.items() if a.handler == SIG_IGN)

    def deliverable(self) -> int | None:
        """The queued signal to deliver next (synchronous ones first, then the lowest
        number, as Linux's ``next_signal``), or None."""
        ready = [s for s in self.queued if not self.mask & sigbit(s)]
        if not ready:
            return None
        sync = [s for s in ready if s in SYNCHRONOUS]
        return min(sync or ready)

    def pending_mask(self) -> int:
        out = 0
        for sig in self.queued:
            out |= sigbit(sig)
        return out

    def apply_host_disposition(self, sig: int, handler: int, flags: int = 0) -> None:
        """Mirror a guest disposition on the host (see the module's docstring)."""
        if sig in UNCATCHABLE or sig in HOST_RESERVED:
            return
        catch = self.catcher is not None and sig not in SYNCHRONOUS and (
            handler not in (SIG_DFL, SIG_IGN) or (handler == SIG_DFL and sig in DEFAULT_CORE))
        try:
            if catch:
                host_flags = flags & (SA_NOCLDSTOP | SA_NOCLDWAIT) \
                    if sig == signal.SIGCHLD else 0
                self.catcher.catch(sig, host_flags)
            else:
                set_host_disposition(sig, handler == SIG_IGN)
        except (OSError, ValueError):
            pass  # a number the host does not have


def apply_host_disposition(sig: int, handler: int) -> None:
    """Mirror SIG_DFL / SIG_IGN on the host (no catcher: before the process exists)."""
    SignalState().apply_host_disposition(sig, handler)


def setup_host_signals(state: SignalState, ignored: set[int]) -> None:
    """At start: every catchable signal at its default, except the ones the guest
    inherited as ignored (passed on by our own execve: Python's start-up resets some)."""
    for sig in range(1, NSIG + 1):
        if sig in UNCATCHABLE or sig in HOST_RESERVED:
            continue
        handler = SIG_IGN if sig in ignored else SIG_DFL
        if handler == SIG_IGN:
            state.actions[sig] = SigAction(SIG_IGN)
        state.apply_host_disposition(sig, handler)


def set_host_mask(mask: int) -> None:
    sigs = {s for s in range(1, NSIG + 1) if mask >> (s - 1) & 1 and s not in UNCATCHABLE
            and s not in HOST_RESERVED}
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
        set_host_disposition(sig, False)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
    except (OSError, ValueError):
        pass
    os._exit(128 + sig)  # a signal whose default action does not kill
