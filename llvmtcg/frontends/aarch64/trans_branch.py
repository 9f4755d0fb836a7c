"""Branches, exception generation and system instructions (hints, barriers, the EL0
system registers, DC ZVA and the cache maintenance EL0 may issue)."""

from __future__ import annotations

import time

from llvmtcg.frontends.aarch64.cpu import Excp
from llvmtcg.frontends.aarch64.translate import (
    GLOBALS,
    PC,
    ZERO,
    BlockEnd,
    DisasContext,
    X,
    gen_accrue_fflags,
    gen_get_nzcv,
    gen_set_nzcv,
    gen_test_cc,
)
from llvmtcg.ir import I32, I64, Cond, ExitReason, MemOp, const
from llvmtcg.ir.helper_decl import HelperDecl

LR = 30
CNTFRQ_HZ = 62_500_000  # the generic timer's frequency (QEMU's GTIMER_SCALE of 16 ns)
DCZ_BLOCK_BYTES = 64  # DCZID_EL0.BS = 4: DC ZVA zeroes 16 words


def sysreg(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """The ``sysreg`` field of an MRS/MSR/SYS encoding: op0:op1:CRn:CRm:op2."""
    return op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2


NZCV = sysreg(3, 3, 4, 2, 0)
DAIF = sysreg(3, 3, 4, 2, 1)
FPCR = sysreg(3, 3, 4, 4, 0)
FPSR = sysreg(3, 3, 4, 4, 1)
TPIDR_EL0 = sysreg(3, 3, 13, 0, 2)
TPIDRRO_EL0 = sysreg(3, 3, 13, 0, 3)
CTR_EL0 = sysreg(3, 3, 0, 0, 1)
DCZID_EL0 = sysreg(3, 3, 0, 0, 7)
CNTFRQ_EL0 = sysreg(3, 3, 14, 0, 0)
CNTVCT_EL0 = sysreg(3, 3, 14, 0, 2)
CNTVCTSS_EL0 = sysreg(3, 3, 14, 0, 6)
# Linux emulates reads of the ID register space (op0=3, op1=0, CRn=0, CRm=0..7) for EL0
# (HWCAP_CPUID): the encodings it does not list read as zero.
ID_SPACE_MASK = sysreg(3, 7, 15, 8, 0)
ID_SPACE = sysreg(3, 0, 0, 0, 0)

DC_ZVA = sysreg(1, 3, 7, 4, 1)
# Cache maintenance by VA to the point of unification/coherency, and IC IVAU: no-ops
# here (stores into translated code already invalidate it).
CACHE_MAINTENANCE = frozenset({
    sysreg(1, 3, 7, 11, 1),  # DC CVAU
    sysreg(1, 3, 7, 10, 1),  # DC CVAC
    sysreg(1, 3, 7, 14, 1),  # DC CIVAC
    sysreg(1, 3, 7, 12, 1),  # DC CVAP
    sysreg(1, 3, 7, 13, 1),  # DC CVADP
    sysreg(1, 3, 7, 5, 1),  # IC IVAU
})

# FPCR bits that exist (AHP DN FZ RMode Stride Len IDE IXE UFE OFE DZE IOE, FZ16).
FPCR_MASK = 0x07FF_9F00
FPSR_MASK = 0xF800_009F

COUNTER_HELPER = HelperDecl("aarch64_cntvct", I64, ())


def register_helpers(registry) -> None:
    registry.register(COUNTER_HELPER, counter_helper)


def counter_helper() -> int:
    """CNTVCT_EL0: the virtual count, CNTFRQ_EL0 ticks per second of the host clock."""
    return time.monotonic_ns() * CNTFRQ_HZ // 1_000_000_000


# -- branches -----------------------------------------------------------------------------

def trans_b(ctx: DisasContext, a) -> bool:
    ctx.goto(0, ctx.pc + a.imm)
    ctx.end = BlockEnd.NORETURN
    return True


def trans_bl(ctx: DisasContext, a) -> bool:
    ctx.builder.movi(X[LR], ctx.next_pc)
    ctx.builder.call_returns_to(ctx.next_pc)
    return trans_b(ctx, a)


def _cond_branch(ctx: DisasContext, cond: Cond, x, y, target: int) -> bool:
    b = ctx.builder
    taken = b.label()
    b.brcond(cond, x, y, taken)
    ctx.goto(1, ctx.next_pc)
    b.set_label(taken)
    ctx.goto(0, target)
    ctx.end = BlockEnd.NORETURN
    return True


def trans_b_cond(ctx: DisasContext, a) -> bool:
    test = gen_test_cc(ctx, a.cond)
    if test is None:  # AL and NV both branch always
        return trans_b(ctx, a)
    return _cond_branch(ctx, *test, ctx.pc + a.imm)


def _cbz(ctx: DisasContext, a, cond: Cond) -> bool:
    value = ctx.get_x(a.rt)
    if not a.sf:
        low = ctx.temp()
        ctx.builder.ext32u(low, value)
        value = low
    return _cond_branch(ctx, cond, value, ZERO, ctx.pc + a.imm)


def trans_cbz(ctx: DisasContext, a) -> bool:
    return _cbz(ctx, a, Cond.EQ)


def trans_cbnz(ctx: DisasContext, a) -> bool:
    return _cbz(ctx, a, Cond.NE)


def _tbz(ctx: DisasContext, a, cond: Cond) -> bool:
    bit = ctx.temp()
    ctx.builder.and_(bit, ctx.get_x(a.rt), const(I64, 1 << a.bitpos))
    return _cond_branch(ctx, cond, bit, ZERO, ctx.pc + a.imm)


def trans_tbz(ctx: DisasContext, a) -> bool:
    return _tbz(ctx, a, Cond.EQ)


def trans_tbnz(ctx: DisasContext, a) -> bool:
    return _tbz(ctx, a, Cond.NE)


def _branch_reg(ctx: DisasContext, a, link: bool) -> bool:
    b = ctx.builder
    b.mov(PC, ctx.get_x(a.rn))  # before the link register is written: rn may be x30
    if link:
        b.movi(X[LR], ctx.next_pc)
        b.call_returns_to(ctx.next_pc)
    b.lookup_and_goto_ptr()
    ctx.end = BlockEnd.NORETURN
    return True


def trans_br(ctx: DisasContext, a) -> bool:
    return _branch_reg(ctx, a, False)


def trans_blr(ctx: DisasContext, a) -> bool:
    return _branch_reg(ctx, a, True)


def trans_ret(ctx: DisasContext, a) -> bool:
    return _branch_reg(ctx, a, False)


# -- exception generation -----------------------------------------------------------------

def trans_svc(ctx: DisasContext, a) -> bool:
    ctx.exit_with(ExitReason.SYSCALL, ctx.pc)  # the run loop resumes after it
    return True


def trans_brk(ctx: DisasContext, a) -> bool:
    ctx.raise_exception(Excp.BKPT)
    return True


# -- hints, barriers ----------------------------------------------------------------------

def trans_hint(ctx: DisasContext, a) -> bool:
    # NOP, YIELD, WFE, WFI, SEV, the PAC hints (PACIASP, AUTIASP, XPACLRI: no
    # pointer is ever signed, so stripping and authenticating are identities), BTI
    # (branch targets are not enforced), ESB, CSDB: all have no effect here.
    return True


def trans_clrex(ctx: DisasContext, a) -> bool:
    ctx.builder.movi(GLOBALS["excl_addr"], -1)
    return True


def trans_dsb(ctx: DisasContext, a) -> bool:
    return True  # guest accesses are performed in program order


def trans_dmb(ctx: DisasContext, a) -> bool:
    return True


def trans_isb(ctx: DisasContext, a) -> bool:
    # Stores into translated code have already invalidated it: the next instruction
    # is looked up afresh anyway when its block is gone.
    return True


# -- system registers ---------------------------------------------------------------------

def gen_fpsr_flags(ctx: DisasContext) -> None:
    """Fold the exception flags raised in the host environment into FPSR."""
    b = ctx.builder
    raised32 = b.temp(I32)
    b.fpenv_flags(raised32)
    gen_accrue_fflags(ctx, raised32)


_RMODE_TO_ROUNDING = (0, 3, 2, 1)  # FPCR.RMode RN RP RM RZ -> RNE RUP RDN RTZ ordinals


def trans_mrs(ctx: DisasContext, a) -> bool:
    b, reg = ctx.builder, a.sysreg
    dst = ctx.temp()
    if reg == NZCV:
        gen_get_nzcv(ctx, dst)
    elif reg == DAIF:
        b.movi(dst, 0)  # user mode: no exception is masked
    elif reg == FPCR:
        b.ext_i32_i64(dst, GLOBALS["fpcr"], signed=False)
    elif reg == FPSR:
        gen_fpsr_flags(ctx)
        b.ext_i32_i64(dst, GLOBALS["fpsr"], signed=False)
    elif reg == TPIDR_EL0:
        b.mov(dst, GLOBALS["tpidr_el0"])
    elif reg == TPIDRRO_EL0:
        b.mov(dst, GLOBALS["tpidrro_el0"])
    elif reg == CTR_EL0:
        b.movi(dst, ctx.model.ctr)
    elif reg == DCZID_EL0:
        b.movi(dst, ctx.model.dczid)
    elif reg == CNTFRQ_EL0:
        b.movi(dst, CNTFRQ_HZ)
    elif reg in (CNTVCT_EL0, CNTVCTSS_EL0):
        b.call(COUNTER_HELPER.name, (dst,), ())
    elif reg & ID_SPACE_MASK == ID_SPACE:
        b.movi(dst, ctx.model.id_registers.get(reg, 0))
    else:
        return False
    ctx.set_x(a.rt, dst)
    return True


def trans_msr(ctx: DisasContext, a) -> bool:
    b, reg = ctx.builder, a.sysreg
    src = ctx.get_x(a.rt)
    if reg == NZCV:
        gen_set_nzcv(ctx, src)
    elif reg == FPCR:
        value = ctx.temp()
        b.and_(value, src, const(I64, FPCR_MASK))
        b.extr_i64_i32(GLOBALS["fpcr"], value)
        # The dynamic rounding mode follows RMode (bits 23:22).
        rmode, rounding = ctx.temp(), ctx.temp()
        b.extract(rmode, value, 22, 2)
        b.movi(rounding, 0)
        for mode in (1, 2, 3):
            b.movcond(Cond.EQ, rounding, rmode, const(I64, mode),
                      const(I64, _RMODE_TO_ROUNDING[mode]), rounding)
        rounding32 = b.temp(I32)
        b.extr_i64_i32(rounding32, rounding)
        b.fpenv_round(rounding32)
    elif reg == FPSR:
        gen_fpsr_flags(ctx)  # drop what the host collected: the write replaces it
        value = ctx.temp()
        b.and_(value, src, const(I64, FPSR_MASK))
        b.extr_i64_i32(GLOBALS["fpsr"], value)
    elif reg == TPIDR_EL0:
        b.mov(GLOBALS["tpidr_el0"], src)
    else:
        return False
    return True


def trans_sys(ctx: DisasContext, a) -> bool:
    if a.sysreg == DC_ZVA:
        b = ctx.builder
        base = ctx.temp()
        b.and_(base, ctx.get_x(a.rt), const(I64, -DCZ_BLOCK_BYTES))
        for offset in range(0, DCZ_BLOCK_BYTES, 8):
            addr = ctx.temp()
            b.add(addr, base, const(I64, offset))
            b.qemu_st(ZERO, addr, MemOp(3), ctx.mem_idx)
        return True
    return a.sysreg in CACHE_MAINTENANCE


