"""Protocol nodes: ``file`` (a regular file) and ``host_device`` (a block or character
device), QEMU's file-posix drivers.

I/O is pread/pwrite; flush is fdatasync; discard punches a hole; write_zeroes punches a
hole (may_unmap with discard=unmap) or zeroes the range in place.

Image locking (``locking=auto|on|off``) is QEMU's: each permission bit p (consistent
read, write, write unchanged, resize) has two lock bytes in the file, 100+p ("I use p")
and 200+p ("I do not share p"), taken as shared OFD locks (F_OFD_SETLK), which belong to
the open file description, so two opens in one process conflict like two processes
do. Opening tests with F_OFD_GETLK that nobody refuses to share what we use and nobody
uses what we do not share. A qemu and an llvmtcg on one image thus refuse each other
with the same messages.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
from dataclasses import dataclass

from blockdev.errors import BlockError
from blockdev.node import DEFAULT_FLAGS, BlockNode, NodeFlags

# -- host calls -------------------------------------------------------------------------

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_FALLOC_FL_ZERO_RANGE = 0x10
try:
    _fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
except AttributeError:  # not Linux
    _fallocate = None


def _try_fallocate(fd: int, mode: int, offset: int, length: int) -> bool:
    """fallocate(2); False when the file system or the host cannot do ``mode``."""
    if _fallocate is None:
        return False
    if _fallocate(fd, mode, offset, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV):
        return False
    raise OSError(code, os.strerror(code))


# -- permissions and lock bytes ---------------------------------------------------------

PERM_CONSISTENT_READ = 1 << 0
PERM_WRITE = 1 << 1
PERM_WRITE_UNCHANGED = 1 << 2
PERM_RESIZE = 1 << 3
PERM_ALL = 0xF
PERM_NAMES = {PERM_CONSISTENT_READ: "consistent read", PERM_WRITE: "write",
              PERM_WRITE_UNCHANGED: "write unchanged", PERM_RESIZE: "resize"}

LOCK_PERM_BASE = 100
LOCK_SHARED_BASE = 200

# struct flock on Linux x86-64 and aarch64: l_type, l_whence, l_start, l_len, l_pid.
_FLOCK = struct.Struct("hhqqi4x")
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", None)


@dataclass(frozen=True, slots=True)
class Permissions:
    """What an open uses (``perm``) and lets others use (``shared``), as QEMU's
    BLK_PERM_* masks."""

    perm: int
    shared: int

    @classmethod
    def for_open(cls, read_only: bool, force_share: bool) -> Permissions:
        # A format node over the file: a writer also resizes it; nobody else may write
        # or resize an image in use (QEMU's bdrv_default_perms_for_storage with a
        # device's default sharing of consistent read and write unchanged).
        if force_share:
            return cls(PERM_CONSISTENT_READ, PERM_ALL)
        if read_only:
            return cls(PERM_CONSISTENT_READ, PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED)
        return cls(PERM_CONSISTENT_READ | PERM_WRITE | PERM_RESIZE,
                   PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED)


def _lock_byte(fd: int, offset: int, command: int) -> None:
    fcntl.fcntl(fd, command, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, offset, 1, 0))


def _byte_is_locked_by_others(fd: int, offset: int, command: int) -> bool:
    """Whether another open file description holds a lock on the byte: the F_GETLK
    test of an exclusive lock (our own locks never conflict with it)."""
    answer = fcntl.fcntl(fd, command, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0))
    return _FLOCK.unpack(answer)[0] != fcntl.F_UNLCK


def lock_image(fd: int, filename: str, permissions: Permissions, ofd: bool = True) -> None:
    """Takes the lock bytes for ``permissions`` and checks for conflicts; raises
    BlockError with QEMU's message and hint on a conflict."""
    set_command = _OFD_SETLK if ofd else fcntl.F_SETLK
    get_command = _OFD_GETLK if ofd else fcntl.F_GETLK
    for bit in range(4):
        try:
            if permissions.perm & (1 << bit):
                _lock_byte(fd, LOCK_PERM_BASE + bit, set_command)
            if not permissions.shared & (1 << bit):
                _lock_byte(fd, LOCK_SHARED_BASE + bit, set_command)
        except OSError as error:
            offset = LOCK_PERM_BASE + bit if permissions.perm & (1 << bit) else \
                LOCK_SHARED_BASE + bit
            raise BlockError(f"Failed to lock byte {offset}", error.errno or errno.EIO,
                             hint=_lock_hint(filename)) from None
    for bit in range(4):
        if permissions.perm & (1 << bit) and \
                _byte_is_locked_by_others(fd, LOCK_SHARED_BASE + bit, get_command):
            raise BlockError(f'Failed to get "{PERM_NAMES[1 << bit]}" lock', errno.EAGAIN,
                             hint=_lock_hint(filename))
    for bit in range(4):
        if not permissions.shared & (1 << bit) and \
                _byte_is_locked_by_others(fd, LOCK_PERM_BASE + bit, get_command):
            raise BlockError(f'Failed to get shared "{PERM_NAMES[1 << bit]}" lock',
                             errno.EAGAIN, hint=_lock_hint(filename))


def _lock_hint(filename: str) -> str:
    return f"Is another process using the image [{filename}]?"


# -- the nodes --------------------------------------------------------------------------


class FileNode(BlockNode):
    """A regular file. Reads past the end return zeros; writes past it extend it."""

    driver = "file"

    def __init__(self, filename: str, *, node_name: str, read_only: bool,
                 flags: NodeFlags = DEFAULT_FLAGS, auto_read_only: bool = False) -> None:
        super().__init__(node_name, read_only, flags)
        self._filename = filename
        self.fd = self._open(filename, auto_read_only)
        try:
            st = os.fstat(self.fd)
            self._check_type(st.st_mode)
            self.identity = (st.st_dev, st.st_ino)
            self.size = self._length(st)
            self._lock()
        except BaseException:
            os.close(self.fd)
            raise
        self._unsynced = False

    @property
    def filename(self) -> str:
        return self._filename

    def _open(self, filename: str, auto_read_only: bool) -> int:
        try:
            if self.read_only:
                return os.open(filename, os.O_RDONLY | os.O_CLOEXEC)
            try:
                return os.open(filename, os.O_RDWR | os.O_CLOEXEC)
            except OSError as error:
                if not auto_read_only or error.errno not in (errno.EACCES, errno.EROFS,
                                                             errno.EPERM):
                    raise
                self.read_only = True
                return os.open(filename, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            code = errno.EACCES if error.errno == errno.EROFS else error.errno or errno.EIO
            raise BlockError(f"Could not open '{filename}': {os.strerror(code)}",
                             code) from None

    def _check_type(self, mode: int) -> None:
        if not stat.S_ISREG(mode):
            raise BlockError(f"'{self.driver}' driver requires '{self._filename}' to be a "
                             "regular file")

    def _length(self, st: os.stat_result) -> int:
        return st.st_size

    def _lock(self) -> None:
        locking = self.flags.locking
        if locking == "off":
            return
        ofd = _OFD_SETLK is not None
        if not ofd and locking == "auto":
            return
        lock_image(self.fd, self._filename,
                   Permissions.for_open(self.read_only, self.flags.force_share), ofd)

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        while len(data) < length:
            more = os.pread(self.fd, length - len(data), offset + len(data))
            if not more:  # end of file: the rest reads as zeros
                return data + bytes(length - len(data))
            data += more
        return data

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        view = memoryview(data)
        end = offset + len(view)
        while view:
            done = os.pwrite(self.fd, view, offset)
            view, offset = view[done:], offset + done
        self._unsynced = True
        if end > self.size:
            self.size = end

    def flush(self) -> None:
        if self._unsynced and not self.flags.no_flush:
            os.fdatasync(self.fd)
        self._unsynced = False

    def discard(self, offset: int, length: int) -> None:
        if self.flags.discard and not self.read_only and length > 0:
            _try_fallocate(self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset,
                           length)
            self._unsynced = True

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self._check_writable()
        if length <= 0:
            return
        inside = max(0, min(length, self.size - offset))
        if inside and may_unmap and self.flags.discard and _try_fallocate(
                self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, inside):
            done = inside
        elif _try_fallocate(self.fd, _FALLOC_FL_ZERO_RANGE, offset, length):
            done = length
        else:
            done = 0
        if done < length:
            chunk = bytes(min(length - done, 1 << 20))
            while done < length:
                n = min(len(chunk), length - done)
                self.write(offset + done, chunk[:n])
                done += n
        self._unsynced = True
        self.size = max(self.size, offset + length)

    def truncate(self, size: int) -> None:
        """Sets the file's length (a new tail reads as zeros)."""
        self._check_writable()
        os.ftruncate(self.fd, size)
        self.size = size
        self._unsynced = True

    def _close(self) -> None:
        try:
            if not self.read_only:
                self.flush()
        finally:
            os.close(self.fd)  # the OFD locks go with the last descriptor


class HostDeviceNode(FileNode):
    """A host block or character device (its size from seeking to its end)."""

    driver = "host_device"

    def _check_type(self, mode: int) -> None:
        if not (stat.S_ISBLK(mode) or stat.S_ISCHR(mode)):
            raise BlockError(f"'{self.driver}' driver requires '{self.filename}' to be "
                             "either a character or block device")

    def _length(self, st: os.stat_result) -> int:
        try:
            return os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            return 0

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset + len(data) > self.size:
            raise OSError(errno.ENOSPC, f"write past the end of {self.filename}")
        super().write(offset, data)
