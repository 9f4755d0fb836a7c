"""``host_ld`` / ``host_st``: loads and stores at raw host addresses (the embedding
API's inline instrumentation: coverage maps, counters, comparison logs), run as native
code on every tier and checked against the bytes of a ctypes buffer."""

from __future__ import annotations

import ctypes

import pytest

from llvmtcg.ir import I32, I64, Builder, IRError, const
from tests.core.support import CODE, HandFrontend, R, halt_at, make_cpu

TIERS = {"baseline": {"baseline": True}, "tier0": {"baseline": False, "optimize": 0},
         "tier1": {"baseline": False, "optimize": 1}}


@pytest.mark.parametrize("tier", list(TIERS))
def test_host_loads_and_stores_reach_the_buffer(tier: str) -> None:
    buffer = (ctypes.c_uint8 * 64)(*range(64))
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        # r1 = u8 at r0+3, r2 = u16 at r0+4, r3 = u32 at r0+8 (i32), r4 = u64 at r0+16
        b.host_ld(R[1], R[0], 1, 3)
        b.host_ld(R[2], R[0], 2, 4)
        narrow = b.temp(I32)
        b.host_ld(narrow, R[0], 4, 8)
        b.ext_i32_i64(R[3], narrow, signed=False)
        b.host_ld(R[4], R[0], 8, 16)
        # byte 32 += 1 (a counter), store the low bytes of r5 at 40 (2) and 48 (8)
        count = b.temp(I64)
        b.host_ld(count, R[0], 1, 32)
        b.add(count, count, const(I64, 1))
        b.host_st(count, R[0], 1, 32)
        b.host_st(R[5], R[0], 2, 40)
        b.host_st(R[5], R[0], 8, 48)
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe, **TIERS[tier])
    try:
        base = ctypes.addressof(buffer)
        cpu.state.set("r", base, 0)
        cpu.state.set("r", 0x1122_3344_5566_7788, 5)
        for _ in range(3):
            cpu.state.pc = CODE
            cpu.run()
        raw = bytes(buffer)
        assert cpu.state.get("r", 1) == 3
        assert cpu.state.get("r", 2) == int.from_bytes(raw[4:6], "little")
        assert cpu.state.get("r", 3) == int.from_bytes(raw[8:12], "little")
        assert cpu.state.get("r", 4) == int.from_bytes(raw[16:24], "little")
        assert raw[32] == 32 + 3  # three runs, three increments
        assert raw[40:42] == bytes.fromhex("8877") and raw[42] == 42  # 2 bytes only
        assert raw[48:56] == (0x1122_3344_5566_7788).to_bytes(8, "little")
    finally:
        cpu.close()


def test_host_access_sizes_are_checked() -> None:
    b = Builder(CODE, {})
    with pytest.raises(IRError):
        b.host_ld(b.temp(I32), b.temp(I64), 8)
    with pytest.raises(IRError):
        b.host_st(b.temp(I64), b.temp(I64), 3)
    with pytest.raises(IRError):
        b.host_st(b.temp(I64), b.temp(I32), 8)
