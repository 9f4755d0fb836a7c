"""One emulated Linux process: its CPU, address space and signals, the run loop that
serves system calls, and the way it ends (exit status or death by signal).

Like QEMU's ``cpu_loop``: run guest code until it stops; a syscall is dispatched and
the guest resumes after its syscall instruction; a synchronous exception becomes a
signal. Generic: what differs between guest architectures comes from the program's
:class:`llvmtcg.user.arch.UserArch` (the Linux ABI) and its
:class:`llvmtcg.arch.GuestArch` (the CPU).
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from dataclasses import dataclass

from llvmtcg.ir import ExitReason
from llvmtcg.ir.cpu_layout import PAGE_SIZE
from llvmtcg.log import Log
from llvmtcg.options import DEFAULT_OPTIONS, RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.exits import (
    EXCP_MEM_FAULT,
    EXCP_MISALIGNED,
    Access,
    CpuExit,
    FaultKind,
    GuestFault,
    MemFault,
)
from llvmtcg.runtime.softmmu import GuestMemory, page_floor
from llvmtcg.user import syscalls
from llvmtcg.user.arch import user_arch
from llvmtcg.user.elf import ElfImage
from llvmtcg.user.guest import PATH_MAX, GuestExit, GuestKilled
from llvmtcg.user.loader import Program, load_program, sysroot_path
from llvmtcg.user.mm import AddressSpace
from llvmtcg.user.signals import (
    SIGNAL_DESCRIPTIONS,
    SignalState,
    die_by_signal,
    setup_host_signals,
)
from llvmtcg.user.syscalls.strace import Strace, signal_name

EMULATOR = "llvmtcg-user"


@dataclass
class UserConfig:
    """Emulator settings that carry over to programs the guest execs."""

    sysroot: str | None = None
    cpu: str | None = None  # -cpu (None: the architecture's default model)
    strace: bool = False
    log_items: str = ""
    log_file: str | None = None
    debug: bool = False
    code_cache: bool = True
    cache_dir: str | None = None  # -cache-dir (None: options.default_cache_dir())
    perfmap: bool = False
    runtime: RuntimeOptions = DEFAULT_OPTIONS  # what the flags above and $LLVMTCG_* make

    def reexec_options(self) -> list[str]:
        opts: list[str] = []
        if self.sysroot:
            opts += ["-L", self.sysroot]
        if self.cpu is not None:
            opts += ["-cpu", self.cpu]
        if self.strace:
            opts.append("-strace")
        if self.log_items:
            opts += ["-d", self.log_items]
        if self.log_file:
            opts += ["-D", self.log_file]  # appended to by the new process
        if not self.code_cache:
            opts.append("-no-cache")
        if self.cache_dir:
            opts += ["-cache-dir", self.cache_dir]
        if self.perfmap:
            opts.append("-perfmap")
        return opts


class Process:
    """A guest process (one thread); implements :class:`llvmtcg.user.guest.GuestProcess`,
    the interface its system calls see.

    Args:
        config: emulator options.
        image: the validated program (its ``arch`` picks the guest architecture).
        argv, envp: the guest's arguments and environment.
        execfn: the path the program was started with (AT_EXECFN).
        log: ``-d`` logging (and ``-strace`` output).

    Raises:
        CpuModelError: ``config.cpu`` names no model of the program's architecture.
    """

    def __init__(self, config: UserConfig, image: ElfImage, argv: list[bytes],
                 envp: list[bytes], execfn: str, log: Log) -> None:
        syscalls.load_handlers()
        self.config = config
        self.log = log
        self.strace = Strace(log.stream) if config.strace else None
        self.user_arch = user_arch(image.arch)
        self.arch = self.user_arch.make_arch(config.cpu)
        self.memory = GuestMemory(self.user_arch.task_size)
        self.space = AddressSpace(self.memory)
        self.cpu = Cpu(self.arch, self.memory, options=config.runtime, log=log)
        self.mmu_index = self.arch.mmu_index(self.cpu.state)
        self.image = image
        self.exe_path = os.path.abspath(image.path)
        self.signals = SignalState()
        self.clear_child_tid = 0
        self.vfork_fd = -1
        self.program: Program = load_program(self.space, image, argv, envp, execfn,
                                             self.user_arch.hwcap(self.arch),
                                             self.user_arch.platform, config.sysroot)
        self.set_stack_pointer(self.program.sp)
        self.cpu.pc = self.program.pc
        if log.enabled("page"):
            self.log_mappings()

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def machine(self) -> str:
        return self.user_arch.uname_machine

    def reexec_options(self) -> list[str]:
        return self.config.reexec_options()

    def set_stack_pointer(self, sp: int) -> None:
        self.arch.reg_write(self.cpu.state, self.user_arch.stack_pointer, sp)

    def set_thread_pointer(self, tp: int) -> None:
        self.arch.reg_write(self.cpu.state, self.user_arch.thread_pointer, tp)

    def invalidate_code(self, start: int, end: int) -> None:
        self.cpu.invalidate_range(start, end)

    def log_mappings(self) -> None:
        lines = ["guest mappings:"]
        for r in self.memory.regions():
            perms = "".join(c if r.perms & bit else "-" for c, bit in (("r", 1), ("w", 2),
                                                                        ("x", 4)))
            lines.append(f"  {r.start:016x}-{r.end:016x} {perms}")
        p = self.program
        lines.append(f"  entry {p.pc:#x} sp {p.sp:#x} brk {self.space.brk:#x}")
        self.log.write("\n".join(lines))

    # -- guest memory, as syscalls see it ---------------------------------------------------
    def check(self, addr: int, size: int, access: Access = Access.READ) -> int:
        """Host address of guest [addr, addr+size) if every byte allows ``access``;
        GuestFault (the syscall returns -EFAULT) otherwise."""
        if size <= 0:
            return self.memory.base + addr
        pos, end = addr, addr + size
        while pos < end:
            region, _ = self.memory.translate(pos, access, self.mmu_index)
            if region.mmio is not None:
                raise GuestFault(MemFault(pos, access, FaultKind.PROTECTION))
            pos = region.end
        return self.memory.base + addr

    def check_prefix(self, addr: int, size: int, access: Access = Access.READ) \
            -> tuple[int, int]:
        """(host address, bytes usable) for a buffer Linux would use up to the first
        inaccessible byte (read/write transfer that much); GuestFault if none is."""
        pos, end = addr, addr + size
        while pos < end:
            try:
                region, _ = self.memory.translate(pos, access, self.mmu_index)
            except GuestFault:
                if pos == addr:
                    raise
                break
            if region.mmio is not None:
                break
            pos = region.end
        return self.memory.base + addr, min(pos, end) - addr

    def read(self, addr: int, size: int) -> bytes:
        return self.memory.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self.memory.write(addr, data)
        self.wrote(addr, len(data))

    def wrote(self, addr: int, size: int) -> None:
        """Guest bytes changed behind the softmmu (a host syscall filled a buffer):
        drop translations of code there."""
        if size > 0 and any(self.cpu.tbs.page_has_code(p)
                            for p in range(page_floor(addr), addr + size, PAGE_SIZE)):
            self.cpu.invalidate_range(addr, addr + size)

    def read_str(self, addr: int, limit: int = PATH_MAX) -> bytes:
        """A NUL-terminated guest string (GuestFault if unreadable, ENAMETOOLONG past
        ``limit``)."""
        out = bytearray()
        while True:
            chunk = PAGE_SIZE - (addr & (PAGE_SIZE - 1))
            data = self.memory.read(addr, chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                out += data[:nul]
                break
            out += data
            addr += chunk
            if len(out) > limit:
                raise syscalls.SyscallError(36)  # ENAMETOOLONG
        if len(out) >= limit:
            raise syscalls.SyscallError(36)
        return bytes(out)

    def read_path(self, addr: int, sysroot: bool = True) -> bytes:
        """A path argument; with -L, absolute paths found under the sysroot come from
        there (QEMU's rule), for calls that look files up."""
        path = self.read_str(addr)
        if sysroot and self.config.sysroot and path.startswith(b"/"):
            return os.fsencode(sysroot_path(os.fsdecode(path), self.config.sysroot))
        return path

    def read_u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.memory.read(addr, 8))[0]

    def read_u32(self, addr: int) -> int:
        return struct.unpack("<I", self.memory.read(addr, 4))[0]

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<Q", value & 0xFFFF_FFFF_FFFF_FFFF))

    def write_u32(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<I", value & 0xFFFF_FFFF))

    def read_str_array(self, addr: int, limit: int = 1 << 17) -> list[bytes]:
        """argv/envp: a NULL-terminated array of string pointers."""
        out = []
        while addr and len(out) < limit:
            ptr = self.read_u64(addr)
            if ptr == 0:
                break
            out.append(self.read_str(ptr, 1 << 17))
            addr += 8
        return out

    # -- running ----------------------------------------------------------------------------
    def run(self) -> None:
        """Run the guest until it exits or dies; never returns normally.

        Raises:
            GuestExit: the guest exited (status inside).
            GuestKilled: the guest died of a fault.
        """
        cpu, abi, state = self.cpu, self.user_arch, self.cpu.state
        syscall_length = abi.syscall_insn_length
        while True:
            exit_ = cpu.run()
            if exit_.reason is ExitReason.SYSCALL:
                cpu.pc = exit_.pc + syscall_length
                result = syscalls.dispatch(self, abi.syscall_number(state),
                                           abi.syscall_args(state))
                abi.set_syscall_result(state, result)
            elif exit_.reason is ExitReason.EXCEPTION:
                raise self.exception_signal(exit_)
            elif exit_.reason is ExitReason.HALT:
                raise GuestKilled(signal.SIGILL, f"halt at pc {exit_.pc:#x}")
            # REQUESTED: nothing pending to deliver yet; resume.

    def exception_signal(self, exit_: CpuExit) -> GuestKilled:
        """The signal Linux sends for a synchronous exception, with a one-line detail."""
        index, pc, fault = exit_.exception_index, exit_.pc, exit_.fault
        if index == EXCP_MEM_FAULT and fault is not None:
            sig = signal.SIGSEGV
            detail = f"{fault.kind.value} {_ACCESS[fault.access]} at address {fault.addr:#x}"
        elif index == EXCP_MISALIGNED and fault is not None:
            sig = signal.SIGBUS
            detail = f"misaligned {_ACCESS[fault.access]} at address {fault.addr:#x}"
        else:
            sig, detail = self.user_arch.exception_signal(self.cpu.state, index) \
                or (signal.SIGSEGV, f"exception {index}")
        return GuestKilled(sig, f"{detail}, pc {pc:#x}")


_ACCESS = {Access.READ: "read", Access.WRITE: "write", Access.FETCH: "instruction fetch"}


def report_death(killed: GuestKilled, log: Log) -> None:
    """The one line qemu-user would print, then die of the same signal."""
    name = signal_name(killed.sig)
    description = SIGNAL_DESCRIPTIONS.get(killed.sig, name)
    message = f"{EMULATOR}: guest killed by {name} ({description}): {killed.detail}\n"
    try:
        os.write(2, message.encode())
    except OSError:
        pass
    if log.stream is not None and log.stream is not sys.stderr:
        log.write(message)
    die_by_signal(killed.sig)


__all__ = ["GuestExit", "GuestKilled", "Process", "UserConfig", "report_death",
           "setup_host_signals"]
