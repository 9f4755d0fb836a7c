"""The CPU-state layout and the native ABI shared by the lowering and the runtime.

One declared layout: the runtime's own fields first (exit_request at offset 0 so the
per-block check is one compare), then the guest's registers, then the softmmu TLB
tables (one per MMU index). The lowering takes offsets from here; Python reads and
writes the same fields through :class:`llvmtcg.runtime.cpu_state.CpuState`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llvmtcg.ir.types import I32, I64, IRType, Temp, TempKind

# Guest pages are 4 KiB for every guest we model (RISC-V, AArch64 4K granule).
PAGE_BITS = 12
PAGE_SIZE = 1 << PAGE_BITS
PAGE_MASK = ~(PAGE_SIZE - 1) & 0xFFFF_FFFF_FFFF_FFFF

# A TLB entry is QEMU's CPUTLBEntry: three comparators and an addend, 32 bytes.
TLB_ENTRY_SIZE = 32
TLB_ADDR_READ = 0
TLB_ADDR_WRITE = 8
TLB_ADDR_CODE = 16
TLB_ADDEND = 24
# Flag bits kept in a comparator's page-offset bits. The fast path compares the masked
# address (whose page-offset bits above the alignment bits are zero) with the
# comparator, so any flag forces the slow path.
TLB_NOTDIRTY = 1 << (PAGE_BITS - 3)  # page holds translated code: writes invalidate it
TLB_MMIO = 1 << (PAGE_BITS - 2)  # accesses go to a device callback
TLB_INVALID = 0xFFFF_FFFF_FFFF_FFFF  # comparator of an empty entry: never matches

# The page table lets accessors refill the TLB natively for identity-mapped guest RAM
# (user mode's GuestMemory: host = %mem + vaddr, addend 0): one flag byte per guest page.
# Anything else — no table, MMIO, stores to pages holding code, faults, page-crossing or
# misaligned accesses — goes to the Python slow path.
PAGE_R = 1
PAGE_W = 2
PAGE_X = 4
PAGE_CODE = 8  # the page holds translated code (stores must invalidate it)
PAGE_SLOW = 16  # always take the Python slow path (MMIO)
# Derived bits, kept up to date by GuestMemory (see with_fast_bits), so that hot code
# tests one bit per access: the page can be read / written directly.
PAGE_LOAD_OK = 32  # R, not SLOW
PAGE_STORE_OK = 64  # W, not SLOW, not CODE


def with_fast_bits(flags: int) -> int:
    """``flags`` (R/W/X/CODE/SLOW) with PAGE_LOAD_OK and PAGE_STORE_OK set as they follow
    from the others."""
    flags &= PAGE_R | PAGE_W | PAGE_X | PAGE_CODE | PAGE_SLOW
    if flags & PAGE_R and not flags & PAGE_SLOW:
        flags |= PAGE_LOAD_OK
    if flags & PAGE_W and not flags & (PAGE_SLOW | PAGE_CODE):
        flags |= PAGE_STORE_OK
    return flags

# The jump cache: direct-mapped {guest_pc, host_fn, tb_flags} entries in native memory;
# an entry hits when both the pc and the translation flags (the ``tb_flags`` field)
# match, as QEMU's tb_jmp_cache compares pc and flags.
JMP_CACHE_BITS = 12
JMP_CACHE_ENTRY_SIZE = 24
JMP_CACHE_FN = 8  # offset of host_fn in an entry
JMP_CACHE_FLAGS = 16  # offset of tb_flags in an entry
JMP_CACHE_INVALID_PC = 0xFFFF_FFFF_FFFF_FFFF  # odd, so no guest pc matches it


def jmp_cache_index(pc: int) -> int:
    """The jump cache slot of a guest pc; the lowering emits the same formula."""
    return (pc >> 1) & ((1 << JMP_CACHE_BITS) - 1)


# Slow-path helpers every block may call (the softmmu provides them).
SLOW_LOAD = "llvmtcg_slow_load"  # (cpu, addr, oi) -> status; value in cpu.slow_value
SLOW_STORE = "llvmtcg_slow_store"  # (cpu, addr, value, oi) -> status
SLOW_PROBE = "llvmtcg_slow_probe"  # (cpu, addr, oi) -> status; addend in cpu.slow_value


def encode_oi(memop_bits: int, mmu_idx: int) -> int:
    """The 32-bit 'operation info' handed to slow paths: MemOp bits and MMU index."""
    return memop_bits | (mmu_idx << 8)


def decode_oi(oi: int) -> tuple[int, int]:
    return oi & 0xFF, (oi >> 8) & 0xFF


@dataclass(frozen=True, slots=True)
class CpuField:
    name: str
    type: IRType
    offset: int
    count: int = 1  # >1 for arrays, addressed as name[i] from Python

    @property
    def size(self) -> int:
        return self.type.bits // 8 * self.count


# The runtime's own fields, in order. ``exit_request`` must stay at offset 0.
RUNTIME_FIELDS: tuple[tuple[str, IRType], ...] = (
    ("exit_request", I32),  # nonzero: stop at the next block entry (set asynchronously)
    ("exception_index", I32),  # which exception an EXCEPTION exit reports
    ("pc", I64),
    ("helper_status", I32),  # nonzero after a helper raised: leave the block now
    ("fault_access", I32),  # softmmu fault: 0 read, 1 write, 2 fetch
    ("fault_addr", I64),  # softmmu fault: the guest address
    ("slow_value", I64),  # slow-path result (loaded value or host addend)
    ("jmp_cache", I64),  # host address of the jump cache
    ("insn_count", I64),  # guest instructions retired in completed blocks (optional)
    ("page_table", I64),  # host address of the page-flag bytes (0: every miss goes to Python)
    ("page_count", I64),  # entries in the page table
    ("fp_env", I32),  # the guest's MXCSR whenever Python runs (see ir/host_abi.py)
    ("host_fp_env", I32),  # the host's MXCSR while native code runs, for callbacks
)
# The runtime's fields after the guest's registers (added later; placed here so the
# registers keep their offsets).
RUNTIME_TAIL_FIELDS: tuple[tuple[str, IRType], ...] = (
    ("tb_flags", I64),  # the translation flags of the current state (arch.tb_flags)
    ("tb_table", I64),  # host address of the lookup table's cell (runtime/lookup_table.py)
    # Host address of the native TLB refill's context (0: none; its first word is the
    # refill function): system mode's page-table walker (riscv/priv/native_walk.py).
    ("tlb_walk", I64),
)


class CpuLayout:
    """Offsets of every CPU-state field.

    Args:
        guest_fields: (name, type) or (name, type, count) of the guest's registers.
        n_mmu_idx: number of TLB tables (MMU indexes).
        tlb_bits: log2 of entries per TLB table.
        extra_fields: fields placed after everything else, so a layout extended with
            them keeps every offset of the one without (the embedding API's
            instrumentation adds its budget counter this way).
    """

    def __init__(self, guest_fields: Sequence[tuple], n_mmu_idx: int = 1,
                 tlb_bits: int = 10, extra_fields: Sequence[tuple] = ()) -> None:
        self.fields: dict[str, CpuField] = {}
        offset = 0
        for spec in (*RUNTIME_FIELDS, *guest_fields, *RUNTIME_TAIL_FIELDS, *extra_fields):
            name, type_, count = (*spec, 1) if len(spec) == 2 else spec
            if name in self.fields:
                raise ValueError(f"CPU-state field {name!r} declared twice")
            size = type_.bits // 8
            offset = (offset + size - 1) // size * size
            self.fields[name] = CpuField(name, type_, offset, count)
            offset += size * count
        self.n_mmu_idx = n_mmu_idx
        self.tlb_bits = tlb_bits
        self.tlb_offset = (offset + 63) // 64 * 64
        self.tlb_table_size = TLB_ENTRY_SIZE << tlb_bits
        self.size = self.tlb_offset + self.tlb_table_size * n_mmu_idx

    @property
    def tlb_mask(self) -> int:
        return (1 << self.tlb_bits) - 1

    def offset(self, name: str) -> int:
        return self.fields[name].offset

    def tlb_entry_offset(self, mmu_idx: int, vaddr: int) -> int:
        index = (vaddr >> PAGE_BITS) & self.tlb_mask
        return self.tlb_offset + mmu_idx * self.tlb_table_size + index * TLB_ENTRY_SIZE

    def globals(self) -> dict[str, Temp]:
        """IR globals for every scalar field; array element i is global ``name[i]``."""
        result: dict[str, Temp] = {}
        for f in self.fields.values():
            if f.count == 1:
                result[f.name] = Temp(TempKind.GLOBAL, f.type, f.name, offset=f.offset)
            else:
                step = f.type.bits // 8
                for i in range(f.count):
                    name = f"{f.name}[{i}]"
                    result[name] = Temp(TempKind.GLOBAL, f.type, name, offset=f.offset + i * step)
        return result
