"""Rules for guest memory: ``qemu_ld``, ``qemu_st`` and the atomics, and the access
forms they are built from.

Three forms, chosen by the lowering's options (not by the op):

* *accessor call* (``inline_memory`` off, the cheap tier): call the shared accessor
  ``llvmtcg_<kind>_<memop>_<mmu>`` (``accessor_function.py``), which probes the TLB,
  refills it natively or takes the slow path, and returns ``{value, ok}``;
* *inline TLB probe* (:func:`tlb_probe`): QEMU's compare of the address with the TLB
  entry's tag; a hit adds the entry's addend to the address, a miss calls the
  accessor's preserve_all variant (``…_pa``);
* *flat-memory check* (``flat_memory``, hot regions in user mode): one AND of the
  address against the guest space's size and the alignment, then a bit of the
  page-flag table (:func:`page_flags_ok`); guest RAM is at ``%mem + addr``.

Guest memory is always addressed by ``getelementptr`` from ``%mem``. A failed access
takes the emitter's fault exit. Atomics get a host address from the same forms and are
then one LLVM ``cmpxchg``/``atomicrmw``, seq_cst.
"""

from __future__ import annotations

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.block import Op
from llvmtcg.ir.lower.emitter import LIKELY, Emitter, LoweringError
from llvmtcg.ir.lower.rule import RuleSet
from llvmtcg.ir.lower.symbols import accessor_cc, accessor_name
from llvmtcg.ir.types import I32, I64, V128, AtomicOp, IRType, MemOp, Temp, to_signed

RULES = RuleSet("memory")
rule = RULES.rule

_ATOMICRMW = {
    AtomicOp.XCHG: "xchg", AtomicOp.ADD: "add", AtomicOp.AND: "and", AtomicOp.OR: "or",
    AtomicOp.XOR: "xor", AtomicOp.SMIN: "min", AtomicOp.SMAX: "max",
    AtomicOp.UMIN: "umin", AtomicOp.UMAX: "umax",
}

# The derived page-table bits (kept by GuestMemory) that say "plain RAM with the
# permission this access needs" (loads; stores and atomics: also no translated code).
PAGE_OK_BITS = {"ld": abi.PAGE_LOAD_OK, "st": abi.PAGE_STORE_OK,
                "at": abi.PAGE_LOAD_OK | abi.PAGE_STORE_OK}


# -- access forms ------------------------------------------------------------------------------

def tlb_probe(em: Emitter, addr: str, memop: MemOp, mmu_idx: int,
              which: int, size_log2: int | None = None) -> tuple[str, str]:
    """Emit the inline TLB compare; returns (hit i1, entry pointer).

    As in QEMU, the compared address keeps the bits that must be zero for the access's
    alignment, and for accesses allowed to be misaligned it is the address of the last
    byte rounded the same way, so an access that crosses a page misses. ``size_log2``
    overrides the access size (4: a v128 access of two doublewords).
    """
    layout = em.layout
    page_index = em.value(f"lshr i64 {addr}, {abi.PAGE_BITS}")
    index = em.value(f"and i64 {page_index}, {layout.tlb_mask}")
    offset = em.value(f"mul i64 {index}, {abi.TLB_ENTRY_SIZE}")
    base = layout.tlb_offset + mmu_idx * layout.tlb_table_size
    entry_off = em.value(f"add i64 {offset}, {base}")
    entry = em.value(f"getelementptr i8, ptr %cpu, i64 {entry_off}")
    tag_ptr = em.value(f"getelementptr i8, ptr {entry}, i64 {which}")
    tag = em.value(f"load i64, ptr {tag_ptr}, align 8")
    if size_log2 is None:
        size_log2 = memop.size_log2
    align_mask = (1 << memop.align_log2) - 1
    size_mask = (1 << size_log2) - 1
    compared = addr
    if memop.align_log2 < size_log2:
        compared = em.value(f"add i64 {addr}, {size_mask - align_mask}")
    masked = em.value(f"and i64 {compared}, {to_signed(abi.PAGE_MASK | align_mask, 64)}")
    hit = em.value(f"icmp eq i64 {masked}, {tag}")
    return hit, entry


def inline_probe(em: Emitter, addr: str, memop: MemOp, mmu_idx: int, kind: str,
                 slow: str) -> tuple[str, str | None]:
    """(hit i1, TLB entry or None) for an inline access; see :func:`host_pointer`.
    May branch to label ``slow`` itself before computing ``hit``."""
    if em.options.flat_memory:
        return page_flags_ok(em, addr, memop, kind, slow), None
    which = abi.TLB_ADDR_READ if kind == "ld" else abi.TLB_ADDR_WRITE
    return tlb_probe(em, addr, memop, mmu_idx, which)


def page_flags_ok(em: Emitter, addr: str, memop: MemOp, kind: str, slow: str) -> str:
    """Whether guest RAM at ``addr`` can be accessed directly: inside the guest space
    and naturally aligned (so on one page; misaligned accesses take the accessor,
    which handles them) — else a branch to ``slow`` — and, as the returned i1, the
    page has the permission and no reason for the slow path (MMIO; translated code on
    the page, for stores and atomics).

    ``page_count`` is a power of two (GuestMemory), so the first test is one AND of
    the address with ``~(page_count * PAGE_SIZE - 1) | alignment mask``."""
    return _flat_page_probe(em, addr, max(memop.align_log2, memop.size_log2), kind, slow)


def _flat_page_probe(em: Emitter, addr: str, align_log2: int, kind: str, slow: str,
                     span: int = 0) -> str:
    """:func:`page_flags_ok`'s test with an alignment of ``2**align_log2``; with a
    ``span``, the ``span`` bytes from addr must also be on addr's page (the page-flag
    test is for that page only)."""
    table, outside = em.page_table_view()
    mask = outside
    if align_log2:  # (an add: outside's low PAGE_BITS bits are 0, and a constant
        # outside, a baseline stencil's hole, then takes it as its addend)
        mask = em.value(f"add i64 {outside}, {(1 << align_log2) - 1}")
    bad = em.value(f"and i64 {addr}, {mask}")
    inside = em.value(f"icmp eq i64 {bad}, 0")
    if span:
        in_page = em.value(f"and i64 {addr}, {abi.PAGE_SIZE - 1}")
        fits = em.value(f"icmp ule i64 {in_page}, {abi.PAGE_SIZE - span}")
        inside = em.value(f"and i1 {inside}, {fits}")
    k = em.fresh()
    em.emit(f"br i1 {inside}, label %pf{k}, label %{slow}{LIKELY}")
    em.new_block(f"pf{k}")
    page_index = em.value(f"lshr i64 {addr}, {abi.PAGE_BITS}")
    flag_ptr = em.value(f"getelementptr i8, ptr {table}, i64 {page_index}")
    flags = em.value(f"load i8, ptr {flag_ptr}, align 1")
    needed = PAGE_OK_BITS[kind]
    masked = em.value(f"and i8 {flags}, {needed}")
    return em.value(f"icmp eq i8 {masked}, {needed}")


def page_table_ir(table: str, count: str, prefix: str) -> tuple[list[str], str, str]:
    """Instructions turning the page_table and page_count fields' values into the
    table pointer and ``~(count * PAGE_SIZE - 1)`` (the address bits that are 0
    everywhere inside a guest space of ``count`` pages, a power of two), named with
    ``prefix``; returns (instructions, table pointer, outside mask)."""
    lines = [f"{prefix}table = inttoptr i64 {table} to ptr",
             f"{prefix}size = shl i64 {count}, {abi.PAGE_BITS}",
             f"{prefix}limit = add i64 {prefix}size, -1",
             f"{prefix}outside = xor i64 {prefix}limit, -1"]
    return lines, f"{prefix}table", f"{prefix}outside"


def load_page_table_view(em: Emitter) -> tuple[str, str]:
    """A ``page_table_view`` for emitters without a function-wide one: load the fields
    where the check is (a block function, a stencil) and return (table, outside)."""
    lines, table, outside = page_table_ir(em.load_field("page_table"),
                                          em.load_field("page_count"), f"%pt{em.fresh()}.")
    for line in lines:
        em.emit(line)
    return table, outside


def host_pointer(em: Emitter, addr: str, entry: str | None) -> str:
    """The host address of guest ``addr``: through the TLB entry's addend, or (entry
    None, flat memory) ``%mem + addr``."""
    if entry is None:  # flat memory: guest RAM is identity-mapped from %mem
        return em.value(f"getelementptr i8, ptr %mem, i64 {addr}")
    addend_ptr = em.value(f"getelementptr i8, ptr {entry}, i64 {abi.TLB_ADDEND}")
    addend = em.value(f"load i64, ptr {addend_ptr}, align 8")
    offset = em.value(f"add i64 {addr}, {addend}")
    return em.value(f"getelementptr i8, ptr %mem, i64 {offset}")


def bswap_value(em: Emitter, value: str, bits: int) -> str:
    return em.value(f"call i{bits} @llvm.bswap.i{bits}(i{bits} {value}){em.call_attrs}")


def oi(memop: MemOp, mmu_idx: int) -> int:
    """The slow paths' 'operation info' word."""
    return abi.encode_oi(memop.encode(), mmu_idx)


def accessor_load(em: Emitter, memop: MemOp, mmu_idx: int, addr: str,
                  on_miss: bool = False) -> str:
    """Call the accessor for a load; leave through the fault exit if it fails."""
    name = accessor_name("ld", memop, mmu_idx, on_miss)
    em.use_accessor(name)
    pair = em.value(f"call {accessor_cc(name)}{{ i64, i1 }} @{name}(ptr %cpu, ptr %mem, "
                    f"i64 {addr}){em.call_attrs}")
    em.branch_on_ok(em.value(f"extractvalue {{ i64, i1 }} {pair}, 1"))
    return em.value(f"extractvalue {{ i64, i1 }} {pair}, 0")


def accessor_store(em: Emitter, memop: MemOp, mmu_idx: int, addr: str, value: str,
                   type_: IRType, on_miss: bool = False) -> None:
    """Call the accessor for a store; leave through the fault exit if it fails."""
    name = accessor_name("st", memop, mmu_idx, on_miss)
    em.use_accessor(name)
    wide = value if type_ is I64 else em.value(f"zext i32 {value} to i64")
    ok = em.value(f"call {accessor_cc(name)}i1 @{name}(ptr %cpu, ptr %mem, i64 {addr}, "
                  f"i64 {wide}){em.call_attrs}")
    em.branch_on_ok(ok)


def accessor_atomic(em: Emitter, memop: MemOp, mmu_idx: int, addr: str,
                    on_miss: bool = False) -> str:
    """Call the accessor for an atomic's host address; fault exit if it fails."""
    name = accessor_name("at", memop, mmu_idx, on_miss)
    em.use_accessor(name)
    pair = em.value(f"call {accessor_cc(name)}{{ ptr, i1 }} @{name}(ptr %cpu, ptr %mem, "
                    f"i64 {addr}){em.call_attrs}")
    em.branch_on_ok(em.value(f"extractvalue {{ ptr, i1 }} {pair}, 1"))
    return em.value(f"extractvalue {{ ptr, i1 }} {pair}, 0")


# -- loads and stores ----------------------------------------------------------------------------

@rule("qemu_ld")
def _qemu_ld(em: Emitter, op: Op) -> None:
    dst = op.outputs[0]
    memop, mmu_idx = op.args
    t = dst.type
    addr = em.read(op.inputs[0])
    if not em.options.inline_memory:
        value = accessor_load(em, memop, mmu_idx, addr)
        if t is I32:
            value = em.value(f"trunc i64 {value} to i32")
        em.write(dst, value)
        return
    k = em.fresh()
    hit, entry = inline_probe(em, addr, memop, mmu_idx, "ld", f"ld_slow{k}")
    em.emit(f"br i1 {hit}, label %ld_fast{k}, label %ld_slow{k}{LIKELY}")
    em.new_block(f"ld_fast{k}")
    ptr = host_pointer(em, addr, entry)
    raw = em.value(f"load i{memop.bits}, ptr {ptr}, align 1")
    if memop.big_endian and memop.bits > 8:
        raw = bswap_value(em, raw, memop.bits)
    if memop.bits < t.bits:
        raw = em.value(f"{'sext' if memop.signed else 'zext'} i{memop.bits} {raw} to {t}")
    em.emit(f"br label %ld_done{k}")
    em.new_block(f"ld_slow{k}")
    # A miss calls the shared accessor: it refills the TLB natively when it can, else
    # takes the Python slow path; the value comes back extended to 64 bits.
    slow = accessor_load(em, memop, mmu_idx, addr, on_miss=True)
    if t is I32:
        slow = em.value(f"trunc i64 {slow} to i32")
    slow_block = em.current_block
    em.emit(f"br label %ld_done{k}")
    em.new_block(f"ld_done{k}")
    value = em.value(f"phi {t} [ {raw}, %ld_fast{k} ], [ {slow}, %{slow_block} ]")
    em.write(dst, value)


@rule("qemu_st")
def _qemu_st(em: Emitter, op: Op) -> None:
    src, addr_temp = op.inputs
    memop, mmu_idx = op.args
    value = em.read(src)
    addr = em.read(addr_temp)
    if not em.options.inline_memory:
        accessor_store(em, memop, mmu_idx, addr, value, src.type)
        return
    k = em.fresh()
    hit, entry = inline_probe(em, addr, memop, mmu_idx, "st", f"st_slow{k}")
    em.emit(f"br i1 {hit}, label %st_fast{k}, label %st_slow{k}{LIKELY}")
    em.new_block(f"st_fast{k}")
    ptr = host_pointer(em, addr, entry)
    narrow = value
    if memop.bits < src.type.bits:
        narrow = em.value(f"trunc {src.type} {value} to i{memop.bits}")
    if memop.big_endian and memop.bits > 8:
        narrow = bswap_value(em, narrow, memop.bits)
    em.emit(f"store i{memop.bits} {narrow}, ptr {ptr}, align 1")
    em.emit(f"br label %st_done{k}")
    em.new_block(f"st_slow{k}")
    accessor_store(em, memop, mmu_idx, addr, value, src.type, on_miss=True)
    em.emit(f"br label %st_done{k}")
    em.new_block(f"st_done{k}")


# -- 128-bit loads and stores (v128 temps) -------------------------------------------------------
#
# A v128 qemu_ld/qemu_st moves 16 bytes as two doublewords of its memop, the low one at
# addr, the high one at addr + 8 (AArch64's LDR/STR Q, LDP/STP Q, LD1/ST1). The fast path
# is one host access after one check that covers all 16 bytes (one TLB compare, or one
# page-flag test); everything else — a page crossing, a miss, a misaligned address, MMIO,
# a store to a page with translated code — is the two doubleword accesses through the
# shared accessors, in order, exactly what two i64 ops do: the same faults at the same
# addresses, and a store's first half stays written when the second faults.

V128_LLVM = "<2 x i64>"
_HALF_BYTES = 8


def is_v128_access(op: Op) -> bool:
    """A qemu_ld/qemu_st of a v128 temp (the rules below; the builder checks its memop)."""
    temp = op.outputs[0] if op.outputs else op.inputs[0]
    return temp.type is V128


def _wide_probe(em: Emitter, addr: str, memop: MemOp, mmu_idx: int, kind: str,
                slow: str) -> tuple[str, str | None]:
    """(hit i1, TLB entry or None) for the 16 bytes at ``addr``; may branch to ``slow``
    first. The fast path needs the address aligned as the memop asks."""
    if not em.options.flat_memory:
        which = abi.TLB_ADDR_READ if kind == "ld" else abi.TLB_ADDR_WRITE
        return tlb_probe(em, addr, memop, mmu_idx, which, size_log2=4)
    # Flat memory: inside the guest space, aligned, and the 16 bytes on one page.
    return _flat_page_probe(em, addr, memop.align_log2, kind, slow, span=16), None


def _half_address(em: Emitter, addr: str) -> str:
    return em.value(f"add i64 {addr}, {_HALF_BYTES}")


def _bswap_halves(em: Emitter, value: str) -> str:
    return em.value(f"call {V128_LLVM} @llvm.bswap.v2i64({V128_LLVM} {value}){em.call_attrs}")


def _accessor_load_v128(em: Emitter, memop: MemOp, mmu_idx: int, addr: str,
                        on_miss: bool) -> str:
    """The two doubleword loads through the accessors, as a v128 (nothing is written
    before both succeeded)."""
    lo = accessor_load(em, memop, mmu_idx, addr, on_miss)
    hi = accessor_load(em, memop, mmu_idx, _half_address(em, addr), on_miss)
    low = em.value(f"insertelement {V128_LLVM} poison, i64 {lo}, i32 0")
    return em.value(f"insertelement {V128_LLVM} {low}, i64 {hi}, i32 1")


def _accessor_store_v128(em: Emitter, memop: MemOp, mmu_idx: int, addr: str, value: str,
                         on_miss: bool) -> None:
    lo = em.value(f"extractelement {V128_LLVM} {value}, i32 0")
    accessor_store(em, memop, mmu_idx, addr, lo, I64, on_miss)
    hi = em.value(f"extractelement {V128_LLVM} {value}, i32 1")
    accessor_store(em, memop, mmu_idx, _half_address(em, addr), hi, I64, on_miss)


@rule("qemu_ld", when=is_v128_access, priority=1)
def _qemu_ld_v128(em: Emitter, op: Op) -> None:
    dst = op.outputs[0]
    memop, mmu_idx = op.args
    addr = em.read(op.inputs[0])
    if not em.options.inline_memory:
        em.write(dst, _accessor_load_v128(em, memop, mmu_idx, addr, False))
        return
    k = em.fresh()
    hit, entry = _wide_probe(em, addr, memop, mmu_idx, "ld", f"ld_slow{k}")
    em.emit(f"br i1 {hit}, label %ld_fast{k}, label %ld_slow{k}{LIKELY}")
    em.new_block(f"ld_fast{k}")
    ptr = host_pointer(em, addr, entry)
    raw = em.value(f"load {V128_LLVM}, ptr {ptr}, align 1")
    if memop.big_endian:
        raw = _bswap_halves(em, raw)
    em.emit(f"br label %ld_done{k}")
    em.new_block(f"ld_slow{k}")
    slow = _accessor_load_v128(em, memop, mmu_idx, addr, True)
    slow_block = em.current_block
    em.emit(f"br label %ld_done{k}")
    em.new_block(f"ld_done{k}")
    em.write(dst, em.value(f"phi {V128_LLVM} [ {raw}, %ld_fast{k} ], [ {slow}, %{slow_block} ]"))


@rule("qemu_st", when=is_v128_access, priority=1)
def _qemu_st_v128(em: Emitter, op: Op) -> None:
    src, addr_temp = op.inputs
    memop, mmu_idx = op.args
    value = em.read(src)
    addr = em.read(addr_temp)
    if not em.options.inline_memory:
        _accessor_store_v128(em, memop, mmu_idx, addr, value, False)
        return
    k = em.fresh()
    hit, entry = _wide_probe(em, addr, memop, mmu_idx, "st", f"st_slow{k}")
    em.emit(f"br i1 {hit}, label %st_fast{k}, label %st_slow{k}{LIKELY}")
    em.new_block(f"st_fast{k}")
    ptr = host_pointer(em, addr, entry)
    stored = _bswap_halves(em, value) if memop.big_endian else value
    em.emit(f"store {V128_LLVM} {stored}, ptr {ptr}, align 1")
    em.emit(f"br label %st_done{k}")
    em.new_block(f"st_slow{k}")
    _accessor_store_v128(em, memop, mmu_idx, addr, value, True)
    em.emit(f"br label %st_done{k}")
    em.new_block(f"st_done{k}")


# -- atomics ---------------------------------------------------------------------------------------

def atomic_pointer(em: Emitter, addr: str, memop: MemOp, mmu_idx: int) -> str:
    """The host address of an atomic access: inline TLB hit, or the accessor, which
    fills the entry (natively or through the slow path's probe) or faults.

    Only the address comes back, never the access itself, so the operation is always
    one host atomic instruction.
    """
    if not em.options.inline_memory:
        return accessor_atomic(em, memop, mmu_idx, addr)
    k = em.fresh()
    hit, entry = inline_probe(em, addr, memop, mmu_idx, "at", f"at_slow{k}")
    em.emit(f"br i1 {hit}, label %at_fast{k}, label %at_slow{k}{LIKELY}")
    em.new_block(f"at_fast{k}")
    fast = host_pointer(em, addr, entry)
    em.emit(f"br label %at_go{k}")
    em.new_block(f"at_slow{k}")
    slow = accessor_atomic(em, memop, mmu_idx, addr, on_miss=True)
    slow_block = em.current_block
    em.emit(f"br label %at_go{k}")
    em.new_block(f"at_go{k}")
    return em.value(f"phi ptr [ {fast}, %at_fast{k} ], [ {slow}, %{slow_block} ]")


def _atomic_result(em: Emitter, old: str, memop: MemOp, dst: Temp) -> None:
    if memop.big_endian and memop.bits > 8:
        old = bswap_value(em, old, memop.bits)
    if memop.bits < dst.type.bits:
        old = em.value(f"{'sext' if memop.signed else 'zext'} i{memop.bits} {old} to {dst.type}")
    em.write(dst, old)


def _atomic_operand(em: Emitter, value: Temp, memop: MemOp) -> str:
    v = em.read(value)
    if memop.bits < value.type.bits:
        v = em.value(f"trunc {value.type} {v} to i{memop.bits}")
    if memop.big_endian and memop.bits > 8:
        v = bswap_value(em, v, memop.bits)
    return v


@rule("atomic_cmpxchg")
def _atomic_cmpxchg(em: Emitter, op: Op) -> None:
    addr_t, expected_t, new_t = op.inputs
    memop, mmu_idx = op.args
    addr = em.read(addr_t)
    expected = _atomic_operand(em, expected_t, memop)
    new = _atomic_operand(em, new_t, memop)
    ptr = atomic_pointer(em, addr, memop, mmu_idx)
    w = f"i{memop.bits}"
    pair = em.value(f"cmpxchg ptr {ptr}, {w} {expected}, {w} {new} seq_cst seq_cst, "
                    f"align {memop.size}")
    _atomic_result(em, em.value(f"extractvalue {{ {w}, i1 }} {pair}, 0"), memop, op.outputs[0])


@rule("atomic_cmpxchg_pair")
def _atomic_cmpxchg_pair(em: Emitter, op: Op) -> None:
    """One ``cmpxchg i128`` (``lock cmpxchg16b``: the host must have CX16, which every
    x86-64 CPU LLVM's host target reports since 2008 has; without it LLVM would call
    libatomic, which the loader refuses as an unknown import)."""
    addr_t, *halves = op.inputs
    memop, mmu_idx = op.args
    wide = []
    for lo_t, hi_t in (halves[0:2], halves[2:4]):
        lo = em.value(f"zext i64 {em.read(lo_t)} to i128")
        hi = em.value(f"zext i64 {em.read(hi_t)} to i128")
        wide.append(em.value(f"or i128 {lo}, {em.value(f'shl i128 {hi}, 64')}"))
    ptr = atomic_pointer(em, em.read(addr_t), memop, mmu_idx)
    pair = em.value(f"cmpxchg ptr {ptr}, i128 {wide[0]}, i128 {wide[1]} seq_cst seq_cst, "
                    "align 16")
    old = em.value(f"extractvalue {{ i128, i1 }} {pair}, 0")
    em.write(op.outputs[0], em.value(f"trunc i128 {old} to i64"))
    em.write(op.outputs[1], em.value(f"trunc i128 {em.value(f'lshr i128 {old}, 64')} to i64"))


@rule("atomic_rmw")
def _atomic_rmw(em: Emitter, op: Op) -> None:
    addr_t, value_t = op.inputs
    kind, memop, mmu_idx = op.args
    if memop.big_endian and kind not in (AtomicOp.XCHG, AtomicOp.AND, AtomicOp.OR,
                                         AtomicOp.XOR):
        raise LoweringError(f"atomic {kind} on big-endian memory is not supported")
    addr = em.read(addr_t)
    value = _atomic_operand(em, value_t, memop)
    ptr = atomic_pointer(em, addr, memop, mmu_idx)
    w = f"i{memop.bits}"
    old = em.value(f"atomicrmw {_ATOMICRMW[kind]} ptr {ptr}, {w} {value} seq_cst, "
                   f"align {memop.size}")
    _atomic_result(em, old, memop, op.outputs[0])


# -- host memory (instrumentation buffers) ----------------------------------------------------

def _host_pointer(em: Emitter, addr_t: Temp, offset: int) -> str:
    addr = em.read(addr_t)
    if offset:
        addr = em.value(f"add i64 {addr}, {offset}")
    return em.value(f"inttoptr i64 {addr} to ptr")


@rule("host_ld")
def _host_ld(em: Emitter, op: Op) -> None:
    # Buffers the embedding API owns, outside the CPU state (which %cpu's noalias
    # promises) and outside guest memory: a plain load, never a fault.
    size, offset = op.args
    dst = op.outputs[0]
    ptr = _host_pointer(em, op.inputs[0], offset)
    value = em.value(f"load i{8 * size}, ptr {ptr}, align 1")
    if 8 * size < dst.type.bits:
        value = em.value(f"zext i{8 * size} {value} to {dst.type}")
    em.write(dst, value)


@rule("host_st")
def _host_st(em: Emitter, op: Op) -> None:
    size, offset = op.args
    value_t, addr_t = op.inputs
    value = em.read(value_t)
    if 8 * size < value_t.type.bits:
        value = em.value(f"trunc {value_t.type} {value} to i{8 * size}")
    ptr = _host_pointer(em, addr_t, offset)
    em.emit(f"store i{8 * size} {value}, ptr {ptr}, align 1")
