"""One emulated Linux process: its CPU, address space and signals, the run loop that
serves system calls, and the way it ends (exit status or death by signal).

Like QEMU's ``cpu_loop``: run guest code until it stops; a syscall is dispatched and
the guest resumes after its syscall instruction; a synchronous exception becomes a
signal; signals waiting for delivery are delivered after a syscall or when the host's
catcher stopped the chain of blocks (``exit_request``), by pushing the architecture's
signal frame and entering the handler, or by their default action.

Generic: what differs between guest architectures comes from the program's
:class:`llvmtcg.user.arch.UserArch` (the Linux ABI) and its
:class:`llvmtcg.arch.GuestArch` (the CPU).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
from llvmtcg.runtime.host_fds import EMULATOR_FILES
from llvmtcg.runtime.softmmu import GuestMemory, page_floor
from llvmtcg.user import host, syscalls
from llvmtcg.user.arch import BadSignalFrame, user_arch
from llvmtcg.user.elf import ElfImage
from llvmtcg.user.guest import PATH_MAX, GuestExit, GuestKilled
from llvmtcg.user.host_signals import HANDLER_SYMBOL, SAFE_SYSCALL_SYMBOL, HostSignalCatcher
from llvmtcg.user.loader import Program, load_program, sysroot_path
from llvmtcg.user.mm import AddressSpace
from llvmtcg.user.procfs import ProcessImage, ProcFs
from llvmtcg.user.signals import (
    BUS_ADRALN,
    DEFAULT_IGNORE,
    DEFAULT_STOP,
    MINSIGSTKSZ,
    SA_NODEFER,
    SA_ONSTACK,
    SA_RESETHAND,
    SA_RESTART,
    SEGV_ACCERR,
    SEGV_MAPERR,
    SIG_DFL,
    SIG_IGN,
    SIGNAL_DESCRIPTIONS,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_ONSTACK,
    UNBLOCKABLE_MASK,
    SigAction,
    SignalState,
    die_by_signal,
    make_siginfo,
    set_host_mask,
    setup_host_signals,
    sigbit,
)
from llvmtcg.user.syscalls.numbers import NUMBERS
from llvmtcg.user.syscalls.strace import Strace, signal_name

if TYPE_CHECKING:
    import socket

    from llvmtcg.user.gdb import UserDebugger

EMULATOR = "llvmtcg-user"
_NR_RT_SIGRETURN = NUMBERS["rt_sigreturn"]
# Syscalls Linux never restarts after a handler ran, SA_RESTART or not
# (-ERESTARTNOHAND, -ERESTART_RESTARTBLOCK, or a plain -EINTR; signal(7)).
_NEVER_RESTARTED = frozenset(NUMBERS[n] for n in (
    "nanosleep", "clock_nanosleep", "rt_sigsuspend", "rt_sigtimedwait", "ppoll", "pselect6",
    "epoll_pwait", "epoll_pwait2", "io_getevents", "semtimedop", "msgrcv", "msgsnd"))
_PROT_READ, _PROT_EXEC, _MAP_PRIVATE, _MAP_ANONYMOUS = 1, 4, 2, 0x20
# Calls that change the address space: serialised between threads (QEMU's mmap_lock).
# Those that can take pages away from a thread running guest code run exclusively.
_MM_SYSCALLS = frozenset(NUMBERS[n] for n in (
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "shmat", "shmdt"))
_UNMAPPING = frozenset(NUMBERS[n] for n in ("brk", "munmap", "mprotect", "mremap", "shmdt"))
_NR_MMAP, _MAP_FIXED = NUMBERS["mmap"], 0x10  # (MAP_FIXED replaces what was there)
CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = \
    0x80000, 0x100000, 0x200000, 0x1000000
_FUTEX_WAKE, _FUTEX_PRIVATE = 1, 128
# Robust futex list (Linux's exit_robust_list).
_FUTEX_WAITERS, _FUTEX_OWNER_DIED, _FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
_ROBUST_LIST_LIMIT = 2048


@dataclass
class ThreadGroup:
    """What the threads of one process share besides memory and translations.

    ``threads`` are the live ones by tid; ``leader`` is the first (its exit does not
    end the process while others run: the process's status is then the leader's,
    given when the last thread exits, as Linux reports it).
    """

    leader: Process
    threads: dict[int, Process] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Held around calls that change the address space, and around fork.
    mm_lock: threading.RLock = field(default_factory=threading.RLock)
    leader_status: int | None = None
    trampoline: int = 0  # the sigreturn page, mapped at the first delivery
    # An exclusive section (QEMU's start_exclusive): while set, no thread enters guest
    # code; see Process.exclusive.
    exclusive_cond: threading.Condition = field(default_factory=threading.Condition)
    exclusive: bool = False


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
    """One thread of a guest process (the first one is made here, others by
    :meth:`spawn_thread`, sharing the process-wide parts: memory, address space,
    dispositions, ``group``); implements :class:`llvmtcg.user.guest.GuestProcess`, the
    interface its system calls see.

    Args:
        config: emulator options.
        image: the validated program (its ``arch`` picks the guest architecture).
        argv, envp: the guest's arguments and environment.
        execfn: the path the program was started with (AT_EXECFN).
        log: ``-d`` logging (and ``-strace`` output).
        signals: the dispositions set up at start (inherited ignored signals); None:
            all default.

    Raises:
        CpuModelError: ``config.cpu`` names no model of the program's architecture.
    """

    def __init__(self, config: UserConfig, image: ElfImage, argv: list[bytes],
                 envp: list[bytes], execfn: str, log: Log,
                 signals: SignalState | None = None) -> None:
        syscalls.load_handlers()
        self.config = config
        self.log = log
        self.strace = Strace(log.stream) if config.strace else None
        self.user_arch = user_arch(image.arch)
        self.arch = self.user_arch.make_arch(config.cpu)
        self.memory = GuestMemory(self.user_arch.task_size)
        self.space = AddressSpace(self.memory)
        self.cpu = Cpu(self.arch, self.memory, options=config.runtime, log=log,
                       exec_interrupt=self._host_signal_interrupt)
        self.mmu_index = self.arch.mmu_index(self.cpu.state)
        self.image = image
        self.exe_path = os.path.abspath(image.path)
        # The process's host-signal handler; ``catcher`` is this thread's record.
        self.host_catcher = HostSignalCatcher(self._compile_native, self._exit_word())
        self.catcher = self.host_catcher.main_record
        host.install_safe_syscall(self.host_catcher.safe_syscall_address,
                                  keepalive=(self.cpu.jit, self._catcher_code))
        host.set_thread_pending(self.catcher.pending_address, keepalive=self.catcher)
        self.signals = signals if signals is not None else SignalState()
        self.signals.catcher = self.host_catcher
        setup_host_signals(self.signals, set(self.signals.ignored_signals()))
        self.tid = os.getpid()  # the first thread's id is the process's
        self.group = ThreadGroup(self, {self.tid: self})
        self.clear_child_tid = 0
        self.robust_list = 0
        self.vfork_fd = -1
        self.program: Program = load_program(self.space, image, argv, envp, execfn,
                                             self.user_arch.hwcap(self.arch),
                                             self.user_arch.platform, config.sysroot)
        self.set_stack_pointer(self.program.sp)
        self.procfs = ProcFs(self._process_image(argv, envp))
        self.cpu.pc = self.program.pc
        self.debugger: UserDebugger | None = None  # gdb (-g), set by attach_debugger
        if log.enabled("page"):
            self.log_mappings()

    def attach_debugger(self, listener: socket.socket) -> None:
        from llvmtcg.user.gdb import UserDebugger  # noqa: PLC0415 - only with -g

        """``-g``: wait for gdb on ``listener`` before the first instruction."""
        debugger = UserDebugger(self.cpu, listener, self.tid)
        debugger.wait_for_client()
        self.debugger = debugger

    def _process_image(self, argv: list[bytes], envp: list[bytes]) -> ProcessImage:
        named = []
        for loaded in (self.program.main, self.program.interp):
            if loaded is not None and loaded.image.loads:
                start = page_floor(min(s.vaddr for s in loaded.image.loads) + loaded.bias)
                named.append((start, loaded.end, os.path.abspath(loaded.image.path)))
        return ProcessImage(self.exe_path, tuple(argv), tuple(envp), self.program.auxv,
                            tuple(named), self.program.sp)

    def _exit_word(self) -> int:
        return self.cpu.state.address + self.cpu.state.layout.offset("exit_request")

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def machine(self) -> str:
        return self.user_arch.uname_machine

    def thread_ids(self) -> frozenset[int]:
        with self.group.lock:
            return frozenset(self.group.threads)

    def reexec_options(self) -> list[str]:
        return self.config.reexec_options()

    def open_flags_to_host(self, flags: int) -> int:
        return self.user_arch.open_flags_to_host(flags)

    def open_flags_to_guest(self, flags: int) -> int:
        return self.user_arch.open_flags_to_guest(flags)

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
        """Run this thread of the guest until the process exits or dies; never returns
        normally on the process's first thread (a later thread's :meth:`run` returns
        when that thread exits).

        Raises:
            GuestExit: the process exited (status inside).
            GuestKilled: the guest died of a fault.
        """
        try:
            self._run_thread()
        except GuestExit as e:
            if self.debugger is not None:
                from llvmtcg.gdbstub import Exited  # noqa: PLC0415 - only with -g

                self.debugger.report_end(Exited(e.status))
            raise
        except GuestKilled as e:
            if self.debugger is not None:
                from llvmtcg.gdbstub import Terminated  # noqa: PLC0415 - only with -g

                self.debugger.report_end(Terminated(e.sig))
            raise

    def _run_thread(self) -> None:
        try:
            self._run()
        except GuestExit as e:
            if e.group:
                raise
            status = self._exit_thread(e.status & 0xFF)
            if status is not None:  # it was the last thread
                raise GuestExit(status, group=True) from None
            if self is self.group.leader:
                # The process lives on in its other threads (and ends from the last
                # one); this host thread is the interpreter's main thread: park it.
                threading.Event().wait()

    def _run(self) -> None:
        cpu, abi, state = self.cpu, self.user_arch, self.cpu.state
        syscall_length = abi.syscall_insn_length
        catcher, signals = self.catcher, self.signals
        mm_lock = self.group.mm_lock
        while True:
            if self.group.exclusive:
                self._wait_exclusive()
            debugger = self.debugger  # (a forked child runs without it)
            exit_ = cpu.run() if debugger is None else debugger.run(self.tid)
            if exit_.reason is ExitReason.SYSCALL:
                cpu.pc = exit_.pc + syscall_length
                nr, args = abi.syscall_number(state), abi.syscall_args(state)
                if nr in _MM_SYSCALLS:
                    with mm_lock:
                        if (nr in _UNMAPPING or nr == _NR_MMAP and args[3] & _MAP_FIXED) \
                                and len(self.group.threads) > 1:
                            with self.exclusive():
                                result = syscalls.dispatch(self, nr, args)
                        else:
                            result = syscalls.dispatch(self, nr, args)
                else:
                    result = syscalls.dispatch(self, nr, args)
                abi.set_syscall_result(state, result)
                if catcher.pending or signals.queued or signals.restore_mask is not None:
                    interrupted = result == -errno.EINTR and nr != _NR_RT_SIGRETURN
                    self.deliver_signals((nr, args[0]) if interrupted else None)
            elif exit_.reason is ExitReason.EXCEPTION:
                sig, siginfo, detail = self.exception_signal(exit_)
                if debugger is not None:  # gdb sees it first, and may drop or change it
                    passed = debugger.report_signal(sig, self.tid)
                    if passed != sig:
                        if not passed:
                            continue
                        sig, siginfo = passed, make_siginfo(passed, 0)
                self.force_signal(sig, siginfo, detail)
            elif exit_.reason is ExitReason.HALT:
                raise GuestKilled(signal.SIGILL, f"halt at pc {exit_.pc:#x}")
            elif catcher.pending or signals.queued:  # REQUESTED: the catcher stopped us
                self.deliver_signals(None)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Run the body while no other thread runs guest code (QEMU's start_exclusive /
        end_exclusive): an access racing a munmap or mprotect of its page would else hit
        the host's unmapped or protected page after its TLB check passed, and the
        emulator would die of a host SIGSEGV. Every other thread is asked to stop at its
        next block boundary; the body runs holding the translation lock once none is in
        native code (threads in syscalls touch guest memory only through the kernel,
        which checks it: -EFAULT). Threads wait for the end before entering guest code
        again. The caller holds the address-space lock."""
        group, tbs = self.group, self.cpu.tbs
        with group.exclusive_cond:
            group.exclusive = True
        try:
            with group.lock:
                others = [t for t in group.threads.values() if t is not self]
            for other in others:
                other.cpu.stop()
            while True:
                tbs.lock.acquire()
                if not tbs.in_native:
                    break
                tbs.lock.release()  # (a thread leaving native code takes it)
                time.sleep(0.0002)
            try:
                yield
            finally:
                tbs.lock.release()
        finally:
            with group.exclusive_cond:
                group.exclusive = False
                group.exclusive_cond.notify_all()

    def _wait_exclusive(self) -> None:
        group = self.group
        with group.exclusive_cond:
            while group.exclusive:
                group.exclusive_cond.wait()

    def _host_signal_interrupt(self, state: object) -> bool:
        """At an exit request: if the host catcher recorded a signal for this thread
        (or another thread queued one for it), stop the loop so :meth:`run` delivers
        it (user mode has no other interrupt)."""
        if self.catcher.pending or self.signals.queued:
            self.cpu.stop()
        return False

    def _compile_native(self, ir_text: str, imports: dict[str, int]) -> tuple[int, int]:
        self.cpu.jit.add_imports(imports)
        self._catcher_code = self.cpu.jit.compile_cached(ir_text, [HANDLER_SYMBOL,
                                                                   SAFE_SYSCALL_SYMBOL])
        addresses = self._catcher_code.addresses
        return addresses[HANDLER_SYMBOL], addresses[SAFE_SYSCALL_SYMBOL]

    # -- threads ----------------------------------------------------------------------------
    def spawn_thread(self, flags: int, newsp: int, parent_tid: int, tls: int,
                     child_tid: int) -> int:
        """Start a guest thread (clone with CLONE_VM|CLONE_THREAD|...) on a new host
        thread: a copy of this thread's registers (a0 = 0, the new stack and TLS),
        its own CPU state, jump cache, signal mask and record; the same memory,
        translations, dispositions and files. Returns its tid once it exists (the
        CLONE_*_SETTID words are written before it runs guest code)."""
        child = copy.copy(self)  # the process-wide parts are shared objects
        child.cpu = self.cpu.spawn(exec_interrupt=child._host_signal_interrupt)
        child.catcher = self.host_catcher.new_record(child._exit_word())
        # Linux: a new thread inherits the mask; CLONE_VM clears the alternate stack.
        child.signals = SignalState(actions=self.signals.actions, mask=self.signals.mask,
                                    catcher=self.host_catcher)
        child.clear_child_tid = child_tid if flags & CLONE_CHILD_CLEARTID else 0
        child.robust_list = 0
        child.vfork_fd = -1
        child.debugger = self.debugger  # (gdb follows every thread)
        abi, state = self.user_arch, child.cpu.state
        abi.set_syscall_result(state, 0)
        if newsp:
            child.set_stack_pointer(newsp)
        if flags & CLONE_SETTLS:
            child.set_thread_pointer(tls)
        # From now on a run loop's file work (code-cache reads) could race this
        # thread's opens: it moves to a private descriptor table (see host_fds).
        EMULATOR_FILES.guest_threads_started()
        started = threading.Event()
        thread = threading.Thread(target=child._thread_main, name="llvmtcg-guest",
                                  args=(flags, parent_tid, child_tid, started), daemon=True)
        # The host thread starts with every signal blocked, until its record is attached
        # and it takes the guest's mask (a signal meanwhile waits on the host).
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        started.wait()
        return child.tid

    def _thread_main(self, flags: int, parent_tid: int, child_tid: int,
                     started: threading.Event) -> None:
        try:
            self.tid = host.call("gettid")
            self.host_catcher.attach(self.catcher)
            host.set_thread_pending(self.catcher.pending_address, keepalive=self.catcher)
            for wanted, addr in ((CLONE_CHILD_SETTID, child_tid),
                                 (CLONE_PARENT_SETTID, parent_tid)):
                if flags & wanted and addr:
                    try:
                        self.write_u32(addr, self.tid)
                    except GuestFault:
                        pass  # Linux ignores a bad address here too
            with self.group.lock:
                self.group.threads[self.tid] = self
            if self.debugger is not None:
                self.debugger.add_thread(self.tid, self.cpu)
        finally:
            started.set()
        set_host_mask(self.signals.mask)
        try:
            self.run()
        except GuestExit as e:
            _end_process(e.status, self.log)
        except GuestKilled as e:
            _flush_streams(self.log)
            report_death(e, self.log)
        except BaseException as e:  # noqa: BLE001 - an internal error ends the process
            _flush_streams(self.log)
            os.write(2, f"{EMULATOR}: internal error in thread {self.tid}: "
                        f"{type(e).__name__}: {e}\n".encode())
            os._exit(1)

    def _exit_thread(self, status: int) -> int | None:
        """This thread ends (Linux's do_exit for one thread): the robust list's locks
        are released, the CLONE_CHILD_CLEARTID word cleared and woken, the CPU goes.
        The process's exit status if it was the last thread, else None."""
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        self.host_catcher.detach()
        # The wakes below must happen even if a signal is still recorded (safe_syscall
        # would return EINTR without making them).
        host.set_thread_pending(0)
        self._release_robust_list()
        if self.clear_child_tid:
            try:
                self.write_u32(self.clear_child_tid, 0)
                addr = self.check(self.clear_child_tid, 4)
                host.call("futex", addr, _FUTEX_WAKE, 1, 0, 0, 0)
                host.call("futex", addr, _FUTEX_WAKE | _FUTEX_PRIVATE, 1, 0, 0, 0)
            except GuestFault:
                pass  # the guest unmapped it
        if self.debugger is not None:
            self.debugger.remove_thread(self.tid)
        group = self.group
        with group.lock:
            group.threads.pop(self.tid, None)
            if self is group.leader:
                group.leader_status = status
            last = not group.threads
        if last:
            return group.leader_status if group.leader_status is not None else status
        if self is not group.leader:
            self.cpu.close()
        return None

    def _release_robust_list(self) -> None:
        """Linux's exit_robust_list: every futex on the thread's robust list it still
        owns gets FUTEX_OWNER_DIED, and a waiter is woken."""
        head = self.robust_list
        if not head:
            return
        try:
            entry, offset, pending = struct.unpack("<QqQ", self.read(head, 24))
            seen = 0
            while entry != head and seen < _ROBUST_LIST_LIMIT:
                following = self.read_u64(entry)
                self._owner_died(entry + offset)
                entry, seen = following, seen + 1
            if pending:
                self._owner_died(pending + offset)
        except GuestFault:
            pass  # a corrupt list ends the walk, as on Linux

    def _owner_died(self, addr: int) -> None:
        addr &= 0xFFFF_FFFF_FFFF_FFFF
        word = self.read_u32(addr)
        if word & _FUTEX_TID_MASK != self.tid:
            return
        self.write_u32(addr, (word & _FUTEX_WAITERS) | _FUTEX_OWNER_DIED)
        if word & _FUTEX_WAITERS:
            host.call("futex", self.check(addr, 4), _FUTEX_WAKE, 1, 0, 0, 0)

    def fork_start(self) -> None:
        """QEMU's fork_start: hold the address-space lock, the translation lock and the
        thread list, so no other guest thread holds one at the fork (the child would
        wait for it forever). The compile thread's locks are tiering's at-fork hooks'."""
        self.group.mm_lock.acquire()
        self.cpu.tbs.lock.acquire()
        self.group.lock.acquire()

    def fork_end(self, child: bool) -> None:
        """QEMU's fork_end: release them; in the child only this thread exists (its new
        tid is the process's) and it leads the process."""
        group = self.group
        group.lock.release()
        self.cpu.tbs.lock.release()
        group.mm_lock.release()
        if child:
            self.tid = os.getpid()
            self.debugger = None  # (as under QEMU, a forked child runs without gdb)
            for other in group.threads.values():
                if other is not self:
                    other.cpu.close()
            self.cpu.forked()
            self.group = ThreadGroup(self, {self.tid: self}, trampoline=group.trampoline)

    def exception_signal(self, exit_: CpuExit) -> tuple[int, bytes, str]:
        """(signal, siginfo, one-line detail) Linux sends for a synchronous exception."""
        index, pc, fault = exit_.exception_index, exit_.pc, exit_.fault
        if index == EXCP_MEM_FAULT and fault is not None:
            sig = signal.SIGSEGV
            code = SEGV_MAPERR if fault.kind is FaultKind.UNMAPPED else SEGV_ACCERR
            addr = fault.addr
            detail = f"{fault.kind.value} {_ACCESS[fault.access]} at address {fault.addr:#x}"
        elif index == EXCP_MISALIGNED and fault is not None:
            sig, code, addr = signal.SIGBUS, BUS_ADRALN, fault.addr
            detail = f"misaligned {_ACCESS[fault.access]} at address {fault.addr:#x}"
        else:
            # ILL_ILLOPC, TRAP_BRKPT and BUS_ADRALN are all 1; si_addr is the pc.
            sig, detail = self.user_arch.exception_signal(self.cpu.state, index) \
                or (signal.SIGSEGV, f"exception {index}")
            code, addr = 1, pc
        self.cpu.pc = pc
        return sig, make_siginfo(sig, code, addr=addr), f"{detail}, pc {pc:#x}"

    # -- signals ----------------------------------------------------------------------------
    @property
    def stack_pointer(self) -> int:
        return self.arch.reg_read(self.cpu.state, self.user_arch.stack_pointer)

    @property
    def signal_waiting(self) -> bool:
        return self.catcher.pending or bool(self.signals.queued)

    def on_alt_stack(self, sp: int) -> bool:
        """Linux's on_sig_stack: sp within (ss_sp, ss_sp + ss_size]."""
        ss_sp, _flags, ss_size = self.signals.altstack
        return ss_size != 0 and 0 < sp - ss_sp <= ss_size

    def queue_signal(self, sig: int, siginfo: bytes, tid: int | None = None) -> None:
        """A signal the guest sent itself without the host (one that on the host means
        a crash of the emulator): to thread ``tid`` (None: this one), delivered after
        this syscall or at that thread's next block boundary."""
        target = self if tid is None else self.group.threads.get(tid, self)
        target.signals.queued.setdefault(sig, siginfo)
        if target is not self:
            target.cpu.state.request_exit()

    def force_signal(self, sig: int, siginfo: bytes, detail: str) -> None:
        """A synchronous signal: to its handler now, or death (blocked or ignored ones
        too: Linux's force_sig resets them)."""
        signals = self.signals
        action = signals.action(sig)
        if not action.is_handler or signals.mask & sigbit(sig):
            raise GuestKilled(sig, detail)
        if not self.setup_frame(sig, siginfo, action):
            raise GuestKilled(signal.SIGSEGV, f"cannot push the signal frame for {detail}")

    def deliver_signals(self, interrupted: tuple[int, int] | None) -> None:
        """Deliver every signal that waits and is not blocked, as Linux does on the way
        back to user space. ``interrupted``: (syscall number, first argument) of a
        syscall that returned -EINTR; it restarts (pc back on the syscall instruction,
        a0 as it was) if no handler runs, or if the first one has SA_RESTART and the
        syscall is one Linux restarts."""
        signals = self.signals
        for taken in self.catcher.take():
            signals.queued.setdefault(taken.sig, taken.info)
        handled = False
        while (sig := signals.deliverable()) is not None:
            siginfo = signals.queued.pop(sig)
            action = signals.action(sig)
            if action.handler == SIG_IGN:
                continue
            if action.handler == SIG_DFL:
                self.default_action(sig)
                continue
            if interrupted is not None and not handled:
                if action.flags & SA_RESTART and interrupted[0] not in _NEVER_RESTARTED:
                    self._restart_syscall(interrupted[1])
            handled = True
            if not self.setup_frame(sig, siginfo, action):
                raise GuestKilled(signal.SIGSEGV, f"cannot push the signal frame for "
                                  f"{signal_name(sig)}")
        if interrupted is not None and not handled and interrupted[0] != NUMBERS[
                "rt_sigsuspend"]:
            self._restart_syscall(interrupted[1])
        if signals.restore_mask is not None:  # rt_sigsuspend woke for no handler
            self.set_mask(signals.restore_mask)
            signals.restore_mask = None

    def _restart_syscall(self, first_arg: int) -> None:
        abi = self.user_arch
        self.cpu.pc -= abi.syscall_insn_length
        abi.set_syscall_result(self.cpu.state, first_arg)

    def default_action(self, sig: int) -> None:
        """A signal at SIG_DFL reached the guest (one the host catcher took: it dumps
        core, or changed to SIG_DFL while waiting): ignore, stop, or die of it."""
        if sig in DEFAULT_IGNORE:
            return
        if sig in DEFAULT_STOP:
            os.kill(os.getpid(), signal.SIGSTOP)  # the host's job control sees us stop
            return
        self._flush_before_death()
        die_by_signal(sig)

    def _flush_before_death(self) -> None:
        if self.log.stream is not None:
            try:
                self.log.stream.flush()
            except (OSError, ValueError):
                pass

    def setup_frame(self, sig: int, siginfo: bytes, action: SigAction) -> bool:
        """Push the architecture's signal frame and enter ``action``'s handler (Linux's
        handle_signal); False if the frame cannot be written (the caller kills)."""
        signals, abi = self.signals, self.user_arch
        sp = self.stack_pointer
        size = abi.signal_frame_size
        ss_sp, ss_flags, ss_size = signals.altstack
        on_alt = self.on_alt_stack(sp)
        if on_alt and not self.on_alt_stack(sp - size):
            return False  # the alternate stack overflowed
        if action.flags & SA_ONSTACK and ss_size and not on_alt:
            sp = ss_sp + ss_size
        frame = (sp - size) & ~15
        uc_stack = signals.altstack  # the flags as set (Linux's __save_altstack)
        old_mask = signals.restore_mask if signals.restore_mask is not None else signals.mask
        data = abi.build_signal_frame(self.arch, self.cpu.state, siginfo, uc_stack, old_mask)
        try:
            self.check(frame, size, Access.WRITE)
            self.write(frame, data)
        except GuestFault:
            return False
        self.log_signal(f"deliver {signal_name(sig)} to {action.handler:#x}, frame "
                        f"{frame:#x}")
        abi.enter_signal_handler(self.arch, self.cpu.state, sig, frame, action.handler,
                                 self.trampoline())
        signals.restore_mask = None
        new_mask = signals.mask | action.mask  # rt_sigsuspend's mask, if it ran
        if not action.flags & SA_NODEFER:
            new_mask |= sigbit(sig)
        self.set_mask(new_mask)
        if action.flags & SA_RESETHAND:
            signals.set_action(sig, SigAction())
        if ss_flags & SS_AUTODISARM:  # Linux's signal_delivered
            signals.altstack = (0, SS_DISABLE, 0)
        return True

    def set_mask(self, mask: int) -> None:
        mask &= ~UNBLOCKABLE_MASK
        if mask != self.signals.mask:
            self.signals.mask = mask
            set_host_mask(mask)

    def trampoline(self) -> int:
        """Where handlers return: the architecture's rt_sigreturn code, on a page of
        its own mapped at the first delivery (qemu's sigtramp page; Linux's vDSO)."""
        group = self.group
        with group.mm_lock:
            if not group.trampoline:
                addr = self.space.mmap(0, PAGE_SIZE, _PROT_READ | _PROT_EXEC,
                                       _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
                if addr < 0:
                    raise GuestKilled(signal.SIGSEGV, "no memory for the signal trampoline")
                self.memory.write(addr, self.user_arch.sigreturn_code, check=None)
                group.trampoline = addr
            return group.trampoline

    def sigreturn(self) -> int:
        """rt_sigreturn: restore every register and the mask from the frame at the stack
        pointer; the result is the restored a0 (so the syscall return leaves it)."""
        abi, state = self.user_arch, self.cpu.state
        sp = self.stack_pointer
        try:
            frame = self.read(sp, abi.signal_frame_size)
            mask, uc_stack = abi.restore_signal_frame(self.arch, state, frame)
        except (GuestFault, BadSignalFrame) as e:
            raise GuestKilled(signal.SIGSEGV, f"rt_sigreturn: bad signal frame at "
                              f"{sp:#x} ({e})") from None
        self.set_mask(mask)
        self.set_altstack(*uc_stack)  # errors ignored, as Linux's restore_altstack
        self.log_signal(f"sigreturn to pc {state.pc:#x}")
        return abi.syscall_args(state)[0]

    def set_altstack(self, ss_sp: int, ss_flags: int, ss_size: int) -> int:
        """sigaltstack's change: 0 or a negative errno."""
        ss_flags &= 0xFFFF_FFFF
        if self.on_alt_stack(self.stack_pointer):
            return -errno.EPERM
        mode = ss_flags & ~SS_ONSTACK & ~SS_AUTODISARM
        if mode not in (0, SS_DISABLE) or ss_flags & SS_ONSTACK and mode:
            return -errno.EINVAL
        if mode == SS_DISABLE:
            self.signals.altstack = (0, SS_DISABLE, 0)
        else:
            if ss_size < MINSIGSTKSZ:
                return -errno.ENOMEM
            self.signals.altstack = (ss_sp, ss_flags & SS_AUTODISARM, ss_size)
        return 0

    def log_signal(self, text: str) -> None:
        if self.log.enabled("int"):
            self.log.write(f"{self.pid} signal: {text}")


_ACCESS = {Access.READ: "read", Access.WRITE: "write", Access.FETCH: "instruction fetch"}


def _flush_streams(log: Log) -> None:
    for stream in (sys.stdout, sys.stderr, log.stream):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _end_process(status: int, log: Log) -> None:
    """exit_group (or the last thread's exit) on a thread other than the first: the
    whole process ends now."""
    _flush_streams(log)
    os._exit(status & 0xFF)


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
