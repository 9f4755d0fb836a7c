"""Python entered from native code: the softmmu slow paths and the soft-float helper.

One set of ctypes callbacks serves every CPU of the process; each receives the CPU-state
pointer first and finds its CPU in a registry keyed by that address (:func:`register`).
The signatures come from :mod:`llvmtcg.ir.host_abi`, which also generates the native
thunks generated code calls them through. A fault or a Python error inside a callback
becomes a status (or a recorded helper error), never an exception crossing native frames.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Protocol

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_abi, host_fp
from llvmtcg.ir.types import MemOp
from llvmtcg.runtime import softfloat
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import GuestFault, MemFault


class _Softmmu(Protocol):
    def load(self, addr: int, memop: MemOp, mmu_idx: int) -> int: ...
    def store(self, addr: int, value: int, memop: MemOp, mmu_idx: int) -> None: ...
    def probe_atomic(self, addr: int, memop: MemOp, mmu_idx: int) -> int: ...


class CallbackTarget(Protocol):
    """What a callback needs of the CPU whose native code called it (a :class:`Cpu`)."""

    state: CpuState
    softmmu: _Softmmu

    def record_fault(self, fault: MemFault) -> None: ...
    def record_helper_error(self, exc: BaseException) -> None: ...


_cpus_by_address: dict[int, CallbackTarget] = {}


def register(cpu: CallbackTarget) -> None:
    """Route callbacks from native code running on ``cpu.state`` to ``cpu``."""
    _cpus_by_address[cpu.state.address] = cpu


def unregister(cpu: CallbackTarget) -> None:
    _cpus_by_address.pop(cpu.state.address, None)


# Decoded MemOps by their bits (a MemOp is immutable): decoding one costs ~2.5 us, and
# a warm Linux boot makes ~18k slow-path calls (MMIO, stores to code pages).
_MEMOPS: dict[int, MemOp] = {}


def _slow_path(body: Callable[..., int | None]) -> Callable[..., int]:
    """A softmmu slow path: status 0 (a loaded value or addend in cpu.slow_value), or 1
    after recording a fault or an MMIO callback's error on the CPU."""

    def run(cpu: CallbackTarget, addr: int, oi: int, value: int | None) -> int:
        memop_bits, mmu_idx = abi.decode_oi(oi)
        try:
            memop = _MEMOPS.get(memop_bits)
            if memop is None:
                memop = _MEMOPS[memop_bits] = MemOp.decode(memop_bits)
            result = body(cpu, addr, memop, mmu_idx) if value is None \
                else body(cpu, addr, memop, mmu_idx, value)
        except GuestFault as fault:
            cpu.record_fault(fault.fault)
            return 1
        except BaseException as exc:  # noqa: BLE001 - an MMIO callback raised
            cpu.record_helper_error(exc)
            return 1
        if result is not None:
            cpu.state.set("slow_value", result)
        return 0

    return run


_load = _slow_path(lambda cpu, addr, memop, mmu: cpu.softmmu.load(addr, memop, mmu))
_store = _slow_path(lambda cpu, addr, memop, mmu, value: cpu.softmmu.store(addr, value, memop, mmu))
_probe = _slow_path(lambda cpu, addr, memop, mmu: cpu.softmmu.probe_atomic(addr, memop, mmu))


def _softfloat(c: int, info: int, a: int, b: int, x: int) -> int:
    """Exact float op for what the host cannot round (see ir/host_fp.py). Its flags go
    into cpu.fp_env, which the callback thunk loads back into MXCSR."""
    cpu = _cpus_by_address[c]
    try:
        op, dst_bits, src_bits, rm = host_fp.decode_softfloat(info)
        bits, flags = softfloat.run_op(op, dst_bits, src_bits, rm, a, b, x)
    except BaseException as exc:  # noqa: BLE001 - must not unwind into native code
        cpu.record_helper_error(exc)
        return 0
    if flags:
        cpu.state.set("fp_env", cpu.state.get("fp_env") | host_fp.mxcsr_from_flags(flags))
    return bits


_IMPLEMENTATIONS: dict[str, Callable[..., int]] = {
    abi.SLOW_LOAD: lambda c, addr, oi: _load(_cpus_by_address[c], addr, oi, None),
    abi.SLOW_STORE: lambda c, addr, value, oi: _store(_cpus_by_address[c], addr, oi, value),
    abi.SLOW_PROBE: lambda c, addr, oi: _probe(_cpus_by_address[c], addr, oi, None),
    host_fp.SOFTFLOAT: _softfloat,
}
# The ctypes callback objects (kept alive for the life of the process) and their
# addresses, which each CPU's thunks call.
_CALLBACKS = {fn.symbol: host_abi.ctypes_prototype(fn)(_IMPLEMENTATIONS[fn.symbol])
              for fn in host_abi.CALLBACKS}
ADDRESSES: dict[str, int] = {symbol: ctypes.cast(callback, ctypes.c_void_p).value
                             for symbol, callback in _CALLBACKS.items()}
