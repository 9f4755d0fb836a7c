"""Half-precision conversions (frontends/aarch64/fp16.py) against values worked out from
the Arm ARM's FPConvert/FPRound; the random-instruction test compares them with
qemu-aarch64 too."""

from __future__ import annotations

import struct

import pytest

from llvmtcg.frontends.aarch64.fp16 import (
    DOUBLE,
    FPCR_AHP,
    FPCR_DN,
    FPCR_FZ,
    HALF,
    IDC,
    IOC,
    IXC,
    OFC,
    SINGLE,
    UFC,
    convert,
)

RZ = 3 << 22
RP = 1 << 22


def f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


@pytest.mark.parametrize("value, fpcr, expected", [
    (f32(1.0), 0, (0x3C00, 0)),
    (f32(-2.5), 0, (0xC100, 0)),
    (f32(65504.0), 0, (0x7BFF, 0)),
    (f32(65520.0), 0, (0x7C00, OFC | IXC)),  # rounds up to infinity
    (f32(65520.0), RZ, (0x7BFF, IXC)),  # towards zero: the largest finite, no overflow
    (f32(1.0 + 2 ** -11), 0, (0x3C00, IXC)),  # a tie: to even
    (f32(1.0 + 2 ** -11), RP, (0x3C01, IXC)),
    (f32(2.0 ** -24), 0, (0x0001, 0)),  # the smallest subnormal, exact
    (f32(2.0 ** -25), 0, (0x0000, UFC | IXC)),  # a tie with zero: to even
    (f32(2.0 ** -25 * 3), 0, (0x0002, UFC | IXC)),
    (0x7F80_0001, 0, (0x7E00, IOC)),  # a signalling NaN is quieted
    (0x7FC0_2000, FPCR_DN, (0x7E00, 0)),  # default NaN
    (0xFFC0_2000, 0, (0xFE01, 0)),  # the payload's top bits are kept
    (f32(float("inf")), FPCR_AHP, (0x7FFF, IOC)),  # no infinities in AHP
    (f32(70000.0), FPCR_AHP, (0x7C46, IXC)),  # AHP reaches 131008
    (0x8000_0001, FPCR_FZ, (0x8000, IDC)),  # FZ: a denormal input is a zero
])
def test_single_to_half(value, fpcr, expected):
    assert convert(value, SINGLE, HALF, fpcr) == expected


@pytest.mark.parametrize("value, fpcr, src, dst, expected", [
    (0x3C00, 0, HALF, SINGLE, (f32(1.0), 0)),
    (0x0001, 0, HALF, DOUBLE, (0x3E70_0000_0000_0000, 0)),  # 2**-24, exact
    (0x7C00, 0, HALF, SINGLE, (0x7F80_0000, 0)),
    (0x7C01, 0, HALF, SINGLE, (0x7FC0_2000, IOC)),
    (0x7C00, FPCR_AHP, HALF, SINGLE, (f32(65536.0), 0)),  # AHP: a number
    (0x3FF0_0000_0000_0001, 0, DOUBLE, HALF, (0x3C00, IXC)),  # rounded once
])
def test_other_conversions(value, fpcr, src, dst, expected):
    assert convert(value, src, dst, fpcr) == expected
