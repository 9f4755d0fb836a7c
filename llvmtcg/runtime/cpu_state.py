"""The CPU state in native memory, read and written from Python by field name."""

from __future__ import annotations

import ctypes

from llvmtcg.ir.cpu_layout import (
    PAGE_BITS,
    PAGE_MASK,
    TLB_ENTRY_SIZE,
    TLB_INVALID,
    TLB_NOTDIRTY,
    CpuLayout,
)
from llvmtcg.ir.types import I32

SCRATCH_SLOTS = 512  # block locals of a baseline block (runtime/native/baseline.py)

_CTYPES_UNSIGNED = {32: ctypes.c_uint32, 64: ctypes.c_uint64}


class CpuState:
    """One CPU's state: a 64-byte aligned native buffer laid out by ``layout``.

    Values are read and written as unsigned integers of the field's width.
    """

    def __init__(self, layout: CpuLayout) -> None:
        self.layout = layout
        # After the layout: the baseline tier's block-local slots (scratch_offset).
        self._buffer = ctypes.create_string_buffer(layout.size + 64 + 8 * SCRATCH_SLOTS)
        self.address = (ctypes.addressof(self._buffer) + 63) // 64 * 64
        # ctypes views of fields, made once: building one costs ~1 us, reading it ~50 ns.
        self._cells: dict[tuple[str, int], ctypes._SimpleCData] = {}
        # The run loop reads these on every exit from native code.
        self._pc = self._cell("pc")
        self._exit_request = self._cell("exit_request")
        self._tb_flags = self._cell("tb_flags")
        # The architecture's per-CPU state that does not live in native memory (RISC-V
        # system mode: the CSR file), created by ``GuestArch.reset``.
        self.arch_state: object | None = None
        # Host address of a word every full TLB flush zeroes, or 0: the native TLB
        # refill's "context valid" word (frontends/riscv/priv/native_walk.py), so a
        # flush (satp, PMP, privilege state) makes the next miss publish it again.
        self.tlb_flush_clears = 0
        # The TLB as 64-bit words, and each MMU index's first word in it: a page flush
        # (sfence.vma by address: ~5k in a Linux boot) stores the tags directly.
        self._tlb_words = (ctypes.c_uint64 * (layout.tlb_table_size * layout.n_mmu_idx // 8)
                           ).from_address(self.address + layout.tlb_offset)
        self._tlb_tables = tuple(range(0, len(self._tlb_words), layout.tlb_table_size // 8))
        self._tlb_index_mask = layout.tlb_mask
        self.tlb_flush()

    @property
    def scratch_offset(self) -> int:
        """Offset of the scratch slots (8 bytes each) from the state's address."""
        return self.layout.size

    def _cell(self, name: str, index: int = 0) -> ctypes._SimpleCData:
        cell = self._cells.get((name, index))
        if cell is None:
            field = self.layout.fields[name]
            if not 0 <= index < field.count:
                raise IndexError(f"{name}[{index}] out of range (count {field.count})")
            step = field.type.bits // 8
            cell = self._cells[name, index] = _CTYPES_UNSIGNED[field.type.bits].from_address(
                self.address + field.offset + index * step)
        return cell

    def cell(self, name: str, index: int = 0) -> ctypes._SimpleCData:
        """A ctypes view of one field (``.value`` reads and writes it): for code that
        reads a field at every step."""
        return self._cell(name, index)

    def get(self, name: str, index: int = 0) -> int:
        return self._cell(name, index).value

    def set(self, name: str, value: int, index: int = 0) -> None:
        # ctypes truncates to the field's width, which is the masking we want.
        self._cell(name, index).value = value

    def get_signed(self, name: str, index: int = 0) -> int:
        bits = self.layout.fields[name].type.bits
        v = self.get(name, index)
        return v - (1 << bits) if v >> (bits - 1) else v

    @property
    def pc(self) -> int:
        return self._pc.value

    @pc.setter
    def pc(self, value: int) -> None:
        self._pc.value = value

    @property
    def tb_flags(self) -> int:
        """The translation flags of the current state: the architecture keeps this
        field equal to ``arch.tb_flags(state)`` whenever they change; blocks and jump
        cache entries are looked up by (pc, tb_flags)."""
        return self._tb_flags.value

    @tb_flags.setter
    def tb_flags(self, value: int) -> None:
        self._tb_flags.value = value

    def request_exit(self) -> None:
        """Make native code stop at the next block entry (safe from any thread)."""
        self._exit_request.value = 1

    def clear_exit_request(self) -> None:
        self._exit_request.value = 0

    @property
    def exit_requested(self) -> bool:
        return self._exit_request.value != 0

    def tlb_entry_address(self, mmu_idx: int, vaddr: int) -> int:
        return self.address + self.layout.tlb_entry_offset(mmu_idx, vaddr)

    def tlb_flush(self) -> None:
        """Invalidate every TLB entry of every MMU index."""
        layout = self.layout
        start = self.address + layout.tlb_offset
        ctypes.memset(start, 0xFF, layout.tlb_table_size * layout.n_mmu_idx)
        if self.tlb_flush_clears:
            ctypes.c_uint64.from_address(self.tlb_flush_clears).value = 0

    def tlb_flush_page(self, vaddr: int) -> None:
        """Invalidate the entries of the page at ``vaddr`` in every MMU index (their
        three tags: an entry with all of them invalid is never used)."""
        words = self._tlb_words
        index = ((vaddr >> PAGE_BITS) & self._tlb_index_mask) * 4
        for table in self._tlb_tables:
            i = table + index
            words[i] = words[i + 1] = words[i + 2] = TLB_INVALID

    def tlb_protect_page(self, vaddr: int) -> None:
        """Set TLB_NOTDIRTY on the write tag of the page at ``vaddr`` where an entry
        holds it writable and clean (every MMU index), so its stores take the slow
        path, which then uses the entry without a walk; its reads and fetches stay
        fast (QEMU's tlb_reset_dirty). Other entries are not the page's, or slow."""
        words = self._tlb_words
        index = ((vaddr >> PAGE_BITS) & self._tlb_index_mask) * 4 + 1  # (the write tag)
        page = vaddr & PAGE_MASK
        for table in self._tlb_tables:
            if words[table + index] == page:
                words[table + index] = page | TLB_NOTDIRTY

    def tlb_entry(self, mmu_idx: int, vaddr: int) -> tuple[int, int, int, int]:
        """(addr_read, addr_write, addr_code, addend) of the entry vaddr maps to."""
        arr = (ctypes.c_uint64 * 4).from_address(self.tlb_entry_address(mmu_idx, vaddr))
        return arr[0], arr[1], arr[2], arr[3]

    def set_tlb_entry(self, mmu_idx: int, vaddr: int, read: int, write: int, code: int,
                      addend: int) -> None:
        arr = (ctypes.c_uint64 * 4).from_address(self.tlb_entry_address(mmu_idx, vaddr))
        arr[0], arr[1], arr[2] = read, write, code
        arr[3] = addend & 0xFFFF_FFFF_FFFF_FFFF


assert TLB_INVALID == 0xFFFF_FFFF_FFFF_FFFF and I32.bits == 32  # memset(0xFF) == invalid
assert TLB_ENTRY_SIZE == 32  # {read, write, code, addend}: tlb_flush_page's 4 words
