"""System instructions: ecall, ebreak, fence, fence.i, and Zicsr with the user CSRs.

The FP CSRs (fflags, frm, fcsr) are translated inline: GCC's inline sqrt brackets a
compare with frflags/fsflags, so they are as hot as FP code. The counters go through
a helper and end the block.
"""

from __future__ import annotations

import time

from llvmtcg.frontends.riscv.cpu import CSR_FCSR, CSR_FFLAGS, CSR_FRM, Cause
from llvmtcg.frontends.riscv.fpu import FFLAGS, FRM
from llvmtcg.frontends.riscv.priv.csr import SSTATUS_VISIBLE, SSTATUS_WRITABLE
from llvmtcg.frontends.riscv.priv.state import MmuIdx, Mstatus, Priv, TbFlags
from llvmtcg.frontends.riscv.priv.trap import ecall_cause
from llvmtcg.frontends.riscv.translate import GLOBALS, PC, BlockEnd, DisasContext
from llvmtcg.ir import I32, I64, Cond, ExitReason, Temp, const
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag

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
    writes = bool(op_and_write >> 8)
    if csr == CSR_CYCLE:
        old = time.perf_counter_ns()
    elif csr == CSR_TIME:
        old = time.monotonic_ns() * TIMEBASE_HZ // 1_000_000_000
    elif csr == CSR_INSTRET:
        old = state.get("insn_count") - 1  # blocks count on entry; this insn is last
    else:
        return _illegal(cpu)
    if writes:  # counters are read-only
        return _illegal(cpu)
    return old


def _illegal(cpu) -> int:
    cpu.raise_exception(int(Cause.ILLEGAL_INSN))
    return 0


def trans_ecall(ctx: DisasContext, a) -> bool:
    if ctx.system:  # an exception whose cause says which mode called
        ctx.raise_exception(ecall_cause(ctx.priv))
        return True
    ctx.exit_with(ExitReason.SYSCALL, ctx.pc)
    return True


def trans_ebreak(ctx: DisasContext, a) -> bool:
    ctx.raise_exception(Cause.BREAKPOINT)
    return True


def trans_fence(ctx: DisasContext, a) -> bool:
    return True  # guest memory accesses are never reordered across blocks by us


def trans_fence_i(ctx: DisasContext, a) -> bool:
    # Stores into translated code already invalidated it (the softmmu tracks code
    # pages, and invalidation empties the jump cache and lookup table entries); ending
    # the block makes the next instruction be looked up afresh — natively, without a
    # round trip to the run loop (a program that rewrites code runs one per rewrite).
    if not ctx.has_ext("zifencei"):
        return False
    _end_with_lookup(ctx, ctx.next_pc)
    return True


def _csr(ctx: DisasContext, a, op: int, source, writes: bool) -> bool:
    if not ctx.has_ext("zicsr"):
        return False
    if a.csr in (CSR_FFLAGS, CSR_FRM, CSR_FCSR):
        return _fp_csr(ctx, a, op, source, writes)
    if ctx.system:
        return _system_csr(ctx, a, op, source, writes)
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


def _fp_csr(ctx: DisasContext, a, op: int, source: Temp, writes: bool) -> bool:
    """fflags, frm, fcsr. Flags raised since native code was entered are still in the
    host environment: reading fflags first folds them in. Writing frm also sets the
    host's dynamic rounding mode, and the next dyn-rm instruction checks frm again."""
    if not ctx.has_ext("f"):
        return False
    b = ctx.builder
    csr = a.csr
    if csr != CSR_FRM:
        raised = b.temp(I32)
        b.fpenv_flags(raised)
        b.or_(FFLAGS, FFLAGS, raised)
    old = ctx.temp()
    if csr == CSR_FFLAGS:
        b.ext_i32_i64(old, FFLAGS, signed=False)
    elif csr == CSR_FRM:
        b.ext_i32_i64(old, FRM, signed=False)
    else:
        frm = ctx.temp()
        b.ext_i32_i64(frm, FRM, signed=False)
        b.ext_i32_i64(old, FFLAGS, signed=False)
        b.deposit(old, old, frm, 5, 3)
    if writes:
        new, new32 = ctx.temp(), b.temp(I32)
        _csr_update(b, new, old, source, op)
        b.extr_i64_i32(new32, new)
        if csr == CSR_FFLAGS:
            b.and_(FFLAGS, new32, const(I32, 0x1F))
        elif csr == CSR_FRM:
            b.and_(FRM, new32, const(I32, 0x7))
        else:
            b.and_(FFLAGS, new32, const(I32, 0x1F))
            b.extract(FRM, new32, 5, 3)
        if csr != CSR_FFLAGS:
            b.fpenv_round(FRM)  # frm 4-7 load as RNE; dyn ops trap or take RMM copies
            ctx.frm_checked, ctx.frm_is_rmm = False, None
    ctx.set_gpr(a.rd, old)
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


# -- system mode: the privileged instructions ------------------------------------------------
# In user mode these are illegal (the hart is in U-mode, where mret, sret, wfi and
# sfence.vma trap); in system mode each calls one helper on the hart's CSR file
# (frontends/riscv/system.py) and ends the block, since it may change the flags
# (except sstatus SIE/SPIE/SPP set/clear: _sstatus_inline).

PRIV_MRET, PRIV_SRET, PRIV_WFI, PRIV_SFENCE_VMA, PRIV_MARK_FS_DIRTY = range(5)
SYS_CSR_HELPER = HelperDecl("riscv_sys_csr", I64, (I64, I64, I64),
                            HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
PRIV_HELPER = HelperDecl("riscv_priv", I64, (I64, I64, I64),
                         HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
# mtime from the host clock and the CPU state's time_* fields (native_time.py): reads
# the state, writes nothing, never raises.
TIME_HELPER = HelperDecl("riscv_time", I64, (),
                         HelperFlag.TAKES_CPU | HelperFlag.NO_WRITE_GLOBALS)


def _end_with_lookup(ctx: DisasContext, pc: Temp | int) -> None:
    """Continue at ``pc`` through the jump cache, which compares the flags the
    instruction may have changed (exit requests are checked at the next block)."""
    b = ctx.builder
    b.mov(PC, pc if isinstance(pc, Temp) else const(I64, pc))
    b.lookup_and_goto_ptr()
    ctx.end = BlockEnd.NORETURN


def _priv_call(ctx: DisasContext, op: int, arg: Temp | None = None,
               arg2: Temp | None = None) -> Temp:
    b = ctx.builder
    b.mov(b.glob("badinsn"), const(I64, ctx.insn))
    result = ctx.temp()
    b.call(PRIV_HELPER.name, [result], [const(I64, op), arg if arg is not None else
                                        const(I64, 0), arg2 if arg2 is not None else
                                        const(I64, ctx.next_pc)])
    return result


def trans_mret(ctx: DisasContext, a) -> bool:
    if not ctx.system:
        return False
    _end_with_lookup(ctx, _priv_call(ctx, PRIV_MRET))
    return True


def trans_sret(ctx: DisasContext, a) -> bool:
    if not ctx.system:
        return False
    if ctx.priv == Priv.S:
        _sret_inline(ctx)
    _end_with_lookup(ctx, _priv_call(ctx, PRIV_SRET))
    return True


TSR, MPRV = Mstatus.TSR, Mstatus.MPRV
PRIV, TB_FLAGS, LOAD_RES = GLOBALS["priv"], GLOBALS["tb_flags"], GLOBALS["load_res"]
_SPIE_TO_SIE = 4  # (SPIE is bit 5, SIE bit 1)
_SPP_SHIFT = 8


def _sret_inline(ctx: DisasContext) -> None:
    """sret in S-mode without Python (Linux returns from every trap with it), as
    trap.sret does: SIE = SPIE, SPIE = 1, privilege = SPP, SPP = U, MPRV = 0, the LR
    reservation dropped, pc = sepc. The new translation flags are those of this block
    (S: nothing they depend on changes) or the same with U's MMU index (MXR kept),
    stored in the CPU state with the privilege, and the jump cache looks sepc up under
    them. Taken only when mstatus.TSR is clear (else sret is illegal) and irq_pending
    is 0 (no interrupt can become deliverable); otherwise execution falls through to
    the helper, which the caller emits after this."""
    b = ctx.builder
    helper = b.label()
    status, t = ctx.temp(), ctx.temp()
    b.mov(status, MSTATUS)
    b.and_(t, status, const(I64, TSR))
    b.brcond(Cond.NE, t, const(I64, 0), helper)
    b.brcond(Cond.NE, IRQ_PENDING, const(I64, 0), helper)
    new, spie, spp = ctx.temp(), ctx.temp(), ctx.temp()
    b.and_(spie, status, const(I64, Mstatus.SPIE))
    b.shr(spie, spie, const(I64, _SPIE_TO_SIE))
    b.and_(new, status, const(I64, ~int(Mstatus.SIE | Mstatus.SPP | MPRV) & _ALL))
    b.or_(new, new, const(I64, Mstatus.SPIE))
    b.or_(new, new, spie)
    b.mov(MSTATUS, new)
    b.mov(LOAD_RES, const(I64, _ALL))
    b.and_(spp, status, const(I64, Mstatus.SPP))
    b.shr(spp, spp, const(I64, _SPP_SHIFT))  # 0: U, 1: S (the encodings)
    b.mov(PRIV, spp)
    flags_s = ctx.flags
    mxr = (flags_s >> TbFlags.MMU_IDX_SHIFT) & _MXR_INDEX
    flags_u = ((flags_s & ~(TbFlags.PRIV_MASK | TbFlags.MMU_IDX_MASK)) | int(Priv.U)
               | (int(MmuIdx.U) | mxr) << TbFlags.MMU_IDX_SHIFT)
    b.movcond(Cond.EQ, TB_FLAGS, spp, const(I64, 0), const(I64, flags_u),
              const(I64, flags_s))
    pc = ctx.temp()
    b.and_(pc, GLOBALS["sepc"], const(I64, _ALL & ~(1 if ctx.has_ext("c") else 3)))
    b.mov(PC, pc)
    b.lookup_and_goto_ptr()
    b.set_label(helper)


def trans_wfi(ctx: DisasContext, a) -> bool:
    # The helper checks legality (U-mode, TW); the block then halts at the next
    # instruction and the CPU decides whether to idle (see system.py).
    if not ctx.system:
        return False
    _priv_call(ctx, PRIV_WFI)
    ctx.exit_with(ExitReason.HALT, ctx.next_pc)
    return True


def trans_sfence_vma(ctx: DisasContext, a) -> bool:
    if not ctx.system:
        return False
    # rs1 = x0 flushes every address; otherwise the page of rs1 (ASIDs are not
    # tracked: flushing more than asked is always allowed).
    whole = const(I64, 1 if a.rs1 == 0 else 0)
    _priv_call(ctx, PRIV_SFENCE_VMA, ctx.get_gpr(a.rs1), whole)
    _end_with_lookup(ctx, ctx.next_pc)
    return True


def mark_fs_dirty(ctx: DisasContext) -> None:
    """An instruction touched FP state while mstatus.FS is not Dirty: set it Dirty and
    end the block through the jump cache, so execution continues in blocks translated
    for the new flags (chained blocks of the old flags would call this again)."""
    _priv_call(ctx, PRIV_MARK_FS_DIRTY)
    _end_with_lookup(ctx, ctx.next_pc)


def _system_csr(ctx: DisasContext, a, op: int, source, writes: bool) -> bool:
    """A CSR instruction in system mode: one helper calling CsrFile.rmw at the current
    privilege; the block ends after it, through the jump cache (the flags may change).
    sstatus set/clear at S or M privilege is inline (:func:`_sstatus_inline`)."""
    if a.csr == CSR_TIME and not writes:
        _time_inline(ctx, a)
        return True
    if ctx.priv >= Priv.S:
        if a.csr == CSR_SSTATUS and writes and ctx.priv == Priv.S:
            _sstatus_write_s(ctx, a, op, source)
            return True
        if a.csr == CSR_SSTATUS and writes and op != CSR_WRITE:
            _sstatus_inline(ctx, a, op, source)
            return True
        if a.csr == CSR_SSTATUS and not writes:
            ctx.set_gpr(a.rd, _sstatus_value(ctx, MSTATUS))
            return True
        plain = _PLAIN_INLINE.get(a.csr)
        if plain is not None:
            _plain_inline(ctx, a, op, source, writes, *plain(ctx))
            return True
        if a.csr == CSR_SIE and (not writes or op == CSR_CLEAR):
            _sie_inline(ctx, a, source, writes)
            return True
    _call_csr_helper(ctx, a, op, source, writes)
    ctx.end = BlockEnd.NORETURN
    return True


def _call_csr_helper(ctx: DisasContext, a, op: int, source: Temp, writes: bool) -> None:
    """The helper, rd, and the jump to the next instruction through the jump cache
    (which may be in the middle of a block: the caller decides whether it ends)."""
    b = ctx.builder
    old = ctx.temp()
    b.mov(b.glob("badinsn"), const(I64, ctx.insn))
    b.call(SYS_CSR_HELPER.name, [old], [const(I64, a.csr), source,
                                        const(I64, op | (int(writes) << 8))])
    ctx.set_gpr(a.rd, old)
    b.mov(PC, const(I64, ctx.next_pc))
    b.lookup_and_goto_ptr()


# sstatus inline (Linux's local_irq_save/restore around spinlocks: most CSR instructions
# of a boot): csrrs/csrrc that change only SIE, SPIE or SPP, on which no translation flag
# depends, read and modify the CPU state's mstatus field (where the CsrFile keeps it) in
# native code. Sources with FS, SUM or MXR bits, and csrrw, go through the helper.
CSR_SSTATUS = 0x100
_SSTATUS_INLINE = Mstatus.SIE | Mstatus.SPIE | Mstatus.SPP
_SSTATUS_HELPER_BITS = SSTATUS_WRITABLE & ~_SSTATUS_INLINE
_SSTATUS_READ = SSTATUS_VISIBLE & ~Mstatus.SD  # (SD is computed from FS)
_SD_SHIFT = 63
MSTATUS, IRQ_PENDING = GLOBALS["mstatus"], GLOBALS["irq_pending"]
EXIT_REQUEST = GLOBALS["exit_request"]


CSR_SSCRATCH = 0x140
SSCRATCH = GLOBALS["sscratch"]


def _csr_update(b, dest: Temp, old: Temp, source: Temp, op: int) -> None:
    """dest = what a CSR instruction writes: source (csrrw), old | source (csrrs) or
    old & ~source (csrrc)."""
    if op == CSR_WRITE:
        b.mov(dest, source)
    elif op == CSR_SET:
        b.or_(dest, old, source)
    else:
        b.andc(dest, old, source)


TIME_ACCESS = GLOBALS["time_access"]


def _time_inline(ctx: DisasContext, a) -> None:
    """rdtime (csrrs/csrrc rd, time, x0): when the CPU state's time_access has the
    bit of the block's privilege (the read is legal there: mcounteren/scounteren.TM,
    and the machine's timer follows the host clock), one native call computes mtime
    (native_time.py); otherwise the helper, which raises or reads the timer, and the
    block continues through the jump cache. Reading time has no effect: the block goes
    on after it."""
    b = ctx.builder
    slow, allowed, value = b.label(), ctx.temp(), ctx.temp()
    b.and_(allowed, TIME_ACCESS, const(I64, 1 << ctx.priv))
    b.brcond(Cond.EQ, allowed, const(I64, 0), slow)
    b.call(TIME_HELPER.name, [value], [])
    ctx.set_gpr(a.rd, value)
    done = b.label()
    b.br(done)
    b.set_label(slow)
    _call_csr_helper(ctx, a, CSR_SET, const(I64, 0), False)
    b.set_label(done)


# The S-mode registers CsrFile keeps in CPU-state cells (priv/csr.py CELL_FIELDS), read
# and written inline at S or M privilege (where they are accessible and nothing else
# applies): Linux reads sepc, scause and stval at every trap entry and writes sepc at
# every return. Each entry gives (field, read mask, write mask, WARL check): a read is
# field & read mask; a write stores the new value & write mask, for stvec only when
# its MODE is not reserved (>= 2 leaves the register unchanged, as CsrFile does).
CSR_SIE, CSR_STVEC, CSR_SEPC, CSR_SCAUSE, CSR_STVAL = 0x104, 0x105, 0x141, 0x142, 0x143
_ALL = (1 << 64) - 1
_MXR_INDEX = int(MmuIdx.U_MXR) - int(MmuIdx.U)  # the MXR bit of an MMU index
MIE, MIDELEG = GLOBALS["mie"], GLOBALS["mideleg"]
_PLAIN_INLINE = {
    CSR_SSCRATCH: lambda ctx: (SSCRATCH, _ALL, _ALL, False),
    CSR_SCAUSE: lambda ctx: (GLOBALS["scause"], _ALL, _ALL, False),
    CSR_STVAL: lambda ctx: (GLOBALS["stval"], _ALL, _ALL, False),
    CSR_STVEC: lambda ctx: (GLOBALS["stvec"], _ALL, _ALL, True),
    # (epc bit 0 is always zero; bit 1 too without C: IALIGN=32, §3.1.14)
    CSR_SEPC: lambda ctx: (GLOBALS["sepc"], _ALL & ~(1 if ctx.has_ext("c") else 3),
                           _ALL & ~1, False),
}


def _plain_inline(ctx: DisasContext, a, op: int, source: Temp, writes: bool, field: Temp,
                  read_mask: int, write_mask: int, tvec: bool) -> None:
    """A CSR with no side effect kept in the CPU state (sscratch, sepc, scause, stval,
    stvec), any CSR instruction form: rd gets the old value, the field the new one."""
    b = ctx.builder
    old = ctx.temp()
    if read_mask == _ALL:
        b.mov(old, field)
    else:
        b.and_(old, field, const(I64, read_mask))
    if writes:
        new = ctx.temp()
        _csr_update(b, new, old, source, op)
        skip = None
        if tvec:  # MODE >= 2 (bit 1 set) is reserved: no write
            skip, mode = b.label(), ctx.temp()
            b.and_(mode, new, const(I64, 2))
            b.brcond(Cond.NE, mode, const(I64, 0), skip)
        if write_mask == _ALL:
            b.mov(field, new)
        else:
            b.and_(field, new, const(I64, write_mask))
        if skip is not None:
            b.set_label(skip)
    ctx.set_gpr(a.rd, old)


def _sie_inline(ctx: DisasContext, a, source: Temp, writes: bool) -> None:
    """sie at S or M privilege, read (mie & mideleg) or cleared (csrrc/csrrci: mie
    loses the delegated bits of the source; clearing enables unmasks nothing, and
    irq_pending may keep the cleared bits: it is allowed to over-approximate). Setting
    or writing sie may enable a pending interrupt: the helper does that."""
    b = ctx.builder
    old = ctx.temp()
    b.and_(old, MIE, MIDELEG)
    if writes:
        cleared = ctx.temp()
        b.and_(cleared, source, MIDELEG)
        b.andc(MIE, MIE, cleared)
    ctx.set_gpr(a.rd, old)


def _sstatus_value(ctx: DisasContext, mstatus: Temp) -> Temp:
    """sstatus as a read shows ``mstatus``: its view bits, and SD saying FS is Dirty
    (VS and XS are read-only 0)."""
    b = ctx.builder
    value, dirty = ctx.temp(), ctx.temp()
    b.and_(value, mstatus, const(I64, _SSTATUS_READ))
    b.and_(dirty, mstatus, const(I64, Mstatus.FS))
    b.setcond(Cond.EQ, dirty, dirty, const(I64, Mstatus.FS))
    b.shl(dirty, dirty, const(I64, _SD_SHIFT))
    b.or_(value, value, dirty)
    return value


_FLAG_BITS = Mstatus.FS | Mstatus.SUM | Mstatus.MXR  # what S-mode flags depend on
_SUM_SHIFT, _MXR_SHIFT, _FS_SHIFT = 18, 19, 13


def _sstatus_write_s(ctx: DisasContext, a, op: int, source: Temp) -> None:
    """Any write of sstatus in S-mode (csrrw/csrrs/csrrc and immediates; Linux: the
    trap entry clears SUM and FS, the return writes the whole register, uaccess
    toggles SUM) without Python, as CsrFile.rmw and _write_sstatus do: the writable
    bits (SIE SPIE SPP SUM MXR, FS with F) of mstatus change, rd gets the old view.
    When FS, SUM or MXR changed, the new flags are computed here — in S-mode they are
    this block's with the data MMU index (S, +SUM, +MXR) and FS of the new value — and
    the block ends through the jump cache, which looks the next instruction up under
    them (the helper's path, without the helper). Setting SIE while irq_pending is
    nonzero requests an exit, as in :func:`_sstatus_inline`."""
    b = ctx.builder
    # (the model's F, not has_ext: that one says no while FS is Off)
    writable = SSTATUS_WRITABLE if ctx.model.has("f") else SSTATUS_WRITABLE & ~Mstatus.FS
    old, new, bits = ctx.temp(), ctx.temp(), ctx.temp()
    b.mov(old, MSTATUS)
    b.and_(bits, source, const(I64, writable))
    if op == CSR_WRITE:
        b.and_(new, old, const(I64, ~int(writable) & _ALL))
        b.or_(new, new, bits)
    elif op == CSR_SET:
        b.or_(new, old, bits)
    else:
        b.andc(new, old, bits)
    b.mov(MSTATUS, new)
    ctx.set_gpr(a.rd, _sstatus_value(ctx, old))
    if op != CSR_CLEAR and not (source.is_const and not source.value & Mstatus.SIE):
        _exit_if_sie_unmasked(ctx, old, new)
    if op == CSR_CLEAR and source.is_const and not source.value & _FLAG_BITS:
        return  # (clearing SIE, SPIE or SPP: the flags stay)
    same, changed = b.label(), ctx.temp()
    b.xor(changed, old, new)
    b.and_(changed, changed, const(I64, _FLAG_BITS))
    b.brcond(Cond.EQ, changed, const(I64, 0), same)
    flags, t = ctx.temp(), ctx.temp()
    # MMU index S (1), S_SUM (2), +4 with MXR; FS in bits 6:5.
    b.shr(flags, new, const(I64, _SUM_SHIFT))
    b.and_(flags, flags, const(I64, 1))
    b.shr(t, new, const(I64, _MXR_SHIFT))
    b.and_(t, t, const(I64, 1))
    b.shl(t, t, const(I64, 2))
    b.or_(flags, flags, t)
    b.add(flags, flags, const(I64, int(MmuIdx.S)))
    b.shl(flags, flags, const(I64, TbFlags.MMU_IDX_SHIFT))
    b.shr(t, new, const(I64, _FS_SHIFT))
    b.and_(t, t, const(I64, 3))
    b.shl(t, t, const(I64, TbFlags.FS_SHIFT))
    b.or_(flags, flags, t)
    b.or_(TB_FLAGS, flags, const(I64, ctx.flags & ~(TbFlags.MMU_IDX_MASK | TbFlags.FS_MASK)))
    b.mov(PC, const(I64, ctx.next_pc))
    b.lookup_and_goto_ptr()
    b.set_label(same)


def _sstatus_inline(ctx: DisasContext, a, op: int, source: Temp) -> None:
    """csrrs/csrrc on sstatus at S or M privilege (sstatus is accessible there and no
    other rule applies) with a source that is not x0. A register source with bits of
    :data:`_SSTATUS_HELPER_BITS` set takes the helper at run time. Setting SIE while
    irq_pending (mip & mie, which system.py publishes) is nonzero may unmask an
    interrupt: then the exit request is set and the block ends after this instruction,
    so the run loop takes the interrupt before the next one, as after the helper."""
    b = ctx.builder
    if source.is_const:
        mask = const(I64, source.value & _SSTATUS_INLINE)
    else:
        fast, flagged = b.label(), ctx.temp()
        b.and_(flagged, source, const(I64, _SSTATUS_HELPER_BITS))
        b.brcond(Cond.EQ, flagged, const(I64, 0), fast)
        _call_csr_helper(ctx, a, op, source, True)
        b.set_label(fast)
        mask = ctx.temp()
        b.and_(mask, source, const(I64, _SSTATUS_INLINE))
    old, new = ctx.temp(), ctx.temp()
    b.mov(old, MSTATUS)
    if op == CSR_SET:
        b.or_(new, old, mask)
    else:
        b.andc(new, old, mask)
    b.mov(MSTATUS, new)
    ctx.set_gpr(a.rd, _sstatus_value(ctx, old))
    if op != CSR_SET or (source.is_const and not mask.value & Mstatus.SIE):
        return  # clearing bits, SPIE or SPP unmask nothing
    _exit_if_sie_unmasked(ctx, old, new)


def _exit_if_sie_unmasked(ctx: DisasContext, old: Temp, new: Temp) -> None:
    """When sstatus.SIE went 0 -> 1 (``old`` -> ``new`` mstatus) while irq_pending is
    nonzero: set exit_request and end the block after this instruction, so the run
    loop takes the interrupt before the next one, as after the CSR helper."""
    b = ctx.builder
    go_on, unmasked = b.label(), ctx.temp()
    b.andc(unmasked, new, old)
    b.and_(unmasked, unmasked, const(I64, Mstatus.SIE))
    b.brcond(Cond.EQ, unmasked, const(I64, 0), go_on)
    b.brcond(Cond.EQ, IRQ_PENDING, const(I64, 0), go_on)
    b.mov(EXIT_REQUEST, const(I32, 1))
    b.mov(PC, const(I64, ctx.next_pc))
    b.lookup_and_goto_ptr()  # (the next block's entry sees the exit request)
    b.set_label(go_on)
