"""RV64D: double-precision floating point (shared rules in fpu.py)."""

from __future__ import annotations

from llvmtcg.frontends.riscv import fpu
from llvmtcg.frontends.riscv.fpu import DOUBLE
from llvmtcg.frontends.riscv.translate import DisasContext
from llvmtcg.ir import Builder, FCond

# Enum members used per instruction, as module constants (a member read through
# its class runs Python code: ~30x a global).
_FC_EQ = FCond.EQ
_FC_LE = FCond.LE
_FC_LT = FCond.LT


def trans_fld(ctx: DisasContext, a) -> bool:
    return fpu.gen_load(ctx, a, DOUBLE)


def trans_fsd(ctx: DisasContext, a) -> bool:
    return fpu.gen_store(ctx, a, DOUBLE)


def trans_fmadd_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, DOUBLE, negate_product=False, negate_addend=False)


def trans_fmsub_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, DOUBLE, negate_product=False, negate_addend=True)


def trans_fnmsub_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, DOUBLE, negate_product=True, negate_addend=False)


def trans_fnmadd_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_fma(ctx, a, DOUBLE, negate_product=True, negate_addend=True)


def trans_fadd_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, DOUBLE, Builder.fadd)


def trans_fsub_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, DOUBLE, Builder.fsub)


def trans_fmul_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, DOUBLE, Builder.fmul)


def trans_fdiv_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_arith(ctx, a, DOUBLE, Builder.fdiv)


def trans_fsqrt_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_sqrt(ctx, a, DOUBLE)


def trans_fsgnj_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_sign_inject(ctx, a, DOUBLE, "j")


def trans_fsgnjn_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_sign_inject(ctx, a, DOUBLE, "n")


def trans_fsgnjx_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_sign_inject(ctx, a, DOUBLE, "x")


def trans_fmin_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_minmax(ctx, a, DOUBLE, maximum=False)


def trans_fmax_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_minmax(ctx, a, DOUBLE, maximum=True)


def trans_fcvt_w_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, DOUBLE, 32, signed=True)


def trans_fcvt_wu_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, DOUBLE, 32, signed=False)


def trans_fcvt_l_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, DOUBLE, 64, signed=True)


def trans_fcvt_lu_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_to_int(ctx, a, DOUBLE, 64, signed=False)


def trans_fcvt_d_w(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, DOUBLE, 32, signed=True)


def trans_fcvt_d_wu(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, DOUBLE, 32, signed=False)


def trans_fcvt_d_l(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, DOUBLE, 64, signed=True)


def trans_fcvt_d_lu(ctx: DisasContext, a) -> bool:
    return fpu.gen_from_int(ctx, a, DOUBLE, 64, signed=False)


def trans_fcvt_s_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_convert(ctx, a, fpu.SINGLE, DOUBLE)


def trans_fcvt_d_s(ctx: DisasContext, a) -> bool:
    return fpu.gen_convert(ctx, a, DOUBLE, fpu.SINGLE)


def trans_feq_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_compare(ctx, a, DOUBLE, _FC_EQ)


def trans_flt_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_compare(ctx, a, DOUBLE, _FC_LT)


def trans_fle_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_compare(ctx, a, DOUBLE, _FC_LE)


def trans_fclass_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_class(ctx, a, DOUBLE)


def trans_fmv_x_d(ctx: DisasContext, a) -> bool:
    return fpu.gen_move_to_int(ctx, a, DOUBLE)


def trans_fmv_d_x(ctx: DisasContext, a) -> bool:
    return fpu.gen_move_from_int(ctx, a, DOUBLE)
