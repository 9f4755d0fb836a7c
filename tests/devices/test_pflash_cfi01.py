"""CFI flash as QEMU's virt has it (bank width 4, two x16 devices): the probes U-Boot's
CFI driver makes, programming, erasing, buffered writes, status, and write-back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devices.pflash_cfi01 import (
    VIRT_BANK_SIZE,
    VIRT_SECTOR_SIZE,
    PflashCfi01,
    PflashError,
    virt_flash_bank,
)


@pytest.fixture
def flash() -> PflashCfi01:
    bank = virt_flash_bank(0)
    yield bank
    bank.close()


def cmd(flash: PflashCfi01, offset: int, value: int) -> None:
    """A command as a 32-bit bus write: the byte on each of the two x16 devices."""
    flash.write(offset, 4, value | value << 16)


def test_cfi_query_returns_qry_on_both_devices(flash: PflashCfi01) -> None:
    cmd(flash, 0x55 * 4, 0x98)  # U-Boot: the query at offset 0x55 in bus words
    assert [flash.read(q * 4, 4) for q in (0x10, 0x11, 0x12)] == [
        0x00510051, 0x00520052, 0x00590059]  # "Q", "R", "Y" from each device
    assert flash.read(0x13 * 4, 4) == 0x00010001  # Intel command set
    # Each device: 2^24 bytes (half the 32 MiB bank), 128 blocks of 128 KiB.
    assert flash.read(0x27 * 4, 4) & 0xFF == 24
    assert [flash.read(q * 4, 4) & 0xFF for q in (0x2D, 0x2E, 0x2F, 0x30)] == [127, 0, 0, 2]
    assert flash.read(0x2A * 4, 4) & 0xFF == 0x0B  # 2 KiB write buffer per device
    assert flash.read(0x100 * 4, 4) == 0  # beyond the table
    cmd(flash, 0, 0xFF)  # back to reading the array
    assert flash.read(0x40, 4) == 0


def test_read_id_gives_intel_codes(flash: PflashCfi01) -> None:
    cmd(flash, 0, 0x90)
    assert flash.read(0, 4) == 0x00890089
    assert flash.read(4, 4) == 0x00180018
    assert flash.read(8, 4) == 0  # lock status: not emulated
    cmd(flash, 0, 0xF0)  # an AMD-style reset also returns to read array
    assert flash.read(0, 4) == 0


def test_program_and_erase(flash: PflashCfi01) -> None:
    cmd(flash, 0x100, 0x40)
    flash.write(0x100, 4, 0x12345678)
    assert flash.read(0x100, 4) == 0x00800080  # the status of both devices: ready
    cmd(flash, 0, 0xFF)
    assert flash.read(0x100, 4) == 0x12345678
    cmd(flash, VIRT_SECTOR_SIZE + 8, 0x20)  # erase the second sector
    cmd(flash, VIRT_SECTOR_SIZE + 8, 0xD0)
    cmd(flash, 0, 0xFF)
    assert flash.read(VIRT_SECTOR_SIZE, 8) == 0xFFFF_FFFF_FFFF_FFFF
    assert flash.read(2 * VIRT_SECTOR_SIZE, 4) == 0
    assert flash.read(0x100, 4) == 0x12345678  # the first sector is untouched


def test_buffered_write(flash: PflashCfi01) -> None:
    base = 0x1000
    cmd(flash, base, 0xE8)
    assert flash.read(base, 4) == 0x00800080  # status: buffer available
    cmd(flash, base, 3)  # four words follow (count - 1)
    for i in range(4):
        flash.write(base + 4 * i, 4, 0xA0A0A0A0 + i)
    assert flash.read(base, 4) == 0x00800080  # status while the words are buffered
    cmd(flash, base, 0xD0)
    cmd(flash, 0, 0xFF)
    assert [flash.read(base + 4 * i, 4) for i in range(4)] == [0xA0A0A0A0 + i for i in range(4)]


def test_status_and_clear(flash: PflashCfi01) -> None:
    cmd(flash, 0, 0x70)
    assert flash.read(0, 4) == 0x00800080
    assert flash.read(0, 8) == 0x00800080_00800080  # split into two 4-byte reads
    cmd(flash, 0, 0x50)
    cmd(flash, 0, 0x70)
    assert flash.read(0, 4) == 0
    flash.reset()
    cmd(flash, 0, 0x70)
    assert flash.read(0, 4) == 0x00800080


def test_unknown_commands_are_logged_and_return_to_read_array() -> None:
    log: list[str] = []
    flash = PflashCfi01("f", log=log.append)
    try:
        cmd(flash, 0, 0x42)
        assert flash.read(0, 4) == 0 and "unimplemented flash cmd sequence" in log[0]
        flash.write(2, 4, 0)
        assert "unaligned write" in log[-1]
    finally:
        flash.close()


def test_an_image_is_loaded_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "flash.img"
    data = bytearray(VIRT_BANK_SIZE)
    data[:4] = b"\x13\x00\x00\x00"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    flash = PflashCfi01("virt.flash1", image=fd)
    try:
        assert flash.read(0, 4) == 0x13
        cmd(flash, 0x200, 0x10)
        flash.write(0x200, 4, 0xCAFEF00D)
        assert path.read_bytes()[0x200:0x204] == (0xCAFEF00D).to_bytes(4, "little")
    finally:
        flash.close()
        os.close(fd)


def test_image_size_must_match_and_read_only_refuses_changes(tmp_path: Path) -> None:
    path = tmp_path / "small.img"
    path.write_bytes(bytes(1024))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(PflashError, match="device requires 33554432 bytes, block backend "
                                              "provides 1024 bytes"):
            PflashCfi01("x", image=fd)
    finally:
        os.close(fd)
    flash = PflashCfi01("ro", read_only=True)
    try:
        cmd(flash, 0, 0x40)
        flash.write(0, 4, 0x1234)
        assert flash.read(0, 4) & 0x10  # program error in the status
        cmd(flash, 0, 0xFF)
        assert flash.read(0, 4) == 0
    finally:
        flash.close()
