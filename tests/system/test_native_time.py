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


def test_loadvm_publishes_this_process_time_base() -> None:
    """savevm does not keep the time base (it names the host clock of the process that
    saved); loadvm publishes the machine's, after the clock and the CLINT are restored."""
    from llvmtcg.frontends.riscv.system import Riscv64SystemArch
    from llvmtcg.runtime.physmem import PhysicalAddressSpace
    from llvmtcg.system import SystemCpu

    clock = VirtualClock()
    clint = Aclint(clock, [lambda level: None], [lambda level: None])
    space = PhysicalAddressSpace(1 << 32)
    space.add_ram("ram", 0x8000_0000, 0x10000)
    cpu = SystemCpu(Riscv64SystemArch(time=clint.mtime), space.memory)
    cpu.reset(0x8000_0000)
    state = cpu.state
    assert state.get("time_epoch") == clock.host_epoch_ns()
    assert state.get("time_access") == 1 << 3  # M only (mcounteren is 0)
    saved, saved_clint = cpu.save_state(), clint.save_state()
    assert "time_epoch" not in saved["registers"]
    clock.set_now(clock.now_ns() + 10**12)  # (what loadvm does first)
    clint.load_state(saved_clint)
    cpu.load_state(saved)
    base = clint.time_base()
    assert base is not None
    assert [state.get(n) for n in ("time_epoch", "time_div", "time_delta")] == list(base)
    assert state.get("time_access") == 1 << 3
