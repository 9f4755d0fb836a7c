"""The helper registry: declarations with effect flags, bound to native addresses.

Python helpers are wrapped in ctypes callbacks. A Python exception never crosses
native frames: the wrapper records it on the running CPU, sets its helper status (so
a MAY_RAISE call site leaves the block at once) and the exit request, and the run
loop re-raises it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llvmtcg.ir import host_abi
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag


class _CurrentCpu(threading.local):
    cpu: Any = None


current = _CurrentCpu()  # the Cpu whose native code is running on this thread


@dataclass(slots=True)
class RegisteredHelper:
    decl: HelperDecl
    address: int
    keepalive: object = None  # the ctypes callback object, which must outlive the code


class HelperRegistry:
    def __init__(self) -> None:
        self._helpers: dict[str, RegisteredHelper] = {}

    def register(self, decl: HelperDecl, impl: Callable[..., int | None] | int, *,
                 raw: bool = False) -> None:
        """Declare a helper. ``impl`` is a native address or a Python callable; Python
        callables taking the CPU (TAKES_CPU) get the running :class:`Cpu` first.

        ``raw``: ``impl`` is the ctypes callback itself, with the CPU-state address
        (not the :class:`Cpu`) first: one Python frame less per call, for helpers
        called very often (the embedding API's hooks). It must not raise; it records
        its errors with :meth:`Cpu.record_helper_error` itself.
        """
        if decl.name in self._helpers:
            raise ValueError(f"helper {decl.name!r} registered twice")
        if isinstance(impl, int):
            self._helpers[decl.name] = RegisteredHelper(decl, impl)
            return
        prototype = host_abi.ctypes_prototype(host_abi.HostFunction.for_helper(decl))
        callback = prototype(impl if raw else _wrap_python(decl, impl))
        address = ctypes.cast(callback, ctypes.c_void_p).value
        self._helpers[decl.name] = RegisteredHelper(decl, address, callback)

    def declarations(self) -> dict[str, HelperDecl]:
        return {name: h.decl for name, h in self._helpers.items()}

    def python_helpers(self) -> dict[str, tuple[HelperDecl, int]]:
        """Helpers implemented in Python: symbol -> (declaration, callback address)."""
        return {h.decl.symbol: (h.decl, h.address) for h in self._helpers.values()
                if h.keepalive is not None}

    def symbols(self) -> dict[str, int]:
        return {h.decl.symbol: h.address for h in self._helpers.values()}

    def __contains__(self, name: str) -> bool:
        return name in self._helpers


def _wrap_python(decl: HelperDecl, impl: Callable[..., int | None]) -> Callable[..., int]:
    takes_cpu = bool(decl.flags & HelperFlag.TAKES_CPU)
    mask = decl.ret.mask if decl.ret else 0

    def wrapper(*args: int) -> int:
        cpu = current.cpu
        try:
            result = impl(cpu, *args[1:]) if takes_cpu else impl(*args)
            return (result or 0) & mask
        except BaseException as exc:  # noqa: BLE001 - must not unwind into native code
            if cpu is None:
                raise
            cpu.record_helper_error(exc)
            return 0

    return wrapper
