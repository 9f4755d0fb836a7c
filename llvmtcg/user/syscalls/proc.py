"""Process control: exit, fork (clone without CLONE_VM or with CLONE_VFORK), wait,
execve, kill, and the process's identity."""

from __future__ import annotations

import errno
import gc
import os
import sys
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.elf import ElfError, is_guest_elf, read_elf
from llvmtcg.user.guest import GuestExit
from llvmtcg.user.syscalls.table import SyscallError, syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_THREAD, CLONE_SETTLS = 0x4000, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
VFORK_FD_MIN = 900  # the parent's vfork wait pipe, out of the way of the guest's fds


@syscall("exit", "int", ret="noreturn")
def sys_exit(proc: GuestProcess, status):
    # The calling thread ends (the process with its last thread; see Process.run).
    raise GuestExit(status & 0xFF)


@syscall("exit_group", "int", ret="noreturn")
def sys_exit_group(proc: GuestProcess, status):
    raise GuestExit(status & 0xFF, group=True)


@syscall("set_tid_address", "ptr")
def sys_set_tid_address(proc: GuestProcess, tidptr):
    proc.clear_child_tid = tidptr
    return host.call("gettid")


@syscall("set_robust_list", "ptr uint")
def sys_set_robust_list(proc: GuestProcess, head, length):
    if length != 24:  # sizeof(struct robust_list_head)
        return -errno.EINVAL
    proc.robust_list = head
    return 0


@syscall("get_robust_list", "int ptr ptr")
def sys_get_robust_list(proc: GuestProcess, tid, head_ptr, len_ptr):
    if tid not in (0, proc.tid):
        return -errno.EPERM  # (other threads' lists: not kept visible)
    proc.write_u64(head_ptr, proc.robust_list)
    proc.write_u64(len_ptr, 24)
    return 0


@syscall("rseq", "ptr uint hex hex")
def sys_rseq(proc: GuestProcess, rseq, length, flags, sig):
    return -errno.ENOSYS  # as on qemu: glibc then does without


# What a thread shares with its creator (glibc's pthread_create passes these and more;
# QEMU's CLONE_THREAD_FLAGS).
CLONE_THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
# Flags a thread clone may carry besides those (what they ask is done, or is the host's).
CLONE_PARENT, CLONE_SYSVSEM, CLONE_DETACHED, CLONE_IO = 0x8000, 0x40000, 0x400000, 0x80000000
CLONE_THREAD_OPTIONAL = (CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID
                         | CLONE_CHILD_SETTID | CLONE_PARENT | CLONE_SYSVSEM | CLONE_DETACHED
                         | CLONE_IO)
CSIGNAL = 0xFF


@syscall("clone", "hex ptr ptr ptr ptr")
def sys_clone(proc: GuestProcess, flags, newsp, parent_tid, tls, child_tid):
    if flags & CLONE_VM and not flags & CLONE_VFORK:
        # A thread. (A process sharing memory without being a thread cannot be a host
        # fork: refused, as qemu-user does.)
        if flags & CLONE_THREAD_FLAGS != CLONE_THREAD_FLAGS or \
                flags & ~(CLONE_THREAD_FLAGS | CLONE_THREAD_OPTIONAL | CSIGNAL):
            if proc.log.enabled("unimp") or proc.strace is not None:
                proc.log.write(f"{proc.pid} clone: flags {flags:#x} not supported, "
                               f"returning -EINVAL")
            return -errno.EINVAL
        return proc.spawn_thread(flags, newsp, parent_tid, tls, child_tid)
    if flags & (CLONE_THREAD | CLONE_SIGHAND):
        return -errno.EINVAL  # (Linux: CLONE_SIGHAND needs CLONE_VM)
    return fork(proc, flags, newsp, parent_tid, tls, child_tid)


def fork(proc: GuestProcess, flags, newsp=0, parent_tid=0, tls=0, child_tid=0) -> int:
    """fork(), and vfork as fork whose parent waits until the child execs or exits."""
    wait_r = wait_w = -1
    if flags & CLONE_VFORK:
        wait_r, wait_w = os.pipe()
    for stream in (sys.stdout, sys.stderr, proc.log.stream):
        if stream is not None:
            stream.flush()
    proc.fork_start()
    # The child shares the parent's Python heap copy-on-write; a collection there would
    # write every object's GC header and copy most of it. Frozen objects are never
    # collected: the child keeps them so (it never frees the parent's objects by cycle
    # collection), the parent takes them back after the fork.
    gc.freeze()
    try:
        pid = os.fork()
    except BaseException:
        gc.unfreeze()
        proc.fork_end(False)
        raise
    if pid != 0:
        gc.unfreeze()
    proc.fork_end(pid == 0)
    if pid == 0:
        if wait_r >= 0:
            os.close(wait_r)
            moved = host.call("fcntl", wait_w, 1030, VFORK_FD_MIN)  # F_DUPFD_CLOEXEC
            os.close(wait_w)
            proc.vfork_fd = moved if moved >= 0 else -1
        child = host.call("gettid")
        if newsp:
            proc.set_stack_pointer(newsp)
        if flags & CLONE_SETTLS:
            proc.set_thread_pointer(tls)
        if flags & CLONE_CHILD_SETTID and child_tid:
            proc.write_u32(child_tid, child)
        if flags & CLONE_PARENT_SETTID and parent_tid:
            proc.write_u32(parent_tid, child)
        if flags & CLONE_CHILD_CLEARTID:
            proc.clear_child_tid = child_tid
        return 0
    if flags & CLONE_PARENT_SETTID and parent_tid:
        proc.write_u32(parent_tid, pid)
    if wait_r >= 0:
        os.close(wait_w)
        while True:
            try:
                if not os.read(wait_r, 1):
                    break
            except InterruptedError:
                continue
        os.close(wait_r)
    return pid


@syscall("wait4", "int ptr hex ptr")
def sys_wait4(proc: GuestProcess, pid, status, options, rusage):
    h_status = proc.check(status, 4, Access.WRITE) if status else 0
    h_rusage = proc.check(rusage, 144, Access.WRITE) if rusage else 0
    return host.call("wait4", pid, h_status, options, h_rusage)


@syscall("waitid", "int int ptr hex ptr")
def sys_waitid(proc: GuestProcess, idtype, ident, infop, options, rusage):
    h_info = proc.check(infop, 128, Access.WRITE) if infop else 0
    h_rusage = proc.check(rusage, 144, Access.WRITE) if rusage else 0
    return host.call("waitid", idtype, ident, h_info, options, h_rusage)


# -- execve ---------------------------------------------------------------------------------
@syscall("execve", "path ptr ptr", ret="noreturn")
def sys_execve(proc: GuestProcess, pathname, argv_addr, envp_addr):
    path = proc.read_path(pathname)
    argv = proc.read_str_array(argv_addr)
    envp = proc.read_str_array(envp_addr)
    if path in (b"/proc/self/exe", f"/proc/{proc.pid}/exe".encode()):
        path = os.fsencode(proc.exe_path)
    return execve(proc, path, argv, envp)


def execve(proc: GuestProcess, path: bytes, argv: list[bytes], envp: list[bytes]) -> int:
    """Replace the process: a guest ELF re-enters the emulator (a new host process
    image running llvmtcg-user), anything else goes to the host's execve."""
    try:
        os.stat(path)
    except OSError as e:
        raise SyscallError(e.errno or errno.ENOENT) from None
    if not os.access(path, os.X_OK) or os.path.isdir(path):
        return -errno.EACCES
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise SyscallError(e.errno or errno.EACCES) from None
    if is_guest_elf(head):
        try:
            read_elf(os.fsdecode(path))
        except ElfError:
            return -errno.ENOEXEC
        return _reenter(proc, path, argv, envp)
    return _host_execve(proc, path, argv, envp)


_BOOTSTRAP = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
              "from llvmtcg.user.cli import main; main(sys.argv[1:])")


def _reenter(proc: GuestProcess, path: bytes, argv: list[bytes], envp: list[bytes]) -> int:
    """Exec a new emulator for the guest program. The guest's environment travels in a
    memfd, not in the host environment, so variables meant for the guest (LD_PRELOAD,
    LD_LIBRARY_PATH, PYTHON*) never reach the host's Python."""
    import llvmtcg

    root = os.path.dirname(os.path.dirname(os.path.abspath(llvmtcg.__file__)))
    env_fd = os.memfd_create("llvmtcg-guest-environ", 0)
    try:
        os.write(env_fd, b"".join(e + b"\0" for e in envp))
        os.lseek(env_fd, 0, os.SEEK_SET)
        os.set_inheritable(env_fd, True)
        ignored = ",".join(map(str, proc.signals.ignored_signals()))
        argv0 = argv[0] if argv else path
        host_argv = [os.fsencode(sys.executable), b"-E", b"-c", _BOOTSTRAP.encode(),
                     os.fsencode(root),
                     *[os.fsencode(o) for o in proc.config.reexec_options()],
                     b"--env-fd", str(env_fd).encode(), b"--sigign", ignored.encode(),
                     b"-0", argv0, b"--", path, *argv[1:]]
        return _host_execve(proc, os.fsencode(sys.executable), host_argv,
                            [k + b"=" + v for k, v in os.environb.items()])
    finally:
        os.close(env_fd)  # only reached when the exec failed


def _host_execve(proc: GuestProcess, path: bytes, argv: list[bytes], envp: list[bytes]) -> int:
    import ctypes

    for stream in (sys.stdout, sys.stderr, proc.log.stream):
        if stream is not None:
            stream.flush()
    c_argv = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
    c_envp = (ctypes.c_char_p * (len(envp) + 1))(*envp, None)
    # The host's execve resets handled signals and closes O_CLOEXEC fds itself.
    host.libc.execve(path, c_argv, c_envp)
    return -ctypes.get_errno()


# -- identity -------------------------------------------------------------------------------
def _passthrough(name: str, args: str = "") -> None:
    nargs = len(args.split())

    @syscall(name, args)
    def handler(proc: GuestProcess, *a):
        return host.call(name, *a[:nargs])


for _name, _args in (
        ("getpid", ""), ("getppid", ""), ("gettid", ""), ("getuid", ""), ("geteuid", ""),
        ("getgid", ""), ("getegid", ""), ("setuid", "int"), ("setgid", "int"),
        ("setreuid", "int int"), ("setregid", "int int"), ("setresuid", "int int int"),
        ("setresgid", "int int int"), ("setfsuid", "int"), ("setfsgid", "int"),
        ("setpgid", "int int"), ("getpgid", "int"), ("getsid", "int"), ("setsid", ""),
        ("sched_yield", ""), ("getpriority", "int int"), ("setpriority", "int int int"),
        ("sched_getscheduler", "int"), ("sched_get_priority_max", "int"),
        ("sched_get_priority_min", "int"), ("personality", "hex"),
        ("ioprio_get", "int int"), ("ioprio_set", "int int int"), ("vhangup", ""),
        ("sethostname", "path uint"), ("setdomainname", "path uint")):
    if _name in ("sethostname", "setdomainname"):
        continue
    _passthrough(_name, _args)


def _out_ids(name: str) -> None:
    @syscall(name, "ptr ptr ptr")
    def handler(proc: GuestProcess, a, b, c):
        return host.call(name, proc.check(a, 4, Access.WRITE), proc.check(b, 4, Access.WRITE),
                         proc.check(c, 4, Access.WRITE))


_out_ids("getresuid")
_out_ids("getresgid")


@syscall("getgroups", "int ptr")
def sys_getgroups(proc: GuestProcess, size, groups):
    buf = proc.check(groups, 4 * size, Access.WRITE) if size else 0
    return host.call("getgroups", size, buf)


@syscall("setgroups", "int ptr")
def sys_setgroups(proc: GuestProcess, size, groups):
    return host.call("setgroups", size, proc.check(groups, 4 * size) if size else 0)


@syscall("sched_getaffinity", "int uint ptr")
def sys_sched_getaffinity(proc: GuestProcess, pid, size, mask):
    return host.call("sched_getaffinity", pid, size, proc.check(mask, size, Access.WRITE))


@syscall("sched_setaffinity", "int uint ptr")
def sys_sched_setaffinity(proc: GuestProcess, pid, size, mask):
    return host.call("sched_setaffinity", pid, size, proc.check(mask, size))


@syscall("sched_getparam", "int ptr")
def sys_sched_getparam(proc: GuestProcess, pid, param):
    return host.call("sched_getparam", pid, proc.check(param, 4, Access.WRITE))


@syscall("getcpu", "ptr ptr ptr")
def sys_getcpu(proc: GuestProcess, cpu, node, cache):
    return host.call("getcpu", proc.check(cpu, 4, Access.WRITE) if cpu else 0,
                     proc.check(node, 4, Access.WRITE) if node else 0, 0)



@syscall("sched_setparam", "int ptr")
def sys_sched_setparam(proc: GuestProcess, pid, param):
    return host.call("sched_setparam", pid, proc.check(param, 4))


@syscall("sched_setscheduler", "int int ptr")
def sys_sched_setscheduler(proc: GuestProcess, pid, policy, param):
    return host.call("sched_setscheduler", pid, policy, proc.check(param, 4))


@syscall("sched_rr_get_interval", "int ptr")
def sys_sched_rr_get_interval(proc: GuestProcess, pid, interval):
    return host.call("sched_rr_get_interval", pid, proc.check(interval, 16, Access.WRITE))


@syscall("ptrace", "int int ptr ptr")
def sys_ptrace(proc: GuestProcess, request, pid, addr, data):
    # As qemu-user: tracing a guest would need the emulator's help (its registers are
    # not the host process's), so no process may trace or be traced through it.
    return -errno.EPERM


@syscall("pidfd_open", "int hex")
def sys_pidfd_open(proc: GuestProcess, pid, flags):
    return host.call("pidfd_open", pid, flags)


@syscall("pidfd_getfd", "fd int hex")
def sys_pidfd_getfd(proc: GuestProcess, pidfd, targetfd, flags):
    return host.call("pidfd_getfd", pidfd, targetfd, flags)


@syscall("kcmp", "int int int hex hex")
def sys_kcmp(proc: GuestProcess, pid1, pid2, kind, idx1, idx2):
    return host.call("kcmp", pid1, pid2, kind, idx1, idx2)


@syscall("unshare", "hex")
def sys_unshare(proc: GuestProcess, flags):
    return host.call("unshare", flags)


@syscall("setns", "fd hex")
def sys_setns(proc: GuestProcess, fd, nstype):
    return host.call("setns", fd, nstype)
