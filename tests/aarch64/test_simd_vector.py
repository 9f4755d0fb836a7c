"""The AdvSIMD instructions lowered to vector IR ops (host vector registers), against
qemu-aarch64 from random register states and FPCR values (rounding modes, FZ, DN):
every vector register, FPSR and FPCR must agree, so the NaN and flush-to-zero paths
the vector forms hand to the lane-by-lane generators are covered too."""

from __future__ import annotations

import json
import random
import struct

import pytest

from tests.aarch64 import random_insns
from tests.aarch64.support import build, needs_cc, needs_qemu, run_qemu
from tests.aarch64.test_random_insns import run_both
from tests.user.support import TEST_ENV, run_llvmtcg

pytestmark = [needs_cc, needs_qemu]

VECTOR_FP = ("fabs_v", "fneg_v", "fadd_v", "fsub_v", "fmul_v", "fdiv_v", "fmla_v",
             "fmls_v", "fmla_elem", "fmls_elem", "fmul_elem", "scvtf_v", "ucvtf_v",
             "faddp_v", "faddp_s", "fsqrt_v", "fcvtzs_v", "fcvtzu_v", "fcvtns_v", "fcvtnu_v",
             "fcvtms_v", "fcvtmu_v", "fcvtps_v", "fcvtpu_v", "fcvtas_v", "fcvtau_v")
# Compares (cmpps/cmppd) and min/max (integer order keys): the lane path under FZ,
# and for min/max with a NaN operand.
VECTOR_FP_COMPARE = ("fcmeq_v", "fcmge_v", "fcmgt_v", "facge_v", "facgt_v", "fcmeq0_v",
                     "fcmge0_v", "fcmgt0_v", "fcmle0_v", "fcmlt0_v", "fmax_v", "fmin_v",
                     "fmaxnm_v", "fminnm_v", "fmaxp_v", "fminp_v", "fmaxnmp_v", "fminnmp_v",
                     "fmaxv_v", "fminv_v", "fmaxnmv_v", "fminnmv_v")
VECTOR_INT = tuple("""
    add_v sub_v and_v orr_v eor_v bic_v not_v cmeq_v cmeq0_v cmtst_v cmgt_v cmhi_v cmge_v
    cmhs_v umax_v umin_v smax_v smin_v mul_v mla_v mls_v addp_v umaxp_v uminp_v smaxp_v
    sminp_v zip1_v zip2_v uzp1_v uzp2_v trn1_v trn2_v dup_elem tbl_v tbx_v shl_v sshr_v
    ushr_v ssra_v usra_v uqadd_v sqadd_v uqsub_v sqsub_v abs_v neg_v cmgt0_v cmge0_v
    cmle0_v cmlt0_v shadd_v uhadd_v srhadd_v urhadd_v shsub_v uhsub_v srshr_v urshr_v
    srsra_v ursra_v dup_s ins_elem""".split())
# Widening (the halves' lanes extended by ZIP with their sign copies or zeros) and the
# bitwise selects.
VECTOR_LONG = tuple("""
    sshll_v ushll_v smull_v umull_v smlal_v umlal_v smlsl_v umlsl_v bsl_v bit_v bif_v
    saddl_v uaddl_v saddw_v uaddw_v ssubl_v usubl_v ssubw_v usubw_v""".split())

# One vperm (narrowing, reversing, extracting), vctpop; the de-interleaving structure
# loads and stores (a wide access and vperms when it stays on one page).
VECTOR_PERMUTE = tuple("""
    xtn_v shrn_v rshrn_v ext_v rev16_v rev32_v rev64_v cnt_v addhn_v raddhn_v subhn_v
    rsubhn_v sqxtn_v uqxtn_v sqxtun_v""".split())
VECTOR_LDST = ("simd_ldst_multi", "simd_ldst_multi_p")
# The last lane-helper classes moved onto vector ops: shifts by register, saturating
# shifts (immediate, narrowing), the doubling multiplies, by element, absolute
# differences, pairwise long adds, CLZ/CLS, SQABS/SQNEG, SRI/SLI, RBIT, SHLL, SMOV,
# the across-lanes long sums, and the AdvSIMD scalar forms.
VECTOR_SHIFT = tuple("""
    sshl_v ushl_v srshl_v urshl_v sqshl_v uqshl_v sqrshl_v uqrshl_v sshl_s ushl_s
    srshl_s urshl_s sqshl_s uqshl_s sqrshl_s uqrshl_s sqshl_imm_v uqshl_imm_v sqshlu_v
    sqshl_imm_s uqshl_imm_s sqshlu_s sqshrn_v sqrshrn_v uqshrn_v uqrshrn_v sqshrun_v
    sqrshrun_v sqshrn_s sqrshrn_s uqshrn_s uqrshrn_s sqshrun_s sqrshrun_s sri_v sli_v
    sri_s sli_s""".split())
VECTOR_MULTIPLY = tuple("""
    sqdmulh_v sqrdmulh_v sqdmulh_s sqrdmulh_s sqdmull_v sqdmlal_v sqdmlsl_v sqdmull_s
    sqdmlal_s sqdmlsl_s mul_elem mla_elem mls_elem smull_elem umull_elem smlal_elem
    umlal_elem smlsl_elem umlsl_elem sqdmulh_elem sqrdmulh_elem sqdmulh_elem_s
    sqrdmulh_elem_s sqdmull_elem sqdmlal_elem sqdmlsl_elem sqdmull_elem_s sqdmlal_elem_s
    sqdmlsl_elem_s""".split())
VECTOR_MISC = tuple("""
    sabd_v uabd_v saba_v uaba_v sabdl_v uabdl_v sabal_v uabal_v saddlp_v uaddlp_v
    sadalp_v uadalp_v shll_v clz_v cls_v sqabs_v sqneg_v sqabs_s sqneg_s rbit_v smov
    saddlv_v uaddlv_v addv_v smaxv_v sminv_v umaxv_v uminv_v addp_s sqadd_s uqadd_s sqsub_s
    uqsub_s sqxtn_s uqxtn_s sqxtun_s
    suqadd_v usqadd_v suqadd_s usqadd_s pmul_v""".split())
VECTOR_SCALAR_D = tuple("""
    cmgt_s cmhi_s cmge_s cmhs_s add_s sub_s cmtst_s cmeq_s cmgt0_s cmge0_s cmeq0_s cmle0_s
    cmlt0_s abs_s neg_s sshr_s ushr_s ssra_s usra_s srshr_s urshr_s srsra_s ursra_s shl_s
    """.split())


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build(tmp_path_factory.mktemp("aarch64-vector"), "insn_harness.c")


def _patterns(names: tuple[str, ...]) -> list:
    known = {p.name: p for p in random_insns.candidate_patterns()}
    return [known[n] for n in names if n in known]


@pytest.mark.parametrize("names", [VECTOR_FP, VECTOR_FP_COMPARE, VECTOR_INT, VECTOR_LONG,
                                   VECTOR_PERMUTE, VECTOR_LDST, VECTOR_SHIFT,
                                   VECTOR_MULTIPLY, VECTOR_MISC, VECTOR_SCALAR_D],
                         ids=["fp", "fp_compare", "int", "long", "permute", "ldst", "shift",
                              "multiply", "misc", "scalar_d"])
def test_vector_instructions_match_qemu(harness, tmp_path, names) -> None:
    patterns = _patterns(names)
    assert len(patterns) >= len(names) // 2, "the pattern names changed"
    cases = random_insns.generate(15, 40 * len(patterns), patterns=patterns)
    differences = run_both(harness, tmp_path, cases)
    assert not differences, (f"{len(differences)} of {len(cases)} differ:\n"
                             + "\n".join(differences[:20]))


def _f32(x: float) -> int:
    return int.from_bytes(struct.pack("<f", x), "little")


def _f64(x: float) -> int:
    return int.from_bytes(struct.pack("<d", x), "little")


# Lanes at the edge of the vector conversions' range (|x| < 2**(esize-1), and above -1
# for FCVTZU): the largest that fits, 2**(esize-1) and its negative (which fits,
# through the lane path), past them, a NaN, fractions (Inexact), -1 and just above it.
_SINGLES = [2147483520.0, 2.0 ** 31, -(2.0 ** 31), -2147483904.0, 0.5, -7.75, 3e9, 1.0,
            -1.0, -0.99999994, -0.0, 1e-40]
_DOUBLES = [9223372036854774784.0, 2.0 ** 63, -(2.0 ** 63), -1e19, -0.25, 12.5, -1.0,
            -0.9999999999999999, -0.0]


@pytest.mark.parametrize("fpcr", [0, 1 << 24], ids=["nofz", "fz"])
def test_fcvt_to_int_vector_range_edges(harness, tmp_path, fpcr) -> None:
    singles = [_f32(x) for x in _SINGLES] + [0x7FC0_0000, 0x7F80_0001]
    doubles = [_f64(x) for x in _DOUBLES] + [0x7FF8_0000_0000_0000]
    vectors = [(singles[i] | singles[i + 1] << 32, singles[i + 2] | singles[i + 3] << 32)
               for i in range(0, len(singles) - 3, 2)]
    vectors += [(doubles[i], doubles[i + 1]) for i in range(len(doubles) - 1)]
    vectors += [(_f32(1.5) | _f32(-2.5) << 32, _f32(100.25) | _f32(7.0) << 32),
                (_f64(1.5), _f64(-2.5)),
                (_f32(0.5) | _f32(-0.75) << 32, _f32(4e9) | _f32(2.0) << 32),
                (_f32(0.5) | _f32(-0.75) << 32, _f32(1e9) | _f32(2.0) << 32),
                (_f64(-0.5), _f64(3.25)), (_f64(1e18), _f64(-0.0)),
                # the rounding forms' range (2**22, 2**51), ties, denormals
                (_f32(2.5) | _f32(-3.5) << 32, _f32(4194303.5) | _f32(-0.0) << 32),
                (_f32(0.5) | _f32(1e-40) << 32, _f32(4194304.0) | _f32(1.25) << 32),
                (_f32(-0.5) | _f32(-1e-40) << 32, _f32(-4194303.0) | _f32(8.75) << 32),
                (_f64(2.5), _f64(-2251799813685247.5)), (_f64(-0.5), _f64(5e-324)),
                (_f64(2251799813685248.0), _f64(0.5)), (_f64(1.5), _f64(7.0)),
                # ties away (FCVTAS/AU): just below and at a half, -0.5 (FCVTAU: -1)
                (_f32(0.49999997) | _f32(-0.49999997) << 32,
                 _f32(-1.5) | _f32(8388607.5) << 32),
                (_f32(-0.4) | _f32(0.5) << 32, _f32(2.5) | _f32(3.5) << 32),
                (_f64(0.49999999999999994), _f64(-0.5)), (_f64(-0.3), _f64(4503599627370495.5))]
    cases = []
    # FCVTZS and FCVTZU .4S, .2D, .2S; FCVTNS/NU/MS/MU/PS/PU of several arrangements
    for insn in (0x4EA1_B820, 0x4EE1_B820, 0x0EA1_B820, 0x6EA1_B820, 0x6EE1_B820,
                 0x2EA1_B820, 0x4E21_A820, 0x6E21_A820, 0x4E61_B820, 0x2E21_B820,
                 0x0EA1_A820, 0x6EE1_A820, 0x4E61_A820, 0x6EA1_A820,
                 # FCVTAS/FCVTAU .4S, .2D, .2S
                 0x4E21_C820, 0x4E61_C820, 0x0E21_C820, 0x6E21_C820, 0x6E61_C820,
                 0x2E21_C820):
        for low, high in vectors:
            halves = [0] * 64
            halves[2], halves[3] = low, high
            packed = random_insns.TEST.pack(insn, 0, 0, fpcr, *[0] * 31,
                                            random_insns.SP_OFFSET, *halves)
            cases.append(random_insns.Case("fcvtzs_v", insn, packed))
    differences = run_both(harness, tmp_path, cases)
    assert not differences, "\n".join(differences[:10])


def test_llvm_block_comes_from_the_code_cache(tmp_path) -> None:
    """A block the baseline declines (too many locals: vector FMLAs) is compiled by LLVM
    once; the next run loads it from the persistent code cache."""
    prog = build(tmp_path, "fp_block.c")
    env = dict(TEST_ENV, LLVMTCG_CACHE_DIR=str(tmp_path / "cache"),
               LLVMTCG_STATS=str(tmp_path / "stats.json"))
    runs = [run_llvmtcg(prog, env=env) for _ in range(2)]
    reference = run_qemu(prog)
    assert [r.stdout for r in runs] == [reference.stdout] * 2, runs[0].describe()
    first, second = (json.loads(line) for line in
                     (tmp_path / "stats.json").read_text().splitlines())
    assert first["tb"]["llvm_blocks"] > 0
    assert second["tb"]["llvm_blocks"] == 0 and second["cache"]["hits"] > 0


@pytest.mark.parametrize("fpcr", [0, 1 << 24], ids=["nofz", "fz"])
def test_float_across_lanes(harness, tmp_path, fpcr) -> None:
    """FMAXV/FMINV/FMAXNMV/FMINNMV S0, V1.4S: the vector path (no NaN lane, FZ clear)
    over signed zeros, infinities, denormals and ties; the lane path for NaN lanes and
    under FZ."""
    lanes = [[1.5, -2.0, 7.25, 7.0], [-0.0, 0.0, -0.0, -0.0], [0.0, -0.0, 0.0, 0.0],
             [float("-inf"), -1e38, 3.0, float("inf")], [1e-40, -1e-40, 2e-45, -3e-42],
             [-5.0, -5.0, -5.0, -5.0], [3.0, 1.0, 4.0, 1.0], [-1e-39, 0.0, -0.0, 1e-39]]
    vectors = [[_f32(x) for x in four] for four in lanes]
    vectors += [[_f32(1.0), 0x7FC0_0000, _f32(2.0), _f32(-3.0)],
                [0x7F80_0001, _f32(1.0), _f32(-1.0), 0xFFC0_0001]]
    cases = []
    for insn in (0x6E30_F820, 0x6EB0_F820, 0x6E30_C820, 0x6EB0_C820):
        for v in vectors:
            halves = [0x1234_5678_9ABC_DEF0] * 64
            halves[2], halves[3] = v[0] | v[1] << 32, v[2] | v[3] << 32
            packed = random_insns.TEST.pack(insn, 0, 0, fpcr, *[0] * 31,
                                            random_insns.SP_OFFSET, *halves)
            cases.append(random_insns.Case("fmaxv_v", insn, packed))
    differences = run_both(harness, tmp_path, cases)
    assert not differences, "\n".join(differences[:10])


# Lane values at the saturation and shift-count edges: the most negative and positive
# lanes of every size, -1, 0, 1, and bytes that are shift counts of 0, +-1, +-(esize-1),
# +-esize, +-(esize+1) and -128 for each size (the low byte of a lane is its count).
_EDGE_BYTES = (0x00, 0x01, 0xFF, 0x7F, 0x80, 0x07, 0x08, 0x09, 0xF9, 0xF8, 0xF7, 0x0F, 0x10,
               0x11, 0xF1, 0xF0, 0xEF, 0x1F, 0x20, 0x21, 0xE1, 0xE0, 0xDF, 0x3F, 0x40, 0x41,
               0xC1, 0xC0, 0xBF)
_EDGE_HALVES = (0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 0, 1,
                0x8000_0000_8000_0000, 0x7FFF_FFFF_7FFF_FFFF, 0x8000_8000_8000_8000,
                0x7FFF_7FFF_7FFF_7FFF, 0x8080_8080_8080_8080, 0x7F7F_7F7F_7F7F_7F7F,
                0x0001_0001_0001_0001, 0xFFFF_0001_8000_7FFF, 0x4000_0000_C000_0000)


def _edge_half(rng) -> int:
    if rng.random() < 0.5:
        return rng.choice(_EDGE_HALVES)
    return sum(rng.choice(_EDGE_BYTES) << (8 * i) for i in range(8))


@pytest.mark.parametrize("names", [VECTOR_SHIFT, VECTOR_MULTIPLY, VECTOR_MISC],
                         ids=["shift", "multiply", "misc"])
def test_saturation_and_shift_count_edges(harness, tmp_path, names) -> None:
    """The saturating forms (FPSR.QC), the doubling multiplies of the most negative
    lanes, and shifts by register by counts at and past the lane width, both signs."""
    rng = random.Random(16)
    cases = []
    for case in random_insns.generate(16, 30 * len(names), patterns=_patterns(names)):
        fields = list(random_insns.TEST.unpack(case.packed))
        fields[-64:] = [_edge_half(rng) for _ in range(64)]
        cases.append(random_insns.Case(case.pattern, case.insn,
                                       random_insns.TEST.pack(*fields)))
    differences = run_both(harness, tmp_path, cases)
    assert not differences, (f"{len(differences)} of {len(cases)} differ:\n"
                             + "\n".join(differences[:20]))
