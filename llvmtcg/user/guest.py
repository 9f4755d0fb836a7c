"""What system calls see of the emulated process: a small typed interface.

Syscall handlers (``llvmtcg.user.syscalls``) are written against :class:`GuestProcess`,
never against :class:`llvmtcg.user.process.Process` (which implements it): they get
checked access to guest memory, the address space, the signal state and a few
operations on the process, and nothing of the CPU or the architecture.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from llvmtcg.log import Log
from llvmtcg.runtime.exits import Access
from llvmtcg.user.mm import AddressSpace
from llvmtcg.user.procfs import ProcFs
from llvmtcg.user.signals import SignalState
from llvmtcg.user.syscalls.strace import Strace

PATH_MAX = 4096


class GuestExit(Exception):
    """The guest called exit (``group`` False: this thread ends) or exit_group (the
    whole process ends)."""

    def __init__(self, status: int, group: bool = False) -> None:
        super().__init__(status)
        self.status = status
        self.group = group


class GuestKilled(Exception):
    """The guest dies of a signal (a fault it cannot handle)."""

    def __init__(self, sig: int, detail: str) -> None:
        super().__init__(detail)
        self.sig = sig
        self.detail = detail


class GuestMemoryView(Protocol):
    """Guest memory as a syscall reads and writes it: permissions are the guest's, a
    bad pointer raises GuestFault (the syscall returns -EFAULT), and writes drop
    translations of code they overwrite. Integers are little-endian."""

    def check(self, addr: int, size: int, access: Access = Access.READ) -> int:
        """Host address of guest [addr, addr+size) if every byte allows ``access``."""
        ...

    def check_prefix(self, addr: int, size: int,
                     access: Access = Access.READ) -> tuple[int, int]:
        """(host address, bytes usable up to the first inaccessible one)."""
        ...

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...

    def wrote(self, addr: int, size: int) -> None:
        """Guest bytes changed behind the softmmu (a host syscall filled a buffer)."""
        ...

    def read_str(self, addr: int, limit: int = PATH_MAX) -> bytes:
        """A NUL-terminated string (SyscallError ENAMETOOLONG past ``limit``)."""
        ...

    def read_str_array(self, addr: int, limit: int = 1 << 17) -> list[bytes]:
        """A NULL-terminated array of string pointers (argv, envp)."""
        ...

    def read_u32(self, addr: int) -> int: ...

    def read_u64(self, addr: int) -> int: ...

    def write_u32(self, addr: int, value: int) -> None: ...

    def write_u64(self, addr: int, value: int) -> None: ...


@runtime_checkable
class GuestProcess(GuestMemoryView, Protocol):
    """One emulated process, as its system calls see it."""

    log: Log
    strace: Strace | None  # -strace, or None
    space: AddressSpace  # brk, mmap and friends
    signals: SignalState  # dispositions and mask
    exe_path: str  # what /proc/self/exe names
    clear_child_tid: int  # set_tid_address / CLONE_CHILD_CLEARTID (this thread's)
    robust_list: int  # set_robust_list's head (this thread's; walked when it exits)
    vfork_fd: int  # a vfork child's end of the parent's wait pipe (closed on exec)
    procfs: ProcFs  # the emulated files of the process's own /proc directory

    @property
    def pid(self) -> int: ...

    @property
    def machine(self) -> str:
        """The machine name uname(2) reports (``riscv64``)."""
        ...

    def read_path(self, addr: int, sysroot: bool = True) -> bytes:
        """A path argument; with -L, absolute paths found under the sysroot come from
        there (for calls that look files up)."""
        ...

    def open_flags_to_host(self, flags: int) -> int:
        """The host's O_* bits for the guest's ``flags`` (arm64 numbers four differently)."""
        ...

    def open_flags_to_guest(self, flags: int) -> int:
        """The guest's O_* bits for the host's ``flags`` (F_GETFL)."""
        ...

    def reexec_options(self) -> list[str]:
        """The emulator options a guest execve passes on to the new emulator."""
        ...

    def thread_ids(self) -> frozenset[int]:
        """The tids of the process's live guest threads."""
        ...

    @property
    def tid(self) -> int:
        """The calling thread's id (the host thread's: guest threads are host threads)."""
        ...

    def spawn_thread(self, flags: int, newsp: int, parent_tid: int, tls: int,
                     child_tid: int) -> int:
        """clone of a thread (CLONE_VM|CLONE_THREAD...): start it; its tid."""
        ...

    def fork_start(self) -> None:
        """Before fork(): hold the runtime's locks, so no other thread holds one."""
        ...

    def fork_end(self, child: bool) -> None:
        """After fork() (both sides): release them; the child keeps only this thread."""
        ...

    def set_stack_pointer(self, sp: int) -> None:
        """Set the guest's stack pointer (a clone child's new stack)."""
        ...

    def set_thread_pointer(self, tp: int) -> None:
        """Set the guest's TLS register (CLONE_SETTLS)."""
        ...

    def invalidate_code(self, start: int, end: int) -> None:
        """Drop translations of guest code in [start, end) (an icache flush)."""
        ...

    # -- signals (the state is ``signals``; these need the CPU or the host) -----------------
    @property
    def stack_pointer(self) -> int: ...

    @property
    def signal_waiting(self) -> bool:
        """Did a signal arrive that the process will deliver (after this syscall)?"""
        ...

    def on_alt_stack(self, sp: int) -> bool:
        """Is ``sp`` on the alternate signal stack (Linux's on_sig_stack)?"""
        ...

    def set_altstack(self, ss_sp: int, ss_flags: int, ss_size: int) -> int:
        """sigaltstack's change: 0 or a negative errno (EPERM while on it)."""
        ...

    def set_mask(self, mask: int) -> None:
        """Block ``mask`` (never SIGKILL/SIGSTOP), on the host too."""
        ...

    def queue_signal(self, sig: int, siginfo: bytes) -> None:
        """Send the process a signal without the host (delivered after the syscall)."""
        ...

    def sigreturn(self) -> int:
        """rt_sigreturn: restore the registers and mask from the signal frame; the
        result is the restored return-value register.

        Raises:
            GuestKilled: the frame is unreadable or invalid (SIGSEGV, as Linux).
        """
        ...
