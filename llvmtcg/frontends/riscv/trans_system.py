"""System instructions: ecall, ebreak, fence, fence.i, and Zicsr with the user CSRs."""

from __future__ import annotations

import time

from llvmtcg.frontends.riscv.cpu import Cause
from llvmtcg.frontends.riscv.translate import BlockEnd, DisasContext
from llvmtcg.ir import I64, ExitReason, const
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag

CSR_FFLAGS, CSR_FRM, CSR_FCSR = 0x001, 0x002, 0x003
CSR_CYCLE, CSR_TIME, CSR_INSTRET = 0xC00, 0xC01, 0xC02
TIMEBASE_HZ = 10_000_000  # the 'time' CSR ticks at 10 MHz, as on QEMU's virt machine

CSR_WRITE, CSR_SET, CSR_CLEAR = 0, 1, 2
CSR_HELPER = HelperDecl("riscv_csr", I64, (I64, I64, I64),
                        HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)


def register_helpers(registry) -> None:
    registry.register(CSR_HELPER, csr_helper)


def csr_helper(cpu, csr: int, value: int, op_and_write: int) -> int:
    """Read-modify-write one CSR; returns the old value. ``op_and_write`` packs the
    operation (write/set/clear) and whether a write happens at all (bit 8): csrrs and
    csrrc with rs1=x0 only read, so read-only CSRs are legal there."""
    state = cpu.state
    op, writes = op_and_write & 0xFF, bool(op_and_write >> 8)
    fp = csr in (CSR_FFLAGS, CSR_FRM, CSR_FCSR)
    if fp and not cpu.frontend.model.has("f"):
        return _illegal(cpu)
    if csr == CSR_FFLAGS:
        old = state.get("fflags")
    elif csr == CSR_FRM:
        old = state.get("frm")
    elif csr == CSR_FCSR:
        old = (state.get("frm") << 5) | state.get("fflags")
    elif csr == CSR_CYCLE:
        old = time.perf_counter_ns()
    elif csr == CSR_TIME:
        old = time.monotonic_ns() * TIMEBASE_HZ // 1_000_000_000
    elif csr == CSR_INSTRET:
        old = state.get("insn_count") - 1  # blocks count on entry; this insn is last
    else:
        return _illegal(cpu)
    if not writes:
        return old
    if not fp:  # counters are read-only
        return _illegal(cpu)
    new = value if op == CSR_WRITE else (old | value if op == CSR_SET else old & ~value)
    if csr == CSR_FFLAGS:
        state.set("fflags", new & 0x1F)
    elif csr == CSR_FRM:
        state.set("frm", new & 0x7)
    else:
        state.set("fflags", new & 0x1F)
        state.set("frm", (new >> 5) & 0x7)
    return old


def _illegal(cpu) -> int:
    cpu.raise_exception(int(Cause.ILLEGAL_INSN))
    return 0


def trans_ecall(ctx: DisasContext, a) -> bool:
    ctx.exit_with(ExitReason.SYSCALL, ctx.pc)
    return True


def trans_ebreak(ctx: DisasContext, a) -> bool:
    ctx.raise_exception(Cause.BREAKPOINT)
    return True


def trans_fence(ctx: DisasContext, a) -> bool:
    return True  # guest memory accesses are never reordered across blocks by us


def trans_fence_i(ctx: DisasContext, a) -> bool:
    # Stores into translated code already invalidated it (the softmmu tracks code
    # pages); ending the block makes the next instruction be looked up afresh.
    if not ctx.has_ext("zifencei"):
        return False
    ctx.exit_with(ExitReason.LOOKUP, ctx.next_pc)
    return True


def _csr(ctx: DisasContext, a, op: int, source, writes: bool) -> bool:
    if not ctx.has_ext("zicsr"):
        return False
    b = ctx.builder
    old = ctx.temp()
    ctx.builder.mov(ctx.builder.glob("badinsn"), const(I64, ctx.insn))
    b.call(CSR_HELPER.name, [old], [const(I64, a.csr), source,
                                    const(I64, op | (int(writes) << 8))])
    ctx.set_gpr(a.rd, old)
    # CSR writes can change FP behaviour (frm) and reads of instret must see the
    # count of this block: end the block after every CSR instruction.
    ctx.goto(0, ctx.next_pc)
    ctx.end = BlockEnd.NORETURN
    return True


def trans_csrrw(ctx: DisasContext, a) -> bool:
    return _csr(ctx, a, CSR_WRITE, ctx.get_gpr(a.rs1), True)


def trans_csrrs(ctx: DisasContext, a) -> bool:
    return _csr(ctx, a, CSR_SET, ctx.get_gpr(a.rs1), a.rs1 != 0)


def trans_csrrc(ctx: DisasContext, a) -> bool:
    return _csr(ctx, a, CSR_CLEAR, ctx.get_gpr(a.rs1), a.rs1 != 0)


def trans_csrrwi(ctx: DisasContext, a) -> bool:
    return _csr(ctx, a, CSR_WRITE, const(I64, a.zimm), True)


def trans_csrrsi(ctx: DisasContext, a) -> bool:
    return _csr(ctx, a, CSR_SET, const(I64, a.zimm), a.zimm != 0)


def trans_csrrci(ctx: DisasContext, a) -> bool:
    return _csr(ctx, a, CSR_CLEAR, const(I64, a.zimm), a.zimm != 0)
