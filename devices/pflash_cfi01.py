"""Intel/Sharp CFI parallel flash (command set 0001), as QEMU 7.2's pflash_cfi01.

QEMU's virt board has two banks at 0x20000000, each 32 MiB of 256 KiB sectors, built
from two 16-bit devices side by side (bank width 4, device width 2), ID 0x89/0x18.
Firmware (U-Boot's CFI driver, EDK2) probes them: CFI query (0x98) returns the "QRY"
table replicated per device, read-ID (0x90) the manufacturer and device codes, and
program (0x10/0x40), block erase (0x20 + 0xD0), buffered write (0xE8, count, data,
0xD0), lock commands (0x60) and status (0x70/0x50) behave as QEMU's model does,
including its quirks (command 0x00 is read-array; lock commands do nothing).

Contents come from a ``-drive if=pflash`` image (exactly the bank's size, as QEMU
requires) and every program or erase is written back to it, sector-aligned; without
an image the bank starts zero-filled (QEMU's RAM-backed default) and changes are lost
at exit.

This model serves every read through ``read`` (QEMU maps read-array mode as ROM, so
the guest can also execute from flash; here it cannot, and the virt machine refuses to
boot from flash).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable

from devices.base import (
    GuestErrorLog,
    StateError,
    StateValue,
    load_fields,
    nonzero_pages,
    restore_pages,
    save_fields,
    size_mask,
)

VIRT_SECTOR_SIZE = 256 * 1024
VIRT_BANK_SIZE = 32 * 1024 * 1024
VIRT_BANK_WIDTH = 4
VIRT_DEVICE_WIDTH = 2
VIRT_ID = (0x89, 0x18, 0x00, 0x00)

_SECTOR = 512  # QEMU's BDRV_SECTOR_SIZE: write-back granularity
_MAX_ACCESS = 4  # the ops' impl.max_access_size (QEMU's default)

STATUS_READY = 0x80
STATUS_ERASE_ERROR = 0x20
STATUS_PROGRAM_ERROR = 0x10

CMD_READ_ARRAY = 0x00  # QEMU's internal read-array state (not a CFI command)


class PflashError(ValueError):
    """A backing image that does not fit the bank (QEMU's wording)."""


def _ctz(value: int) -> int:
    return (value & -value).bit_length() - 1


class PflashCfi01:
    """One flash bank (an MmioDevice of ``size`` bytes).

    Args:
        name: QEMU's device name (``virt.flash0``).
        sector_len: bytes per erase block of the whole bank.
        num_blocks: erase blocks in the bank.
        bank_width: bytes of the bus (devices side by side).
        device_width: bytes of one device.
        ident: manufacturer, device and two extra ID codes.
        image: a writable (or read-only) file descriptor holding the contents, or None.
        read_only: the image may not be written (programs and erases then fail).
        log: -d guest_errors sink for command sequences the model does not know.
    """

    def __init__(self, name: str, *, sector_len: int = VIRT_SECTOR_SIZE,
                 num_blocks: int = VIRT_BANK_SIZE // VIRT_SECTOR_SIZE,
                 bank_width: int = VIRT_BANK_WIDTH, device_width: int = VIRT_DEVICE_WIDTH,
                 ident: tuple[int, int, int, int] = VIRT_ID, image: int | None = None,
                 read_only: bool = False, log: GuestErrorLog | None = None) -> None:
        self.name = name
        self.sector_len = sector_len
        self.size = sector_len * num_blocks
        self.bank_width = bank_width
        self.device_width = device_width
        self.max_device_width = device_width
        self.ident = ident
        self._image = image
        self.read_only = read_only
        self._log = log
        # Zero pages cost nothing until touched; an image is copied in (QEMU reads it
        # whole into the region's RAM).
        self.storage = mmap.mmap(-1, self.size)
        if image is not None:
            size = os.fstat(image).st_size
            if size != self.size:
                raise PflashError(f"device requires {self.size} bytes, block backend "
                                  f"provides {size} bytes")
            offset = 0
            while offset < self.size:
                chunk = os.pread(image, min(1 << 22, self.size - offset), offset)
                if not chunk:
                    break
                self.storage[offset:offset + len(chunk)] = chunk
                offset += len(chunk)
        self.cfi_table = self._cfi_table(num_blocks)
        self.writeblock_size = 1 << self.cfi_table[0x2A]
        devices = bank_width // device_width
        if devices > 1:
            self.writeblock_size *= devices
        self.reset()

    def reset(self) -> None:
        """QEMU's system reset: read-array mode, status ready, no buffered write."""
        self.cmd = CMD_READ_ARRAY
        self.wcycle = 0
        self.status = STATUS_READY
        self.counter = 0
        self._block: bytearray | None = None
        self._block_offset = -1

    def close(self) -> None:
        self.storage.close()

    # --- savevm ----------------------------------------------------------------------

    state_version = 1
    _STATE_FIELDS = ("cmd", "wcycle", "status", "counter", "_block_offset")

    def save_state(self) -> dict[str, StateValue]:
        """The command state machine, and the contents when no image holds them (QEMU
        saves a flash without a drive as RAM; with one, the image is the disk)."""
        state = save_fields(self, self._STATE_FIELDS)
        state["block"] = bytes(self._block) if self._block is not None else None
        state["storage"] = nonzero_pages(self.storage) if self._image is None else None
        return state

    def load_state(self, saved: dict[str, StateValue]) -> None:
        block, storage = saved.get("block", b""), saved.get("storage", b"")
        if block is not None and (not isinstance(block, bytes)
                                  or len(block) != self.writeblock_size):
            raise StateError(f"{self.name}: saved write buffer does not fit")
        if self._image is not None and storage is not None:
            raise StateError(f"{self.name}: saved contents for a flash with an image")
        load_fields(self, self._STATE_FIELDS, saved)
        if self._image is None:
            restore_pages(self.storage, storage)  # type: ignore[arg-type]
        self._block = bytearray(block) if block is not None else None

    # --- the CFI table ---------------------------------------------------------------

    def _cfi_table(self, num_blocks: int) -> bytes:
        devices = self.bank_width // self.device_width
        blocks = num_blocks
        sector_per_device = self.sector_len // devices
        device_len = sector_per_device * blocks
        t = bytearray(0x52)
        t[0x10:0x13] = b"QRY"
        t[0x13], t[0x15] = 0x01, 0x31  # Intel command set; primary extended table
        t[0x1B], t[0x1C] = 0x45, 0x55  # Vcc min/max
        t[0x1F], t[0x20], t[0x21] = 0x07, 0x07, 0x0A  # typical timeouts
        t[0x23], t[0x24], t[0x25] = 0x04, 0x04, 0x04  # max timeouts
        t[0x27] = _ctz(device_len)  # device size: 2^n bytes
        t[0x28] = 0x02  # x8/x16 interface
        t[0x2A] = 0x08 if self.bank_width == 1 else 0x0B  # max buffered write: 2^n
        t[0x2C] = 0x01  # one erase block region
        t[0x2D], t[0x2E] = (blocks - 1) & 0xFF, ((blocks - 1) >> 8) & 0xFF
        t[0x2F], t[0x30] = (sector_per_device >> 8) & 0xFF, (sector_per_device >> 16) & 0xFF
        t[0x31:0x36] = b"PRI10"
        t[0x3F] = 0x01  # protection fields
        return bytes(t)

    # --- reads ---------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset < 0 or offset + size > self.size:
            self._bad(f"read of {size} bytes at {offset:#x} is outside the bank")
            return 0
        if self.cmd == CMD_READ_ARRAY:  # QEMU's ROM mode: plain memory
            return int.from_bytes(self.storage[offset:offset + size], "little")
        if offset % size:
            self._bad(f"unaligned read of {size} bytes at {offset:#x}")
            return 0
        if size > _MAX_ACCESS:  # QEMU splits wider accesses into 4-byte ones
            return self.read(offset, _MAX_ACCESS) | self.read(offset + _MAX_ACCESS,
                                                             _MAX_ACCESS) << 32
        return self._read_command_mode(offset, size)

    def _read_command_mode(self, offset: int, size: int) -> int:
        if self.cmd in (0x10, 0x20, 0x28, 0x40, 0x50, 0x60, 0x70, 0xE8):
            value, shift = self.status, self.device_width * 8
            while shift + self.device_width * 8 <= size * 8:
                value |= self.status << shift
                shift += self.device_width * 8
            return value & size_mask(size)
        if self.cmd in (0x90, 0x98):
            query = self._devid_query if self.cmd == 0x90 else self._cfi_query
            value = 0
            for i in range(0, size, self.bank_width):
                value |= query(offset + i * self.bank_width) << (8 * i)
            return value & size_mask(size)
        # QEMU: an unknown state reads as read-array after resetting the state.
        self.wcycle, self.cmd = 0, CMD_READ_ARRAY
        return int.from_bytes(self.storage[offset:offset + size], "little")

    def _boff(self, offset: int) -> int:
        return offset >> (_ctz(self.bank_width) + _ctz(self.max_device_width)
                          - _ctz(self.device_width))

    def _replicate(self, value: int) -> int:
        """One device's response on every device of the bank."""
        bits = 8 * self.device_width
        for i in range(self.device_width, self.bank_width, self.device_width):
            value = (value & ~(((1 << bits) - 1) << (8 * i))) | (
                (value & ((1 << bits) - 1)) << (8 * i))
        return value & 0xFFFF_FFFF

    def _cfi_query(self, offset: int) -> int:
        boff = self._boff(offset)
        if boff >= len(self.cfi_table):
            return 0
        return self._replicate(self.cfi_table[boff])

    def _devid_query(self, offset: int) -> int:
        match self._boff(offset) & 0xFF:
            case 0:
                return self._replicate(self.ident[0])
            case 1:
                return self._replicate(self.ident[1])
            case _:
                return 0  # block lock status is not emulated

    # --- writes (commands) -------------------------------------------------------------

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < 0 or offset + size > self.size:
            self._bad(f"write of {size} bytes at {offset:#x} is outside the bank")
            return
        if offset % size:
            self._bad(f"unaligned write of {size} bytes at {offset:#x}")
            return
        value &= size_mask(size)
        if size > _MAX_ACCESS:
            self.write(offset, _MAX_ACCESS, value & 0xFFFF_FFFF)
            self.write(offset + _MAX_ACCESS, _MAX_ACCESS, value >> 32)
            return
        command = value & 0xFF
        if self.wcycle == 0:
            self._first_cycle(offset, command)
        elif self.wcycle == 1:
            self._second_cycle(offset, size, value, command)
        elif self.wcycle == 2 and self.cmd == 0xE8:
            self._buffer_data(offset, size, value)
        elif self.wcycle == 3 and self.cmd == 0xE8:
            if command == 0xD0 and not self.status & STATUS_PROGRAM_ERROR:
                self._flush_block()
                self.wcycle = 0
                self.status |= STATUS_READY
            else:
                self._block_offset = -1
                self._read_array()
        else:
            self._block_offset = -1
            self._unknown(offset, value)

    def _first_cycle(self, offset: int, command: int) -> None:
        match command:
            case 0x00 | 0xF0 | 0xFF:  # read array (0xF0: an AMD probe)
                self._read_array()
                return
            case 0x10 | 0x40 | 0x60 | 0x98:  # program, lock, CFI query: a second cycle
                pass
            case 0x20:  # block erase, done at once as in QEMU (0xD0 only confirms)
                start = offset & ~(self.sector_len - 1)
                if not self.read_only:
                    self.storage[start:start + self.sector_len] = b"\xFF" * self.sector_len
                    self._write_back(start, self.sector_len)
                else:
                    self.status |= STATUS_ERASE_ERROR
                self.status |= STATUS_READY
            case 0x50:  # clear status
                self.status = 0
                self._read_array()
                return
            case 0x70 | 0x90:  # read status / device ID: no second cycle
                self.cmd = command
                return
            case 0xE8:  # write to buffer
                self.status |= STATUS_READY
            case _:
                self._unknown(offset, command)
                return
        self.wcycle = 1
        self.cmd = command

    def _second_cycle(self, offset: int, size: int, value: int, command: int) -> None:
        match self.cmd:
            case 0x10 | 0x40:
                if not self.read_only:
                    self._store(offset, size, value)
                    self._write_back(offset, size)
                else:
                    self.status |= STATUS_PROGRAM_ERROR
                self.status |= STATUS_READY
                self.wcycle = 0
            case 0x20 | 0x28:
                if command == 0xD0:
                    self.wcycle = 0
                    self.status |= STATUS_READY
                elif command == 0xFF:
                    self._read_array()
                else:
                    self._unknown(offset, value)
            case 0xE8:
                self.counter = value & ((1 << (8 * self.device_width)) - 1)
                self.wcycle = 2
                mask = ~(self.writeblock_size - 1)
                self._block_offset = offset & mask
                self._block = bytearray(
                    self.storage[self._block_offset:self._block_offset + self.writeblock_size])
            case 0x60:
                if command in (0xD0, 0x01):
                    self.wcycle = 0
                    self.status |= STATUS_READY
                else:
                    self._read_array()
            case 0x98:
                if command == 0xFF:
                    self._read_array()
                # any other write stays in query mode, as QEMU does
            case _:
                self._unknown(offset, value)

    def _buffer_data(self, offset: int, size: int, value: int) -> None:
        if not self.read_only and self._block_offset != -1 and self._block is not None:
            start = offset - self._block_offset
            if start < 0 or start + size > self.writeblock_size:
                self.status |= STATUS_PROGRAM_ERROR
            else:
                self._block[start:start + size] = value.to_bytes(size, "little")
        else:
            self.status |= STATUS_PROGRAM_ERROR
        self.status |= STATUS_READY
        if not self.counter:
            self.wcycle = 3
        self.counter = (self.counter - 1) & 0xFFFF_FFFF_FFFF_FFFF

    def _flush_block(self) -> None:
        assert self._block is not None
        start = self._block_offset
        self.storage[start:start + self.writeblock_size] = self._block
        self._write_back(start, self.writeblock_size)
        self._block_offset = -1

    def _store(self, offset: int, size: int, value: int) -> None:
        self.storage[offset:offset + size] = value.to_bytes(size, "little")

    def _write_back(self, offset: int, size: int) -> None:
        """pflash_update: the changed bytes, widened to 512-byte sectors, to the image."""
        if self._image is None:
            return
        start = offset // _SECTOR * _SECTOR
        end = -(-(offset + size) // _SECTOR) * _SECTOR
        data = self.storage[start:end]
        written = 0
        while written < len(data):
            written += os.pwrite(self._image, data[written:], start + written)

    def _read_array(self) -> None:
        self.wcycle = 0
        self.cmd = CMD_READ_ARRAY

    def _unknown(self, offset: int, value: int) -> None:
        self._bad(f"unimplemented flash cmd sequence (offset {offset:#x}, wcycle "
                  f"{self.wcycle:#x} cmd {self.cmd:#x} value {value:#x})")
        self._read_array()

    def _bad(self, message: str) -> None:
        if self._log is not None:
            self._log(f"{self.name}: {message}")


def virt_flash_bank(unit: int, image: int | None = None, *, read_only: bool = False,
                    log: Callable[[str], None] | None = None) -> PflashCfi01:
    """QEMU virt's ``virt.flash<unit>`` bank (virt_flash_create1's properties)."""
    return PflashCfi01(f"virt.flash{unit}", image=image, read_only=read_only, log=log)
