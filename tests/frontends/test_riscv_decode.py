"""RISC-V RV64GC decode tables: hand-checked encodings and capstone as an oracle."""

from __future__ import annotations

import random
import re

import pytest
from capstone import CS_ARCH_RISCV, CS_MODE_RISCV64, CS_MODE_RISCVC, Cs

from llvmtcg.frontends.decodetree import Candidate, DecodeTable, DecodeTreeError
from llvmtcg.frontends.riscv import INSN16, INSN32, RiscvDecoder, insn_length

ALL_TRANSLATORS = sorted(INSN32.translators() | INSN16.translators())


def recording_translators(log: list) -> dict:
    """Stand-ins for the real translators: record (name, args) and accept."""

    def make(name):
        def trans(ctx, args):
            log.append((name, args))
            return True

        return trans

    return {f"trans_{name}": make(name) for name in ALL_TRANSLATORS}


# --------------------------------------------------------------------------- by hand

# (word, pattern, translator, args).  Words come from assembler listings or were encoded
# by hand from the spec's format diagrams; see the comment on each for the assembly.
HAND = [
    (0x00B50533, "add", "add", dict(rd=10, rs1=10, rs2=11)),  # add a0,a0,a1
    (0x40B50533, "sub", "sub", dict(rd=10, rs1=10, rs2=11)),  # sub a0,a0,a1
    (0xFFF50513, "addi", "addi", dict(rd=10, rs1=10, imm=-1)),  # addi a0,a0,-1
    (0x80000537, "lui", "lui", dict(rd=10, imm=-0x8000_0000)),  # lui a0,0x80000
    (0xFFFFF537, "lui", "lui", dict(rd=10, imm=-4096)),  # lui a0,0xfffff
    (0x00001517, "auipc", "auipc", dict(rd=10, imm=4096)),  # auipc a0,0x1
    (0xFE050EE3, "beq", "beq", dict(rs1=10, rs2=0, imm=-4)),  # beqz a0,.-4
    (0x00B54463, "blt", "blt", dict(rs1=10, rs2=11, imm=8)),  # blt a0,a1,.+8
    (0x0140006F, "jal", "jal", dict(rd=0, imm=20)),  # j .+20
    (0xF01FF06F, "jal", "jal", dict(rd=0, imm=-256)),  # j .-256
    (0x8000006F, "jal", "jal", dict(rd=0, imm=-(1 << 20))),  # j .-1MiB
    (0x00008067, "jalr", "jalr", dict(rd=0, rs1=1, imm=0)),  # ret
    (0x00813083, "ld", "ld", dict(rd=1, rs1=2, imm=8)),  # ld ra,8(sp)
    (0x00113423, "sd", "sd", dict(rs1=2, rs2=1, imm=8)),  # sd ra,8(sp)
    (0xFEA42E23, "sw", "sw", dict(rs1=8, rs2=10, imm=-4)),  # sw a0,-4(s0)
    (0x43F55513, "srai", "srai", dict(rd=10, rs1=10, shamt=63)),  # srai a0,a0,63
    (0x02051513, "slli", "slli", dict(rd=10, rs1=10, shamt=32)),  # slli a0,a0,32
    (0x0005051B, "addiw", "addiw", dict(rd=10, rs1=10, imm=0)),  # sext.w a0,a0
    (0x02B50533, "mul", "mul", dict(rd=10, rs1=10, rs2=11)),  # mul a0,a0,a1
    (0x100527AF, "lr_w", "lr_w", dict(rd=15, rs1=10, rs2=0, aq=0, rl=0)),  # lr.w a5,(a0)
    (0x1E0527AF, "sc_w", "sc_w", dict(rd=15, rs1=10, rs2=0, aq=1, rl=1)),  # sc.w.aqrl
    (0x04B6352F, "amoadd_d", "amoadd_d", dict(rd=10, rs1=12, rs2=11, aq=1, rl=0)),
    (0x12A5F043, "fmadd_d", "fmadd_d", dict(rd=0, rs1=11, rs2=10, rs3=2, rm=7)),
    (0xC0051553, "fcvt_w_s", "fcvt_w_s", dict(rd=10, rs1=10, rm=1)),  # fcvt.w.s a0,fa0,rtz
    (0xD2257553, "fcvt_d_l", "fcvt_d_l", dict(rd=10, rs1=10, rm=7)),  # fcvt.d.l fa0,a0
    (0xE2050553, "fmv_x_d", "fmv_x_d", dict(rd=10, rs1=10)),  # fmv.x.d a0,fa0
    (0xF0000053, "fmv_w_x", "fmv_w_x", dict(rd=0, rs1=0)),  # fmv.w.x ft0,zero
    (0x20B50553, "fsgnj_s", "fsgnj_s", dict(rd=10, rs1=10, rs2=11)),  # fmv.s-like
    (0x34011173, "csrrw", "csrrw", dict(rd=2, rs1=2, csr=0x340)),  # csrrw sp,mscratch,sp
    (0x3000D573, "csrrwi", "csrrwi", dict(rd=10, zimm=1, csr=0x300)),  # csrrwi a0,mstatus,1
    (0x0FF0000F, "fence", "fence", dict(fm=0, pred=15, succ=15)),  # fence iorw,iorw
    (0x8330000F, "fence", "fence", dict(fm=8, pred=3, succ=3)),  # fence.tso
    (0x0000100F, "fence_i", "fence_i", {}),
    (0x00000073, "ecall", "ecall", {}),
    (0x00100073, "ebreak", "ebreak", {}),
    (0x60051513, "clz", "clz", dict(rd=10, rs1=10)),  # clz a0,a0
    (0x6B855513, "rev8", "rev8", dict(rd=10, rs1=10)),  # rev8 a0,a0
    (0x28755513, "orc_b", "orc_b", dict(rd=10, rs1=10)),  # orc.b a0,a0
    (0x20B52533, "sh1add", "sh1add", dict(rd=10, rs1=10, rs2=11)),  # sh1add a0,a0,a1
    (0x08B5053B, "add_uw", "add_uw", dict(rd=10, rs1=10, rs2=11)),  # add.uw a0,a0,a1
    (0x0805453B, "zext_h", "zext_h", dict(rd=10, rs1=10)),  # zext.h a0,a0
    (0x2BF51513, "bseti", "bseti", dict(rd=10, rs1=10, shamt=63)),  # bseti a0,a0,63
    (0x62155513, "rori", "rori", dict(rd=10, rs1=10, shamt=33)),  # rori a0,a0,33
    (0x0855151B, "slli_uw", "slli_uw", dict(rd=10, rs1=10, shamt=5)),  # slli.uw a0,a0,5
    # ---- compressed: the 32-bit translator and its full argument set
    (0x0001, "c_addi", "addi", dict(rd=0, rs1=0, imm=0)),  # c.nop
    (0x1141, "c_addi", "addi", dict(rd=2, rs1=2, imm=-16)),  # c.addi sp,-16
    (0x357D, "c_addiw", "addiw", dict(rd=10, rs1=10, imm=-1)),  # c.addiw a0,-1
    (0x7179, "c_addi16sp", "addi", dict(rd=2, rs1=2, imm=-48)),  # c.addi16sp sp,-48
    (0x7101, "c_addi16sp", "addi", dict(rd=2, rs1=2, imm=-512)),
    (0x6141, "c_addi16sp", "addi", dict(rd=2, rs1=2, imm=16)),
    (0x1008, "c_addi4spn", "addi", dict(rd=10, rs1=2, imm=32)),  # c.addi4spn a0,sp,32
    (0x557D, "c_li", "addi", dict(rd=10, rs1=0, imm=-1)),  # c.li a0,-1
    (0x7579, "c_lui", "lui", dict(rd=10, imm=-0x2000)),  # c.lui a0,0xffffe
    (0x6089, "c_lui", "lui", dict(rd=1, imm=0x2000)),  # c.lui ra,2
    (0x41C8, "c_lw", "lw", dict(rd=10, rs1=11, imm=4)),  # c.lw a0,4(a1)
    (0x7DE8, "c_ld", "ld", dict(rd=10, rs1=11, imm=248)),  # c.ld a0,248(a1)
    (0x2008, "c_fld", "fld", dict(rd=10, rs1=8, imm=0)),  # c.fld fa0,0(s0)
    (0xE022, "c_sdsp", "sd", dict(rs1=2, rs2=8, imm=0)),  # c.sdsp s0,0(sp)
    (0x6582, "c_ldsp", "ld", dict(rd=11, rs1=2, imm=0)),  # c.ldsp a1,0(sp)
    (0x75FE, "c_ldsp", "ld", dict(rd=11, rs1=2, imm=504)),  # c.ldsp a1,504(sp)
    (0xDFAA, "c_swsp", "sw", dict(rs1=2, rs2=10, imm=252)),  # c.swsp a0,252(sp)
    (0x2502, "c_fldsp", "fld", dict(rd=10, rs1=2, imm=0)),  # c.fldsp fa0,0(sp)
    (0xA02E, "c_fsdsp", "fsd", dict(rs1=2, rs2=11, imm=0)),  # c.fsdsp fa1,0(sp)
    (0xA001, "c_j", "jal", dict(rd=0, imm=0)),  # c.j .
    (0xBFFD, "c_j", "jal", dict(rd=0, imm=-2)),  # c.j .-2
    (0xB001, "c_j", "jal", dict(rd=0, imm=-2048)),
    (0xAFFD, "c_j", "jal", dict(rd=0, imm=2046)),
    (0xC119, "c_beqz", "beq", dict(rs1=10, rs2=0, imm=6)),  # c.beqz a0,.+6
    (0xF101, "c_bnez", "bne", dict(rs1=10, rs2=0, imm=-256)),  # c.bnez a0,.-256
    (0x0506, "c_slli", "slli", dict(rd=10, rs1=10, shamt=1)),  # c.slli a0,1
    (0x8105, "c_srli", "srli", dict(rd=10, rs1=10, shamt=1)),  # c.srli a0,1
    (0x957D, "c_srai", "srai", dict(rd=10, rs1=10, shamt=63)),  # c.srai a0,63
    (0x997D, "c_andi", "andi", dict(rd=10, rs1=10, imm=-1)),  # c.andi a0,-1
    (0x8D05, "c_sub", "sub", dict(rd=10, rs1=10, rs2=9)),  # c.sub a0,s1
    (0x9D2D, "c_addw", "addw", dict(rd=10, rs1=10, rs2=11)),  # c.addw a0,a1
    (0x9D01, "c_subw", "subw", dict(rd=10, rs1=10, rs2=8)),  # c.subw a0,s0
    (0x852E, "c_mv", "add", dict(rd=10, rs1=0, rs2=11)),  # c.mv a0,a1
    (0x952E, "c_add", "add", dict(rd=10, rs1=10, rs2=11)),  # c.add a0,a1
    (0x8082, "c_jr", "jalr", dict(rd=0, rs1=1, imm=0)),  # c.jr ra (ret)
    (0x9502, "c_jalr", "jalr", dict(rd=1, rs1=10, imm=0)),  # c.jalr a0
    (0x9002, "c_ebreak", "ebreak", {}),
]


@pytest.mark.parametrize(
    ("word", "pattern", "translator", "args"), HAND, ids=[f"{h[0]:#x}-{h[1]}" for h in HAND]
)
def test_hand_checked_encoding(word, pattern, translator, args):
    table = INSN32 if word & 3 == 3 else INSN16
    first = table.decode(word)[0]
    assert (first.pattern, first.translator, first.args._asdict()) == (pattern, translator, args)
    log = []
    assert RiscvDecoder(recording_translators(log)).dispatch(None, word)
    assert log == [(translator, first.args)]


RESERVED16 = {
    0x0000: "all-zero word (c.addi4spn nzuimm=0)",
    0x0004: "c.addi4spn nzuimm=0",
    0x6101: "c.addi16sp nzimm=0",
    0x6001: "c.lui rd=0 nzimm=0",
    0x6081: "c.lui nzimm=0",
    0x2001: "c.addiw rd=0",
    0x4002: "c.lwsp rd=0",
    0x7002: "c.ldsp rd=0",
    0x8002: "c.jr rs1=0",
    0x8000: "quadrant 0 funct3=100",
    0x9C41: "RV64 100 1 11 .. 10",
    0x9C61: "RV64 100 1 11 .. 11",
}


@pytest.mark.parametrize("word", RESERVED16, ids=hex)
def test_reserved_compressed_encodings_are_illegal(word):
    assert INSN16.decode(word) == []
    log = []
    assert RiscvDecoder(recording_translators(log)).dispatch(None, word) is False
    assert log == []


@pytest.mark.parametrize("word", [0xFFFF_FFFF, 0x4000_1033, 0x0000_007F, 0x0200_0073])
def test_unallocated_32bit_words_are_illegal(word):
    assert INSN32.decode(word) == []
    assert RiscvDecoder(recording_translators([])).dispatch(None, word) is False


def test_group_falls_through_to_next_pattern():
    # c.addi16sp and c.lui share a group; if trans_addi declines, trans_lui gets the word.
    log = []
    translators = recording_translators(log)
    translators["trans_addi"] = lambda ctx, a: False
    assert RiscvDecoder(translators).dispatch(None, 0x7179)
    assert log == [("lui", INSN16.decode(0x7179)[1].args)]


def test_binding_errors_name_the_culprit():
    translators = recording_translators([])
    del translators["trans_fld"]
    with pytest.raises(DecodeTreeError, match="no trans_fld for fld"):
        RiscvDecoder(translators)
    translators = recording_translators([])
    translators["trans_c_addi"] = translators["trans_addi"]
    with pytest.raises(DecodeTreeError, match="trans_c_addi has no pattern"):
        RiscvDecoder(translators)


def test_insn_length():
    assert [insn_length(h) for h in (0x0001, 0x4502, 0x8082, 0x0513, 0x0533)] == [2, 2, 2, 4, 4]


def test_tables_cover_the_requested_extensions():
    names = {p.name for p in INSN32.patterns}
    assert {"fcvt_lu_d", "amomaxu_d", "csrrci", "fence_i", "sh3add_uw", "bexti", "roriw"} <= names
    assert len(INSN32.patterns) == 200  # 196 + the privileged sret, mret, wfi, sfence.vma
    compressed = {p.name for p in INSN16.patterns if not p.reserved}
    assert len(compressed) == 36


@pytest.mark.parametrize("table", [INSN16, INSN32], ids=lambda t: t.name)
def test_tree_agrees_with_linear_scan(table: DecodeTable):
    rnd = random.Random(5)
    words = range(1 << 16) if table.width == 16 else [rnd.getrandbits(32) for _ in range(20000)]
    for word in words:
        assert table.lookup(word) == [p for p in table.patterns if p.matches(word)]


# --------------------------------------------------------------------------- capstone

CAPSTONE = Cs(CS_ARCH_RISCV, CS_MODE_RISCV64 | CS_MODE_RISCVC)

XREGS = (
    "zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7"
    " s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 t3 t4 t5 t6"
).split()
FREGS = (
    [f"ft{i}" for i in range(8)]
    + ["fs0", "fs1"]
    + [f"fa{i}" for i in range(8)]
    + [f"fs{i}" for i in range(2, 12)]
    + [f"ft{i}" for i in range(8, 12)]
)
REGISTER_NUMBER = {name: i for i, name in enumerate(XREGS)} | {
    name: i for i, name in enumerate(FREGS)
}
ROUNDING = {"rne": 0, "rtz": 1, "rdn": 2, "rup": 3, "rmm": 4, "dyn": 7}
INTEGER = re.compile(r"-?(0x[0-9a-f]+|\d+)$")

# Capstone prints the assembler's preferred alias; map each back to the instruction.
ALIASES = {
    "nop": "addi", "mv": "addi", "li": "addi", "not": "xori", "neg": "sub", "negw": "subw",
    "sext.w": "addiw", "seqz": "sltiu", "snez": "sltu", "sltz": "slt", "sgtz": "slt",
    "beqz": "beq", "bnez": "bne", "blez": "bge", "bgez": "bge", "bltz": "blt", "bgtz": "blt",
    "bgt": "blt", "ble": "bge", "bgtu": "bltu", "bleu": "bgeu",
    "j": "jal", "jr": "jalr", "ret": "jalr",
    "fmv.s": "fsgnj.s", "fabs.s": "fsgnjx.s", "fneg.s": "fsgnjn.s",
    "fmv.d": "fsgnj.d", "fabs.d": "fsgnjx.d", "fneg.d": "fsgnjn.d",
    "fmv.x.s": "fmv.x.w", "fmv.s.x": "fmv.w.x",
    "csrr": "csrrs", "csrw": "csrrw", "csrs": "csrrs", "csrc": "csrrc",
    "csrwi": "csrrwi", "csrsi": "csrrsi", "csrci": "csrrci",
    "rdcycle": "csrrs", "rdtime": "csrrs", "rdinstret": "csrrs",
    "rdcycleh": "csrrs", "rdtimeh": "csrrs", "rdinstreth": "csrrs",
    "frcsr": "csrrs", "fscsr": "csrrw", "frrm": "csrrs", "fsrm": "csrrw",
    "frflags": "csrrs", "fsflags": "csrrw", "fsrmi": "csrrwi", "fsflagsi": "csrrwi",
    "unimp": "csrrw",  # csrrw zero, cycle, zero: the canonical 32-bit illegal-ish word
    "fence.tso": "fence",
    "c.nop": "c.addi",
}  # fmt: skip

# Capstone 5's RISC-V tables predate ratified Zba/Zbb/Zbs: it rejects all of them.
CAPSTONE_LACKS = set(
    "sh1add sh2add sh3add add_uw sh1add_uw sh2add_uw sh3add_uw slli_uw"  # Zba
    " andn orn xnor clz clzw ctz ctzw cpop cpopw max maxu min minu sext_b sext_h zext_h"
    " rol rolw ror rorw rori roriw orc_b rev8"  # Zbb
    " bclr bclri bext bexti binv binvi bset bseti".split()  # Zbs
)
# Privileged instructions capstone knows; they belong to a system-mode table, not here.
PRIVILEGED = {"uret", "sret", "mret", "wfi", "sfence.vma", "hfence.vvma", "hfence.gvma", "dret"}
# Capstone's LLVM encodes these exact conversions with funct3=000; the spec has an rm
# field there (any value accepted, result is exact).
EXACT_CONVERSIONS = {"fcvt_d_s", "fcvt_d_w", "fcvt_d_wu"}
# RVC HINTs with rd=0 (spec 16.7): legal no-ops for us, unknown to capstone 5.
RVC_RD0_HINTS = {"c_addi", "c_li", "c_lui", "c_mv", "c_add", "c_slli"}


def capstone(word: int, size: int) -> tuple[str, str] | None:
    for _, length, mnemonic, op_str in CAPSTONE.disasm_lite(word.to_bytes(size, "little"), 0):
        return (mnemonic, op_str) if length == size else None
    return None


def known_disagreement(word: int, ours: Candidate | None, theirs: tuple | None) -> str | None:
    """Why capstone and we may legitimately differ on ``word``, or None."""
    if ours is not None and theirs is None:
        args = ours.args._asdict()
        if ours.pattern in CAPSTONE_LACKS:
            return "Zba/Zbb/Zbs unknown to capstone 5"
        if args.get("rm") in (5, 6):
            return "reserved static rm: left to the translator, capstone rejects it"
        if ours.pattern in EXACT_CONVERSIONS and args["rm"] != 0:
            return "exact conversion with rm != 000: spec allows it, LLVM 'encodes' rm=0"
        if ours.pattern in ("fence", "fence_i"):
            ignored = INSN32.pattern(ours.pattern).ignored
            if word & ignored or args.get("fm", 0) != 0:
                return "reserved fence fields, which the spec says to ignore"
        if ours.pattern in RVC_RD0_HINTS and args["rd"] == 0:
            return "RVC HINT with rd=0"
    if ours is None and theirs is not None:
        if theirs[0] in PRIVILEGED:
            return "privileged instruction"
        if word == 0 and theirs[0] == "c.unimp":
            return "all-zero parcel: defined illegal, capstone names it c.unimp"
        if word < 0x10000 and [p.name for p in INSN16.lookup(word)][:1] == ["c_lui_res"]:
            return "c.lui with nzimm=0 is reserved; capstone decodes it"
    return None


def operand_mismatch(ours: Candidate, op_str: str) -> str | None:
    """Every register and number capstone prints must be one of our operands.

    Aliases drop operands (``ret``, ``neg``), so capstone's operands need only be a
    sub-multiset of ours.  Registers are compared by number (x or f both fit), lui's
    immediate as the 20-bit field capstone prints, rounding modes by name.
    """
    slots: list[tuple[str, int]] = []
    for member, value in ours.args._asdict().items():
        if member in ("rd", "rs1", "rs2", "rs3"):
            slots.append(("reg", value))
        elif member == "rm":
            slots.append(("rm", value))
        elif member == "imm" and ours.translator in ("lui", "auipc"):
            slots.append(("int", (value >> 12) & 0xFFFFF))
        elif member not in ("aq", "rl", "fm", "pred", "succ"):  # shown in the mnemonic/sets
            slots.append(("int", value))
    expected = list(slots)
    for token in filter(None, re.split(r"[,()\s]+", op_str)):
        if token in REGISTER_NUMBER:
            operand = ("reg", REGISTER_NUMBER[token])
        elif token in ROUNDING:
            operand = ("rm", ROUNDING[token])
        elif INTEGER.match(token):
            operand = ("int", int(token, 0))
        else:
            continue  # CSR and fence-set names
        if operand not in slots:
            return f"capstone operand {token!r} is not among ours {expected}"
        slots.remove(operand)
    return None


def disagreement(word: int, size: int) -> str | None:
    table = INSN32 if size == 4 else INSN16
    candidates = table.decode(word)
    ours = candidates[0] if candidates else None
    theirs = capstone(word, size)
    if ours is None and theirs is None:
        return None
    if ours is None or theirs is None:
        if known_disagreement(word, ours, theirs):
            return None
        return f"{word:#x}: ours {ours} capstone {theirs}"
    mnemonic = theirs[0]
    aq_rl = None
    if mnemonic.startswith(("amo", "lr.", "sc.")):
        aq_rl = (0, 0)
        for suffix, bits in ((".aqrl", (1, 1)), (".aq", (1, 0)), (".rl", (0, 1))):
            if mnemonic.endswith(suffix):
                mnemonic, aq_rl = mnemonic[: -len(suffix)], bits
                break
    mnemonic = ALIASES.get(mnemonic, mnemonic)
    if mnemonic != ours.pattern.replace("_", "."):
        return f"{word:#x}: ours {ours.pattern} capstone {theirs}"
    if aq_rl is not None and aq_rl != (ours.args.aq, ours.args.rl):
        return f"{word:#x}: aq/rl {ours.args} capstone {theirs}"
    if problem := operand_mismatch(ours, theirs[1]):
        return f"{word:#x}: {ours.pattern} {problem} ({theirs})"
    return None


def canonical_sample(pattern, rnd: random.Random) -> int:
    """A random encoding of ``pattern`` that avoids the known disagreements."""
    word = pattern.match | (rnd.getrandbits(32) & ~pattern.mask & ~pattern.ignored)
    members = dict(pattern.assignments)
    if "rm" in members:
        rm = 0 if pattern.name in EXACT_CONVERSIONS else rnd.choice((0, 1, 2, 3, 4, 7))
        word = (word & ~(7 << 12)) | rm << 12
    if pattern.name == "fence":
        word &= ~(0xF << 28)
    return word & ((1 << pattern_width(pattern)) - 1)


def pattern_width(pattern) -> int:
    return 32 if pattern.match & 3 == 3 else 16


@pytest.mark.parametrize("table", [INSN32, INSN16], ids=lambda t: t.name)
def test_capstone_agrees_on_every_pattern(table: DecodeTable):
    rnd = random.Random(2024)
    size = table.width // 8
    problems = []
    won = {p.name: 0 for p in table.patterns if not p.reserved}
    agreed = dict.fromkeys(won, 0)
    for pattern in table.patterns:
        for i in range(64):
            if i % 2:  # anything the pattern allows, reserved fields included
                word = pattern.match | (rnd.getrandbits(table.width) & ~pattern.mask)
            else:
                word = canonical_sample(pattern, rnd)
            assert pattern in table.lookup(word)
            first = table.decode(word)
            if first:
                won[first[0].pattern] += 1
            if problem := disagreement(word, size):
                problems.append(problem)
            elif first and capstone(word, size):
                agreed[first[0].pattern] += 1
    assert problems == []
    assert [name for name, n in won.items() if n == 0] == []  # no pattern is dead
    unchecked = [name for name, n in agreed.items() if n == 0]
    assert sorted(unchecked) == sorted(CAPSTONE_LACKS & set(agreed))


def test_capstone_agrees_on_every_16bit_word():
    problems = [d for w in range(1 << 16) if w & 3 != 3 and (d := disagreement(w, 2))]
    assert problems == []


def test_capstone_agrees_on_random_and_near_miss_32bit_words():
    # Near misses (one fixed bit of a pattern flipped) catch patterns whose mask is too
    # loose or too tight; uniform words catch whole instructions we forgot.
    rnd = random.Random(99)
    words = [rnd.getrandbits(32) | 3 for _ in range(40000)]
    for pattern in INSN32.patterns:
        fixed = [b for b in range(2, 32) if pattern.mask >> b & 1]
        for _ in range(24):
            words.append(canonical_sample(pattern, rnd) ^ 1 << rnd.choice(fixed))
    problems = [d for w in words if (d := disagreement(w, 4))]
    assert problems == []


def test_oracle_catches_a_wrong_immediate():
    # The operand comparison must be able to fail: hand it a decoding with an off-by-2
    # jump offset and a swapped register.
    (good,) = INSN16.decode(0xBFFD)  # c.j -2
    theirs = capstone(0xBFFD, 2)
    assert operand_mismatch(good, theirs[1]) is None
    bad = Candidate(good.pattern, good.translator, good.args._replace(imm=-4))
    assert operand_mismatch(bad, theirs[1])
    (good,) = INSN32.decode(0x00B50533)
    bad = Candidate(good.pattern, good.translator, good.args._replace(rs2=12))
    assert operand_mismatch(bad, capstone(0x00B50533, 4)[1])


def test_the_frontends_decoder_binds_every_translator():
    """The RISC-V frontend binds its decoder on first use (not at import): every pattern
    has a translator and every translator a pattern, or this raises."""
    from llvmtcg.frontends.riscv.frontend import RiscvFrontend, decoder

    assert RiscvFrontend().decoder is decoder()
    assert decoder().decode(0x00000013)  # addi x0, x0, 0
