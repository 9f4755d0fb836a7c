"""The A64 decoder and its pure helpers: logical immediates, AdvSIMD immediates, and
capstone as the oracle that nothing unallocated is accepted."""

from __future__ import annotations

import random

import pytest

from llvmtcg.frontends.aarch64.cpu import CpuModel
from llvmtcg.frontends.aarch64.frontend import decoder
from llvmtcg.frontends.aarch64.simd_lanes import expand_imm
from llvmtcg.frontends.aarch64.trans_dp import decode_bit_masks
from llvmtcg.frontends.aarch64.translate import GLOBALS, DisasContext
from llvmtcg.ir import Builder


def test_logical_immediates_are_the_rotated_runs():
    values = set()
    for n in (0, 1):
        for immr in range(64):
            for imms in range(64):
                value = decode_bit_masks(n, imms, immr, 1)
                if value is not None:
                    values.add(value)
    expected = set()
    for esize in (2, 4, 8, 16, 32, 64):
        for ones in range(1, esize):
            for rotate in range(esize):
                elem = (1 << ones) - 1
                elem = ((elem >> rotate) | (elem << (esize - rotate))) & ((1 << esize) - 1)
                expected.add(sum(elem << i for i in range(0, 64, esize)))
    assert values == expected  # 5334 values, as the manual counts them
    assert len(values) == 5334


@pytest.mark.parametrize("n, imms, immr, sf, value", [
    (1, 0b000111, 0, 1, 0xFF),
    (0, 0b100111, 0, 0, 0x00FF_00FF),  # a 16-bit element repeated in 32 bits
    (0, 0b111100, 1, 1, 0xAAAA_AAAA_AAAA_AAAA),  # esize 2, one bit rotated
    (1, 0b111111, 0, 1, None),  # all ones: reserved
    (1, 0, 0, 0, None),  # N=1 needs a 64-bit operation
])
def test_decode_bit_masks_cases(n, imms, immr, sf, value):
    assert decode_bit_masks(n, imms, immr, sf) == value


@pytest.mark.parametrize("op, cmode, imm8, value", [
    (0, 0b0000, 0xAB, 0x0000_00AB_0000_00AB),
    (0, 0b0110, 0xAB, 0xAB00_0000_AB00_0000),
    (0, 0b1100, 0x12, 0x0000_12FF_0000_12FF),  # MSL #8
    (0, 0b1101, 0x12, 0x0012_FFFF_0012_FFFF),  # MSL #16
    (0, 0b1110, 0x5A, 0x5A5A_5A5A_5A5A_5A5A),
    (1, 0b1110, 0b1000_0001, 0xFF00_0000_0000_00FF),
    (0, 0b1111, 0x70, 0x3F80_0000_3F80_0000),  # FMOV #1.0 (single)
    (1, 0b1111, 0x70, 0x3FF0_0000_0000_0000),  # FMOV #1.0 (double)
])
def test_advsimd_expand_imm(op, cmode, imm8, value):
    assert expand_imm(op, cmode, imm8) == value


def _accepts(word: int) -> bool:
    ctx = DisasContext(CpuModel(), Builder(0x1000, GLOBALS), 0x1000, next_pc=0x1004, insn=word)
    return decoder().dispatch(ctx, word)


def _constrained_unpredictable(word: int) -> bool:
    """Encodings the manual calls CONSTRAINED UNPREDICTABLE, which capstone rejects and
    the decoder (like QEMU) executes: "should be one" Rs/Rt2 fields of exclusives and
    acquire/release accesses that are not 11111, a base register written back that is
    also transferred (capstone applies this to LDTR/STTR too), LDP with Rt == Rt2."""
    rt, rn, rt2 = word & 31, word >> 5 & 31, word >> 10 & 31
    if word >> 24 & 0x3F == 0b001000:  # load/store exclusive, ordered
        return (word >> 16 & 31) != 31 or rt2 != 31
    if word >> 27 & 7 == 0b101 and not word >> 25 & 1:  # load/store pair
        load, writeback = word >> 22 & 1, word >> 23 & 1
        return (load and rt == rt2) or (writeback and rn != 31 and rn in (rt, rt2))
    if word >> 27 & 7 == 0b111 and word >> 24 & 3 == 0 and not word >> 21 & 1:
        return rn == rt and rn != 31 and (word >> 10 & 3) != 0
    return False


def test_nothing_capstone_rejects_is_accepted():
    """Random words: every one the decoder translates, capstone decodes too, unless
    it is CONSTRAINED UNPREDICTABLE (the converse does not hold: FP, SVE, crypto are
    not implemented yet)."""
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    rng = random.Random(15)
    accepted = 0
    for _ in range(20000):
        word = rng.getrandbits(32)
        if not _accepts(word):
            continue
        accepted += 1
        if not _constrained_unpredictable(word):
            assert list(md.disasm(word.to_bytes(4, "little"), 0x1000)), f"{word:#010x}"
    assert accepted > 3000


@pytest.mark.parametrize("word, accepted", [
    (0x00000000, False),  # UDF #0
    (0xD503201F, True),  # NOP
    (0xD503233F, True),  # PACIASP (a hint)
    (0xD503245F, True),  # BTI c
    (0xD4000001, True),  # SVC #0
    (0xD4200000, True),  # BRK #0
    (0xD4000002, False),  # HVC: not at EL0
    (0x9AC00C00, True),  # SDIV x0, x0, x0
    (0x1AC00C00, True),  # SDIV w0, w0, w0
    (0xD3400000 | 63 << 16 | 0 << 10, True),  # UBFM x0, x0, #63, #0 (LSL #1)
    (0x53000000 | 32 << 16, False),  # UBFM w0 with immr = 32: reserved
    (0x12800000 | 2 << 21, False),  # MOVN w0 with hw = 2: reserved
    (0xD53B4200, True),  # MRS x0, NZCV
    (0xD5380000, True),  # MRS x0, MIDR_EL1 (emulated for EL0)
    (0xD5381000, False),  # MRS x0, SCTLR_EL1: not at EL0
    (0x1AC04000, True),  # CRC32B w0, w0, w0
    (0x9AC04C00, True),  # CRC32X w0, w0, x0
    (0x9AC04000, False),  # CRC32B with sf = 1: unallocated
])
def test_encodings(word, accepted):
    assert _accepts(word) == accepted
