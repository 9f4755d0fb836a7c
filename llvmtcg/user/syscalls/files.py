"""Files, directories and file descriptors.

Guest fds are host fds. Most calls pass straight to the host with guest buffers
translated to host addresses (after checking the guest may access them): the generic
ABI shares open flags (arm64 numbers four of them differently:
``UserArch.open_flags_to_host``), errno values, ``struct statx``, ``linux_dirent64``,
``termios``, ``statfs``, ``flock``, ``iovec`` and ``timespec`` with x86-64.
``struct stat`` differs and is converted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.procfs import NO_ENTRY, TASK_DIR
from llvmtcg.user.syscalls.table import SyscallError, syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

AT_FDCWD = -100 & 0xFFFF_FFFF_FFFF_FFFF
AT_EMPTY_PATH = 0x1000
IOV_MAX = 1024

_X86_STAT = struct.Struct("<QQQIIIiQqqqqqqqqq")  # struct stat on x86-64 (144 bytes)
_X86_STAT_SIZE = 144
_GENERIC_STAT = struct.Struct("<QQIIIIQQqiiqqQqQqQII")  # asm-generic struct stat (128)


def convert_stat(raw: bytes) -> bytes:
    (dev, ino, nlink, mode, uid, gid, _pad, rdev, size, blksize, blocks, atime, atime_ns,
     mtime, mtime_ns, ctime, ctime_ns) = _X86_STAT.unpack_from(raw)
    return _GENERIC_STAT.pack(dev, ino, mode, nlink, uid, gid, rdev, 0, size, blksize, 0,
                              blocks, atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns, 0, 0)


def _own_proc(proc: GuestProcess, dirfd: int, path: bytes) -> str | None:
    """The entry of the guest's own /proc directory ``path`` names (see
    :mod:`llvmtcg.user.procfs`), or None. Absolute paths elsewhere cost nothing; a
    relative one costs a look at where its directory is."""
    if path[:1] == b"/" and not path.startswith(b"/proc/"):
        return None
    return proc.procfs.own_entry(proc, dirfd, path)


def _exe_or(proc: GuestProcess, dirfd: int, path: bytes) -> bytes:
    """/proc/self/exe (any spelling) names the guest program, not Python; an emulator
    thread's /proc directory does not exist for the guest."""
    entry = _own_proc(proc, dirfd, path)
    if entry == "exe":
        return os.fsencode(proc.exe_path)
    if entry == NO_ENTRY:
        raise SyscallError(errno.ENOENT)
    return path


# -- read/write -------------------------------------------------------------------------
# A buffer that runs into an unmapped page transfers up to there, as on Linux.
@syscall("read", "fd ptr uint")
def sys_read(proc: GuestProcess, fd, buf, count):
    if proc.procfs.mem_fds and proc.procfs.is_mem(fd):
        return proc.procfs.mem_transfer(proc, fd, buf, count, None, write=False)
    host_buf, usable = proc.check_prefix(buf, count, Access.WRITE)
    result = host.call("read", fd, host_buf, usable)
    if result > 0:
        proc.wrote(buf, result)
    return result


@syscall("write", "fd ptr uint")
def sys_write(proc: GuestProcess, fd, buf, count):
    if proc.procfs.mem_fds and proc.procfs.is_mem(fd):
        return proc.procfs.mem_transfer(proc, fd, buf, count, None, write=True)
    host_buf, usable = proc.check_prefix(buf, count)
    return host.call("write", fd, host_buf, usable)


@syscall("pread64", "fd ptr uint int")
def sys_pread64(proc: GuestProcess, fd, buf, count, offset):
    if proc.procfs.mem_fds and proc.procfs.is_mem(fd):
        return proc.procfs.mem_transfer(proc, fd, buf, count, offset, write=False)
    host_buf, usable = proc.check_prefix(buf, count, Access.WRITE)
    result = host.call("pread64", fd, host_buf, usable, offset)
    if result > 0:
        proc.wrote(buf, result)
    return result


@syscall("pwrite64", "fd ptr uint int")
def sys_pwrite64(proc: GuestProcess, fd, buf, count, offset):
    if proc.procfs.mem_fds and proc.procfs.is_mem(fd):
        return proc.procfs.mem_transfer(proc, fd, buf, count, offset, write=True)
    host_buf, usable = proc.check_prefix(buf, count)
    return host.call("pwrite64", fd, host_buf, usable, offset)


def host_iovec(proc: GuestProcess, iov: int, iovcnt: int, access: Access):
    """A host copy of a guest iovec array with translated buffers (and the guest's
    (base, len) pairs, to invalidate code after a read)."""
    if iovcnt > IOV_MAX:
        raise SyscallError(errno.EINVAL)
    raw = proc.read(iov, 16 * iovcnt)
    pairs = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(iovcnt)]
    array = (ctypes.c_uint64 * (2 * iovcnt))()
    for i, (base, length) in enumerate(pairs):
        if length >> 63:
            raise SyscallError(errno.EINVAL)
        array[2 * i] = proc.check(base, length, access) if length else 0
        array[2 * i + 1] = length
    return array, pairs


def _after_vector_read(proc: GuestProcess, pairs, count: int) -> None:
    for base, length in pairs:
        if count <= 0:
            break
        proc.wrote(base, min(length, count))
        count -= length


@syscall("readv", "fd ptr int")
def sys_readv(proc: GuestProcess, fd, iov, iovcnt):
    array, pairs = host_iovec(proc, iov, iovcnt, Access.WRITE)
    result = host.call("readv", fd, ctypes.addressof(array), iovcnt)
    _after_vector_read(proc, pairs, result)
    return result


@syscall("writev", "fd ptr int")
def sys_writev(proc: GuestProcess, fd, iov, iovcnt):
    array, _ = host_iovec(proc, iov, iovcnt, Access.READ)
    return host.call("writev", fd, ctypes.addressof(array), iovcnt)


@syscall("preadv", "fd ptr int int int")
def sys_preadv(proc: GuestProcess, fd, iov, iovcnt, lo, hi):
    array, pairs = host_iovec(proc, iov, iovcnt, Access.WRITE)
    result = host.call("preadv", fd, ctypes.addressof(array), iovcnt, lo, hi)
    _after_vector_read(proc, pairs, result)
    return result


@syscall("pwritev", "fd ptr int int int")
def sys_pwritev(proc: GuestProcess, fd, iov, iovcnt, lo, hi):
    array, _ = host_iovec(proc, iov, iovcnt, Access.READ)
    return host.call("pwritev", fd, ctypes.addressof(array), iovcnt, lo, hi)


@syscall("lseek", "fd int int")
def sys_lseek(proc: GuestProcess, fd, offset, whence):
    return host.call("lseek", fd, offset, whence)


@syscall("sendfile", "fd fd ptr uint")
def sys_sendfile(proc: GuestProcess, out_fd, in_fd, offset, count):
    off = proc.check(offset, 8, Access.WRITE) if offset else 0
    return host.call("sendfile", out_fd, in_fd, off, count)


@syscall("copy_file_range", "fd ptr fd ptr uint uint")
def sys_copy_file_range(proc: GuestProcess, fd_in, off_in, fd_out, off_out, length, flags):
    a = proc.check(off_in, 8, Access.WRITE) if off_in else 0
    b = proc.check(off_out, 8, Access.WRITE) if off_out else 0
    return host.call("copy_file_range", fd_in, a, fd_out, b, length, flags)


@syscall("splice", "fd ptr fd ptr uint hex")
def sys_splice(proc: GuestProcess, fd_in, off_in, fd_out, off_out, length, flags):
    a = proc.check(off_in, 8, Access.WRITE) if off_in else 0
    b = proc.check(off_out, 8, Access.WRITE) if off_out else 0
    return host.call("splice", fd_in, a, fd_out, b, length, flags)


# -- opening, closing, duplicating ------------------------------------------------------
@syscall("openat", "dirfd path oflags mode")
def sys_openat(proc: GuestProcess, dirfd, pathname, flags, mode):
    path = proc.read_path(pathname)
    flags = proc.open_flags_to_host(flags)
    entry = _own_proc(proc, dirfd, path)
    if entry == TASK_DIR:
        fd = host.call("openat", dirfd, path, flags, mode)
        if fd >= 0:
            proc.procfs.open_task_dir(fd)
        return fd
    if entry is not None:
        if entry == "exe":
            path = os.fsencode(proc.exe_path)
        else:
            fd = proc.procfs.open(proc, entry, flags)
            if fd is not None:
                return fd
    return host.call("openat", dirfd, path, flags, mode)


@syscall("close", "fd")
def sys_close(proc: GuestProcess, fd):
    return host.call("close", fd)


@syscall("close_range", "fd fd hex")
def sys_close_range(proc: GuestProcess, first, last, flags):
    return host.call("close_range", first, last, flags)


@syscall("dup", "fd")
def sys_dup(proc: GuestProcess, fd):
    new = host.call("dup", fd)
    proc.procfs.duplicated(fd, new)
    return new


@syscall("dup3", "fd fd oflags")
def sys_dup3(proc: GuestProcess, old, new, flags):
    result = host.call("dup3", old, new, flags)
    proc.procfs.duplicated(old, result)
    return result


@syscall("pipe2", "ptr oflags")
def sys_pipe2(proc: GuestProcess, fds, flags):
    proc.check(fds, 8, Access.WRITE)
    buf, addr = host.buffer(8)
    result = host.call("pipe2", addr, proc.open_flags_to_host(flags))
    if result == 0:
        proc.write(fds, buf.raw[:8])
    return result


@syscall("fcntl", "fd int hex")
def sys_fcntl(proc: GuestProcess, fd, cmd, arg):
    if cmd in (5, 6, 7, 36, 37, 38):  # F_GETLK/F_SETLK/F_SETLKW and the OFD variants
        return host.call("fcntl", fd, cmd, proc.check(arg, 32, Access.WRITE))
    if cmd in (0, 1030):  # F_DUPFD, F_DUPFD_CLOEXEC
        new = host.call("fcntl", fd, cmd, arg)
        proc.procfs.duplicated(fd, new)
        return new
    if cmd == 3:  # F_GETFL
        result = host.call("fcntl", fd, cmd, arg)
        return result if result < 0 else proc.open_flags_to_guest(result)
    if cmd == 4:  # F_SETFL
        return host.call("fcntl", fd, cmd, proc.open_flags_to_host(arg))
    if cmd in (1, 2, 8, 9, 10, 11, 1024, 1025, 1026, 1031, 1032, 1033, 1034):
        return host.call("fcntl", fd, cmd, arg)
    return -errno.EINVAL


@syscall("flock", "fd int")
def sys_flock(proc: GuestProcess, fd, op):
    return host.call("flock", fd, op)


# Terminal ioctls: the generic numbers and structures match x86-64's.
_IOCTL_ARG_SIZE = {
    0x5401: 36, 0x5402: 36, 0x5403: 36, 0x5404: 36,  # TCGETS, TCSETS, TCSETSW, TCSETSF
    0x5413: 8, 0x5414: 8,  # TIOCGWINSZ, TIOCSWINSZ
    0x540F: 4, 0x5410: 4, 0x5429: 4,  # TIOCGPGRP, TIOCSPGRP, TIOCGSID
    0x541B: 4, 0x5411: 4, 0x5421: 4, 0x5452: 4,  # FIONREAD, TIOCOUTQ, FIONBIO, FIOASYNC
    0x80045430: 4, 0x40045431: 4,  # TIOCGPTN, TIOCSPTLCK
}
_IOCTL_NO_POINTER = {0x5409, 0x540A, 0x540B, 0x540E, 0x5422, 0x5450, 0x5451}
# TCSBRK, TCXONC, TCFLSH, TIOCSCTTY, TIOCNOTTY, FIONCLEX, FIOCLEX


@syscall("ioctl", "fd hex hex")
def sys_ioctl(proc: GuestProcess, fd, request, arg):
    request &= 0xFFFF_FFFF
    if request in _IOCTL_NO_POINTER:
        return host.call("ioctl", fd, request, arg)
    size = _IOCTL_ARG_SIZE.get(request)
    if size is None:
        if proc.log.enabled("unimp") or proc.strace is not None:
            proc.log.write(f"{proc.pid} ioctl: unsupported request {request:#x}, "
                           f"returning -ENOTTY")
        return -errno.ENOTTY
    result = host.call("ioctl", fd, request, proc.check(arg, size, Access.WRITE))
    if result >= 0:
        proc.wrote(arg, size)
    return result


# -- metadata ---------------------------------------------------------------------------
def _stat_into(proc: GuestProcess, result: int, raw, statbuf: int) -> int:
    if result == 0:
        proc.write(statbuf, convert_stat(raw.raw))
    return result


@syscall("fstat", "fd ptr")
def sys_fstat(proc: GuestProcess, fd, statbuf):
    proc.check(statbuf, 128, Access.WRITE)
    raw, addr = host.buffer(_X86_STAT_SIZE)
    return _stat_into(proc, host.call("fstat", fd, addr), raw, statbuf)


@syscall("newfstatat", "dirfd path ptr atflags")
def sys_newfstatat(proc: GuestProcess, dirfd, pathname, statbuf, flags):
    path = _exe_or(proc, dirfd, proc.read_path(pathname))
    proc.check(statbuf, 128, Access.WRITE)
    raw, addr = host.buffer(_X86_STAT_SIZE)
    return _stat_into(proc, host.call("newfstatat", dirfd, path, addr, flags), raw, statbuf)


@syscall("statx", "dirfd path atflags hex ptr")
def sys_statx(proc: GuestProcess, dirfd, pathname, flags, mask, statxbuf):
    path = _exe_or(proc, dirfd, proc.read_path(pathname))
    result = host.call("statx", dirfd, path, flags, mask,
                       proc.check(statxbuf, 256, Access.WRITE))
    if result == 0:
        proc.wrote(statxbuf, 256)
    return result


@syscall("statfs", "path ptr")
def sys_statfs(proc: GuestProcess, pathname, buf):
    return host.call("statfs", proc.read_path(pathname), proc.check(buf, 120, Access.WRITE))


@syscall("fstatfs", "fd ptr")
def sys_fstatfs(proc: GuestProcess, fd, buf):
    return host.call("fstatfs", fd, proc.check(buf, 120, Access.WRITE))


@syscall("getdents64", "fd ptr uint")
def sys_getdents64(proc: GuestProcess, fd, dirp, count):
    addr = proc.check(dirp, count, Access.WRITE)
    if proc.procfs.task_fds and proc.procfs.is_task_dir(fd):
        return _task_entries(proc, fd, dirp, count)
    result = host.call("getdents64", fd, addr, count)
    if result > 0:
        proc.wrote(dirp, result)
    return result


def _task_entries(proc: GuestProcess, fd: int, dirp: int, count: int) -> int:
    """getdents64 of /proc/self/task: the guest's threads only (a host batch whose
    records were all the emulator's is skipped: 0 would mean the end)."""
    count = min(count, 1 << 16)
    buf, addr = host.buffer(count)
    while True:
        result = host.call("getdents64", fd, addr, count)
        if result <= 0:
            return result
        data = proc.procfs.filter_task_entries(proc, buf.raw[:result])
        if data:
            proc.write(dirp, data)
            return len(data)


@syscall("readlinkat", "dirfd path ptr uint")
def sys_readlinkat(proc: GuestProcess, dirfd, pathname, buf, size):
    path = proc.read_path(pathname)
    entry = _own_proc(proc, dirfd, path)
    if entry == NO_ENTRY:
        return -errno.ENOENT
    target = os.fsencode(proc.exe_path) if entry == "exe" else None
    if target is not None:
        data = target[:size]
        proc.check(buf, len(data), Access.WRITE)
        proc.write(buf, data)
        return len(data)
    result = host.call("readlinkat", dirfd, path, proc.check(buf, size, Access.WRITE), size)
    if result > 0:
        proc.wrote(buf, result)
    return result


@syscall("faccessat", "dirfd path mode")
def sys_faccessat(proc: GuestProcess, dirfd, pathname, mode):
    return host.call("faccessat", dirfd, proc.read_path(pathname), mode)


@syscall("faccessat2", "dirfd path mode atflags")
def sys_faccessat2(proc: GuestProcess, dirfd, pathname, mode, flags):
    return host.call("faccessat2", dirfd, proc.read_path(pathname), mode, flags)


@syscall("utimensat", "dirfd path ptr atflags")
def sys_utimensat(proc: GuestProcess, dirfd, pathname, times, flags):
    path = proc.read_str(pathname) if pathname else None
    tp = proc.check(times, 32) if times else 0
    return host.call("utimensat", dirfd, path, tp, flags)


# -- the namespace ----------------------------------------------------------------------
@syscall("mkdirat", "dirfd path mode")
def sys_mkdirat(proc: GuestProcess, dirfd, pathname, mode):
    return host.call("mkdirat", dirfd, proc.read_str(pathname), mode)


@syscall("mknodat", "dirfd path mode hex")
def sys_mknodat(proc: GuestProcess, dirfd, pathname, mode, dev):
    return host.call("mknodat", dirfd, proc.read_str(pathname), mode, dev)


@syscall("unlinkat", "dirfd path atflags")
def sys_unlinkat(proc: GuestProcess, dirfd, pathname, flags):
    return host.call("unlinkat", dirfd, proc.read_str(pathname), flags)


@syscall("symlinkat", "path dirfd path")
def sys_symlinkat(proc: GuestProcess, target, dirfd, linkpath):
    return host.call("symlinkat", proc.read_str(target), dirfd, proc.read_str(linkpath))


@syscall("linkat", "dirfd path dirfd path atflags")
def sys_linkat(proc: GuestProcess, olddirfd, oldpath, newdirfd, newpath, flags):
    return host.call("linkat", olddirfd, proc.read_str(oldpath), newdirfd,
                     proc.read_str(newpath), flags)


@syscall("renameat", "dirfd path dirfd path")
def sys_renameat(proc: GuestProcess, olddirfd, oldpath, newdirfd, newpath):
    return host.call("renameat", olddirfd, proc.read_str(oldpath), newdirfd,
                     proc.read_str(newpath))


@syscall("renameat2", "dirfd path dirfd path hex")
def sys_renameat2(proc: GuestProcess, olddirfd, oldpath, newdirfd, newpath, flags):
    return host.call("renameat2", olddirfd, proc.read_str(oldpath), newdirfd,
                     proc.read_str(newpath), flags)


@syscall("fchmod", "fd mode")
def sys_fchmod(proc: GuestProcess, fd, mode):
    return host.call("fchmod", fd, mode)


@syscall("fchmodat", "dirfd path mode")
def sys_fchmodat(proc: GuestProcess, dirfd, pathname, mode):
    return host.call("fchmodat", dirfd, proc.read_str(pathname), mode)


@syscall("fchown", "fd int int")
def sys_fchown(proc: GuestProcess, fd, uid, gid):
    return host.call("fchown", fd, uid, gid)


@syscall("fchownat", "dirfd path int int atflags")
def sys_fchownat(proc: GuestProcess, dirfd, pathname, uid, gid, flags):
    return host.call("fchownat", dirfd, proc.read_str(pathname), uid, gid, flags)


@syscall("truncate", "path int")
def sys_truncate(proc: GuestProcess, pathname, length):
    return host.call("truncate", proc.read_str(pathname), length)


@syscall("ftruncate", "fd int")
def sys_ftruncate(proc: GuestProcess, fd, length):
    return host.call("ftruncate", fd, length)


@syscall("fallocate", "fd int int int")
def sys_fallocate(proc: GuestProcess, fd, mode, offset, length):
    return host.call("fallocate", fd, mode, offset, length)


@syscall("fsync", "fd")
def sys_fsync(proc: GuestProcess, fd):
    return host.call("fsync", fd)


@syscall("fdatasync", "fd")
def sys_fdatasync(proc: GuestProcess, fd):
    return host.call("fdatasync", fd)


@syscall("sync")
def sys_sync(proc: GuestProcess):
    return host.call("sync")


@syscall("syncfs", "fd")
def sys_syncfs(proc: GuestProcess, fd):
    return host.call("syncfs", fd)


@syscall("fadvise64", "fd int int int")
def sys_fadvise64(proc: GuestProcess, fd, offset, length, advice):
    return host.call("fadvise64", fd, offset, length, advice)


@syscall("readahead", "fd int uint")
def sys_readahead(proc: GuestProcess, fd, offset, count):
    return host.call("readahead", fd, offset, count)


@syscall("umask", "mode")
def sys_umask(proc: GuestProcess, mask):
    return host.call("umask", mask)


@syscall("chdir", "path")
def sys_chdir(proc: GuestProcess, pathname):
    return host.call("chdir", proc.read_str(pathname))


@syscall("fchdir", "fd")
def sys_fchdir(proc: GuestProcess, fd):
    return host.call("fchdir", fd)


@syscall("chroot", "path")
def sys_chroot(proc: GuestProcess, pathname):
    return host.call("chroot", proc.read_str(pathname))


@syscall("getcwd", "ptr uint")
def sys_getcwd(proc: GuestProcess, buf, size):
    result = host.call("getcwd", proc.check(buf, size, Access.WRITE), size)
    if result > 0:
        proc.wrote(buf, result)
    return result


@syscall("memfd_create", "path hex")
def sys_memfd_create(proc: GuestProcess, name, flags):
    return host.call("memfd_create", proc.read_str(name, 249), flags)


@syscall("eventfd2", "uint oflags")
def sys_eventfd2(proc: GuestProcess, initval, flags):
    return host.call("eventfd2", initval, flags)


# -- extended attributes ------------------------------------------------------------------
def _xattr_get(name):
    @syscall(name, "path path ptr uint")
    def handler(proc: GuestProcess, pathname, attr, value, size):
        target = proc.read_str(pathname) if not name.startswith("f") else pathname
        buf = proc.check(value, size, Access.WRITE) if size else 0
        result = host.call(name, target, proc.read_str(attr), buf, size)
        if result > 0 and size:
            proc.wrote(value, result)
        return result
    return handler


for _name in ("getxattr", "lgetxattr", "fgetxattr"):
    _xattr_get(_name)


def _xattr_list(name):
    @syscall(name, "path ptr uint")
    def handler(proc: GuestProcess, pathname, listbuf, size):
        target = proc.read_str(pathname) if not name.startswith("f") else pathname
        buf = proc.check(listbuf, size, Access.WRITE) if size else 0
        result = host.call(name, target, buf, size)
        if result > 0 and size:
            proc.wrote(listbuf, result)
        return result
    return handler


for _name in ("listxattr", "llistxattr", "flistxattr"):
    _xattr_list(_name)


def _xattr_set(name):
    @syscall(name, "path path ptr uint hex")
    def handler(proc: GuestProcess, pathname, attr, value, size, flags):
        target = proc.read_str(pathname) if not name.startswith("f") else pathname
        return host.call(name, target, proc.read_str(attr), proc.check(value, size), size,
                         flags)
    return handler


for _name in ("setxattr", "lsetxattr", "fsetxattr"):
    _xattr_set(_name)


def _xattr_remove(name):
    @syscall(name, "path path")
    def handler(proc: GuestProcess, pathname, attr):
        target = proc.read_str(pathname) if not name.startswith("f") else pathname
        return host.call(name, target, proc.read_str(attr))
    return handler


for _name in ("removexattr", "lremovexattr", "fremovexattr"):
    _xattr_remove(_name)


# -- more vectors, pipes and handles -----------------------------------------------------
@syscall("preadv2", "fd ptr int int int hex")
def sys_preadv2(proc: GuestProcess, fd, iov, iovcnt, lo, hi, flags):
    array, pairs = host_iovec(proc, iov, iovcnt, Access.WRITE)
    result = host.call("preadv2", fd, ctypes.addressof(array), iovcnt, lo, hi, flags)
    _after_vector_read(proc, pairs, result)
    return result


@syscall("pwritev2", "fd ptr int int int hex")
def sys_pwritev2(proc: GuestProcess, fd, iov, iovcnt, lo, hi, flags):
    array, _ = host_iovec(proc, iov, iovcnt, Access.READ)
    return host.call("pwritev2", fd, ctypes.addressof(array), iovcnt, lo, hi, flags)


@syscall("tee", "fd fd uint hex")
def sys_tee(proc: GuestProcess, fd_in, fd_out, length, flags):
    return host.call("tee", fd_in, fd_out, length, flags)


@syscall("vmsplice", "fd ptr uint hex")
def sys_vmsplice(proc: GuestProcess, fd, iov, nr_segs, flags):
    # Into a pipe (the usual direction) the pages are read; from one, written.
    array, pairs = host_iovec(proc, iov, nr_segs, Access.READ)
    return host.call("vmsplice", fd, ctypes.addressof(array), nr_segs, flags)


@syscall("sync_file_range", "fd int int hex")
def sys_sync_file_range(proc: GuestProcess, fd, offset, nbytes, flags):
    return host.call("sync_file_range", fd, offset, nbytes, flags)


_MAX_HANDLE_SZ = 128


@syscall("name_to_handle_at", "dirfd path ptr ptr atflags")
def sys_name_to_handle_at(proc: GuestProcess, dirfd, pathname, handle, mount_id, flags):
    # struct file_handle { u32 handle_bytes; int handle_type; u8 f_handle[] }: the host's.
    size = min(proc.read_u32(handle), _MAX_HANDLE_SZ)
    result = host.call("name_to_handle_at", dirfd, _exe_or(proc, dirfd,
                                                           proc.read_path(pathname)),
                       proc.check(handle, 8 + size, Access.WRITE),
                       proc.check(mount_id, 4, Access.WRITE), flags)
    proc.wrote(handle, 8 + size)
    return result


@syscall("open_by_handle_at", "fd ptr oflags")
def sys_open_by_handle_at(proc: GuestProcess, mount_fd, handle, flags):
    size = min(proc.read_u32(handle), _MAX_HANDLE_SZ)
    return host.call("open_by_handle_at", mount_fd, proc.check(handle, 8 + size),
                     proc.open_flags_to_host(flags))


# -- mounts (root's business, as on Linux) -------------------------------------------------
@syscall("mount", "path path path hex ptr")
def sys_mount(proc: GuestProcess, source, target, fstype, flags, data):
    return host.call("mount", proc.read_str(source) if source else None,
                     proc.read_path(target), proc.read_str(fstype) if fstype else None,
                     flags, proc.read_str(data, 4096) if data else None)


@syscall("umount2", "path hex")
def sys_umount2(proc: GuestProcess, target, flags):
    return host.call("umount2", proc.read_path(target), flags)
