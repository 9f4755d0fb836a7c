"""The ``time`` CSR in native code: a helper without Python that computes the CLINT's mtime.

Linux reads ``time`` (rdtime) thousands of times per boot (sched_clock, timekeeping,
the vDSO in user space); through the Python CSR helper each read cost a round trip of
several microseconds. The platform timer is a linear function of the host's
CLOCK_MONOTONIC (devices/aclint.py: ``mtime = (host_ns - epoch) // ns_per_tick + delta``
modulo 2**64 when the tick divides a second into whole nanoseconds), so translated code
calls :func:`time_helper_address`'s function, which reads the host clock with
``clock_gettime`` and applies the three parameters Python publishes in the CPU state
(``time_epoch``, ``time_div``, ``time_delta``; system.py keeps them current at reset,
mtime writes and loadvm). The same formula as the Python path gives the same values,
so the two can be mixed freely and time stays monotonic.

The function is a few x86-64 instructions written out below (no compiler or LLVM at
run time: it exists before any code is translated, and costs nothing to build):

    uint64_t llvmtcg_riscv_time(cpu_state *cpu)
        push rbx                        ; rbx: callee-saved, keeps cpu; aligns rsp
        mov  rbx, rdi
        sub  rsp, 16                    ; struct timespec on the stack
        mov  edi, 1                     ; CLOCK_MONOTONIC (what time.monotonic_ns reads)
        mov  rsi, rsp
        movabs rax, clock_gettime       ; libc's (the vDSO behind it: no system call)
        call rax
        imul rax, [rsp], 1000000000     ; tv_sec * 1e9 (+ tv_nsec below)
        add  rax, [rsp + 8]
        sub  rax, [rbx + time_epoch]    ; nanoseconds since the clock's epoch (>= 0)
        xor  edx, edx
        div  qword [rbx + time_div]     ; whole ticks (time_div > 0: see time_access)
        add  rax, [rbx + time_delta]    ; mtime's offset (mod 2**64)
        add  rsp, 16
        pop  rbx
        ret

Translated code calls it only when the CPU state's ``time_access`` has the bit of the
block's privilege set (system.py: the read is legal there and the parameters are
valid), so ``time_div`` is never 0 when it runs.
"""

from __future__ import annotations

import ctypes
import mmap
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_CLOCK_GETTIME = ctypes.cast(_libc.clock_gettime, ctypes.c_void_p).value
_MAP_FAILED = ctypes.c_void_p(-1).value
_PAGE = mmap.PAGESIZE

_functions: dict[tuple[int, int, int], int] = {}  # (epoch, div, delta offsets) -> address


def _code(epoch: int, div: int, delta: int) -> bytes:
    """The function's bytes for the CPU-state offsets of its three fields."""
    return b"".join((
        b"\x53",                                        # push rbx
        b"\x48\x89\xfb",                                # mov rbx, rdi
        b"\x48\x83\xec\x10",                            # sub rsp, 16
        b"\xbf\x01\x00\x00\x00",                        # mov edi, CLOCK_MONOTONIC
        b"\x48\x89\xe6",                                # mov rsi, rsp
        b"\x48\xb8" + struct.pack("<Q", _CLOCK_GETTIME),  # movabs rax, clock_gettime
        b"\xff\xd0",                                    # call rax
        b"\x48\x69\x04\x24" + struct.pack("<i", 1_000_000_000),  # imul rax, [rsp], 1e9
        b"\x48\x03\x44\x24\x08",                        # add rax, [rsp + 8]
        b"\x48\x2b\x83" + struct.pack("<i", epoch),     # sub rax, [rbx + epoch]
        b"\x31\xd2",                                    # xor edx, edx
        b"\x48\xf7\xb3" + struct.pack("<i", div),       # div qword [rbx + div]
        b"\x48\x03\x83" + struct.pack("<i", delta),     # add rax, [rbx + delta]
        b"\x48\x83\xc4\x10",                            # add rsp, 16
        b"\x5b",                                        # pop rbx
        b"\xc3",                                        # ret
    ))


def time_helper_address(epoch: int, div: int, delta: int) -> int:
    """The address of ``uint64_t fn(cpu_state *)`` computing mtime from the fields at
    these CPU-state offsets (one function per offsets, kept for the process: a page
    written, then made read-only and executable, never writable and executable)."""
    key = (epoch, div, delta)
    address = _functions.get(key)
    if address is None:
        code = _code(epoch, div, delta)
        page = _libc.mmap(None, _PAGE, mmap.PROT_READ | mmap.PROT_WRITE,
                          mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if page is None or page == _MAP_FAILED:
            raise OSError(ctypes.get_errno(), "mmap for the native time helper")
        ctypes.memmove(page, code, len(code))
        if _libc.mprotect(page, _PAGE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect of the native time helper")
        address = _functions[key] = page
    return address
