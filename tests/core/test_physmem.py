"""The system-mode physical address space: named regions, overlap refusal, sub-page
devices, loaders, DMA and the mtree listing."""

from __future__ import annotations

import ctypes

import pytest

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.runtime.exits import Access
from llvmtcg.runtime.physmem import BusError, PhysicalAddressSpace, RegionError, RegionKind
from llvmtcg.runtime.softmmu import Perm


class Registers:
    """A device with a few 32-bit registers that records its accesses."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: dict[int, int] = {}
        self.log: list[tuple[str, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        self.log.append(("r", offset, size))
        return self.values.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("w", offset, size))
        self.values[offset] = value


@pytest.fixture
def space() -> PhysicalAddressSpace:
    space = PhysicalAddressSpace(size=1 << 32)
    yield space
    space.close()


def mmio_read(space: PhysicalAddressSpace, addr: int, size: int) -> int:
    """A guest load the way the softmmu does it: through the GuestMemory region."""
    region = space.memory.region(addr)
    assert region is not None and region.mmio is not None
    return region.mmio.read(addr - region.start, size)


def mmio_write(space: PhysicalAddressSpace, addr: int, size: int, value: int) -> None:
    region = space.memory.region(addr)
    assert region is not None and region.mmio is not None
    region.mmio.write(addr - region.start, size, value)


def test_overlapping_regions_are_refused_with_both_names(space: PhysicalAddressSpace) -> None:
    space.add_ram("ram", 0x8000_0000, 0x10_0000)
    space.add_mmio("uart", 0x1000_0000, 8, Registers(8))
    cases = [
        lambda: space.add_rom("rom", 0x800F_F000, 0x2000),
        lambda: space.add_ram("ram2", 0x8000_0000, 0x1000),
        lambda: space.add_mmio("clash", 0x1000_0004, 4, Registers(4)),
        lambda: space.add_mmio("inside-ram", 0x8000_1000, 0x10, Registers(0x10)),
    ]
    expected = ["'rom' [0x800ff000, 0x80101000) overlaps region 'ram'",
                "'ram2' [0x80000000, 0x80001000) overlaps region 'ram'",
                "'clash' [0x10000004, 0x10000008) overlaps region 'uart'",
                "'inside-ram' [0x80001000, 0x80001010) overlaps region 'ram'"]
    for add, message in zip(cases, expected, strict=True):
        with pytest.raises(RegionError, match=message.replace("[", r"\[").replace(")", r"\)")):
            add()
    assert [r.name for r in space.regions()] == ["uart", "ram"]


def test_memory_regions_need_whole_pages(space: PhysicalAddressSpace) -> None:
    with pytest.raises(RegionError, match="whole 4096-byte pages"):
        space.add_ram("odd", 0x8000_0800, 0x1000)
    with pytest.raises(RegionError, match="whole 4096-byte pages"):
        space.add_rom("short", 0x1000, 0x800)
    with pytest.raises(RegionError, match="outside the physical address space"):
        space.add_ram("high", 0xFFFF_F000, 0x2000)
    with pytest.raises(RegionError, match="size 0x0"):
        space.add_mmio("empty", 0x1000, 0, Registers(0))
    with pytest.raises(RegionError, match="needs a name"):
        space.add_mmio("", 0x1000, 4, Registers(4))


def test_small_devices_share_a_page_and_holes_are_bus_errors(space: PhysicalAddressSpace) -> None:
    uart, other = Registers(8), Registers(0x10)
    space.add_mmio("serial", 0x1000_0000, 8, uart)
    space.add_mmio("other", 0x1000_0100, 0x10, other)  # same page: one window serves both
    mmio_write(space, 0x1000_0004, 1, 0x5A)
    mmio_write(space, 0x1000_0108, 4, 0x1234)
    assert uart.values == {4: 0x5A} and other.values == {8: 0x1234}
    assert mmio_read(space, 0x1000_0108, 4) == 0x1234
    with pytest.raises(BusError, match="read of 4 bytes at 0x10000010"):
        mmio_read(space, 0x1000_0010, 4)
    with pytest.raises(BusError, match="write of 1 bytes at 0x10000fff"):
        mmio_write(space, 0x1000_0FFF, 1, 0)
    # The page is a slow-path page for the softmmu; the guest may not execute it.
    region, _ = space.memory.translate(0x1000_0000, Access.READ, 0)
    assert region.mmio is not None and not region.perms & Perm.X


def test_a_large_device_spans_pages_and_sees_offsets_from_its_base(
        space: PhysicalAddressSpace) -> None:
    plic = Registers(0x60_0000)
    space.add_mmio("plic", 0xC00_0000, 0x60_0000, plic)
    mmio_write(space, 0xC20_1004, 4, 7)
    assert plic.values == {0x20_1004: 7}
    assert space.region_at(0xC5F_FFFF).name == "plic"
    assert space.region_at(0xC60_0000) is None


def test_rom_is_read_only_for_the_guest_and_written_by_loaders(space: PhysicalAddressSpace) -> None:
    rom = space.add_rom("mrom", 0x1000, b"\x97\x02\x00\x00")
    assert (rom.kind, rom.size) == (RegionKind.ROM, 0x1000)
    region = space.memory.region(0x1000)
    assert region.perms == Perm.RX
    space.load(0x1FFC, b"\xAA\xBB\xCC\xDD")
    assert space.read(0x1000, 4) == b"\x97\x02\x00\x00"
    assert space.read(0x1FFC, 4) == b"\xAA\xBB\xCC\xDD"
    sized = space.add_rom("blank", 0x4000, 0x2000)
    assert space.read(sized.base, 0x2000) == bytes(0x2000)


def test_loads_outside_ram_and_rom_are_refused(space: PhysicalAddressSpace) -> None:
    space.add_ram("ram", 0x8000_0000, 0x2000)
    space.add_mmio("dev", 0x9000_0000, 0x10, Registers(0x10))
    space.load(0x8000_1FFE, b"ok")
    with pytest.raises(BusError, match="0x80002000 is nothing, not RAM or ROM"):
        space.load(0x8000_1FFE, b"too long")
    with pytest.raises(BusError, match="is i/o region 'dev'"):
        space.load(0x9000_0000, b"x")
    with pytest.raises(BusError):
        space.read(0x7FFF_FFFF, 2)


def test_dma_reaches_ram_only_and_invalidates_translated_code(space: PhysicalAddressSpace) -> None:
    space.add_rom("rom", 0x1000, 0x1000)
    space.add_ram("ram", 0x8000_0000, 0x4000)
    invalidated: list[tuple[int, int]] = []
    space.on_code_write.append(lambda start, end: invalidated.append((start, end)))
    space.dma_write(0x8000_0010, b"data")
    assert space.dma_read(0x8000_0010, 4) == b"data" and invalidated == []
    space.memory.set_code_page(0x8000_1000, True)
    space.dma_write(0x8000_0FFE, b"span")  # touches the code page
    assert invalidated == [(0x8000_0FFE, 0x8000_1002)]
    with pytest.raises(BusError, match="is rom region 'rom' .*, not RAM$"):
        space.dma_write(0x1000, b"x")
    with pytest.raises(BusError):
        space.dma_read(0x8000_3FFF, 2)


def test_dma_takes_any_buffer_and_spans_adjacent_ram_regions(
        space: PhysicalAddressSpace) -> None:
    space.add_ram("low", 0x8000_0000, 0x1000)
    space.add_ram("high", 0x8000_1000, 0x1000)
    space.dma_write(0x8000_0FFC, bytearray(b"abcd"))  # one region
    space.dma_write(0x8000_0FFE, memoryview(b"..wxyz")[2:])  # across both
    assert space.dma_read(0x8000_0FFC, 6) == b"abwxyz"
    with pytest.raises(BusError, match="0x80002000 is nothing"):
        space.dma_write(0x8000_1FFF, memoryview(b"no"))


def test_an_overlay_puts_a_device_inside_ram(space: PhysicalAddressSpace) -> None:
    space.add_ram("ram", 0x8000_0000, 0x4000)
    space.load(0x8000_1000, bytes(range(32)))
    mailbox = Registers(16)
    space.add_overlay("htif", 0x8000_1008, 16, mailbox)
    # The rest of the page is still the RAM that was there.
    assert mmio_read(space, 0x8000_1000, 8) == int.from_bytes(bytes(range(8)), "little")
    mmio_write(space, 0x8000_1018, 1, 0xEE)
    assert space.read(0x8000_1018, 1) == b"\xEE"
    mmio_write(space, 0x8000_1010, 8, 0x1234)
    assert mailbox.values == {8: 0x1234}
    space.load(0x8000_1000, b"\x11" * 0x20)  # loaders write around (and under) it
    assert space.read(0x8000_1000, 1) == b"\x11" and mmio_read(space, 0x8000_1010, 8) == 0x1234
    assert space.region_at(0x8000_1010).name == "htif"
    assert space.region_at(0x8000_1020).name == "ram"
    with pytest.raises(BusError, match="'htif'.* is a device"):
        space.dma_write(0x8000_1000, bytes(0x10))
    with pytest.raises(RegionError, match="must lie inside one RAM region"):
        space.add_overlay("outside", 0x9000_0000, 8, Registers(8))
    with pytest.raises(RegionError, match="overlaps region 'htif'"):
        space.add_mmio("clash", 0x8000_1010, 8, Registers(8))


def test_mtree_lists_regions_as_qemu_does(space: PhysicalAddressSpace) -> None:
    space.add_ram("riscv_virt_board.ram", 0x8000_0000, 0x800_0000)
    space.add_rom("riscv_virt_board.mrom", 0x1000, 0xF000)
    space.add_mmio("serial", 0x1000_0000, 8, Registers(8))
    assert space.mtree() == (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000001000-000000000000ffff (prio 0, rom): riscv_virt_board.mrom\n"
        "    0000000010000000-0000000010000007 (prio 0, i/o): serial\n"
        "    0000000080000000-0000000087ffffff (prio 0, ram): riscv_virt_board.ram\n")


def test_ram_pages_are_fast_path_pages(space: PhysicalAddressSpace) -> None:
    space.add_ram("ram", 0x8000_0000, 0x1000)
    space.load(0x8000_0000, b"\x13\x00\x00\x00")
    region, host_page = space.memory.translate(0x8000_0000, Access.FETCH, 0)
    assert region.mmio is None and host_page == space.memory.base + 0x8000_0000
    flags = ctypes.c_uint8.from_address(space.memory.page_table + (0x8000_0000 >> abi.PAGE_BITS))
    assert flags.value & abi.PAGE_LOAD_OK and not flags.value & abi.PAGE_SLOW
