"""System V message queues and semaphores, POSIX message queues.

Queues and semaphore sets are the host kernel's, so other processes (guest or not)
share them. ``struct msqid64_ds``, ``msginfo``, ``seminfo``, ``sembuf`` and
``mq_attr`` have the host's layout; ``struct semid64_ds`` does not (x86-64 has an unused
word after each time), so IPC_STAT/IPC_SET convert it. Shared memory (shmget/shmat)
needs the guest address space to map host segments and is not here (-ENOSYS).
"""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.syscalls.table import syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL = 11, 12, 13, 14, 15, 16, 17
SEM_STAT, SEM_INFO, SEM_STAT_ANY = 18, 19, 20
IPC_64 = 0x100  # (glibc passes it; the 64-bit ABIs ignore it)
_MSQID_DS, _MSGINFO, _SEMINFO = 120, 32, 40
_IPC_PERM = 48
_SIGEV_THREAD, _NOTIFY_COOKIE_LEN = 2, 32
_HOST_SEMID = struct.Struct(f"<{_IPC_PERM}sqQqQQQQ")  # x86-64 semid64_ds (104 bytes)
_GUEST_SEMID = struct.Struct(f"<{_IPC_PERM}sqqQQQ")  # generic 64-bit semid64_ds (88)


@syscall("msgget", "hex hex")
def sys_msgget(proc: GuestProcess, key, msgflg):
    return host.call("msgget", key, msgflg)


@syscall("msgsnd", "int ptr uint hex")
def sys_msgsnd(proc: GuestProcess, msqid, msgp, msgsz, msgflg):
    return host.call("msgsnd", msqid, proc.check(msgp, 8 + msgsz), msgsz, msgflg)


@syscall("msgrcv", "int ptr uint int hex")
def sys_msgrcv(proc: GuestProcess, msqid, msgp, msgsz, msgtyp, msgflg):
    result = host.call("msgrcv", msqid, proc.check(msgp, 8 + msgsz, Access.WRITE), msgsz,
                       msgtyp, msgflg)
    if result >= 0:
        proc.wrote(msgp, 8 + result)
    return result


@syscall("msgctl", "int int ptr")
def sys_msgctl(proc: GuestProcess, msqid, cmd, buf):
    cmd &= ~IPC_64
    if cmd == IPC_RMID:
        return host.call("msgctl", msqid, cmd, 0)
    if cmd in (IPC_STAT, MSG_STAT, MSG_STAT_ANY):
        return host.call("msgctl", msqid, cmd, proc.check(buf, _MSQID_DS, Access.WRITE))
    if cmd == IPC_SET:
        return host.call("msgctl", msqid, cmd, proc.check(buf, _MSQID_DS))
    if cmd in (IPC_INFO, MSG_INFO):
        return host.call("msgctl", msqid, cmd, proc.check(buf, _MSGINFO, Access.WRITE))
    return -errno.EINVAL


@syscall("semget", "hex int hex")
def sys_semget(proc: GuestProcess, key, nsems, semflg):
    return host.call("semget", key, nsems, semflg)


@syscall("semop", "int ptr uint")
def sys_semop(proc: GuestProcess, semid, sops, nsops):
    return host.call("semtimedop", semid, proc.check(sops, 6 * nsops), nsops, 0)


@syscall("semtimedop", "int ptr uint ptr")
def sys_semtimedop(proc: GuestProcess, semid, sops, nsops, timeout):
    return host.call("semtimedop", semid, proc.check(sops, 6 * nsops), nsops,
                     proc.check(timeout, 16) if timeout else 0)


@syscall("semctl", "int int int hex")
def sys_semctl(proc: GuestProcess, semid, semnum, cmd, arg):
    cmd &= ~IPC_64
    if cmd in (IPC_RMID, GETPID, GETVAL, GETNCNT, GETZCNT, SETVAL):
        return host.call("semctl", semid, semnum, cmd, arg)
    if cmd in (IPC_INFO, SEM_INFO):
        return host.call("semctl", semid, semnum, cmd, proc.check(arg, _SEMINFO,
                                                                  Access.WRITE))
    if cmd in (IPC_STAT, SEM_STAT, SEM_STAT_ANY):
        proc.check(arg, _GUEST_SEMID.size, Access.WRITE)
        raw, addr = host.buffer(_HOST_SEMID.size)
        result = host.call("semctl", semid, semnum, cmd, addr)
        if result >= 0:
            perm, otime, _, ctime, _, nsems, _, _ = _HOST_SEMID.unpack(raw.raw)
            proc.write(arg, _GUEST_SEMID.pack(perm, otime, ctime, nsems, 0, 0))
        return result
    if cmd == IPC_SET:
        perm, otime, ctime, nsems, _, _ = _GUEST_SEMID.unpack(proc.read(arg,
                                                                        _GUEST_SEMID.size))
        buf = ctypes.create_string_buffer(
            _HOST_SEMID.pack(perm, otime, 0, ctime, 0, nsems, 0, 0), _HOST_SEMID.size)
        return host.call("semctl", semid, semnum, cmd, ctypes.addressof(buf))
    if cmd in (GETALL, SETALL):
        raw, addr = host.buffer(_HOST_SEMID.size)
        result = host.call("semctl", semid, 0, IPC_STAT, addr)
        if result < 0:
            return result
        nsems = _HOST_SEMID.unpack(raw.raw)[5]
        access = Access.WRITE if cmd == GETALL else Access.READ
        result = host.call("semctl", semid, semnum, cmd, proc.check(arg, 2 * nsems, access))
        if result >= 0 and cmd == GETALL:
            proc.wrote(arg, 2 * nsems)
        return result
    return -errno.EINVAL


# -- POSIX message queues (mq_attr: four longs, the host's) --------------------------------
@syscall("mq_open", "path oflags mode ptr")
def sys_mq_open(proc: GuestProcess, name, oflag, mode, attr):
    return host.call("mq_open", proc.read_str(name), oflag, mode,
                     proc.check(attr, 64) if attr else 0)


@syscall("mq_unlink", "path")
def sys_mq_unlink(proc: GuestProcess, name):
    return host.call("mq_unlink", proc.read_str(name))


@syscall("mq_timedsend", "fd ptr uint uint ptr")
def sys_mq_timedsend(proc: GuestProcess, mqdes, msg, length, prio, timeout):
    return host.call("mq_timedsend", mqdes, proc.check(msg, length), length, prio,
                     proc.check(timeout, 16) if timeout else 0)


@syscall("mq_timedreceive", "fd ptr uint ptr ptr")
def sys_mq_timedreceive(proc: GuestProcess, mqdes, msg, length, prio, timeout):
    result = host.call("mq_timedreceive", mqdes, proc.check(msg, length, Access.WRITE),
                       length, proc.check(prio, 4, Access.WRITE) if prio else 0,
                       proc.check(timeout, 16) if timeout else 0)
    if result > 0:
        proc.wrote(msg, result)
    return result


@syscall("mq_notify", "fd ptr")
def sys_mq_notify(proc: GuestProcess, mqdes, sevp):
    # struct sigevent is the host's. For SIGEV_THREAD (glibc's, through a netlink
    # socket) the kernel reads a cookie at sigev_value.sival_ptr: a guest pointer,
    # made a host one here.
    if not sevp:
        return host.call("mq_notify", mqdes, 0)
    event = bytearray(proc.read(sevp, 64))
    value, _signo, notify = struct.unpack_from("<Qii", event)
    if notify == _SIGEV_THREAD:
        struct.pack_into("<Q", event, 0, proc.check(value, _NOTIFY_COOKIE_LEN))
    buf = ctypes.create_string_buffer(bytes(event), 64)
    return host.call("mq_notify", mqdes, ctypes.addressof(buf))


@syscall("mq_getsetattr", "fd ptr ptr")
def sys_mq_getsetattr(proc: GuestProcess, mqdes, new, old):
    return host.call("mq_getsetattr", mqdes, proc.check(new, 64) if new else 0,
                     proc.check(old, 64, Access.WRITE) if old else 0)
