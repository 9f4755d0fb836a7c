"""AdvSIMD helpers shared by the translators (register and lane packing, AdvSIMDExpandImm,
shift and by-element geometry) and the lane operations the ``aarch64_simd`` helper still
runs on the CPU state: the cryptographic extension (AES, SHA-1, SHA-256) and PMULL.

Each operation is a plain function of the state and the decoded operands
(:class:`SimdArgs`) that reads and writes the V registers as 128-bit integers. The
translator (trans_simd.py) checks legality while decoding and passes the operation's
index and the packed operands; nothing here raises a guest exception. Every other
AdvSIMD instruction is IR (vector ops on the host's SSE/AVX registers, or inline IR on
the 64-bit halves); these are Python, a few microseconds each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from llvmtcg.frontends.aarch64 import crypto

M64 = (1 << 64) - 1
QC = 1 << 27  # FPSR.QC, the cumulative saturation flag

class SimdArgs(NamedTuple):
    q: int
    size: int
    rm: int
    rn: int
    rd: int
    imm: int
    scalar: int = 0  # the AdvSIMD scalar form: one lane, the rest of Vd zeroed

    def pack(self) -> int:
        return (self.q | self.scalar << 1 | self.size << 2 | self.rm << 4 | self.rn << 9
                | self.rd << 14 | self.imm << 19)

    @classmethod
    def unpack(cls, packed: int) -> SimdArgs:
        return cls(packed & 1, packed >> 2 & 3, packed >> 4 & 31, packed >> 9 & 31,
                   packed >> 14 & 31, packed >> 19, packed >> 1 & 1)


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


def element_index(a: SimdArgs) -> tuple[int, int]:
    """(Vm number, lane) of a by-element encoding; imm holds H:L:M (bits 2:0)."""
    h, l_, m = a.imm >> 2 & 1, a.imm >> 1 & 1, a.imm & 1
    if a.size == 1:
        return a.rm, h << 2 | l_ << 1 | m
    if a.size == 2:
        return m << 4 | a.rm, h << 1 | l_
    return m << 4 | a.rm, h  # size 3 (FP double)


# -- polynomial multiply and the cryptographic extension ---------------------------------

def clmul(x: int, y: int) -> int:
    """Carry-less (polynomial) product."""
    result = 0
    while y:
        if y & 1:
            result ^= x
        x <<= 1
        y >>= 1
    return result


def _pmull(state, a: SimdArgs) -> None:
    """PMULL/PMULL2: 8x8 -> 16-bit lanes (size 0) or one 64x64 -> 128-bit product
    (size 3, the crypto extension)."""
    half = 64 if a.q else 0
    if a.size == 3:
        vset(state, a.rd, clmul(vget(state, a.rn) >> half & M64, vget(state, a.rm) >> half
                                & M64))
        return
    n = split(vget(state, a.rn) >> half, 8, 8)
    m = split(vget(state, a.rm) >> half, 8, 8)
    vset(state, a.rd, join([clmul(x, y) for x, y in zip(n, m, strict=True)], 16))


def _crypto_dn(fn: Callable[[int, int], int]) -> Callable:
    return lambda state, a: vset(state, a.rd, fn(vget(state, a.rd), vget(state, a.rn)))


def _crypto_n(fn: Callable[[int], int]) -> Callable:
    return lambda state, a: vset(state, a.rd, fn(vget(state, a.rn)))


def _crypto_dnm(fn: Callable[[int, int, int], int]) -> Callable:
    return lambda state, a: vset(state, a.rd, fn(vget(state, a.rd), vget(state, a.rn),
                                                 vget(state, a.rm)))


# The operations, by name: the translator passes an index into OPERATIONS.
OPERATIONS: dict[str, Callable] = {
    "pmull": _pmull,
    "aese": _crypto_dn(crypto.aese),
    "aesd": _crypto_dn(crypto.aesd),
    "aesmc": _crypto_n(crypto.aesmc),
    "aesimc": _crypto_n(crypto.aesimc),
    "sha1c": _crypto_dnm(crypto.sha1c),
    "sha1p": _crypto_dnm(crypto.sha1p),
    "sha1m": _crypto_dnm(crypto.sha1m),
    "sha1su0": _crypto_dnm(crypto.sha1su0),
    "sha256h": _crypto_dnm(crypto.sha256h),
    "sha256h2": _crypto_dnm(crypto.sha256h2),
    "sha256su1": _crypto_dnm(crypto.sha256su1),
    "sha1h": _crypto_n(crypto.sha1h),
    "sha1su1": _crypto_dn(crypto.sha1su1),
    "sha256su0": _crypto_dn(crypto.sha256su0),
}
OPERATION_NAMES = tuple(OPERATIONS)
OPERATION_INDEX = {name: i for i, name in enumerate(OPERATION_NAMES)}
_BY_INDEX = tuple(OPERATIONS.values())


def run_operation(state, index: int, packed: int) -> None:
    _BY_INDEX[index](state, SimdArgs.unpack(packed))
