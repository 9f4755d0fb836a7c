"""The native time helper (llvmtcg/frontends/riscv/native_time.py) against the CLINT's
mtime, which it must equal: a read between two Python reads lies between them, with an
offset that wraps modulo 2**64, and the parameters follow an mtime write."""

from __future__ import annotations

import ctypes

from devices.aclint import Aclint
from devices.base import VirtualClock
from llvmtcg.frontends.riscv.native_time import time_helper_address


def _native(aclint: Aclint):
    state = (ctypes.c_uint64 * 8)()
    fn = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(time_helper_address(8, 16, 24))

    def read() -> int:
        base = aclint.time_base()
        assert base is not None
        state[1], state[2], state[3] = base
        return fn(ctypes.addressof(state))
    return read


def test_native_time_equals_mtime() -> None:
    clint = Aclint(VirtualClock(), [lambda level: None], [lambda level: None])
    read = _native(clint)
    for value in (0, 1 << 40, (1 << 64) - 5):  # (the last wraps at once)
        clint.write(0xBFF8, 8, value)
        before = clint.mtime()
        now = read()
        after = clint.mtime()
        if before <= after:
            assert before <= now <= after
        else:  # (wrapped between the reads)
            assert now >= before or now <= after
        assert (now - value) % (1 << 64) < 10_000_000 * 30  # (10 MHz: within 30 s)


def test_no_time_base_without_the_host_clock() -> None:
    assert Aclint(VirtualClock.manual(), [lambda level: None],
                  [lambda level: None]).time_base() is None
    assert Aclint(VirtualClock(), [lambda level: None], [lambda level: None],
                  timebase_hz=3_000_000).time_base() is None  # (333.3 ns a tick)
