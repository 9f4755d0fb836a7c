"""The user-mode address space policy: where the stack, programs, mmap and brk go.

The layout follows Linux with address randomisation off (TASK_SIZE, the size of the
GuestMemory, is the architecture's: 1 << 38 on riscv64 with Sv39): the stack at the
top, mmap allocating top-down below it, PIE programs at two thirds of the space, brk
after the program. Guest memory operations return a result or a negative errno, like the syscalls
they implement.
"""

from __future__ import annotations

import ctypes
import errno
import mmap as host_mmap

from llvmtcg.ir.cpu_layout import PAGE_SIZE
from llvmtcg.runtime.softmmu import GuestMemory, Perm, page_ceil, page_floor

STACK_SIZE = 8 << 20  # RLIMIT_STACK's default; mapped at once (no growth on demand)
MMAP_GAP = 128 << 20  # Linux keeps at least this much between the stack and mmap_base
MMAP_MIN_ADDR = 0x10000  # vm.mmap_min_addr

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE = 0x01, 0x02, 0x03, 0x0F
MAP_FIXED, MAP_ANONYMOUS = 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_MREMAP, _SYS_MADVISE, _SYS_MPROTECT, _SYS_MSYNC = 25, 28, 10, 26


def _host(nr: int, *args: int) -> int:
    result = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args))
    return -ctypes.get_errno() if result == -1 else result


def prot_to_perms(prot: int) -> int:
    # RISC-V has no write-only pages: PROT_WRITE implies read, as on Linux.
    perms = (Perm.R if prot & (PROT_READ | PROT_WRITE) else 0)
    return perms | (Perm.W if prot & PROT_WRITE else 0) | (Perm.X if prot & PROT_EXEC else 0)


class AddressSpace:
    """One process's guest address space: layout, brk, mmap/munmap/mprotect/mremap.

    Args:
        memory: the guest memory (its size is the task size).
    """

    def __init__(self, memory: GuestMemory) -> None:
        self.memory = memory
        self.task_size = memory.size
        self.stack_top = memory.size
        self.mmap_base = self.stack_top - STACK_SIZE - MMAP_GAP
        self.pie_base = page_floor(self.task_size // 3 * 2)
        self.brk_start = 0
        self.brk = 0
        self.shared_file_ranges: list[tuple[int, int]] = []  # host prot follows guest prot

    # -- placement ------------------------------------------------------------------------
    def find_free(self, size: int) -> int | None:
        return self.memory.find_free(size, MMAP_MIN_ADDR, self.mmap_base)

    def map_stack(self) -> tuple[int, int]:
        low = self.stack_top - STACK_SIZE
        self.memory.map(low, STACK_SIZE, Perm.RW)
        return low, self.stack_top

    def set_brk_start(self, addr: int) -> None:
        self.brk_start = self.brk = page_ceil(addr)

    # -- brk ------------------------------------------------------------------------------
    def do_brk(self, new: int) -> int:
        """Linux's brk: the new break on success, the old one on failure."""
        if new < self.brk_start:
            return self.brk
        old_end, new_end = page_ceil(self.brk), page_ceil(new)
        if new_end > old_end:
            if new_end > self.mmap_base or not self.memory.is_free(old_end, new_end - old_end):
                return self.brk
            self.memory.map(old_end, new_end - old_end, Perm.RW)
        elif new_end < old_end:
            self.memory.unmap(new_end, old_end - new_end)
        self.brk = new
        return new

    # -- mmap family ----------------------------------------------------------------------
    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
        if length == 0 or offset % PAGE_SIZE or length >= self.task_size:
            return -errno.EINVAL
        kind = flags & MAP_TYPE
        if kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
            return -errno.EINVAL
        size = page_ceil(length)
        fixed = bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
        if fixed:
            if addr % PAGE_SIZE:
                return -errno.EINVAL
            if addr + size > self.task_size or addr < PAGE_SIZE:
                return -errno.ENOMEM if addr + size > self.task_size else -errno.EPERM
            if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED \
                    and not self.memory.is_free(addr, size):
                return -errno.EEXIST
            start = addr
        else:
            hint = page_floor(addr)
            if hint >= MMAP_MIN_ADDR and self.memory.is_free(hint, size) \
                    and hint + size <= self.mmap_base:
                start = hint
            else:
                found = self.find_free(size)
                if found is None:
                    return -errno.ENOMEM
                start = found
        perms = prot_to_perms(prot)
        shared = kind != MAP_PRIVATE
        anonymous = bool(flags & MAP_ANONYMOUS)
        try:
            if anonymous and not shared:
                self.memory.map(start, size, perms)
            elif anonymous:
                self.memory.map_host(start, size, perms, shared=True)
            else:
                host_prot = None
                if shared:  # the file's open mode limits what a shared mapping may do
                    host_prot = host_mmap.PROT_READ | (host_mmap.PROT_WRITE
                                                       if prot & PROT_WRITE else 0)
                self.memory.map_host(start, size, perms, shared=shared, fd=fd, offset=offset,
                                     host_prot=host_prot)
                if shared:
                    self.shared_file_ranges.append((start, start + size))
        except OSError as e:
            return -(e.errno or errno.ENOMEM)
        return start

    def munmap(self, addr: int, length: int) -> int:
        if addr % PAGE_SIZE or length == 0 or addr + length > self.task_size:
            return -errno.EINVAL
        self.memory.unmap(addr, page_ceil(length))
        return 0

    def covered(self, addr: int, size: int) -> bool:
        """Every page of [addr, addr+size) is mapped."""
        pos, end = addr, addr + size
        while pos < end:
            region = self.memory.region(pos)
            if region is None:
                return False
            pos = region.end
        return True

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        if addr % PAGE_SIZE:
            return -errno.EINVAL
        if length == 0:
            return 0
        size = page_ceil(length)
        if addr + size > self.task_size or not self.covered(addr, size):
            return -errno.ENOMEM
        for lo, hi in self.shared_file_ranges:
            s, e = max(lo, addr), min(hi, addr + size)
            if s < e:  # a shared file mapping: the host must allow the new access too
                host_prot = host_mmap.PROT_READ | (host_mmap.PROT_WRITE
                                                   if prot & PROT_WRITE else 0)
                r = _host(_SYS_MPROTECT, self.memory.base + s, e - s, host_prot)
                if r < 0:
                    return r
        self.memory.protect(addr, size, prot_to_perms(prot))
        return 0

    def mremap(self, old: int, old_len: int, new_len: int, flags: int, new_addr: int) -> int:
        if old % PAGE_SIZE or new_len == 0 or flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED):
            return -errno.EINVAL
        if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
            return -errno.EINVAL
        old_size, new_size = page_ceil(old_len), page_ceil(new_len)
        if not self._one_mapping(old, max(old_size, 1)):
            return -errno.EFAULT
        if flags & MREMAP_FIXED:
            if new_addr % PAGE_SIZE or new_addr + new_size > self.task_size:
                return -errno.EINVAL
            if new_addr < old + old_size and old < new_addr + new_size:
                return -errno.EINVAL
            self.memory.unmap(new_addr, new_size)
            return self._move(old, old_size, new_addr, new_size)
        if new_size <= old_size:
            if new_size < old_size:
                self.memory.unmap(old + new_size, old_size - new_size)
            return old
        if self.memory.is_free(old + old_size, new_size - old_size):
            return self._move(old, old_size, old, new_size)
        if not flags & MREMAP_MAYMOVE:
            return -errno.ENOMEM
        target = self.find_free(new_size)
        if target is None:
            return -errno.ENOMEM
        return self._move(old, old_size, target, new_size)

    def _one_mapping(self, addr: int, size: int) -> bool:
        """[addr, addr+size) is mapped with one set of permissions (one Linux VMA)."""
        first = self.memory.region(addr)
        if first is None:
            return False
        pos = addr
        while pos < addr + size:
            region = self.memory.region(pos)
            if region is None or region.perms != first.perms:
                return False
            pos = region.end
        return True

    def _move(self, old: int, old_size: int, new: int, new_size: int) -> int:
        try:
            self.memory.remap(old, old_size, new, new_size)
        except OSError as e:
            return -(e.errno or errno.ENOMEM)
        return new

    def madvise(self, addr: int, length: int, advice: int) -> int:
        if addr % PAGE_SIZE:
            return -errno.EINVAL
        if length == 0:
            return 0
        size = page_ceil(length)
        if not self.covered(addr, size):
            return -errno.ENOMEM
        # The host does the same thing to the same pages (MADV_DONTNEED zeroes
        # private anonymous memory, for instance).
        result = _host(_SYS_MADVISE, self.memory.base + addr, size, advice)
        for listener in self.memory.on_change:
            listener(addr, addr + size)
        return result

    def msync(self, addr: int, length: int, flags: int) -> int:
        if addr % PAGE_SIZE:
            return -errno.EINVAL
        size = page_ceil(length) if length else 0
        if size and not self.covered(addr, size):
            return -errno.ENOMEM
        return _host(_SYS_MSYNC, self.memory.base + addr, size, flags)
