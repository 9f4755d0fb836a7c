"""RV64A: LR/SC and AMOs, lowered to host atomics.

SC is a compare-and-swap against the value LR read (as QEMU does): it succeeds if the
reservation address matches and memory still holds that value. AMOs are one host
atomic each; all are sequentially consistent, which covers every aq/rl combination.
"""

from __future__ import annotations

from llvmtcg.frontends.riscv.translate import GLOBALS, DisasContext
from llvmtcg.ir import AtomicOp, Cond, MemOp

# Enum members used per instruction, as module constants (a member read through
# its class runs Python code: ~30x a global).
_C_NE = Cond.NE

LOAD_RES = GLOBALS["load_res"]
LOAD_VAL = GLOBALS["load_val"]
WORD = MemOp(2, signed=True, align_log2=2)
DOUBLE = MemOp(3, align_log2=3)


def _lr(ctx: DisasContext, a, memop: MemOp) -> bool:
    if not ctx.has_ext("a"):
        return False
    b = ctx.builder
    addr = ctx.temp()
    b.mov(addr, ctx.get_gpr(a.rs1))
    b.qemu_ld(LOAD_VAL, addr, memop, ctx.mem_idx)
    b.mov(LOAD_RES, addr)
    ctx.set_gpr(a.rd, LOAD_VAL)
    return True


def _sc(ctx: DisasContext, a, memop: MemOp) -> bool:
    if not ctx.has_ext("a"):
        return False
    b = ctx.builder
    addr, old, result = ctx.temp(), ctx.temp(), ctx.temp()
    b.mov(addr, ctx.get_gpr(a.rs1))
    fail, done = b.label(), b.label()
    b.brcond(_C_NE, addr, LOAD_RES, fail)
    b.atomic_cmpxchg(old, addr, LOAD_VAL, ctx.get_gpr(a.rs2), memop, ctx.mem_idx)
    b.setcond(_C_NE, result, old, LOAD_VAL)
    b.br(done)
    b.set_label(fail)
    # A failed SC still needs the access to be legal (misaligned/unmapped faults).
    b.probe_store(old, addr, memop, ctx.mem_idx)
    b.movi(result, 1)
    b.set_label(done)
    b.movi(LOAD_RES, -1)  # any SC ends the reservation
    ctx.set_gpr(a.rd, result)
    return True


def _amo(ctx: DisasContext, a, op: AtomicOp, memop: MemOp) -> bool:
    if not ctx.has_ext("a"):
        return False
    old = ctx.temp()
    ctx.builder.atomic_rmw(op, old, ctx.get_gpr(a.rs1), ctx.get_gpr(a.rs2), memop, ctx.mem_idx)
    ctx.set_gpr(a.rd, old)
    return True


def trans_lr_w(ctx: DisasContext, a) -> bool:
    return _lr(ctx, a, WORD)


def trans_sc_w(ctx: DisasContext, a) -> bool:
    return _sc(ctx, a, WORD)


def trans_lr_d(ctx: DisasContext, a) -> bool:
    return _lr(ctx, a, DOUBLE)


def trans_sc_d(ctx: DisasContext, a) -> bool:
    return _sc(ctx, a, DOUBLE)


def _amo_pair(op: AtomicOp):
    def word(ctx: DisasContext, a) -> bool:
        return _amo(ctx, a, op, WORD)

    def double(ctx: DisasContext, a) -> bool:
        return _amo(ctx, a, op, DOUBLE)

    return word, double


trans_amoswap_w, trans_amoswap_d = _amo_pair(AtomicOp.XCHG)
trans_amoadd_w, trans_amoadd_d = _amo_pair(AtomicOp.ADD)
trans_amoxor_w, trans_amoxor_d = _amo_pair(AtomicOp.XOR)
trans_amoand_w, trans_amoand_d = _amo_pair(AtomicOp.AND)
trans_amoor_w, trans_amoor_d = _amo_pair(AtomicOp.OR)
trans_amomin_w, trans_amomin_d = _amo_pair(AtomicOp.SMIN)
trans_amomax_w, trans_amomax_d = _amo_pair(AtomicOp.SMAX)
trans_amominu_w, trans_amominu_d = _amo_pair(AtomicOp.UMIN)
trans_amomaxu_w, trans_amomaxu_d = _amo_pair(AtomicOp.UMAX)
