"""RV64I: base integer instructions."""

from __future__ import annotations

from llvmtcg.frontends.riscv.translate import (
    NORETURN,
    PC,
    DisasContext,
    gen_arith,
    gen_arith_imm,
    gen_arith_w,
    gen_branch,
    gen_load,
    gen_setcond,
    gen_store,
)
from llvmtcg.ir import I64, Builder, Cond, MemOp, const

# Enum members used per instruction, as module constants (a member read through
# its class runs Python code: ~30x a global).
_C_EQ = Cond.EQ
_C_GE = Cond.GE
_C_GEU = Cond.GEU
_C_LT = Cond.LT
_C_LTU = Cond.LTU
_C_NE = Cond.NE

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
LINK_REGISTERS = (1, 5)  # ra, t0: jal/jalr writing one of them is a call
# Built once: a frozen MemOp costs microseconds, loads and stores are a third of the code.
_S8, _S16, _S32 = (MemOp(n, signed=True) for n in range(3))
_U8, _U16, _U32, _64 = (MemOp(n) for n in range(4))


def trans_lui(ctx: DisasContext, a) -> bool:
    ctx.builder.mov(ctx.dest_gpr(a.rd), const(I64, a.imm))
    return True


def trans_auipc(ctx: DisasContext, a) -> bool:
    ctx.builder.mov(ctx.dest_gpr(a.rd), const(I64, ctx.pc + a.imm))
    return True


def trans_jal(ctx: DisasContext, a) -> bool:
    ctx.builder.mov(ctx.dest_gpr(a.rd), const(I64, ctx.next_pc))
    if a.rd in LINK_REGISTERS:  # a call (the ISA manual's return-address hint)
        ctx.builder.call_returns_to(ctx.next_pc)
    ctx.goto(0, (ctx.pc + a.imm) & MASK64)
    ctx.end = NORETURN
    return True


def trans_jalr(ctx: DisasContext, a) -> bool:
    b = ctx.builder
    target = ctx.temp()
    b.add(target, ctx.get_gpr(a.rs1), const(I64, a.imm))  # before rd is written: rd may be rs1
    b.and_(PC, target, const(I64, ~1))
    ctx.builder.mov(ctx.dest_gpr(a.rd), const(I64, ctx.next_pc))
    if a.rd in LINK_REGISTERS:
        b.call_returns_to(ctx.next_pc)
    b.lookup_and_goto_ptr()
    ctx.end = NORETURN
    return True


def trans_beq(ctx: DisasContext, a) -> bool:
    return gen_branch(ctx, a, _C_EQ)


def trans_bne(ctx: DisasContext, a) -> bool:
    return gen_branch(ctx, a, _C_NE)


def trans_blt(ctx: DisasContext, a) -> bool:
    return gen_branch(ctx, a, _C_LT)


def trans_bge(ctx: DisasContext, a) -> bool:
    return gen_branch(ctx, a, _C_GE)


def trans_bltu(ctx: DisasContext, a) -> bool:
    return gen_branch(ctx, a, _C_LTU)


def trans_bgeu(ctx: DisasContext, a) -> bool:
    return gen_branch(ctx, a, _C_GEU)


def trans_lb(ctx: DisasContext, a) -> bool:
    return gen_load(ctx, a, _S8)


def trans_lh(ctx: DisasContext, a) -> bool:
    return gen_load(ctx, a, _S16)


def trans_lw(ctx: DisasContext, a) -> bool:
    return gen_load(ctx, a, _S32)


def trans_ld(ctx: DisasContext, a) -> bool:
    return gen_load(ctx, a, _64)


def trans_lbu(ctx: DisasContext, a) -> bool:
    return gen_load(ctx, a, _U8)


def trans_lhu(ctx: DisasContext, a) -> bool:
    return gen_load(ctx, a, _U16)


def trans_lwu(ctx: DisasContext, a) -> bool:
    return gen_load(ctx, a, _U32)


def trans_sb(ctx: DisasContext, a) -> bool:
    return gen_store(ctx, a, _U8)


def trans_sh(ctx: DisasContext, a) -> bool:
    return gen_store(ctx, a, _U16)


def trans_sw(ctx: DisasContext, a) -> bool:
    return gen_store(ctx, a, _U32)


def trans_sd(ctx: DisasContext, a) -> bool:
    return gen_store(ctx, a, _64)


def trans_addi(ctx: DisasContext, a) -> bool:
    return gen_arith_imm(ctx, a, Builder.add)


def trans_slti(ctx: DisasContext, a) -> bool:
    return gen_setcond(ctx, a, _C_LT, const(I64, a.imm))


def trans_sltiu(ctx: DisasContext, a) -> bool:
    return gen_setcond(ctx, a, _C_LTU, const(I64, a.imm))


def trans_xori(ctx: DisasContext, a) -> bool:
    return gen_arith_imm(ctx, a, Builder.xor)


def trans_ori(ctx: DisasContext, a) -> bool:
    return gen_arith_imm(ctx, a, Builder.or_)


def trans_andi(ctx: DisasContext, a) -> bool:
    return gen_arith_imm(ctx, a, Builder.and_)


def _shift_imm(ctx: DisasContext, a, op) -> bool:
    op(ctx.builder, ctx.dest_gpr(a.rd), ctx.get_gpr(a.rs1), const(I64, a.shamt))
    return True


def trans_slli(ctx: DisasContext, a) -> bool:
    return _shift_imm(ctx, a, Builder.shl)


def trans_srli(ctx: DisasContext, a) -> bool:
    return _shift_imm(ctx, a, Builder.shr)


def trans_srai(ctx: DisasContext, a) -> bool:
    return _shift_imm(ctx, a, Builder.sar)


def trans_add(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.add)


def trans_sub(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.sub)


def trans_sll(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.shl)  # IR shifts take the count mod 64, as RV64 does


def trans_slt(ctx: DisasContext, a) -> bool:
    return gen_setcond(ctx, a, _C_LT, ctx.get_gpr(a.rs2))


def trans_sltu(ctx: DisasContext, a) -> bool:
    return gen_setcond(ctx, a, _C_LTU, ctx.get_gpr(a.rs2))


def trans_xor(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.xor)


def trans_srl(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.shr)


def trans_sra(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.sar)


def trans_or(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.or_)


def trans_and(ctx: DisasContext, a) -> bool:
    return gen_arith(ctx, a, Builder.and_)


# -- RV64 word forms ----------------------------------------------------------------------

def trans_addiw(ctx: DisasContext, a) -> bool:
    return gen_arith_w(ctx, a, Builder.add, const(I64, a.imm))


def _shift_w(ctx: DisasContext, a, kind: str, amount) -> bool:
    """sllw/srlw/sraw and their immediates: shift the low word by amount & 31."""
    b = ctx.builder
    count = amount
    if not amount.is_const:
        count = ctx.temp()
        b.and_(count, amount, const(I64, 31))
    src = ctx.temp()
    t = ctx.temp()
    if kind == "sll":
        b.shl(t, ctx.get_gpr(a.rs1), count)
    elif kind == "srl":
        b.ext32u(src, ctx.get_gpr(a.rs1))
        b.shr(t, src, count)
    else:
        b.ext32s(src, ctx.get_gpr(a.rs1))
        b.sar(t, src, count)
    b.ext32s(ctx.dest_gpr(a.rd), t)
    return True


def trans_slliw(ctx: DisasContext, a) -> bool:
    return _shift_w(ctx, a, "sll", const(I64, a.shamt & 31))


def trans_srliw(ctx: DisasContext, a) -> bool:
    return _shift_w(ctx, a, "srl", const(I64, a.shamt & 31))


def trans_sraiw(ctx: DisasContext, a) -> bool:
    return _shift_w(ctx, a, "sra", const(I64, a.shamt & 31))


def trans_addw(ctx: DisasContext, a) -> bool:
    return gen_arith_w(ctx, a, Builder.add)


def trans_subw(ctx: DisasContext, a) -> bool:
    return gen_arith_w(ctx, a, Builder.sub)


def trans_sllw(ctx: DisasContext, a) -> bool:
    return _shift_w(ctx, a, "sll", ctx.get_gpr(a.rs2))


def trans_srlw(ctx: DisasContext, a) -> bool:
    return _shift_w(ctx, a, "srl", ctx.get_gpr(a.rs2))


def trans_sraw(ctx: DisasContext, a) -> bool:
    return _shift_w(ctx, a, "sra", ctx.get_gpr(a.rs2))
