"""Raw host (x86-64 Linux) system calls through libc's syscall(), for calls whose
arguments the guest ABI shares with the host (buffers, structs of the same layout).

:func:`call` returns the result or a negative errno, which is what the guest sees, so
errno values pass through unchanged (riscv64, aarch64 and x86-64 share asm-generic
errno numbers).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# x86-64 numbers of the host calls we pass through.
NR = {
    "read": 0, "write": 1, "close": 3, "lseek": 8, "ioctl": 16, "pread64": 17,
    "pwrite64": 18, "readv": 19, "writev": 20, "sched_yield": 24, "mincore": 27,
    "dup": 32, "getitimer": 36, "setitimer": 38, "sendfile": 40, "socket": 41,
    "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46,
    "recvmsg": 47, "shutdown": 48, "bind": 49, "listen": 50, "getsockname": 51,
    "getpeername": 52, "socketpair": 53, "setsockopt": 54, "getsockopt": 55,
    "kill": 62, "fcntl": 72, "flock": 73, "fsync": 74, "fdatasync": 75, "truncate": 76,
    "ftruncate": 77, "getcwd": 79, "chdir": 80, "fchdir": 81, "fchmod": 91, "fchown": 93,
    "umask": 95, "gettimeofday": 96, "getrlimit": 97, "getrusage": 98, "sysinfo": 99,
    "times": 100, "setuid": 105, "setgid": 106, "setpgid": 109, "setsid": 112,
    "setreuid": 113, "setregid": 114, "getgroups": 115, "setgroups": 116,
    "setresuid": 117, "getresuid": 118, "setresgid": 119, "getresgid": 120,
    "getpgid": 121, "setfsuid": 122, "setfsgid": 123, "getsid": 124, "capget": 125,
    "capset": 126, "personality": 135, "statfs": 137, "fstatfs": 138, "getpriority": 140,
    "setpriority": 141, "sched_getparam": 143, "sched_getscheduler": 145,
    "sched_get_priority_max": 146, "sched_get_priority_min": 147, "mlock": 149,
    "munlock": 150, "prctl": 157, "sync": 162, "sethostname": 170, "gettid": 186,
    "readahead": 187, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190,
    "getxattr": 191, "lgetxattr": 192, "fgetxattr": 193, "listxattr": 194,
    "llistxattr": 195, "flistxattr": 196, "removexattr": 197, "lremovexattr": 198,
    "fremovexattr": 199, "tkill": 200, "sched_setaffinity": 203, "sched_getaffinity": 204,
    "getdents64": 217, "fadvise64": 221, "clock_gettime": 228, "clock_getres": 229,
    "clock_nanosleep": 230, "tgkill": 234, "inotify_add_watch": 254,
    "inotify_rm_watch": 255, "openat": 257, "mkdirat": 258, "mknodat": 259,
    "fchownat": 260, "newfstatat": 262, "unlinkat": 263, "renameat": 264, "linkat": 265,
    "symlinkat": 266, "readlinkat": 267, "fchmodat": 268, "faccessat": 269,
    "pselect6": 270, "ppoll": 271, "splice": 275, "tee": 276, "sync_file_range": 277,
    "utimensat": 280, "timerfd_create": 283, "fallocate": 285, "timerfd_settime": 286,
    "timerfd_gettime": 287, "accept4": 288, "eventfd2": 290, "dup3": 292, "pipe2": 293,
    "inotify_init1": 294, "preadv": 295, "pwritev": 296, "prlimit64": 302, "syncfs": 306,
    "getcpu": 309, "renameat2": 316, "getrandom": 318, "memfd_create": 319,
    "copy_file_range": 326, "preadv2": 327, "pwritev2": 328, "statx": 332,
    "close_range": 436, "fstat": 5, "execve": 59, "futex": 202, "faccessat2": 439,
    "nanosleep": 35, "getpid": 39, "getppid": 110,
    "getuid": 102, "getgid": 104, "geteuid": 107, "getegid": 108, "getpgrp": 111,
    "uname": 63, "wait4": 61, "waitid": 247, "msync": 26, "madvise": 28,
    "sched_rr_get_interval": 148, "mlockall": 151, "munlockall": 152, "chroot": 161,
    "acct": 163, "setdomainname": 171, "ioprio_set": 251, "ioprio_get": 252,
    "unshare": 272, "signalfd4": 289, "sendmmsg": 307, "recvmmsg": 299,
    "epoll_create1": 291, "mlock2": 325, "membarrier": 324, "vhangup": 153,
    "mount": 165, "umount2": 166, "pivot_root": 155, "swapon": 167, "swapoff": 168,
    "reboot": 169, "quotactl": 179, "pidfd_open": 434, "pidfd_send_signal": 424,
    "openat2": 437, "rt_sigpending": 127, "rt_sigtimedwait": 128, "rt_sigqueueinfo": 129,
    "rt_sigsuspend": 130, "rt_tgsigqueueinfo": 297, "timer_create": 222,
    "timer_settime": 223, "timer_gettime": 224, "timer_getoverrun": 225, "timer_delete": 226,
    "epoll_ctl": 233, "epoll_pwait": 281, "epoll_pwait2": 441, "vmsplice": 278,
    "sched_setparam": 142, "sched_setscheduler": 144, "pidfd_getfd": 438, "kcmp": 312,
    "setns": 308, "syslog": 103, "settimeofday": 164, "clock_settime": 227,
    "adjtimex": 159, "clock_adjtime": 305, "fanotify_init": 300, "fanotify_mark": 301,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "mq_open": 240, "mq_unlink": 241,
    "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
    "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semget": 64, "semop": 65,
    "semctl": 66, "semtimedop": 220,
}


# Calls that may block until a signal comes: they go through safe_syscall (see
# llvmtcg.user.host_signals) once the process installed it, so a signal arriving between
# the process's last check and the call interrupts it (-EINTR) instead of waiting.
BLOCKING = frozenset({
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "futex", "wait4", "waitid", "nanosleep", "clock_nanosleep",
    "ppoll", "pselect6", "epoll_pwait", "accept", "accept4", "connect", "recvfrom",
    "sendto", "recvmsg", "sendmsg", "recvmmsg", "sendmmsg", "rt_sigsuspend",
    "rt_sigtimedwait", "flock", "fcntl", "openat", "openat2", "splice", "tee",
    "sendfile", "copy_file_range", "msync", "fsync", "fdatasync", "ioctl", "epoll_pwait2",
    "msgsnd", "msgrcv", "semtimedop", "mq_timedsend", "mq_timedreceive", "open_by_handle_at",
    "vmsplice"})


class _ThreadSignals(threading.local):
    pending: int = 0  # address of the calling guest thread's pending byte (0: none)
    keepalive: object = None  # what owns that byte


_thread = _ThreadSignals()
_safe_syscall: Callable[..., int] | None = None
_safe_keepalive: object = None


def install_safe_syscall(address: int, keepalive: object = None) -> None:
    """Route :data:`BLOCKING` calls through the native safe_syscall at ``address``
    (``keepalive``: what owns its code; kept for the life of the process)."""
    global _safe_syscall, _safe_keepalive
    _safe_syscall = ctypes.CFUNCTYPE(ctypes.c_long, *[ctypes.c_void_p] * 8)(address)
    _safe_keepalive = keepalive


def set_thread_pending(address: int, keepalive: object = None) -> None:
    """The calling host thread is a guest thread whose pending-signal byte is at
    ``address`` (0: none), owned by ``keepalive``."""
    _thread.pending = address
    _thread.keepalive = keepalive


def call(name: str, *args: int | bytes | None) -> int:
    """The host syscall ``name``: its result, or ``-errno``. ``bytes`` arguments are
    passed as pointers to NUL-terminated copies, ``None`` as NULL."""
    pending = _thread.pending
    if pending and _safe_syscall is not None and name in BLOCKING:
        return _call_safe(pending, name, args)
    converted = []
    for a in args:
        if a is None:
            converted.append(ctypes.c_ulong(0))
        elif isinstance(a, bytes):
            converted.append(ctypes.c_char_p(a))
        else:
            converted.append(ctypes.c_ulong(a & 0xFFFF_FFFF_FFFF_FFFF))
    result = _syscall(ctypes.c_long(NR[name]), *converted)
    if result == -1:
        return -ctypes.get_errno()
    return result


def _call_safe(pending: int, name: str, args: tuple) -> int:
    converted = [a & 0xFFFF_FFFF_FFFF_FFFF if isinstance(a, int) else a for a in args]
    converted += [None] * (6 - len(converted))
    # The raw syscall instruction: the result is -errno directly (no libc errno).
    return _safe_syscall(pending, NR[name], *converted)


def buffer(size: int) -> tuple[ctypes.Array, int]:
    """A zeroed host scratch buffer and its address."""
    buf = ctypes.create_string_buffer(size)
    return buf, ctypes.addressof(buf)


libc = _libc
