"""FP/SIMD register moves, AdvSIMD structure loads/stores (inline IR) and AdvSIMD data
processing (checked here, run by the ``aarch64_simd`` helper: simd_lanes.py)."""

from __future__ import annotations

from llvmtcg.frontends.aarch64 import simd_lanes
from llvmtcg.frontends.aarch64.simd_lanes import OPERATION_INDEX, SimdArgs, expand_imm
from llvmtcg.frontends.aarch64.translate import DisasContext, V
from llvmtcg.ir import I64, MemOp, Temp, const
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag

SIMD_HELPER = HelperDecl("aarch64_simd", None, (I64, I64), HelperFlag.TAKES_CPU)
_REPLICATE = (0x0101_0101_0101_0101, 0x0001_0001_0001_0001, 0x0000_0001_0000_0001, 1)


def register_helpers(registry) -> None:
    registry.register(SIMD_HELPER, simd_helper)


def simd_helper(cpu, index: int, packed: int) -> None:
    simd_lanes.run_operation(cpu.state, index, packed)


# -- register moves ---------------------------------------------------------------------------

def trans_fmov_to_gp(ctx: DisasContext, a) -> bool:
    if (a.sf, a.ftype) == (0, 0):
        ctx.set_x(a.rd, V[2 * a.rn], 0)
    elif (a.sf, a.ftype) == (1, 1):
        ctx.set_x(a.rd, V[2 * a.rn])
    else:
        return False  # half precision is not implemented
    return True


def trans_fmov_from_gp(ctx: DisasContext, a) -> bool:
    b = ctx.builder
    if (a.sf, a.ftype) == (0, 0):
        b.ext32u(V[2 * a.rd], ctx.get_x(a.rn))
    elif (a.sf, a.ftype) == (1, 1):
        b.mov(V[2 * a.rd], ctx.get_x(a.rn))
    else:
        return False
    b.movi(V[2 * a.rd + 1], 0)
    return True


def trans_fmov_hi_to_gp(ctx: DisasContext, a) -> bool:
    ctx.set_x(a.rd, V[2 * a.rn + 1])
    return True


def trans_fmov_hi_from_gp(ctx: DisasContext, a) -> bool:
    ctx.builder.mov(V[2 * a.rd + 1], ctx.get_x(a.rn))
    return True


def trans_fmov_reg(ctx: DisasContext, a) -> bool:
    b = ctx.builder
    if a.ftype == 0:
        b.ext32u(V[2 * a.rd], V[2 * a.rn])
    elif a.ftype == 1:
        b.mov(V[2 * a.rd], V[2 * a.rn])
    else:
        return False
    b.movi(V[2 * a.rd + 1], 0)
    return True


# -- structure loads and stores -----------------------------------------------------------------

_MULTI_REGISTERS = {0b0111: 1, 0b1010: 2, 0b0110: 3, 0b0010: 4}  # LD1/ST1 forms


def _post_index(ctx: DisasContext, a, base: Temp, total: int) -> None:
    if not ctx.insn >> 23 & 1:
        return
    updated = ctx.temp()
    offset = const(I64, total) if a.rm == 31 else ctx.get_x(a.rm)
    ctx.builder.add(updated, base, offset)
    ctx.set_x_sp(a.rn, updated)


def trans_simd_ldst_multi(ctx: DisasContext, a) -> bool:
    """LD1/ST1 (multiple structures) of one to four registers; LD2-LD4 are not done."""
    regs = _MULTI_REGISTERS.get(a.opcode)
    if regs is None:
        return False
    b = ctx.builder
    base = ctx.temp()
    b.mov(base, ctx.get_x_sp(a.rn))
    step = 16 if a.q else 8
    for i in range(regs):
        vt = (a.rt + i) % 32
        for half in range(2 if a.q else 1):
            addr = ctx.temp()
            b.add(addr, base, const(I64, i * step + half * 8))
            if a.l:
                b.qemu_ld(V[2 * vt + half], addr, MemOp(3), ctx.mem_idx)
            else:
                b.qemu_st(V[2 * vt + half], addr, MemOp(3), ctx.mem_idx)
        if a.l and not a.q:
            b.movi(V[2 * vt + 1], 0)
    _post_index(ctx, a, base, regs * step)
    return True


def trans_simd_ldst_single(ctx: DisasContext, a) -> bool:
    """LD1/ST1 (single structure, one lane) and LD1R; the 2-4 structure forms are not
    done."""
    if a.r:
        return False
    b = ctx.builder
    base = ctx.temp()
    b.mov(base, ctx.get_x_sp(a.rn))
    if a.opcode == 6:  # LD1R: load and replicate
        if not a.l or a.s:
            return False
        size = a.sizev
        value = ctx.temp()
        b.qemu_ld(value, base, MemOp(size), ctx.mem_idx)
        b.mul(V[2 * a.rt], value, const(I64, _REPLICATE[size]))
        if a.q:
            b.mov(V[2 * a.rt + 1], V[2 * a.rt])
        else:
            b.movi(V[2 * a.rt + 1], 0)
        _post_index(ctx, a, base, 1 << size)
        return True
    lane = _single_lane(a)
    if lane is None:
        return False
    size, index = lane
    esize = 8 << size
    bit = index * esize
    half, pos = V[2 * a.rt + bit // 64], bit % 64
    if a.l:
        value = ctx.temp()
        b.qemu_ld(value, base, MemOp(size), ctx.mem_idx)
        b.deposit(half, half, value, pos, esize)
    else:
        value = ctx.temp()
        b.shr(value, half, const(I64, pos))
        b.qemu_st(value, base, MemOp(size), ctx.mem_idx)
    _post_index(ctx, a, base, 1 << size)
    return True


def _single_lane(a) -> tuple[int, int] | None:
    """(element size log2, lane) of a single-structure encoding, None if unallocated."""
    if a.opcode == 0:
        return 0, a.q << 3 | a.s << 2 | a.sizev
    if a.opcode == 2:
        if a.sizev & 1:
            return None
        return 1, a.q << 2 | a.s << 1 | a.sizev >> 1
    if a.opcode == 4:
        if a.sizev == 0:
            return 2, a.q << 1 | a.s
        if a.sizev == 1 and not a.s:
            return 3, a.q
    return None


# -- AdvSIMD data processing ------------------------------------------------------------------

def gen_simd(ctx: DisasContext, a, name: str, legal: bool = True, *,
             size: int | None = None) -> bool:
    """Run lane operation ``name`` on the decoded operands (False when not legal)."""
    if not legal:
        return False
    args = SimdArgs(a.q, a.size if size is None else size, a.rm, a.rn, a.rd, a.imm)
    ctx.builder.call(SIMD_HELPER.name, (), (const(I64, OPERATION_INDEX[name]),
                                            const(I64, args.pack())))
    return True


def _same(name: str, allow_2d: bool = True):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_simd(ctx, a, name, a.size < 3 or (a.q and allow_2d))
    return trans


def _bytes(name: str):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_simd(ctx, a, name)
    return trans


def _long(name: str):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_simd(ctx, a, name, a.size < 3)
    return trans


trans_add_v = _same("add")
trans_sub_v = _same("sub")
trans_mul_v = _same("mul", allow_2d=False)
trans_cmeq_v = _same("cmeq")
trans_cmtst_v = _same("cmtst")
trans_cmgt_v = _same("cmgt")
trans_cmhi_v = _same("cmhi")
trans_cmge_v = _same("cmge")
trans_cmhs_v = _same("cmhs")
trans_smax_v = _same("smax", allow_2d=False)
trans_umax_v = _same("umax", allow_2d=False)
trans_smin_v = _same("smin", allow_2d=False)
trans_umin_v = _same("umin", allow_2d=False)
trans_addp_v = _same("addp")
trans_smaxp_v = _same("smaxp", allow_2d=False)
trans_umaxp_v = _same("umaxp", allow_2d=False)
trans_sminp_v = _same("sminp", allow_2d=False)
trans_uminp_v = _same("uminp", allow_2d=False)
trans_and_v = _bytes("and")
trans_bic_v = _bytes("bic")
trans_orr_v = _bytes("orr")
trans_orn_v = _bytes("orn")
trans_eor_v = _bytes("eor")
trans_bsl_v = _bytes("bsl")
trans_bit_v = _bytes("bit")
trans_bif_v = _bytes("bif")
trans_saddl_v = _long("saddl")
trans_uaddl_v = _long("uaddl")
trans_saddw_v = _long("saddw")
trans_uaddw_v = _long("uaddw")
trans_ssubl_v = _long("ssubl")
trans_usubl_v = _long("usubl")
trans_smull_v = _long("smull")
trans_umull_v = _long("umull")
trans_cmgt0_v = _same("cmgt0")
trans_cmge0_v = _same("cmge0")
trans_cmeq0_v = _same("cmeq0")
trans_cmle0_v = _same("cmle0")
trans_cmlt0_v = _same("cmlt0")
trans_abs_v = _same("abs")
trans_neg_v = _same("neg")
trans_xtn_v = _long("xtn")


def trans_rev64_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "rev64", a.size < 3)


def trans_rev32_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "rev32", a.size < 2)


def trans_rev16_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "rev16", a.size == 0)


def trans_cnt_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "cnt")


def trans_not_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "not")


def trans_rbit_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "rbit", size=0)  # bytes (the encoding's size is 01)


def _across(name: str):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_simd(ctx, a, name, a.size < 2 or (a.size == 2 and a.q))
    return trans


trans_saddlv_v = _across("saddlv")
trans_uaddlv_v = _across("uaddlv")
trans_smaxv_v = _across("smaxv")
trans_umaxv_v = _across("umaxv")
trans_sminv_v = _across("sminv")
trans_uminv_v = _across("uminv")
trans_addv_v = _across("addv")


def trans_addp_s(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "addp_s")


def _copy_size(a) -> int | None:
    imm5 = a.imm & 31
    return None if imm5 & 15 == 0 else (imm5 & -imm5).bit_length() - 1


def trans_dup_elem(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    return gen_simd(ctx, a, "dup_elem", size is not None and (size < 3 or a.q))


def trans_dup_gp(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    return gen_simd(ctx, a, "dup_gp", size is not None and (size < 3 or a.q))


def trans_smov(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    return gen_simd(ctx, a, "smov", size is not None and size < (3 if a.q else 2))


def trans_umov(ctx: DisasContext, a) -> bool:
    size = _copy_size(a)
    return gen_simd(ctx, a, "umov", size is not None and (size == 3) == bool(a.q))


def trans_ins_gp(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "ins_gp", _copy_size(a) is not None)


def trans_ins_elem(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "ins_elem", _copy_size(a) is not None)


def trans_movi(ctx: DisasContext, a) -> bool:
    op, cmode = a.imm >> 12, a.imm >> 5 & 15
    imm8 = (a.imm >> 9 & 7) << 5 | a.imm & 31
    legal = expand_imm(op, cmode, imm8) is not None and not (cmode == 15 and op and not a.q)
    return gen_simd(ctx, a, "movi", legal)


def _shift(name: str, narrow: bool = False):
    def trans(ctx: DisasContext, a) -> bool:
        immh = a.imm >> 3
        if narrow:
            legal = 0 < immh < 8
        else:
            legal = immh != 0 and (immh < 8 or a.q)
        return gen_simd(ctx, a, name, legal)
    return trans


trans_sshr_v = _shift("sshr")
trans_ushr_v = _shift("ushr")
trans_ssra_v = _shift("ssra")
trans_usra_v = _shift("usra")
trans_sri_v = _shift("sri")
trans_shl_v = _shift("shl")
trans_sli_v = _shift("sli")
trans_shrn_v = _shift("shrn", narrow=True)
trans_sshll_v = _shift("sshll", narrow=True)
trans_ushll_v = _shift("ushll", narrow=True)
trans_uzp1_v = _same("uzp1", allow_2d=True)
trans_uzp2_v = _same("uzp2")
trans_trn1_v = _same("trn1")
trans_trn2_v = _same("trn2")
trans_zip1_v = _same("zip1")
trans_zip2_v = _same("zip2")


def trans_ext_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "ext", a.q or a.imm < 8)


def trans_tbl_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "tbl")


def trans_tbx_v(ctx: DisasContext, a) -> bool:
    return gen_simd(ctx, a, "tbx")

