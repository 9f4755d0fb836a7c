"""Random straight-line RISC-V instruction sequences for differential testing.

Each *case* is a list of sequences. A sequence starts by loading x1..x31 (minus the two
reserved base registers) from a table, runs random instructions, and stores every
register to an output area. The same assembly runs under qemu-riscv64 (wrapped as a
static ELF that writes the output area to stdout) and under llvmtcg (as a flat snippet
whose output area is read from guest memory); the bytes must be equal.

Reserved registers: s11 (x27) holds the base of the scratch area, s10 (x26) an aligned
address inside it for atomics. Neither is ever written by a generated instruction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

BASE, ATOMIC_BASE = 27, 26
USABLE = [r for r in range(1, 32) if r not in (BASE, ATOMIC_BASE)]

# Scratch layout (offsets from s11).
MEM_OFF = 0  # memory the sequences load from and store to
MEM_SIZE = 0x400
ATOMIC_OFF = 0x300  # s10 = s11 + ATOMIC_OFF while a sequence runs (within MEM)
SEQ_STRIDE = 0x200  # x0..x31 then f0..f31, 8 bytes each, per sequence
FP_OFF = 0x100  # f registers within a sequence's slot; the x0 slot holds frm / fflags
MAX_SEQUENCES = 48
INIT_OFF = 0x400  # initial register values of sequence i at INIT_OFF + i * SEQ_STRIDE
OUT_OFF = INIT_OFF + MAX_SEQUENCES * SEQ_STRIDE  # results of sequence i likewise
SCRATCH_SIZE = OUT_OFF + MAX_SEQUENCES * SEQ_STRIDE

INTERESTING = [0, 1, 2, 3, 5, 7, 31, 32, 33, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
               0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF,
               0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE,
               0xFFFF_FFFF_8000_0000, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210]

R_OPS = ("add sub sll slt sltu xor srl sra or and addw subw sllw srlw sraw "
         "mul mulh mulhsu mulhu div divu rem remu mulw divw divuw remw remuw "
         "sh1add sh2add sh3add add.uw sh1add.uw sh2add.uw sh3add.uw "
         "andn orn xnor max maxu min minu rol rolw ror rorw bclr bext binv bset").split()
I_OPS = "addi slti sltiu xori ori andi addiw".split()
SHIFT64 = "slli srli srai rori bclri bexti binvi bseti slli.uw".split()
SHIFT32 = "slliw srliw sraiw roriw".split()
# ctzw is left out: qemu-riscv64 7.2 (Debian's) counts into the upper word, e.g. ctzw of
# 0x8000000000000000 gives 63 where the Zbb spec says 32 (tests/riscv/test_integer.py
# checks ctzw against the spec instead).
UNARY = "clz clzw ctz cpop cpopw sext.b sext.h zext.h rev8 orc.b".split()
LOADS = {"lb": 1, "lh": 2, "lw": 4, "ld": 8, "lbu": 1, "lhu": 2, "lwu": 4}
STORES = {"sb": 1, "sh": 2, "sw": 4, "sd": 8}
AMOS = ("amoswap amoadd amoxor amoand amoor amomin amomax amominu amomaxu").split()
BRANCHES = "beq bne blt bge bltu bgeu".split()


def _reg(rng: random.Random) -> str:
    return f"x{rng.choice(USABLE)}"


def _imm12(rng: random.Random) -> int:
    return rng.choice([rng.randint(-2048, 2047), rng.choice([0, 1, -1, 2047, -2048, 31, 32])])


def random_value(rng: random.Random) -> int:
    kind = rng.random()
    if kind < 0.4:
        v = rng.choice(INTERESTING)
        return (v + rng.choice([0, 0, 1, -1])) & 0xFFFF_FFFF_FFFF_FFFF
    if kind < 0.6:
        return rng.getrandbits(64)
    if kind < 0.7:  # bytes at byte-wise edges (orc.b, rev8, sign/zero extensions)
        return int.from_bytes(bytes(rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x40])
                                    for _ in range(8)), "little")
    bits = rng.choice([8, 16, 32, 33])
    v = rng.getrandbits(bits)
    return (-v if rng.random() < 0.5 else v) & 0xFFFF_FFFF_FFFF_FFFF


def random_fp_value(rng: random.Random) -> int:
    """A double, or a NaN-boxed (sometimes improperly boxed) single, at an FP edge."""
    single = rng.random() < 0.5
    if single:
        special = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001,
                   0xFFC0_0000, 0x0000_0001, 0x807F_FFFF, 0x0080_0000, 0x7F7F_FFFF,
                   0x3F80_0000, 0xBF80_0000, 0x4F00_0000, 0xCF00_0000, 0x5F00_0000,
                   0x3F00_0000, 0x3FC0_0000, 0x4B00_0001, 0x3EAA_AAAB, 0x4EFF_FFFF]
        v = rng.choice(special) if rng.random() < 0.6 else rng.getrandbits(32)
        if rng.random() < 0.3:
            v = (v + rng.choice([1, -1])) & 0xFFFF_FFFF
        box = 0xFFFF_FFFF_0000_0000 if rng.random() < 0.95 else rng.getrandbits(32) << 32
        return box | v
    special = [0, 1 << 63, 0x7FF0 << 48, 0xFFF0 << 48, 0x7FF8 << 48, (0x7FF0 << 48) | 1,
               1, 0x000F_FFFF_FFFF_FFFF, 0x0010 << 48, 0x7FEF_FFFF_FFFF_FFFF,
               0x3FF0 << 48, 0xBFF0 << 48, 0x41E0 << 48, 0xC1E0 << 48, 0x43E0 << 48,
               0xC3E0 << 48, 0x43F0 << 48, 0x3FE0 << 48, 0x3FF8 << 48, 0x4330_0000_0000_0001,
               0x41DF_FFFF_FFC0_0000, 0x3FD5_5555_5555_5555, 0xC1E0_0000_0020_0000]
    v = rng.choice(special) if rng.random() < 0.6 else rng.getrandbits(64)
    if rng.random() < 0.3:
        v = (v + rng.choice([1, -1])) & 0xFFFF_FFFF_FFFF_FFFF
    return v


FP_ROUNDING = ["", ", rne", ", rtz", ", rdn", ", rup", ", rmm", ", dyn"]
FP_ARITH = "fadd fsub fmul fdiv".split()
FP_FMA = "fmadd fmsub fnmsub fnmadd".split()
FP_SIGN = "fsgnj fsgnjn fsgnjx fmin fmax".split()
FP_CMP = "feq flt fle".split()
INT_OF = ["w", "wu", "l", "lu"]


def random_fp_instruction(rng: random.Random) -> list[str]:
    fd, fs1, fs2, fs3 = (f"f{rng.randrange(32)}" for _ in range(4))
    rd, rs1 = _reg(rng), _reg(rng)
    p = rng.choice("sd")
    rm = rng.choice(FP_ROUNDING)
    kind = rng.random()
    if kind < 0.25:
        return [f"{rng.choice(FP_ARITH)}.{p} {fd}, {fs1}, {fs2}{rm}"]
    if kind < 0.30:
        return [f"fsqrt.{p} {fd}, {fs1}{rm}"]
    if kind < 0.42:
        return [f"{rng.choice(FP_FMA)}.{p} {fd}, {fs1}, {fs2}, {fs3}{rm}"]
    if kind < 0.52:
        return [f"{rng.choice(FP_SIGN)}.{p} {fd}, {fs1}, {fs2}"]
    if kind < 0.62:
        return [f"fcvt.{rng.choice(INT_OF)}.{p} {rd}, {fs1}{rm}"]
    if kind < 0.70:
        src = rng.choice(INT_OF)
        exact = p == "d" and src in ("w", "wu")  # binutils takes no rounding mode there
        return [f"fcvt.{p}.{src} {fd}, {rs1}{'' if exact else rm}"]
    if kind < 0.74:
        return ["fcvt.s.d " + f"{fd}, {fs1}{rm}" if p == "s" else f"fcvt.d.s {fd}, {fs1}"]
    if kind < 0.80:
        return [f"{rng.choice(FP_CMP)}.{p} {rd}, {fs1}, {fs2}"]
    if kind < 0.84:
        return [f"fclass.{p} {rd}, {fs1}"]
    if kind < 0.90:
        w = "w" if p == "s" else "d"
        return [rng.choice([f"fmv.x.{w} {rd}, {fs1}", f"fmv.{w}.x {fd}, {rs1}"])]
    op = rng.choice(["flw", "fld", "fsw", "fsd"])
    size = 4 if op.endswith("w") else 8
    offset = MEM_OFF + rng.randrange(0, 0x200 - size)
    reg = fd if op.startswith("fl") else fs2
    return [f"{op} {reg}, {offset}(x{BASE})"]


def random_instruction(rng: random.Random, label: list[int]) -> list[str]:
    kind = rng.random()
    rd, rs1, rs2 = _reg(rng), _reg(rng), _reg(rng)
    if kind < 0.35:
        return [f"{rng.choice(R_OPS)} {rd}, {rs1}, {rs2}"]
    if kind < 0.45:
        return [f"{rng.choice(I_OPS)} {rd}, {rs1}, {_imm12(rng)}"]
    if kind < 0.52:
        return [f"{rng.choice(SHIFT64)} {rd}, {rs1}, {rng.randint(0, 63)}"]
    if kind < 0.56:
        return [f"{rng.choice(SHIFT32)} {rd}, {rs1}, {rng.randint(0, 31)}"]
    if kind < 0.62:
        return [f"{rng.choice(UNARY)} {rd}, {rs1}"]
    if kind < 0.65:
        return [f"lui {rd}, {rng.randint(0, 0xFFFFF)}"]
    if kind < 0.67:
        return [f"auipc {rd}, {rng.randint(0, 0xFFFFF)}", f"sub {rd}, {rd}, {rd}"]
    if kind < 0.77:
        op, size = rng.choice(list(LOADS.items()))
        return [f"{op} {rd}, {MEM_OFF + rng.randrange(0, 0x200 - size)}(x{BASE})"]
    if kind < 0.86:
        op, size = rng.choice(list(STORES.items()))
        return [f"{op} {rs2}, {MEM_OFF + rng.randrange(0, 0x200 - size)}(x{BASE})"]
    if kind < 0.92:
        width = rng.choice(["w", "d"])
        order = rng.choice(["", ".aq", ".rl", ".aqrl"])
        return [f"{rng.choice(AMOS)}.{width}{order} {rd}, {rs2}, (x{ATOMIC_BASE})"]
    if kind < 0.94:
        width = rng.choice(["w", "d"])
        return [f"lr.{width} {rd}, (x{ATOMIC_BASE})",
                f"{rng.choice(R_OPS[:10])} {rs2}, {rs2}, {rd}",
                f"sc.{width} {rs1}, {rs2}, (x{ATOMIC_BASE})"]
    label[0] += 1
    n = label[0]
    if kind < 0.97:
        return [f"{rng.choice(BRANCHES)} {rs1}, {rs2}, 1{n}f",
                f"addi {rd}, {rd}, {_imm12(rng)}", f"1{n}:"]
    return [f"jal {rd}, 1{n}f", f"xori {rs1}, {rs1}, 1", f"1{n}:", f"sub {rd}, {rd}, {rd}"]


@dataclass
class Case:
    seed: int
    sequences: list[list[str]]
    inits: list[list[int]]  # x0..x31 (x0's slot: the initial frm), then f0..f31

    def body(self) -> str:
        """The assembly shared by both runs (s11 = scratch base on entry)."""
        lines = []
        t = f"x{ATOMIC_BASE}"
        for i, seq in enumerate(self.sequences):
            # Register tables lie beyond the 12-bit offset range: point s10 at them.
            lines += [f"li {t}, {INIT_OFF + i * SEQ_STRIDE}", f"add {t}, {t}, x{BASE}"]
            if self.fp:
                lines += [f"ld x1, 0({t})", "fsrm x1", "fsflags x0"]
                lines += [f"fld f{r}, {FP_OFF + 8 * r}({t})" for r in range(32)]
            lines += [f"ld x{r}, {8 * r}({t})" for r in USABLE]
            lines += [f"addi {t}, x{BASE}, {ATOMIC_OFF}"]
            lines += seq
            lines += [f"li {t}, {OUT_OFF + i * SEQ_STRIDE}", f"add {t}, {t}, x{BASE}"]
            lines += [f"sd x{r}, {8 * r}({t})" for r in USABLE]
            if self.fp:
                lines += [f"fsd f{r}, {FP_OFF + 8 * r}({t})" for r in range(32)]
                lines += ["frcsr x1", f"sd x1, 0({t})"]  # frm and fflags
        return "\n".join(lines)

    @property
    def fp(self) -> bool:
        return len(self.inits[0]) > 32

    def scratch(self) -> bytes:
        """Initial scratch contents: register tables then memory bytes."""
        rng = random.Random(self.seed ^ 0x5EED)
        data = bytearray(SCRATCH_SIZE)
        for i, init in enumerate(self.inits):
            for r, value in enumerate(init):
                off = INIT_OFF + i * SEQ_STRIDE + (8 * r if r < 32 else FP_OFF + 8 * (r - 32))
                data[off:off + 8] = value.to_bytes(8, "little")
        data[MEM_OFF:MEM_OFF + MEM_SIZE] = rng.randbytes(MEM_SIZE)
        return bytes(data)

    def out_size(self) -> int:
        return len(self.sequences) * SEQ_STRIDE


def make_case(seed: int, n_sequences: int = 24, length: int = 16, fp: bool = False) -> Case:
    """``fp``: sequences mix F/D instructions in, start from random FP registers and a
    random frm, and also compare f0..f31 and fcsr."""
    assert n_sequences <= MAX_SEQUENCES
    rng = random.Random(seed)
    label = [0]
    sequences, inits = [], []
    for _ in range(n_sequences):
        seq: list[str] = []
        while len(seq) < length:
            if fp and rng.random() < 0.6:
                seq += random_fp_instruction(rng)
            else:
                seq += random_instruction(rng, label)
        sequences.append(seq)
        init = [random_value(rng) for _ in range(32)]
        if fp:
            init[0] = rng.randrange(5)  # frm
            init += [random_fp_value(rng) for _ in range(32)]
        inits.append(init)
    return Case(seed, sequences, inits)


def elf_source(case: Case) -> str:
    """A static program: run the body on a scratch copy, write the results, exit 0."""
    scratch = case.scratch()
    data = ",".join(str(b) for b in scratch)
    return f"""
.section .data
.balign 4096
scratch:
.byte {data}
.text
.globl _start
_start:
    la x{BASE}, scratch
{case.body()}
    la x{BASE}, scratch
    li a0, 1
    mv a1, x{BASE}
    li a2, {MEM_SIZE}
    li a7, 64
    ecall
    li a0, 1
    li t0, {OUT_OFF}
    add a1, x{BASE}, t0
    li a2, {case.out_size()}
    li a7, 64
    ecall
    li a0, 0
    li a7, 93
    ecall
"""
