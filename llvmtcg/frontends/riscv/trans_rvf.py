"""RV64F: single-precision floating point (shared rules in fpu.py)."""

from __future__ import annotations

from llvmtcg.frontends.riscv import fpu
from llvmtcg.frontends.riscv.fpu import SINGLE
from llvmtcg.frontends.riscv.translate import DisasContext
from llvmtcg.ir import Builder, FCond

# Enum members used per instruction, as module constants (a member read through
# its class runs Python code: ~30x a global).
_FC_EQ = FCond.EQ
_FC_LE = FCond.LE
_FC_LT = FCond.LT


def register_helpers(registry) -> None:
    """F and D need no helpers of their own (the core's soft-float covers RMM)."""


def trans_flw(ctx: DisasContext, a) -> bool:
    return fpu.gen_load(ctx, a, SINGLE)


def trans_fsw(ctx: DisasContext, a) -> bool:
    return fpu.gen_store(ctx, a, SINGLE)


def trans_fmadd_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, SINGLE, negate_product=False, negate_addend=False)


def trans_fmsub_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, SINGLE, negate_product=False, negate_addend=True)


def trans_fnmsub_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, SINGLE, negate_product=True, negate_addend=False)


def trans_fnmadd_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, SINGLE, negate_product=True, negate_addend=True)


def trans_fadd_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, SINGLE, Builder.fadd)


def trans_fsub_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, SINGLE, Builder.fsub)


def trans_fmul_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, SINGLE, Builder.fmul)


def trans_fdiv_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, SINGLE, Builder.fdiv)


def trans_fsqrt_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_sqrt(ctx, a, SINGLE)


def trans_fsgnj_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_sign_inject(ctx, a, SINGLE, "j")


def trans_fsgnjn_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_sign_inject(ctx, a, SINGLE, "n")


def trans_fsgnjx_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_sign_inject(ctx, a, SINGLE, "x")


def trans_fmin_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_minmax(ctx, a, SINGLE, maximum=False)


def trans_fmax_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_minmax(ctx, a, SINGLE, maximum=True)


def trans_fcvt_w_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, SINGLE, 32, signed=True)


def trans_fcvt_wu_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, SINGLE, 32, signed=False)


def trans_fcvt_l_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, SINGLE, 64, signed=True)


def trans_fcvt_lu_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, SINGLE, 64, signed=False)


def trans_fcvt_s_w(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, SINGLE, 32, signed=True)


def trans_fcvt_s_wu(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, SINGLE, 32, signed=False)


def trans_fcvt_s_l(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, SINGLE, 64, signed=True)


def trans_fcvt_s_lu(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, SINGLE, 64, signed=False)


def trans_feq_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_compare(ctx, a, SINGLE, _FC_EQ)


def trans_flt_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_compare(ctx, a, SINGLE, _FC_LT)


def trans_fle_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_compare(ctx, a, SINGLE, _FC_LE)


def trans_fclass_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_class(ctx, a, SINGLE)


def trans_fmv_x_w(ctx: DisasContext, a) -> bool:
    return fpu.gen_move_to_int(ctx, a, SINGLE)


def trans_fmv_w_x(ctx: DisasContext, a) -> bool:
    return fpu.gen_move_from_int(ctx, a, SINGLE)
