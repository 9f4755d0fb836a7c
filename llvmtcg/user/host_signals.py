"""Catching host signals meant for the guest: a native handler that records them.

A signal the guest handles arrives at the emulator process (``kill`` from outside, a
timer, SIGCHLD, SIGPIPE, the guest's own ``kill``). Python's own signal handling cannot
serve it: a Python handler only runs between bytecodes, never while guest code runs in
native code, which may spin forever. So the host handler is native code (a few LLVM
IR instructions compiled once per process): it copies the host ``siginfo`` into a slot
for that signal, marks the signal pending, and sets the CPU's ``exit_request`` word, so
the chain of native blocks stops at the next block entry and the process loop delivers
the signal (the run loop's common path is unchanged: it already tests that word). A
blocking host syscall the signal interrupts returns EINTR, since the handler is
installed without SA_RESTART; the process then decides, as Linux does, whether the
guest's syscall restarts.

Standard signals do not queue on Linux either; a real-time signal sent twice before
the guest takes it is delivered once (the slot keeps the last siginfo).
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from dataclasses import dataclass

NSLOTS = 65  # signals 1..64, slot 0 unused
SIGINFO_SIZE = 128
SA_SIGINFO = 4
HANDLER_SYMBOL = "llvmtcg_host_signal"


class _HostSigaction(ctypes.Structure):
    # glibc's x86-64 struct sigaction (glibc adds the restorer itself).
    _fields_ = [("sa_sigaction", ctypes.c_void_p), ("sa_mask", ctypes.c_uint64 * 16),
                ("sa_flags", ctypes.c_int), ("sa_restorer", ctypes.c_void_p)]


FLAGS_SYMBOL = "llvmtcg_signal_flags"
INFOS_SYMBOL = "llvmtcg_signal_infos"
EXIT_WORD_SYMBOL = "llvmtcg_signal_exit_word"


def handler_ir() -> str:
    """The handler ``void (int sig, siginfo_t *info, void *uc)``. The pending flags (one
    byte a signal, byte 0: any), the siginfo slots and the CPU's 32-bit
    ``exit_request`` word are imports, so the text is the same in every process (and
    its object comes from the code cache)."""
    return f"""
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
@{FLAGS_SYMBOL} = external global [{NSLOTS} x i8]
@{INFOS_SYMBOL} = external global [{NSLOTS * SIGINFO_SIZE} x i8]
@{EXIT_WORD_SYMBOL} = external global i32

define void @{HANDLER_SYMBOL}(i32 %sig, ptr %info, ptr %uc) {{
entry:
  %ok = icmp ult i32 %sig, {NSLOTS}
  br i1 %ok, label %record, label %done
record:
  %i = zext i32 %sig to i64
  %off = mul i64 %i, {SIGINFO_SIZE}
  %slot = getelementptr i8, ptr @{INFOS_SYMBOL}, i64 %off
  call void @llvm.memcpy.p0.p0.i64(ptr %slot, ptr %info, i64 {SIGINFO_SIZE}, i1 false)
  %flag = getelementptr i8, ptr @{FLAGS_SYMBOL}, i64 %i
  store atomic volatile i8 1, ptr %flag seq_cst, align 1
  store atomic volatile i8 1, ptr @{FLAGS_SYMBOL} seq_cst, align 1
  store atomic volatile i32 1, ptr @{EXIT_WORD_SYMBOL} seq_cst, align 4
  br label %done
done:
  ret void
}}
"""


@dataclass(frozen=True, slots=True)
class HostSignal:
    """One signal taken from the host: its number and the host's siginfo bytes."""

    sig: int
    info: bytes


class HostSignalCatcher:
    """The native handler for one process and what it recorded.

    Args:
        compile_handler: compiles the handler's IR text with the given imports and
            returns its address (the CPU's JIT).
        exit_word: address of the CPU's ``exit_request`` word.
    """

    def __init__(self, compile_handler: Callable[[str, dict[str, int]], int],
                 exit_word: int) -> None:
        self._flags = (ctypes.c_uint8 * NSLOTS)()
        self._infos = (ctypes.c_uint8 * (NSLOTS * SIGINFO_SIZE))()
        self._flags_addr = ctypes.addressof(self._flags)
        self._infos_addr = ctypes.addressof(self._infos)
        self.handler_address: int = compile_handler(handler_ir(), {
            FLAGS_SYMBOL: self._flags_addr, INFOS_SYMBOL: self._infos_addr,
            EXIT_WORD_SYMBOL: exit_word})

    @property
    def pending(self) -> bool:
        """Did any signal arrive since the last :meth:`take`? (one byte read)"""
        return self._flags[0] != 0

    def catch(self, sig: int, flags: int = 0) -> None:
        """Make the native handler the host disposition of ``sig`` (no SA_RESTART: a
        blocking host call it interrupts returns EINTR; every signal blocked while it
        runs). ``flags``: what the host kernel must honour for the guest (SIGCHLD's
        SA_NOCLDSTOP and SA_NOCLDWAIT: the host makes the children).

        Raises:
            OSError: the host refused (a signal number it does not have).
        """
        action = _HostSigaction()
        action.sa_sigaction = self.handler_address
        for i in range(16):
            action.sa_mask[i] = 0xFFFF_FFFF_FFFF_FFFF
        action.sa_flags = SA_SIGINFO | flags
        if _sigaction(sig, ctypes.byref(action), None) != 0:
            raise OSError(ctypes.get_errno(), f"sigaction({sig})")

    def take(self) -> list[HostSignal]:
        """The signals recorded since the last call, lowest number first, and forget
        them. Host signals are blocked meanwhile, so a slot is not rewritten while it
        is read."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self._flags[0] = 0
            out = []
            for sig in range(1, NSLOTS):
                if self._flags[sig]:
                    self._flags[sig] = 0
                    start = sig * SIGINFO_SIZE
                    out.append(HostSignal(sig, bytes(self._infos[start:start
                                                                 + SIGINFO_SIZE])))
            return out
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


_libc = ctypes.CDLL(None, use_errno=True)  # our own handle: argtypes stay private
_sigaction = _libc.sigaction
_sigaction.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_sigaction.restype = ctypes.c_int
