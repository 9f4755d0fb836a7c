"""What Linux user mode needs to know about each guest architecture, and where to find it.

One module per architecture (``riscv64.py``) subclasses :class:`UserArch`: the Linux
ABI of that guest (syscall registers, the syscall instruction's length, which signal a
fault raises, the stack and TLS registers, AT_HWCAP and AT_PLATFORM, ``-cpu``
parsing, the signal frame and its return trampoline). The generic process
(``user/process.py``), loader and syscalls only use this interface and
:class:`GuestArch`; the per-architecture modules are imported on first lookup by name.
"""

from __future__ import annotations

import abc
import enum
import struct
from typing import ClassVar

from llvmtcg.arch import GuestArch
from llvmtcg.arch.lazy_registry import LazyRegistry
from llvmtcg.runtime.cpu_state import CpuState

# Guest architectures user mode runs: registry name -> module defining its UserArch.
USER_ARCH_MODULES: dict[str, str] = {
    "riscv64": "llvmtcg.user.arch.riscv64",
    "aarch64": "llvmtcg.user.arch.aarch64",
}


class UserArch(abc.ABC):
    """The Linux user-mode ABI of one guest architecture.

    Class attributes:
        name: the :class:`GuestArch` registry name this ABI belongs to.
        platform: the AT_PLATFORM string.
        uname_machine: ``uname -m``.
        task_size: bytes of user address space (Linux's TASK_SIZE): the size of the
            process's GuestMemory, with the stack at the top.
        syscall_insn_length: bytes of the syscall instruction; the guest resumes after
            it (a SYSCALL exit reports the pc of the instruction itself).
        stack_pointer, thread_pointer: the registers (members of the architecture's
            register enum) holding the stack pointer and the TLS pointer.
        signal_frame_size: bytes of the frame :meth:`build_signal_frame` makes.
        sigreturn_code: machine code that calls ``rt_sigreturn`` (where a handler
            returns to unless the program gave SA_RESTORER; Linux's vDSO has it).
    """

    name: ClassVar[str]
    platform: ClassVar[str]
    uname_machine: ClassVar[str]
    task_size: ClassVar[int]
    syscall_insn_length: ClassVar[int]
    stack_pointer: ClassVar[enum.IntEnum]
    thread_pointer: ClassVar[enum.IntEnum]
    signal_frame_size: ClassVar[int]
    sigreturn_code: ClassVar[bytes]
    # Open flags (O_*) whose bits differ from the host's (x86-64, which has the
    # asm-generic values riscv64 shares): (guest bit, host bit) pairs. arm64 swaps
    # O_DIRECTORY/O_NOFOLLOW with O_DIRECT/O_LARGEFILE (QEMU's fcntl_flags_tbl).
    open_flag_bits: ClassVar[tuple[tuple[int, int], ...]] = ()

    def open_flags_to_host(self, flags: int) -> int:
        """The host's spelling of the guest's O_* ``flags`` (open, pipe2, F_SETFL)."""
        return _swap_bits(flags, self.open_flag_bits, 0, 1)

    def open_flags_to_guest(self, flags: int) -> int:
        """The guest's spelling of the host's O_* ``flags`` (F_GETFL)."""
        return _swap_bits(flags, self.open_flag_bits, 1, 0)

    @abc.abstractmethod
    def make_arch(self, cpu: str | None = None) -> GuestArch:
        """The guest architecture for ``-cpu`` spec ``cpu`` (None: the default model).

        Raises:
            CpuModelError: an unknown model or property (one line for the user).
        """

    @abc.abstractmethod
    def cpu_help(self) -> str:
        """``-cpu help``: the models and properties, one or more lines."""

    @abc.abstractmethod
    def hwcap(self, arch: GuestArch) -> int:
        """AT_HWCAP for a CPU of ``arch`` (made by :meth:`make_arch`)."""

    # -- system calls: called on every one, so they read the state directly -----------------
    @abc.abstractmethod
    def syscall_number(self, state: CpuState) -> int: ...

    @abc.abstractmethod
    def syscall_args(self, state: CpuState) -> tuple[int, ...]:
        """The six argument registers."""

    @abc.abstractmethod
    def set_syscall_result(self, state: CpuState, value: int) -> None: ...

    # -- synchronous exceptions -------------------------------------------------------------
    @abc.abstractmethod
    def exception_signal(self, state: CpuState, exception_index: int
                         ) -> tuple[int, str] | None:
        """(signal number, one-line detail) Linux sends for the architecture's exception
        ``exception_index``, or None for one it does not know (the process then dies of
        SIGSEGV). Memory faults (the runtime's EXCP_MEM_FAULT, EXCP_MISALIGNED) are
        handled generically and never come here."""

    # -- signal delivery (Linux's setup_rt_frame / sys_rt_sigreturn) ------------------------
    @abc.abstractmethod
    def build_signal_frame(self, arch: GuestArch, state: CpuState, siginfo: bytes,
                           uc_stack: tuple[int, int, int], mask: int) -> bytes:
        """The ``rt_sigframe`` Linux writes for a handler: ``siginfo`` (128 bytes), the
        ucontext with ``uc_stack`` (ss_sp, ss_flags, ss_size), the blocked ``mask`` to
        restore, and every register of ``state``."""

    @abc.abstractmethod
    def enter_signal_handler(self, arch: GuestArch, state: CpuState, sig: int,
                             frame: int, handler: int, return_address: int) -> None:
        """Point ``state`` at ``handler(sig, &frame->info, &frame->uc)`` with the stack
        at ``frame`` and the return address ``return_address``."""

    @abc.abstractmethod
    def restore_signal_frame(self, arch: GuestArch, state: CpuState, frame: bytes
                             ) -> tuple[int, tuple[int, int, int]]:
        """rt_sigreturn: load every register from ``frame`` (the bytes at the stack
        pointer); return (the mask to restore, the saved uc_stack).

        Raises:
            BadSignalFrame: a field the kernel checks is wrong.
        """


def _swap_bits(value: int, pairs: tuple[tuple[int, int], ...], src: int, dst: int) -> int:
    """``value`` with each pair's ``src`` bit moved to its ``dst`` bit."""
    if not pairs:
        return value
    out = value
    for pair in pairs:
        out &= ~pair[src]
    for pair in pairs:
        if value & pair[src]:
            out |= pair[dst]
    return out


# The start of the rt_sigframe of Linux's 64-bit asm-generic ABIs (riscv64, arm64):
# siginfo (128 bytes), then the ucontext — uc_flags, uc_link, uc_stack, a 1024-bit
# uc_sigmask — whose uc_mcontext (the architecture's struct sigcontext) is at
# SIGFRAME_MCONTEXT.
SIGFRAME_SIGINFO = 128
SIGFRAME_UCONTEXT = SIGFRAME_SIGINFO  # &frame->uc, the handler's third argument
_UC_STACK = SIGFRAME_UCONTEXT + 16
_UC_SIGMASK = SIGFRAME_UCONTEXT + 40
SIGFRAME_MCONTEXT = SIGFRAME_UCONTEXT + 176
_STACK_T = struct.Struct("<QIiQ")  # ss_sp, ss_flags, padding, ss_size


def new_signal_frame(size: int, siginfo: bytes, uc_stack: tuple[int, int, int],
                     mask: int) -> bytearray:
    """A zeroed frame of ``size`` bytes with the generic part filled in: ``siginfo``,
    ``uc_stack`` (ss_sp, ss_flags, ss_size) and the blocked ``mask``; uc_flags and
    uc_link stay 0. The architecture writes its sigcontext after it."""
    frame = bytearray(size)
    frame[:SIGFRAME_SIGINFO] = siginfo[:SIGFRAME_SIGINFO].ljust(SIGFRAME_SIGINFO, b"\0")
    _STACK_T.pack_into(frame, _UC_STACK, uc_stack[0], uc_stack[1], 0, uc_stack[2])
    struct.pack_into("<Q", frame, _UC_SIGMASK, mask)
    return frame


def signal_frame_mask_and_stack(frame: bytes) -> tuple[int, tuple[int, int, int]]:
    """rt_sigreturn's generic part: the mask to restore and the saved uc_stack."""
    mask = struct.unpack_from("<Q", frame, _UC_SIGMASK)[0]
    ss_sp, ss_flags, _pad, ss_size = _STACK_T.unpack_from(frame, _UC_STACK)
    return mask, (ss_sp, ss_flags, ss_size)


class UnknownUserArchError(LookupError):
    """User mode has no ABI for this architecture."""

    def __str__(self) -> str:
        return str(self.args[0])


REGISTRY: LazyRegistry[UserArch] = LazyRegistry("user-mode ABI for", USER_ARCH_MODULES)


def register_user_arch(cls: type[UserArch]) -> type[UserArch]:
    """Make ``cls`` the user-mode ABI of architecture ``cls.name`` (a class decorator).

    Raises:
        ValueError: another class is registered for that architecture.
    """
    REGISTRY.register(cls.name, cls)
    return cls


def user_arch_names() -> list[str]:
    """Architectures whose Linux programs user mode runs, sorted."""
    return REGISTRY.names()


def user_arch(name: str) -> UserArch:
    """The user-mode ABI of architecture ``name``.

    Raises:
        UnknownUserArchError: user mode does not run that architecture.
    """
    cls = REGISTRY.get(name)
    if cls is None:
        raise UnknownUserArchError(f"user mode does not run {name} programs "
                                   f"(it runs: {', '.join(user_arch_names())})")
    return cls()


class BadSignalFrame(ValueError):
    """rt_sigreturn found a frame the kernel would refuse (the process gets SIGSEGV)."""
