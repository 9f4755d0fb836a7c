"""The IR text parser: ``parse(str(block))`` is the same block, for every opcode and for
blocks the RISC-V frontend translates from a real program."""

from __future__ import annotations

import pytest

from llvmtcg.ir import (
    I32,
    I64,
    V128,
    AtomicOp,
    Block,
    Builder,
    Cond,
    ExitReason,
    FCond,
    MemOp,
    RoundingMode,
    TempKind,
    const,
)
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.ops import OPS, pack_permute
from llvmtcg.ir.parse import ARG_KINDS, IRParseError, parse_block, parse_blocks

LAYOUT = CpuLayout([("r", I64, 4), ("w", I32, 2)])
GLOBALS = LAYOUT.globals()
HELPERS = {"h": HelperDecl("h", I32, (I64, I32), HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE),
           "v": HelperDecl("v", None, ())}


def every_op_block() -> Block:
    """One block using every opcode (and the operand shapes that matter to the text)."""
    b = Builder(0x4000, GLOBALS)
    r0, r1, w0 = b.glob("r[0]"), b.glob("r[1]"), b.glob("w[0]")
    x, y, n = b.temp(I64), b.temp(I64), b.temp(I32)
    c = const(I64, -5)
    b.insn_start(0x4000)
    for name in "mov neg not bswap16 bswap32 bswap64 ctpop ext8s ext8u ext16s ext16u " \
                "ext32s ext32u".split():
        b.emit(name, (x,), (r0,))
    for name in "add sub mul and or xor andc orc eqv nand nor shl shr sar rotl rotr div " \
                "divu rem remu mulsh muluh clz ctz".split():
        b.emit(name, (x,), (r0, c))
    b.mul2("mulsu2", x, y, r0, r1)
    b.mul2("mulu2", x, y, r0, r1)
    b.mul2("muls2", x, y, r0, r1)
    b.extract(x, r0, 3, 7, signed=True)
    b.extract(n, w0, 0, 8)
    b.deposit(x, r0, r1, 8, 16)
    b.setcond(Cond.GEU, n, w0, const(I32, 7))
    b.movcond(Cond.LT, x, w0, const(I32, 1), r0, c)  # compared operands are i32
    b.movcond(Cond.EQ, y, const(I32, 0), n, r0, c)
    b.ext_i32_i64(x, w0)
    b.ext_i32_i64(x, n, signed=False)
    b.extr_i64_i32(n, r0)
    b.extr_i64_i32(n, r0, high=True)
    b.insn_start(0x4004)
    b.qemu_ld(x, r0, MemOp(3), 1)
    b.qemu_ld(n, r0, MemOp(1, signed=True, big_endian=True))
    b.qemu_st(w0, r1, MemOp(0, align_log2=0))
    b.qemu_st(r0, r1, MemOp(3).aligned())
    b.atomic_cmpxchg(x, r0, r1, c, MemOp(3))
    b.atomic_cmpxchg_pair((x, y), r0, (r1, c), (x, y), 1)
    b.atomic_rmw(AtomicOp.UMIN, n, r0, w0, MemOp(2, signed=True))
    b.host_ld(x, r0, 1, 16)
    b.host_st(w0, r1, 4, 0)
    b.fadd(x, r0, r1, RoundingMode.DYN)
    b.fsub(n, w0, n, RoundingMode.RTZ)
    b.fmul(x, r0, c, RoundingMode.RDN)
    b.fdiv(x, r0, r1, RoundingMode.RUP)
    b.fsqrt(x, r0, RoundingMode.RMM)
    b.fma(x, r0, r1, c, RoundingMode.RNE)
    b.fmin(x, r0, r1)
    b.fmax(n, w0, n)
    b.fsetcond(FCond.LE, x, w0, n)
    b.fsetcond(FCond.UNORD, n, r0, r1)
    b.fcanon(x, r0)
    b.fclass(n, r0)
    b.fcvt(x, w0)
    b.fcvt(n, r0, RoundingMode.RMM)
    b.itof(x, w0, RoundingMode.DYN)
    b.itof(n, r0, RoundingMode.RTZ, signed=False)
    b.ftoi(x, n, r0, RoundingMode.RTZ)
    b.ftoi(n, w0, w0, RoundingMode.RNE, signed=False)
    b.fpenv_flags(n)
    b.fpenv_round(n)
    v, u = b.temp(V128), b.temp(V128)
    for name in ("vadd vsub vmul vand vor vxor vandc vsmin vsmax vumin vumax vssadd "
                 "vusadd vsssub vussub vzip1 vzip2 vuzp1 vuzp2 vtrn1 vtrn2 vshlv vshrv "
                 "vsarv").split():
        b.vector(name, v, (u, v), 1, 16)
    b.vector("vperm", v, (u, v), 0, 16, pack_permute([31 - i for i in range(16)]))
    for name in "vneg vnot vabs vmov vctpop vclz vbitrev".split():
        b.vector(name, u, (v,), 0, 8)
    b.vector("vcmp", v, (u, v), 3, 16, Cond.LEU)
    for name in "vshli vshri vsari vdupe".split():
        b.vector(name, v, (u,), 2, 16, 3)
    b.vector("vdup", u, (r0,), 2, 8)
    b.vector("vtbl", u, (v, u, v), 0, 16)
    for name in "vfadd vfsub vfmul vfdiv".split():
        b.vector(name, v, (u, v), 3, 16, RoundingMode.RUP)
    b.vector("vfma", v, (u, v, u), 2, 8, RoundingMode.DYN)
    b.vector("vitof", v, (u,), 3, 16, RoundingMode.RTZ)
    b.vector("vutof", u, (v,), 2, 8, RoundingMode.DYN)
    b.vector("vfcmp", v, (u, v), 3, 16, FCond.QLE)
    b.vector("vfsqrt", u, (v,), 3, 8, RoundingMode.RDN)
    b.vector("vftosi", v, (u,), 2, 16)
    b.vector("vfanynan", x, (v,), 2, 16)
    b.vector("vany", x, (v,), 1, 8)
    for name in "vaese vaesd vsha1su1 vsha256su0".split():
        b.vector(name, v, (u, v), 0, 16)
    b.vector("vaesmc", v, (u,), 0, 16)
    b.vector("vaesimc", u, (v,), 0, 16)
    for name in "vsha1c vsha1p vsha1m vsha256h vsha256h2 vsha256su1".split():
        b.vector(name, u, (v, u, v), 0, 16)
    b.vector("vpmull", v, (u, v), 3, 16, 1)
    b.call("h", [n], [r0, const(I32, 3)])
    b.call("v", [], [])
    skip, done = b.label(), b.label()
    b.brcond(Cond.NE, x, c, skip)
    b.br(done)
    b.set_label(skip)
    b.goto_tb(0, 0x5000)
    b.set_label(done)
    b.brcond(Cond.LTU, w0, const(I32, 9), skip)
    b.mov(b.glob("pc"), x)
    b.lookup_and_goto_ptr()
    b.exit_tb(ExitReason.SYSCALL)
    return b.finish()


def test_every_opcode_round_trips() -> None:
    block = every_op_block()
    assert {op.name for op in block.ops} == set(OPS), "add the new opcode to every_op_block"
    parsed = parse_block(str(block), GLOBALS, HELPERS)
    assert str(parsed) == str(block)
    assert parsed.ops == block.ops  # the same temps (kinds, types, offsets) and arguments
    assert (parsed.pc, parsed.name, parsed.n_insns, parsed.n_labels) == (
        block.pc, block.name, block.n_insns, block.n_labels)
    assert parsed.locals == block.locals


def test_locals_are_typed_from_their_uses() -> None:
    text = ("IN tb_10 pc=0x10\n ---- 0x0000000000000010\n mov_i32 tmp1,w[0]\n"
            " ext_i32_i64 tmp0,tmp1\n movcond_i64 r[0],tmp2,$0x0,r[1],r[2],eq\n"
            " setcond_i32 tmp2,w[1],$0x1,ne\n exit_tb lookup\n")
    block = parse_block(text, GLOBALS)
    assert str(block) == text
    assert [(t.name, t.type) for t in block.locals] == [("tmp0", I64), ("tmp1", I32),
                                                        ("tmp2", I32)]
    movcond = block.ops[3]
    assert movcond.inputs[1].type is I32  # the constant takes tmp2's type
    assert all(t.kind is TempKind.LOCAL for t in block.locals)


def test_several_blocks() -> None:
    one, two = every_op_block(), every_op_block()
    two.pc, two.name = 0x5000, "tb_5000"
    blocks = parse_blocks(str(one) + "\n" + str(two), GLOBALS, HELPERS)
    assert [b.pc for b in blocks] == [0x4000, 0x5000]
    assert [str(b) for b in blocks] == [str(one), str(two)]


@pytest.mark.parametrize(("text", "message"), [
    ("add_i64 r[0],r[1],r[2]\n", "line 1: expected 'IN <name> pc=<pc>'"),
    ("IN tb_10 pc=16\n", "line 1: expected 'IN"),
    ("IN tb_10 pc=0x10\n frobnicate_i64 r[0]\n", "line 2: unknown op 'frobnicate_i64'"),
    ("IN tb_10 pc=0x10\n add_i64 r[0],r[1]\n", "line 2: add takes 3 temps and 0 arguments"),
    ("IN tb_10 pc=0x10\n add r[0],r[1],r[2]\n", "line 2: add needs one type suffix"),
    ("IN tb_10 pc=0x10\n add_q64 r[0],r[1],r[2]\n", "line 2: bad type suffix"),
    ("IN tb_10 pc=0x10\n setcond_i64 r[0],r[1],r[2],sometimes\n", "not a Cond"),
    ("IN tb_10 pc=0x10\n qemu_ld_i64 r[0],r[1],leuz,$0x0\n", "bad MemOp 'leuz'"),
    ("IN tb_10 pc=0x10\n br L0\n", "expected a label"),
    ("IN tb_10 pc=0x10\n mov_i64 tmp0,r[0]\n mov_i32 tmp0,w[0]\n",
     "line 3: tmp0 is used as i64 and as i32"),
    ("IN tb_10 pc=0x10\n call g <-,$0x1\n", "the type of constant $0x1 is not known"),
    ("IN tb_10 pc=0x10\n call h tmp0,<-,r[0]\n", "helper h is declared i32 (2 arguments)"),
    ("IN tb_10 pc=0x10\n call h tmp0\n", "outputs,<-,inputs"),
])
def test_bad_text_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(IRParseError, match=message.replace("$", r"\$").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_blocks(text, GLOBALS, HELPERS)


def test_argument_kinds_cover_every_opcode() -> None:
    for name, definition in OPS.items():
        assert len(ARG_KINDS.get(name, ())) == definition.n_args, name


def test_translated_program_round_trips(tmp_path_factory) -> None:
    """Blocks the RISC-V frontend makes from a static libc program (integer, float,
    atomics, compressed code): their text parses back to the same ops."""
    from llvmtcg.frontends.riscv.arch import Riscv64Arch
    from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault
    from llvmtcg.user.elf import read_elf
    from tests.user.support import build as build_guest
    from tests.user.support import have_cc

    if not have_cc:
        pytest.skip("riscv64 cross compiler not installed (make setup)")
    image = read_elf(str(build_guest(tmp_path_factory.mktemp("parse"), "fileio.c", "static")))
    arch = Riscv64Arch()
    helpers = arch.helpers().declarations()
    text_segment = max((s for s in image.loads if s.perms & 4), key=lambda s: s.filesz)
    code = image.data[text_segment.offset:text_segment.offset + text_segment.filesz]
    start, end = text_segment.vaddr, text_segment.vaddr + len(code)

    def fetch(addr: int, size: int) -> bytes:
        if not (start <= addr and addr + size <= end):
            raise GuestFault(MemFault(addr, Access.FETCH, FaultKind.UNMAPPED))
        return code[addr - start:addr - start + size]

    seen = 0
    # Linear sweeps from 40 places spread over the text: ~2000 blocks.
    for k in range(40):
        pc = start + (len(code) * k // 40) // 4 * 4
        for _ in range(50):
            if pc >= end:
                break
            block = arch.translate(pc, 0, fetch)
            text = str(block)
            parsed = parse_block(text, arch.layout.globals(), helpers)
            assert str(parsed) == text
            assert parsed.ops == block.ops, text
            seen += 1
            pc += max(block.guest_size, 2)
    assert seen > 1500
