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

Threads: every guest thread is a host thread with its own :class:`SignalRecord` (slots,
pending flags, its CPU's ``exit_request`` address), found by the handler through a
pthread key, so the host's choice of thread (any thread not blocking a process signal;
the named one for ``tgkill``) is the guest thread that gets it, as on Linux.

The missed-signal window (QEMU's ``safe_syscall``): the process checks for pending
signals, then enters a blocking host syscall; a signal arriving in between would wait
for the syscall to return (maybe forever). Blocking calls therefore go through
``llvmtcg_safe_syscall`` (assembly, compiled with the handler): it tests the thread's
pending byte, then executes ``syscall``; if the handler interrupts it anywhere between
the test and the ``syscall`` instruction, it moves the interrupted pc to code returning
-EINTR. A signal before the test is seen by the test, one during the syscall makes the
host return EINTR, so none is missed.
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from dataclasses import dataclass


class _HostSigaction(ctypes.Structure):
    # glibc's x86-64 struct sigaction (glibc adds the restorer itself).
    _fields_ = [("sa_sigaction", ctypes.c_void_p), ("sa_mask", ctypes.c_uint64 * 16),
                ("sa_flags", ctypes.c_int), ("sa_restorer", ctypes.c_void_p)]


NSLOTS = 65  # signals 1..64, slot 0 unused
SIGINFO_SIZE = 128
SA_SIGINFO = 4
HANDLER_SYMBOL = "llvmtcg_host_signal"
SAFE_SYSCALL_SYMBOL = "llvmtcg_safe_syscall"
KEY_SYMBOL = "llvmtcg_signal_key"
DEFAULT_RECORD_SYMBOL = "llvmtcg_signal_default_record"
_EINTR = 4
# x86-64 ucontext_t: uc_flags, uc_link, uc_stack (24 bytes), then mcontext's gregs;
# REG_RIP is gregs[16].
_UC_RIP_OFFSET = 40 + 16 * 8


class SignalRecord(ctypes.Structure):
    """What the handler records for one guest thread: the address of its CPU's
    ``exit_request`` word, a pending byte per signal (byte 0: any) and siginfo slots."""

    _fields_ = [("exit_word", ctypes.c_uint64), ("flags", ctypes.c_uint8 * 72),
                ("infos", ctypes.c_uint8 * (NSLOTS * SIGINFO_SIZE))]

    @property
    def pending(self) -> bool:
        """Did any signal arrive since the last :meth:`take`? (one byte read)"""
        return self.flags[0] != 0

    @property
    def pending_address(self) -> int:
        """The address of the "any signal" byte (what safe_syscall tests)."""
        return ctypes.addressof(self) + SignalRecord.flags.offset

    def take(self) -> list[HostSignal]:
        """The signals recorded since the last call, lowest number first, and forget
        them. Host signals are blocked meanwhile, so a slot is not rewritten while it
        is read."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self.flags[0] = 0
            out = []
            for sig in range(1, NSLOTS):
                if self.flags[sig]:
                    self.flags[sig] = 0
                    start = sig * SIGINFO_SIZE
                    out.append(HostSignal(sig, bytes(self.infos[start:start
                                                                + SIGINFO_SIZE])))
            return out
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


_FLAGS = SignalRecord.flags.offset
_INFOS = SignalRecord.infos.offset

# safe_syscall(pending, nr, a1..a6) -> result or -errno (SysV: rdi, rsi, rdx, rcx, r8,
# r9, then the stack; Linux: rax, rdi, rsi, rdx, r10, r8, r9). Between _start and _end
# (exclusive: at _end the syscall ran) the handler rewinds to _interrupted.
_SAFE_SYSCALL_ASM = f"""
.text
.globl {SAFE_SYSCALL_SYMBOL}
.globl {SAFE_SYSCALL_SYMBOL}_start
.globl {SAFE_SYSCALL_SYMBOL}_end
.globl {SAFE_SYSCALL_SYMBOL}_interrupted
.p2align 4
{SAFE_SYSCALL_SYMBOL}:
    movq %rdi, %r11
    movq %rsi, %rax
    movq %rdx, %rdi
    movq %rcx, %rsi
    movq %r8, %rdx
    movq %r9, %r10
    movq 8(%rsp), %r8
    movq 16(%rsp), %r9
{SAFE_SYSCALL_SYMBOL}_start:
    cmpb $0, (%r11)
    jne {SAFE_SYSCALL_SYMBOL}_interrupted
    syscall
{SAFE_SYSCALL_SYMBOL}_end:
    ret
{SAFE_SYSCALL_SYMBOL}_interrupted:
    movq ${-_EINTR}, %rax
    ret
"""


def handler_ir() -> str:
    """The handler ``void (int sig, siginfo_t *info, void *uc)`` and safe_syscall:
    the handler finds the thread's record with ``pthread_getspecific(key)`` (NULL: a
    thread of the emulator's own, whose signals go to the default record). The key
    (an i32 cell holding it) and the default record are imports, as is
    ``pthread_getspecific`` (the process's own), so the text is the same in every
    process and its object comes from the code cache."""
    asm = "\n".join(f'module asm "{line}"' for line in _SAFE_SYSCALL_ASM.strip().split("\n"))
    safe = SAFE_SYSCALL_SYMBOL
    return f"""{asm}

declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare ptr @pthread_getspecific(i32)
@{KEY_SYMBOL} = external global i32
@{DEFAULT_RECORD_SYMBOL} = external global i8
declare void @{safe}_start()
declare void @{safe}_end()
declare void @{safe}_interrupted()

define void @{HANDLER_SYMBOL}(i32 %sig, ptr %info, ptr %uc) {{
entry:
  %ok = icmp ult i32 %sig, {NSLOTS}
  br i1 %ok, label %record, label %done
record:
  %key = load i32, ptr @{KEY_SYMBOL}
  %own = call ptr @pthread_getspecific(i32 %key)
  %none = icmp eq ptr %own, null
  %rec = select i1 %none, ptr @{DEFAULT_RECORD_SYMBOL}, ptr %own
  %i = zext i32 %sig to i64
  %off = mul i64 %i, {SIGINFO_SIZE}
  %off.infos = add i64 %off, {_INFOS}
  %slot = getelementptr i8, ptr %rec, i64 %off.infos
  call void @llvm.memcpy.p0.p0.i64(ptr %slot, ptr %info, i64 {SIGINFO_SIZE}, i1 false)
  %off.flag = add i64 %i, {_FLAGS}
  %flag = getelementptr i8, ptr %rec, i64 %off.flag
  store atomic volatile i8 1, ptr %flag seq_cst, align 1
  %any = getelementptr i8, ptr %rec, i64 {_FLAGS}
  store atomic volatile i8 1, ptr %any seq_cst, align 1
  %word.i = load i64, ptr %rec
  %has.word = icmp ne i64 %word.i, 0
  br i1 %has.word, label %stop, label %window
stop:
  %word = inttoptr i64 %word.i to ptr
  store atomic volatile i32 1, ptr %word seq_cst, align 4
  br label %window
window:
  %rip.p = getelementptr i8, ptr %uc, i64 {_UC_RIP_OFFSET}
  %rip = load i64, ptr %rip.p
  %lo = icmp uge i64 %rip, ptrtoint (ptr @{safe}_start to i64)
  %hi = icmp ult i64 %rip, ptrtoint (ptr @{safe}_end to i64)
  %inside = and i1 %lo, %hi
  br i1 %inside, label %rewind, label %done
rewind:
  store i64 ptrtoint (ptr @{safe}_interrupted to i64), ptr %rip.p
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
    """The native handler of one process, and the records of its threads.

    Args:
        compile_handler: compiles the handler's IR text with the given imports and
            returns the addresses of the handler and of safe_syscall (the CPU's JIT).
        exit_word: address of the first thread's CPU's ``exit_request`` word.
    """

    def __init__(self, compile_handler: Callable[[str, dict[str, int]], tuple[int, int]],
                 exit_word: int) -> None:
        # The key lives in a cell the handler loads (an import), not in its text.
        self._key_cell = ctypes.c_uint32()
        if _pthread_key_create(ctypes.byref(self._key_cell), None) != 0:
            raise OSError("pthread_key_create failed")
        self._key = self._key_cell.value
        self.main_record = SignalRecord()
        self.main_record.exit_word = exit_word
        self.handler_address, self.safe_syscall_address = compile_handler(handler_ir(), {
            KEY_SYMBOL: ctypes.addressof(self._key_cell),
            DEFAULT_RECORD_SYMBOL: ctypes.addressof(self.main_record),
            "pthread_getspecific": ctypes.cast(_pthread_getspecific, ctypes.c_void_p).value})
        self.attach(self.main_record)

    def new_record(self, exit_word: int) -> SignalRecord:
        """A record for a new thread (its CPU's ``exit_request`` word)."""
        record = SignalRecord()
        record.exit_word = exit_word
        return record

    def attach(self, record: SignalRecord) -> None:
        """Make ``record`` the calling host thread's (call on that thread, before it
        unblocks signals)."""
        _pthread_setspecific(self._key, ctypes.addressof(record))

    def detach(self) -> None:
        """The calling thread ends: its signals go nowhere of its own any more."""
        _pthread_setspecific(self._key, None)

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


_libc = ctypes.CDLL(None, use_errno=True)  # our own handle: argtypes stay private
_sigaction = _libc.sigaction
_sigaction.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_sigaction.restype = ctypes.c_int
_pthread_key_create = _libc.pthread_key_create
_pthread_key_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_pthread_key_create.restype = ctypes.c_int
_pthread_getspecific = _libc.pthread_getspecific
_pthread_setspecific = _libc.pthread_setspecific
_pthread_setspecific.argtypes = [ctypes.c_uint, ctypes.c_void_p]
_pthread_setspecific.restype = ctypes.c_int


def set_host_disposition(sig: int, ignore: bool) -> None:
    """SIG_IGN or SIG_DFL on the host through sigaction itself (Python's
    ``signal.signal`` works only on the main thread; guest threads are others).

    Raises:
        OSError: the host refused (a signal number it does not have).
    """
    action = _HostSigaction()
    action.sa_sigaction = 1 if ignore else 0
    if _sigaction(sig, ctypes.byref(action), None) != 0:
        raise OSError(ctypes.get_errno(), f"sigaction({sig})")
