"""RV64 F and D. Not translated yet: every F/D instruction is illegal until the
floating-point work lands (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

from llvmtcg.frontends.riscv.translate import DisasContext


def register_helpers(registry) -> None:
    """F/D helpers (none yet)."""


def _not_translated(ctx: DisasContext, a) -> bool:
    return False


trans_fadd_d = _not_translated
trans_fadd_s = _not_translated
trans_fclass_d = _not_translated
trans_fclass_s = _not_translated
trans_fcvt_d_l = _not_translated
trans_fcvt_d_lu = _not_translated
trans_fcvt_d_s = _not_translated
trans_fcvt_d_w = _not_translated
trans_fcvt_d_wu = _not_translated
trans_fcvt_l_d = _not_translated
trans_fcvt_l_s = _not_translated
trans_fcvt_lu_d = _not_translated
trans_fcvt_lu_s = _not_translated
trans_fcvt_s_d = _not_translated
trans_fcvt_s_l = _not_translated
trans_fcvt_s_lu = _not_translated
trans_fcvt_s_w = _not_translated
trans_fcvt_s_wu = _not_translated
trans_fcvt_w_d = _not_translated
trans_fcvt_w_s = _not_translated
trans_fcvt_wu_d = _not_translated
trans_fcvt_wu_s = _not_translated
trans_fdiv_d = _not_translated
trans_fdiv_s = _not_translated
trans_feq_d = _not_translated
trans_feq_s = _not_translated
trans_fld = _not_translated
trans_fle_d = _not_translated
trans_fle_s = _not_translated
trans_flt_d = _not_translated
trans_flt_s = _not_translated
trans_flw = _not_translated
trans_fmadd_d = _not_translated
trans_fmadd_s = _not_translated
trans_fmax_d = _not_translated
trans_fmax_s = _not_translated
trans_fmin_d = _not_translated
trans_fmin_s = _not_translated
trans_fmsub_d = _not_translated
trans_fmsub_s = _not_translated
trans_fmul_d = _not_translated
trans_fmul_s = _not_translated
trans_fmv_d_x = _not_translated
trans_fmv_w_x = _not_translated
trans_fmv_x_d = _not_translated
trans_fmv_x_w = _not_translated
trans_fnmadd_d = _not_translated
trans_fnmadd_s = _not_translated
trans_fnmsub_d = _not_translated
trans_fnmsub_s = _not_translated
trans_fsd = _not_translated
trans_fsgnj_d = _not_translated
trans_fsgnj_s = _not_translated
trans_fsgnjn_d = _not_translated
trans_fsgnjn_s = _not_translated
trans_fsgnjx_d = _not_translated
trans_fsgnjx_s = _not_translated
trans_fsqrt_d = _not_translated
trans_fsqrt_s = _not_translated
trans_fsub_d = _not_translated
trans_fsub_s = _not_translated
trans_fsw = _not_translated
