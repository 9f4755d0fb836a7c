"""Split virtqueues (virtio 1.x, "Split Virtqueues"), read and written through GuestRam.

A queue is three areas of guest memory: the descriptor table (16-byte entries), the
available ring the driver fills (flags, idx, ring[size], used_event) and the used ring
the device fills (flags, idx, ring[size] of {id, len}, avail_event). Everything is
little-endian. The driver's mistakes (a loop, an index out of range, a buffer outside
RAM) raise VirtioError, which the transport turns into "device needs reset" as QEMU's
virtio_error does; they never escape into the emulator.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from devices.base import GuestMemoryError, GuestRam

DESC_SIZE = 16
VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
VIRTQ_AVAIL_F_NO_INTERRUPT = 1

# Feature bits the queue implementation itself understands (reserved range 24-40).
VIRTIO_RING_F_INDIRECT_DESC = 1 << 28
VIRTIO_RING_F_EVENT_IDX = 1 << 29

MAX_QUEUE_SIZE = 32768  # the spec's limit for split queues (16-bit indices, power of 2)
MAX_CHAIN_BYTES = 1 << 32  # "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes"

_DESC = struct.Struct("<QIHH")


# A bus master's access to guest-physical memory that is not RAM: GuestRam implementations
# raise it (devices/base.py), virtio devices treat it as the driver's error.
DmaError = GuestMemoryError


class VirtioError(Exception):
    """The driver broke the virtio protocol; the device stops until it is reset."""


@dataclass(frozen=True, slots=True)
class Buffer:
    """One descriptor's guest-physical buffer."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class Chain:
    """A descriptor chain taken from the available ring: device-readable buffers, then
    device-writable ones, addressed as two contiguous byte streams."""

    head: int
    readable: tuple[Buffer, ...]
    writable: tuple[Buffer, ...]
    ram: GuestRam

    @property
    def readable_length(self) -> int:
        return sum(b.length for b in self.readable)

    @property
    def writable_length(self) -> int:
        return sum(b.length for b in self.writable)

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes from offset ``offset`` of the readable stream (fewer at its end)."""
        return b"".join(_gather(self.ram, self.readable, offset, size))

    def write(self, offset: int, data: bytes) -> int:
        """Writes ``data`` at offset ``offset`` of the writable stream, truncated at its
        end; returns the number of bytes written."""
        spans = _spans(self.writable, offset, len(data))
        if len(spans) == 1:  # (most writes: a status byte, a header, a frame)
            addr, n = spans[0]
            self.ram.write(addr, data if n == len(data) else data[:n])
            return n
        written = 0
        for addr, n in spans:
            self.ram.write(addr, data[written:written + n])
            written += n
        return written


def _spans(buffers: tuple[Buffer, ...], offset: int, size: int) -> list[tuple[int, int]]:
    """(guest address, length) pieces covering [offset, offset + size) of the stream."""
    spans = []
    for buf in buffers:
        if size <= 0:
            break
        if offset >= buf.length:
            offset -= buf.length
            continue
        n = min(buf.length - offset, size)
        spans.append((buf.addr + offset, n))
        size -= n
        offset = 0
    return spans


def _gather(ram: GuestRam, buffers: tuple[Buffer, ...], offset: int, size: int) -> list[bytes]:
    return [ram.read(addr, n) for addr, n in _spans(buffers, offset, size)]


def need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """True when ``event_idx`` lies in the window (old_idx, new_idx] of a 16-bit index:
    the other side asked to be notified once that entry is written."""
    return (new_idx - event_idx - 1) & 0xFFFF < (new_idx - old_idx) & 0xFFFF


class Virtqueue:
    """The device side of one enabled split virtqueue.

    ``features`` are the negotiated feature bits (INDIRECT_DESC and EVENT_IDX matter
    here); ``interrupt`` is called when the driver should get a used-buffer notification.
    """

    def __init__(self, ram: GuestRam, size: int, desc: int, driver: int, device: int,
                 features: int, interrupt: Callable[[], None]) -> None:
        if not (1 <= size <= MAX_QUEUE_SIZE and size & (size - 1) == 0):
            raise VirtioError(f"queue size {size} is not a power of 2 in 1..{MAX_QUEUE_SIZE}")
        self.ram = ram
        self.size = size
        self.desc = desc
        self.driver = driver
        self.device = device
        self.features = features
        self.interrupt = interrupt
        self.last_avail_idx = 0
        # The heads of the entries past last_avail_idx known to be available since the
        # driver's avail idx was last read (QEMU's shadow_avail_idx): taken without
        # reading the idx again. Their ring slots are read in one access with the idx:
        # the driver wrote them before it moved the idx and may not rewrite them until
        # the device has used them.
        self._avail_heads: deque[int] = deque()
        self.used_idx = 0
        # Used elements pushed and not written yet: (head, written) from the ring slot of
        # used idx _used_start on. They are written with the used idx, in one access per
        # contiguous run (the driver cannot see them before the idx moves anyway).
        self._used_pending: list[int] = []
        self._used_start = 0
        self._published_used_idx = 0  # the used idx the driver can see in RAM
        self._unsignalled = False  # used entries written since the last notification check
        self._signalled_used = 0
        self._signalled_used_valid = False

    # -- ring fields --------------------------------------------------------------------

    def _u16(self, addr: int) -> int:
        return int.from_bytes(self.ram.read(addr, 2), "little")

    def _put_u16(self, addr: int, value: int) -> None:
        self.ram.write(addr, (value & 0xFFFF).to_bytes(2, "little"))

    @property
    def _event_idx(self) -> bool:
        return bool(self.features & VIRTIO_RING_F_EVENT_IDX)

    # -- taking buffers -----------------------------------------------------------------

    def pop(self) -> Chain | None:
        """The next available descriptor chain, or None when the ring is empty."""
        heads = self._avail_heads
        if not heads and not self._read_avail_idx():
            return None
        head = heads[0]
        if head >= self.size:
            raise VirtioError(f"driver made descriptor {head} available on a queue of "
                              f"{self.size}")
        chain = self._walk(head)
        heads.popleft()
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        return chain

    def _read_avail_idx(self) -> bool:
        """Reads the driver's avail idx; False when nothing new is available. Then, with
        EVENT_IDX, asks the driver to notify when it makes the next entry available
        (written once the ring is found empty rather than at every pop: while entries
        are known available the device comes back for them without a notification)."""
        avail_idx = self._u16(self.driver + 2)
        pending = (avail_idx - self.last_avail_idx) & 0xFFFF
        if pending > self.size:
            raise VirtioError(f"driver moved the available index from {self.last_avail_idx} "
                              f"to {avail_idx} on a queue of {self.size}")
        if pending:
            slot, size, ring = self.last_avail_idx % self.size, self.size, self.driver + 4
            first = min(pending, size - slot)  # up to the ring's end, then from its start
            data = self.ram.read(ring + 2 * slot, 2 * first)
            if first < pending:
                data += self.ram.read(ring, 2 * (pending - first))
            self._avail_heads.extend(struct.unpack(f"<{pending}H", data))
            return True
        if self._event_idx:
            self._put_u16(self.device + 4 + 8 * self.size, self.last_avail_idx)
            # The driver may have added an entry before it could see that request.
            avail_idx = self._u16(self.driver + 2)
            if avail_idx != self.last_avail_idx:
                return self._read_avail_idx()
        return False

    def _walk(self, head: int) -> Chain:
        # Most chains are one direct descriptor (a receive buffer, a transmitted frame
        # with its header in front): taken without the general walk.
        addr, length, flags, _ = _DESC.unpack(
            self.ram.read(self.desc + DESC_SIZE * head, DESC_SIZE))
        if length and not flags & (VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_INDIRECT):
            buffers = (Buffer(addr, length),)
            if flags & VIRTQ_DESC_F_WRITE:
                return Chain(head, (), buffers, self.ram)
            return Chain(head, buffers, (), self.ram)
        readable: list[Buffer] = []
        writable: list[Buffer] = []
        table, table_size = self.desc, self.size
        # An indirect table is read whole, in one access (Linux puts every buffer of a
        # request there); the ring's own table one descriptor at a time.
        indirect_table: bytes | None = None
        index, steps, total = head, 0, 0
        while True:
            if steps == table_size:
                raise VirtioError(f"descriptor chain from {head} is longer than its table "
                                  f"({table_size} entries): a loop")
            steps += 1
            if indirect_table is None:
                addr, length, flags, next_index = _DESC.unpack(
                    self.ram.read(table + DESC_SIZE * index, DESC_SIZE))
            else:
                addr, length, flags, next_index = _DESC.unpack_from(indirect_table,
                                                                    DESC_SIZE * index)
            if flags & VIRTQ_DESC_F_INDIRECT:
                if indirect_table is not None:
                    raise VirtioError("indirect descriptor inside an indirect table")
                if not self.features & VIRTIO_RING_F_INDIRECT_DESC:
                    raise VirtioError("indirect descriptor without VIRTIO_F_INDIRECT_DESC")
                if flags & VIRTQ_DESC_F_NEXT:
                    raise VirtioError("indirect descriptor with VIRTQ_DESC_F_NEXT")
                entries, rest = divmod(length, DESC_SIZE)
                if entries == 0 or rest or entries > MAX_QUEUE_SIZE:
                    raise VirtioError(f"indirect table of {length} bytes")
                indirect_table = self.ram.read(addr, length)
                table, table_size = addr, entries
                index, steps = 0, 0
                continue
            if length == 0:
                raise VirtioError("zero-sized buffer in a descriptor chain")
            total += length
            if total > MAX_CHAIN_BYTES:
                raise VirtioError("descriptor chain longer than 4 GiB")
            if flags & VIRTQ_DESC_F_WRITE:
                writable.append(Buffer(addr, length))
            elif writable:
                raise VirtioError("device-readable buffer after a device-writable one")
            else:
                readable.append(Buffer(addr, length))
            if not flags & VIRTQ_DESC_F_NEXT:
                return Chain(head, tuple(readable), tuple(writable), self.ram)
            if next_index >= table_size:
                raise VirtioError(f"descriptor next {next_index} outside a table of "
                                  f"{table_size}")
            index = next_index

    # -- returning buffers --------------------------------------------------------------

    def push(self, chain: Chain, written: int) -> None:
        """Puts ``chain`` on the used ring; ``written`` is the number of bytes the device
        wrote from the start of its writable buffers."""
        pending = self._used_pending
        if not pending:
            self._used_start = self.used_idx
        pending += (chain.head, written)
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self._unsignalled = True

    def flush_used(self) -> None:
        """Writes the used elements pushed so far and publishes the used idx: the driver
        sees them all (once per batch of pushes, as QEMU's virtqueue_flush after
        virtqueue_fill)."""
        pending = self._used_pending
        if pending:
            count, size = len(pending) // 2, self.size
            slot = self._used_start % size
            first = min(count, size - slot)  # up to the ring's end, then from its start
            elems = struct.pack(f"<{2 * count}I", *pending)
            ring = self.device + 4
            self.ram.write(ring + 8 * slot, elems if first == count else elems[:8 * first])
            if first < count:
                self.ram.write(ring, elems[8 * first:])
            pending.clear()
        if self._published_used_idx != self.used_idx:
            self._put_u16(self.device + 2, self.used_idx)
            self._published_used_idx = self.used_idx

    def notify_used(self) -> None:
        """Publishes the entries pushed since the last call and sends a used-buffer
        notification for them, unless the driver suppressed it (avail flags, or
        used_event with EVENT_IDX)."""
        self.flush_used()
        if not self._unsignalled:
            return
        self._unsignalled = False
        if self._event_idx:
            old, valid = self._signalled_used, self._signalled_used_valid
            self._signalled_used, self._signalled_used_valid = self.used_idx, True
            used_event = self._u16(self.driver + 4 + 2 * self.size)
            wanted = not valid or need_event(used_event, self.used_idx, old)
        else:
            wanted = not self._u16(self.driver) & VIRTQ_AVAIL_F_NO_INTERRUPT
        if wanted:
            self.interrupt()
