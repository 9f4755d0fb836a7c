"""brk and the mmap family (the policy lives in :mod:`llvmtcg.user.mm`)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.syscalls.table import syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess


@syscall("brk", "ptr", ret="ptr")
def sys_brk(proc: GuestProcess, addr):
    return proc.space.do_brk(addr)


@syscall("mmap", "ptr uint prot mflags fd int", ret="ptr")
def sys_mmap(proc: GuestProcess, addr, length, prot, flags, fd, offset):
    result = proc.space.mmap(addr, length, prot, flags, fd & 0xFFFF_FFFF, offset)
    if proc.log.enabled("page") and result >= 0:
        proc.log.write(f"mmap {result:#x}-{result + length:#x} prot={prot} flags={flags:#x}")
    return result


@syscall("munmap", "ptr uint")
def sys_munmap(proc: GuestProcess, addr, length):
    return proc.space.munmap(addr, length)


@syscall("mprotect", "ptr uint prot")
def sys_mprotect(proc: GuestProcess, addr, length, prot):
    return proc.space.mprotect(addr, length, prot)


@syscall("mremap", "ptr uint uint hex ptr", ret="ptr")
def sys_mremap(proc: GuestProcess, old, old_len, new_len, flags, new_addr):
    return proc.space.mremap(old, old_len, new_len, flags, new_addr)


@syscall("madvise", "ptr uint int")
def sys_madvise(proc: GuestProcess, addr, length, advice):
    return proc.space.madvise(addr, length, advice)


@syscall("msync", "ptr uint hex")
def sys_msync(proc: GuestProcess, addr, length, flags):
    return proc.space.msync(addr, length, flags)


@syscall("mincore", "ptr uint ptr")
def sys_mincore(proc: GuestProcess, addr, length, vec):
    pages = (length + 4095) // 4096
    if addr % 4096:
        return -errno.EINVAL
    if not proc.space.covered(addr, pages * 4096):
        return -errno.ENOMEM
    proc.write(vec, b"\1" * pages)
    return 0


def _accept(name: str, args: str) -> None:
    @syscall(name, args)
    def handler(proc: GuestProcess, *args):
        return 0


for _name, _args in (("mlock", "ptr uint"), ("munlock", "ptr uint"), ("mlockall", "hex"),
                     ("munlockall", ""), ("mlock2", "ptr uint hex")):
    _accept(_name, _args)


@syscall("membarrier", "int hex int")
def sys_membarrier(proc: GuestProcess, cmd, flags, cpu_id):
    return 0  # single-threaded: every barrier is trivially complete (QUERY: none)


@syscall("riscv_flush_icache", "ptr ptr hex")
def sys_riscv_flush_icache(proc: GuestProcess, start, end, flags):
    if end > start:
        proc.invalidate_code(start, end)
    return 0


@syscall("futex", "ptr int int ptr ptr int")
def sys_futex(proc: GuestProcess, uaddr, op, val, timeout, uaddr2, val3):
    # Host futexes on the guest words: right for one thread and for memory shared
    # between processes. Ops with a timeout pointer vs. a count in that slot differ.
    cmd = op & 0x7F
    h_uaddr = proc.check(uaddr, 4, Access.WRITE)
    if cmd in (0, 9, 6, 11):  # WAIT, WAIT_BITSET, LOCK_PI, WAIT_REQUEUE_PI
        h_timeout = proc.check(timeout, 16) if timeout else 0
    else:
        h_timeout = timeout  # val2 (a count) for requeue and wake_op
    h_uaddr2 = proc.check(uaddr2, 4, Access.WRITE) if cmd in (3, 4, 5, 11, 12) else uaddr2
    return host.call("futex", h_uaddr, op, val, h_timeout, h_uaddr2, val3)
