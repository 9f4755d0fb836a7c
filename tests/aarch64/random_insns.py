"""Random A64 instructions and register states for the differential test against
qemu-aarch64 (tests/guest/aarch64/insn_harness.c runs them; test_random_insns.py
compares).

Instructions are drawn from the decoder's own patterns (frontends/aarch64/insn.py):
a pattern's fixed bits with the other bits random, so every class we translate is
covered and the unallocated corners inside a class (which must raise SIGILL in both
emulators) come up too. States mix edge values (zero, all ones, the signed limits,
NaNs, infinities, subnormals) with random bits.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from llvmtcg.frontends.aarch64.insn import INSN

# Patterns left out: control flow (the harness runs straight-line code), system
# instructions (MSR/MRS/SYS reach registers the harness does not compare), and
# the LSE atomics and CASP that the CPU both emulators model (an Armv8.0 Cortex-A72
# with the crypto extension) lacks.
EXCLUDED = {
    "b", "bl", "cbz", "cbnz", "tbz", "tbnz", "b_cond", "br", "blr", "ret", "svc", "brk",
    "sys", "msr", "mrs",
    "cas", "casp", "ldadd", "ldclr", "ldeor", "ldset", "ldsmax", "ldsmin", "ldumax",
    "ldumin", "swp",
}
# Memory patterns use SP (the harness's scratch buffer) as the base register.
RN_IS_SP = {
    "stxr", "ldxr", "stxp", "ldxp", "stlr", "ldar", "stp", "ldp", "stp_v", "ldp_v",
    "ldst_imm", "ldst_roff", "ldst_uimm", "simd_ldst_multi", "simd_ldst_multi_p",
    "simd_ldst_single", "simd_ldst_single_p",
}
REFERENCE_CPU = "cortex-a72"

FPCR_RMODE = 3 << 22
FPCR_FZ = 1 << 24
FPCR_DN = 1 << 25
FPCR_AHP = 1 << 26
FPCR_BITS = FPCR_RMODE | FPCR_FZ | FPCR_DN | FPCR_AHP  # the FPCR bits a state may set

_X_EDGES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000,
            0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
            0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_8000_0000, 63, 64, 31, 32)
_F32_EDGES = (0x0000_0000, 0x8000_0000, 0x3F80_0000, 0xBF80_0000, 0x7F80_0000, 0xFF80_0000,
              0x7FC0_0000, 0x7F80_0001, 0xFFC0_1234, 0x0000_0001, 0x807F_FFFF, 0x0080_0000,
              0x7F7F_FFFF, 0x4F00_0000, 0xCF00_0000, 0x3F00_0000, 0x4B80_0001, 0x5F00_0000)
_F64_EDGES = (0, 0x8000_0000_0000_0000, 0x3FF0_0000_0000_0000, 0x7FF0_0000_0000_0000,
              0xFFF0_0000_0000_0000, 0x7FF8_0000_0000_0000, 0x7FF0_0000_0000_0001,
              0x0000_0000_0000_0001, 0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF,
              0x3FE0_0000_0000_0000, 0x43E0_0000_0000_0000, 0xC3E0_0000_0000_0000,
              0x41E0_0000_0000_0000, 0x4330_0000_0000_0001)
_F16_EDGES = (0, 0x8000, 0x3C00, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x0001, 0x0400, 0x7BFF)

TEST = struct.Struct("<4I31QQ64Q")
RESULT = struct.Struct("<IIQ31QQQQQ64QQ")
RESULT_FIELDS = (["insn", "signal", "pc_offset"] + [f"x{i}" for i in range(31)]
                 + ["sp", "nzcv", "fpsr", "fpcr"] + [f"v{i // 2}.{'hi' if i & 1 else 'lo'}"
                                                     for i in range(64)] + ["scratch"])
SP_OFFSET = 4096  # into the harness's scratch buffer


@dataclass(frozen=True, slots=True)
class Case:
    pattern: str
    insn: int
    packed: bytes  # the harness's struct test


def candidate_patterns() -> list:
    return [p for p in INSN.patterns if not p.reserved and p.name not in EXCLUDED]


def random_insn(rng: random.Random, pattern) -> int:
    word = pattern.match | (rng.getrandbits(32) & ~pattern.mask & 0xFFFF_FFFF)
    if pattern.name in RN_IS_SP:
        word |= 31 << 5
    return word


def _x_value(rng: random.Random) -> int:
    pick = rng.random()
    if pick < 0.35:
        return rng.choice(_X_EDGES)
    if pick < 0.5:
        return rng.getrandbits(8)
    return rng.getrandbits(64)


def _v_half(rng: random.Random) -> int:
    pick = rng.random()
    if pick < 0.25:
        return rng.choice(_F64_EDGES)
    if pick < 0.55:
        return rng.choice(_F32_EDGES) | rng.choice(_F32_EDGES) << 32
    if pick < 0.65:
        return sum(rng.choice(_F16_EDGES) << (16 * i) for i in range(4))
    if pick < 0.75:
        return sum(rng.choice((0, 0x7F, 0x80, 0xFF, 1)) << (8 * i) for i in range(8))
    return rng.getrandbits(64)


def random_state(rng: random.Random, insn: int, fpcr_bits: int = FPCR_BITS) -> bytes:
    xs = [_x_value(rng) for _ in range(31)]
    vs = [_v_half(rng) for _ in range(64)]
    nzcv = rng.getrandbits(4) << 28
    fpsr = rng.choice((0, 0, 0x1F, 1 << 27)) if rng.random() < 0.3 else 0
    fpcr = rng.getrandbits(32) & fpcr_bits
    return TEST.pack(insn, nzcv, fpsr, fpcr, *xs, SP_OFFSET, *vs)


def generate(seed: int, count: int, patterns: Iterable | None = None,
             fpcr_bits: int = FPCR_BITS) -> list[Case]:
    """``count`` cases from ``seed``: patterns uniformly, then a random word of it."""
    rng = random.Random(seed)
    pool = list(patterns) if patterns is not None else candidate_patterns()
    cases = []
    for _ in range(count):
        pattern = rng.choice(pool)
        insn = random_insn(rng, pattern)
        cases.append(Case(pattern.name, insn, random_state(rng, insn, fpcr_bits)))
    return cases


def describe_difference(case: Case, ours: bytes, reference: bytes) -> str:
    """The fields that differ, with the instruction disassembled by capstone."""
    mine, theirs = RESULT.unpack(ours), RESULT.unpack(reference)
    lines = [f"{case.pattern} {case.insn:08x} {disassemble(case.insn)}"]
    for name, a, b in zip(RESULT_FIELDS, mine, theirs, strict=True):
        if a != b:
            lines.append(f"    {name}: llvmtcg {a:#x} qemu {b:#x}")
    return "\n".join(lines)


def disassemble(insn: int) -> str:
    try:
        import capstone
    except ImportError:
        return "?"
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    for i in md.disasm(struct.pack("<I", insn), 0):
        return f"{i.mnemonic} {i.op_str}"
    return "(capstone: invalid)"
