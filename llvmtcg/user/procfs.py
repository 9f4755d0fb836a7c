"""The process's own ``/proc`` files, emulated so the guest never sees or reaches host
memory (qemu-user's ``open_self_*``).

The host's ``/proc/self`` describes the emulator: Python's mappings, its command line,
its memory. For the guest's own process directory (``/proc/self``, ``/proc/<pid>``,
``/proc/thread-self``, and their ``task/<tid>`` entries, also reached relative to a
directory fd that points there) these files are answered from the guest:

- ``maps``: the guest's mappings in Linux's format; ``exe``: the guest program (for
  open, readlink and stat); ``cmdline``, ``environ``, ``auxv``: from the initial stack;
  ``stat``: the host's line with the guest's command name and addresses;
- ``mem``: guest memory by guest address. Reads need a readable mapping, writes a
  writable one (Linux's FOLL_FORCE would also write through read-only private
  mappings; we honour the guest's protections, whose host mapping may be read-only
  too), and drop translations of code they change. A transfer stops at the first
  inaccessible byte; none at all: EIO, as Linux.
- files that would expose host addresses (``pagemap``, ``smaps``, ``smaps_rollup``,
  ``numa_maps``, ``map_files``, ``syscall``, ``stack``): EACCES.

Generated files are memfds with the content (read-only opens only: writing one is
EACCES). A ``mem`` fd is an empty memfd whose file position is the guest address; the
process remembers its inode, and read/write/pread64/pwrite64 on it go to guest memory.
"""

from __future__ import annotations

import errno
import os
import posixpath
import struct
from dataclasses import dataclass, field
from typing import Protocol

from llvmtcg.runtime.exits import Access, GuestFault
from llvmtcg.runtime.host_fds import EMULATOR_FILES
from llvmtcg.user.mm import AddressSpace

AT_FDCWD = -100
O_ACCMODE, O_RDONLY, O_CLOEXEC = 3, 0, 0o2000000
GENERATED = frozenset({"maps", "cmdline", "environ", "auxv", "stat"})
HIDDEN = frozenset({"pagemap", "smaps", "smaps_rollup", "numa_maps", "map_files", "syscall",
                    "stack"})
_PERM_R, _PERM_W, _PERM_X = 1, 2, 4
TASK_DIR = "task"  # own_entry: the task directory (its listing is filtered)
NO_ENTRY = "/"  # own_entry: an emulator thread's directory (ENOENT; never an entry name)
_DIRENT_HEAD = struct.Struct("<QqHB")  # linux_dirent64 before d_name


class GuestProcess(Protocol):
    """What these files need of the process (a part of llvmtcg.user.guest's
    GuestProcess, which holds a ProcFs: declared here so neither imports the other)."""

    space: AddressSpace

    @property
    def pid(self) -> int: ...

    def thread_ids(self) -> frozenset[int]:
        """The tids of the guest's live threads."""
        ...

    def check(self, addr: int, size: int, access: Access = Access.READ) -> int: ...

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ProcessImage:
    """What the guest's /proc files describe (fixed at start)."""

    exe_path: str
    argv: tuple[bytes, ...]
    envp: tuple[bytes, ...]
    auxv: tuple[tuple[int, int], ...]
    named_ranges: tuple[tuple[int, int, str], ...]  # (start, end, path) of loaded images
    start_stack: int


@dataclass
class ProcFs:
    image: ProcessImage
    mem_fds: dict[int, int] = field(default_factory=dict)  # fd -> inode of its memfd
    task_fds: dict[int, int] = field(default_factory=dict)  # fd -> inode of task dirs

    # -- which paths are ours ---------------------------------------------------------------
    def own_entry(self, proc: GuestProcess, dirfd: int, path: bytes) -> str | None:
        """The entry name (``maps``, ``exe``, …) if ``path`` (relative to ``dirfd``) names
        a file of the guest's own process directory or of one of its threads' (``task/TID``
        of a guest thread, or ``/proc/TID``); :data:`TASK_DIR` for the ``task`` directory
        itself (its listing shows the guest's threads only); :data:`NO_ENTRY` for the
        directory of a thread of the emulator's own (compile thread, gdb watcher …), which
        the guest must not see; else None (the host's path, as it is)."""
        text = os.fsdecode(path)
        if not text.startswith("/"):
            if _signed(dirfd) == AT_FDCWD:
                base = os.getcwd()
            else:
                base = _fd_path(dirfd)
            if base is None or not base.startswith("/proc"):
                return None
            text = posixpath.join(base, text)
        elif not text.startswith("/proc"):
            return None
        parts = [p for p in posixpath.normpath(text).split("/") if p]
        if len(parts) < 2 or parts[0] != "proc":
            return None
        pid = str(proc.pid)
        tids = proc.thread_ids()
        if parts[1] not in ("self", "thread-self", pid):
            if not parts[1].isdigit():
                return None
            if int(parts[1]) not in tids:  # (Linux lets /proc/TID name a thread too)
                return NO_ENTRY if _emulator_thread(parts[1]) else None
        rest = parts[2:]
        if parts[1] != "thread-self" and rest[:1] == ["task"]:
            if len(rest) == 1:
                return TASK_DIR
            if not rest[1].isdigit():
                return None
            if int(rest[1]) not in tids:
                return NO_ENTRY if _emulator_thread(rest[1]) else None
            rest = rest[2:]
        if not rest:
            return None
        if len(rest) != 1 and rest[0] != "map_files":
            return None
        return rest[0]

    def open_task_dir(self, fd: int) -> None:
        """``fd`` is the host's ``task`` directory of this process, opened for the guest:
        :meth:`filter_task_entries` hides the emulator's threads in its listing."""
        self.task_fds[fd] = os.fstat(fd).st_ino

    def is_task_dir(self, fd: int) -> bool:
        return _still_open(self.task_fds, fd)

    def filter_task_entries(self, proc: GuestProcess, data: bytes) -> bytes:
        """getdents64 records of a ``task`` directory without the emulator's threads
        (``.``, ``..`` and the guest's threads stay; each record's d_off is the host's,
        so seeking and the next getdents64 go on where the host left)."""
        tids = proc.thread_ids()
        out = bytearray()
        pos = 0
        while pos + _DIRENT_HEAD.size <= len(data):
            _ino, _off, reclen, _type = _DIRENT_HEAD.unpack_from(data, pos)
            if reclen == 0:
                break
            name = data[pos + _DIRENT_HEAD.size:pos + reclen].split(b"\0", 1)[0]
            if not name.isdigit() or int(name) in tids:
                out += data[pos:pos + reclen]
            pos += reclen
        return bytes(out)

    # -- opening ------------------------------------------------------------------------------
    def open(self, proc: GuestProcess, entry: str, flags: int) -> int | None:
        """An fd for ``entry`` opened with ``flags``, a negative errno, or None to let
        the host open the path (an entry that does not need emulating)."""
        if entry == NO_ENTRY:
            return -errno.ENOENT
        if entry in HIDDEN:
            return -errno.EACCES
        if entry == "exe":
            return None  # the caller opens exe_path
        if entry == "mem":
            fd = _memfd("guest-mem", flags)
            self.mem_fds[fd] = os.fstat(fd).st_ino
            return fd
        if entry not in GENERATED:
            return None
        if flags & O_ACCMODE != O_RDONLY:
            return -errno.EACCES
        fd = _memfd(f"guest-{entry}", flags)
        os.write(fd, getattr(self, f"_{entry}")(proc))
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def is_mem(self, fd: int) -> bool:
        """Is ``fd`` a ``/proc/self/mem`` the guest opened? (The fd number may have been
        closed and reused: the memfd's inode decides.)"""
        return _still_open(self.mem_fds, fd)

    def duplicated(self, old: int, new: int) -> None:
        """dup/dup3/F_DUPFD made ``new`` share ``old``'s file."""
        if new >= 0 and old in self.mem_fds:
            self.mem_fds[new] = self.mem_fds[old]

    # -- /proc/self/mem -----------------------------------------------------------------------
    def mem_transfer(self, proc: GuestProcess, fd: int, buf: int, count: int,
                     offset: int | None, write: bool) -> int:
        """read/write/pread64/pwrite64 on a mem fd: bytes moved, or -EIO if none."""
        pos = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else offset
        if count == 0:
            return 0
        count = min(count, 1 << 20)
        done = 0
        try:
            if write:
                data = proc.read(buf, count)
            else:
                proc.check(buf, count, Access.WRITE)
        except GuestFault:
            return -errno.EFAULT
        while done < count:
            addr = pos + done
            step = min(count - done, 4096 - (addr & 4095))
            if not _guest_accessible(proc, addr, step, write):
                break
            if write:
                proc.write(addr, data[done:done + step])
            else:
                proc.write(buf + done, proc.read(addr, step))
            done += step
        if done == 0:
            return -errno.EIO
        if offset is None:
            os.lseek(fd, pos + done, os.SEEK_SET)
        return done

    # -- generated files ----------------------------------------------------------------------
    def _maps(self, proc: GuestProcess) -> bytes:
        lines = []
        space = proc.space
        for start, end, perms in _merged_regions(proc):
            name = ""
            for s, e, path in self.image.named_ranges:
                if s <= start < e:
                    name = path
            if not name and space.brk_start <= start < max(space.brk, space.brk_start):
                name = "[heap]"
            if start <= self.image.start_stack <= end:
                name = "[stack]"
            text = "".join(c if perms & bit else "-" for c, bit in
                           (("r", _PERM_R), ("w", _PERM_W), ("x", _PERM_X))) + "p"
            head = f"{start:08x}-{end:08x} {text} 00000000 00:00 0"
            lines.append(f"{head:<72} {name}".rstrip() if name else head + " ")
        return ("\n".join(lines) + "\n").encode()

    def _cmdline(self, proc: GuestProcess) -> bytes:
        return b"".join(a + b"\0" for a in self.image.argv)

    def _environ(self, proc: GuestProcess) -> bytes:
        return b"".join(e + b"\0" for e in self.image.envp)

    def _auxv(self, proc: GuestProcess) -> bytes:
        return b"".join(struct.pack("<QQ", k, v) for k, v in self.image.auxv) \
            + struct.pack("<QQ", 0, 0)

    def _stat(self, proc: GuestProcess) -> bytes:
        # (emulator file work: off the guest's descriptor table once it has threads)
        host_line = EMULATOR_FILES.run(_read_host_file, "/proc/self/stat").decode()
        head, _, tail = host_line.rpartition(")")
        pid = head.split(" (", 1)[0]
        fields = tail.split()  # fields 3.. (state onwards)
        comm = os.path.basename(os.fsdecode(self.image.argv[0]) if self.image.argv
                                else self.image.exe_path)[:15]
        # Host addresses in fields 26-28 (startcode, endcode, startstack), 29-30 (esp,
        # eip), 45-51 (data, brk, args, env): the guest's or 0.
        guest = {26: self.image.named_ranges[0][0] if self.image.named_ranges else 0,
                 27: self.image.named_ranges[0][1] if self.image.named_ranges else 0,
                 28: self.image.start_stack}
        for n in range(26, 52):
            idx = n - 3
            if idx < len(fields) and (n <= 30 or n >= 45):
                fields[idx] = str(guest.get(n, 0))
        return f"{pid} ({comm}) {' '.join(fields)}\n".encode()


def _signed(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


def _emulator_thread(tid: str) -> bool:
    """Is ``tid`` a thread of this host process (one not running guest code)?"""
    return os.path.exists(f"/proc/self/task/{tid}")


def _fd_path(dirfd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{_signed(dirfd)}")
    except OSError:
        return None


def _read_host_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _memfd(name: str, flags: int) -> int:
    return os.memfd_create(name, os.MFD_CLOEXEC if flags & O_CLOEXEC else 0)


def _merged_regions(proc: GuestProcess) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for region in proc.space.memory.regions():
        if out and out[-1][1] == region.start and out[-1][2] == region.perms:
            out[-1] = (out[-1][0], region.end, region.perms)
        else:
            out.append((region.start, region.end, region.perms))
    return out


def _guest_accessible(proc: GuestProcess, addr: int, size: int, write: bool) -> bool:
    region = proc.space.memory.region(addr)
    if region is None or region.mmio is not None or region.end < addr + size:
        return False
    return bool(region.perms & (_PERM_W if write else _PERM_R))


def _still_open(inodes: dict[int, int], fd: int) -> bool:
    """Is ``fd`` still the file recorded in ``inodes`` (fd -> inode)? The guest may have
    closed the number and reused it for another file: a stale record is dropped."""
    inode = inodes.get(fd)
    if inode is None:
        return False
    try:
        if os.fstat(fd).st_ino == inode:
            return True
    except OSError:
        pass
    del inodes[fd]
    return False
