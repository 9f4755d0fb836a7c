"""AdvSIMD helpers shared by the translators: V registers as 128-bit integers (the
Python helpers of estimate.py and fp16.py read and write them so), lane packing,
AdvSIMDExpandImm, shift and by-element geometry. Every AdvSIMD instruction is IR
(vector ops on the host's SSE/AVX registers, or inline IR on the 64-bit halves);
none runs lane by lane in Python any more."""

from __future__ import annotations

M64 = (1 << 64) - 1
QC = 1 << 27  # FPSR.QC, the cumulative saturation flag


def vget(state, n: int) -> int:
    return state.get("v", 2 * n) | state.get("v", 2 * n + 1) << 64


def vset(state, n: int, value: int) -> None:
    state.set("v", value & M64, 2 * n)
    state.set("v", value >> 64 & M64, 2 * n + 1)


def split(value: int, esize: int, count: int) -> list[int]:
    mask = (1 << esize) - 1
    return [(value >> (i * esize)) & mask for i in range(count)]


def join(lanes: list[int], esize: int) -> int:
    mask = (1 << esize) - 1
    value = 0
    for i, lane in enumerate(lanes):
        value |= (lane & mask) << (i * esize)
    return value


# -- modified immediate -------------------------------------------------------------------

def expand_imm(op: int, cmode: int, imm8: int) -> int | None:
    """AdvSIMDExpandImm: the 64-bit pattern, or None where unallocated."""
    kind = cmode >> 1
    if kind <= 3:
        return _rep(imm8 << (8 * kind), 32)
    if kind <= 5:
        return _rep(imm8 << (8 * (kind & 1)), 16)
    if kind == 6:
        shift = 8 * (1 + (cmode & 1))  # MSL: shifting ones in
        return _rep(imm8 << shift | ((1 << shift) - 1), 32)
    if cmode == 14:
        if op:
            return sum(0xFF << (8 * i) for i in range(8) if imm8 >> i & 1)
        return _rep(imm8, 8)
    if op == 0:  # FMOV single
        a, b, cdefgh = imm8 >> 7, imm8 >> 6 & 1, imm8 & 0x3F
        exp = (b ^ 1) << 7 | (0x1F if b else 0) << 2 | cdefgh >> 4
        return _rep(a << 31 | exp << 23 | (cdefgh & 0xF) << 19, 32)
    a, b, cdefgh = imm8 >> 7, imm8 >> 6 & 1, imm8 & 0x3F
    exp = (b ^ 1) << 10 | (0xFF if b else 0) << 2 | cdefgh >> 4
    return a << 63 | exp << 52 | (cdefgh & 0xF) << 48


def _rep(value: int, width: int) -> int:
    return sum(value << i for i in range(0, 64, width)) & M64


# -- shifts and by element ---------------------------------------------------------------

def shift_geometry(immhb: int) -> tuple[int, int, int]:
    """(esize, right shift, left shift) of a shift-by-immediate encoding."""
    esize = 8 << ((immhb >> 3).bit_length() - 1)
    return esize, 2 * esize - immhb, immhb - esize


def element_index(a) -> tuple[int, int]:
    """(Vm number, lane) of a by-element encoding; imm holds H:L:M (bits 2:0)."""
    h, l_, m = a.imm >> 2 & 1, a.imm >> 1 & 1, a.imm & 1
    if a.size == 1:
        return a.rm, h << 2 | l_ << 1 | m
    if a.size == 2:
        return m << 4 | a.rm, h << 1 | l_
    return m << 4 | a.rm, h  # size 3 (FP double)
