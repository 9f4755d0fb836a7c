"""virtio-net (virtio 1.x, "Network Device") without offloads.

Queue 0 receives (device-writable buffers the driver posts), queue 1 transmits. Every
frame on either queue is preceded by the 12-byte ``virtio_net_hdr_v1`` (with
VIRTIO_F_VERSION_1 the header always has ``num_buffers``). No checksum or segmentation
offload is offered, so the header of a transmitted frame carries nothing the device
must act on and a received frame's header is all zeros but ``num_buffers``.

Features: MAC (the address in the configuration space), STATUS (link up/down) and
MRG_RXBUF (a received frame may span several posted buffers; Linux then posts
page-sized ones); MTU with ``host_mtu`` (the MTU the driver is to use, in the
configuration space); MQ and CTRL_VQ with ``multiqueue`` (QEMU's ``mq=on``): the
backends here have one queue pair (QEMU's user and socket netdevs take no
``queues=``), so the device has one pair and the control queue, which answers
VQ_PAIRS_SET. The rest of QEMU's set (offloads, the control queue's RX, MAC and VLAN
classes) is not offered; Linux works without them.

Frames go out through ``peer`` (a network backend) and come in through
:meth:`VirtioNet.receive`. A frame that arrives while the driver has no buffer posted
waits in a bounded queue until it posts some, as QEMU's net queue holds it.
"""

from __future__ import annotations

import logging
import re
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from devices.base import GuestRam, StateError, StateValue
from devices.virtio.queue import Buffer, Chain, VirtioError, Virtqueue

log = logging.getLogger(__name__)

VIRTIO_ID_NET = 1

# Feature bits (device-specific, 0-23).
VIRTIO_NET_F_MTU = 1 << 3
VIRTIO_NET_F_MAC = 1 << 5
VIRTIO_NET_F_MRG_RXBUF = 1 << 15
VIRTIO_NET_F_STATUS = 1 << 16
VIRTIO_NET_F_CTRL_VQ = 1 << 17
VIRTIO_NET_F_MQ = 1 << 22

# virtio_net_config.status bits.
VIRTIO_NET_S_LINK_UP = 1

RX_QUEUE, TX_QUEUE, CTRL_QUEUE = 0, 1, 2  # the control queue follows the one pair
QUEUE_MAX_SIZE = 256  # QEMU's default rx_queue_size and tx_queue_size
CTRL_QUEUE_SIZE = 64  # QEMU's control queue

# The control queue: a command is virtio_net_ctrl_hdr (class, command), its data, and
# a device-writable ack byte.
VIRTIO_NET_OK, VIRTIO_NET_ERR = 0, 1
VIRTIO_NET_CTRL_MQ = 4
VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET = 0

# virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
# num_buffers.
NET_HDR = struct.Struct("<BBHHHHH")
NET_HDR_SIZE = NET_HDR.size  # 12

# A frame as the wire carries it without FCS: at most 1514 bytes for a 1500-byte MTU,
# more with a VLAN tag. Transmitted chains longer than this are refused (QEMU's limit
# is 64 KiB of payload for its GSO; without GSO a bigger frame is the driver's error).
MAX_FRAME = 65535
# Frames held for the driver while it has no receive buffers (QEMU's net queue holds
# 10000; TCP retransmits whatever is dropped beyond that).
MAX_PENDING_FRAMES = 1024

# QEMU's default MAC is 52:54:00:12:34:56, the last byte counting up per NIC.
DEFAULT_MAC_PREFIX = bytes.fromhex("525400123400")
DEFAULT_MAC_FIRST = 0x56

_MAC = re.compile(r"^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$")


def parse_mac(text: str) -> bytes | None:
    """``52:54:00:12:34:56`` as six bytes, or None when it is not a MAC address (QEMU
    accepts one or two hex digits per byte, ':' or '-' separated)."""
    normalized = text.replace("-", ":")
    if not _MAC.match(normalized):
        return None
    return bytes(int(part, 16) for part in normalized.split(":"))


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def default_mac(index: int) -> bytes:
    """The MAC QEMU gives the ``index``-th NIC without ``mac=`` (qemu_macaddr_default_if_unset)."""
    return DEFAULT_MAC_PREFIX[:5] + bytes([(DEFAULT_MAC_FIRST + index) & 0xFF])


class NetPeer(Protocol):
    """Where a NIC's transmitted frames go (a network backend or a hub port)."""

    def send(self, frame: bytes) -> None:
        """One Ethernet frame from the guest (without FCS)."""
        ...


class Transport(Protocol):
    """What the NIC uses of its transport (devices.virtio.mmio.VirtioMmio)."""

    def complete(self, index: int, action: Callable[[Virtqueue], None]) -> None: ...

    def config_changed(self) -> None: ...

    ram: GuestRam  # where the queues' buffers are (chains restored by loadvm)


class NetBackend(NetPeer, Protocol):
    """A network backend a NIC plugs into (``-netdev``): it sends frames to the one
    ``receive`` it is connected to."""

    @property
    def connected(self) -> bool:
        """Whether a NIC is connected already (a backend has one peer)."""
        ...

    def connect(self, receive: Callable[[bytes], None],
                set_link: Callable[[bool], None] | None = None, *,
                receive_batch: Callable[[Sequence[bytes]], None] | None = None) -> None:
        """Frames for the NIC go to ``receive``; ``set_link`` switches the NIC's link
        when the backend's is switched (QEMU's set_link on a netdev); frames the backend
        produces together may go to ``receive_batch`` at once."""
        ...


class VirtioNet:
    """A virtio network device (device ID 1) with MAC ``mac`` connected to ``peer``.

    The transport calls :meth:`bind_transport` with itself: its ``complete(queue,
    action)`` lets frames received outside a queue notification use the receive queue
    and raise its interrupt, its ``config_changed()`` tells the driver the link status
    changed.
    """

    name = "virtio-net-device"
    device_id = VIRTIO_ID_NET
    max_queue_pairs = 1

    def __init__(self, mac: bytes, peer: NetPeer | None = None, *, host_mtu: int = 0,
                 multiqueue: bool = False) -> None:
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        if not 0 <= host_mtu <= 0xFFFF:
            raise ValueError(f"host_mtu {host_mtu} is not a 16-bit value")
        self.features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MRG_RXBUF
        if host_mtu:
            self.features |= VIRTIO_NET_F_MTU
        if multiqueue:
            self.features |= VIRTIO_NET_F_MQ | VIRTIO_NET_F_CTRL_VQ
        self.queue_max_sizes: tuple[int, ...] = (QUEUE_MAX_SIZE, QUEUE_MAX_SIZE) + (
            (CTRL_QUEUE_SIZE,) if multiqueue else ())
        self.host_mtu = host_mtu
        self.mac = mac
        self.peer = peer
        self.link_up = True
        self._transport: Transport | None = None
        self._pending: deque[bytes] = deque()
        self.dropped = 0  # frames lost because the driver posted no buffers in time
        self.reset()

    def bind_transport(self, transport: Transport) -> None:
        self._transport = transport

    def reset(self) -> None:
        self.negotiated = 0
        # Chains taken from the receive queue but not filled yet (a frame needing more
        # buffers than were available): they are the device's until used or reset.
        self._rx_chains: deque[Chain] = deque()
        self._pending.clear()

    # -- savevm ---------------------------------------------------------------------------

    state_version = 1

    def save_state(self) -> dict[str, StateValue]:
        """The features, link, frames waiting for buffers, and the receive chains taken
        from the queue but not filled yet (the queue's index is past them)."""
        return {"negotiated": self.negotiated, "link_up": self.link_up,
                "dropped": self.dropped, "pending": list(self._pending),
                "rx_chains": [[chain.head, [[b.addr, b.length] for b in chain.readable],
                               [[b.addr, b.length] for b in chain.writable]]
                              for chain in self._rx_chains]}

    def load_state(self, saved: dict[str, StateValue]) -> None:
        try:
            negotiated, link_up = int(saved["negotiated"]), bool(saved["link_up"])
            dropped = int(saved["dropped"])
            pending = [bytes(frame) for frame in saved["pending"]]
            chains = deque(self._chain(entry) for entry in saved["rx_chains"])
        except (KeyError, TypeError, ValueError):
            raise StateError("virtio-net: saved state does not fit") from None
        self.negotiated, self.dropped = negotiated, dropped
        self._pending = deque(pending)
        self._rx_chains = chains
        if link_up != self.link_up:
            self.link_up = link_up  # (the restored config generation already counts it)

    def _chain(self, entry: StateValue) -> Chain:
        head, readable, writable = entry
        if self._transport is None:
            raise ValueError("no transport")
        return Chain(int(head), tuple(Buffer(int(a), int(n)) for a, n in readable),
                     tuple(Buffer(int(a), int(n)) for a, n in writable), self._transport.ram)

    # -- configuration --------------------------------------------------------------------

    def set_features(self, features: int) -> bool:
        self.negotiated = features
        return True

    def config(self) -> bytes:
        # struct virtio_net_config: mac[6], le16 status, le16 max_virtqueue_pairs, le16
        # mtu; as long as the offered features need (QEMU's virtio_net_cfg_size).
        status = VIRTIO_NET_S_LINK_UP if self.link_up else 0
        data = self.mac + struct.pack("<HHH", status, self.max_queue_pairs, self.host_mtu)
        if self.features & VIRTIO_NET_F_MTU:
            return data
        return data[:10] if self.features & VIRTIO_NET_F_MQ else data[:8]

    def write_config(self, offset: int, data: bytes) -> None:
        pass  # with VERSION_1 the MAC is read-only (the control queue would set it)

    def set_link(self, up: bool) -> None:
        """QEMU's ``set_link``: the status field changes and the driver gets a
        configuration change notification; while down, frames are neither sent nor
        received."""
        if up == self.link_up:
            return
        self.link_up = up
        if self._transport is not None:
            self._transport.config_changed()

    # -- transmit -------------------------------------------------------------------------

    def handle_queue(self, index: int, queue: Virtqueue) -> None:
        if index == TX_QUEUE:
            self._transmit(queue)
        elif index == RX_QUEUE:
            # New receive buffers: frames that were waiting can go in now.
            self._flush_pending(queue)
        elif index == CTRL_QUEUE and self.features & VIRTIO_NET_F_CTRL_VQ:
            self._control(queue)

    def _control(self, queue: Virtqueue) -> None:
        """Control commands (QEMU's virtio_net_handle_ctrl): only the MQ class is
        offered; VQ_PAIRS_SET succeeds for 1 to max_virtqueue_pairs pairs."""
        while (chain := queue.pop()) is not None:
            if chain.readable_length < 2 or chain.writable_length < 1:
                raise VirtioError("virtio-net ctrl missing headers")
            command_class, command = chain.read(0, 2)
            status = VIRTIO_NET_ERR
            if (command_class, command) == (VIRTIO_NET_CTRL_MQ,
                                            VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET):
                data = chain.read(2, chain.readable_length - 2)
                if (len(data) == 2 and self.negotiated & VIRTIO_NET_F_MQ
                        and 1 <= struct.unpack("<H", data)[0] <= self.max_queue_pairs):
                    status = VIRTIO_NET_OK
            chain.write(0, bytes([status]))
            queue.push(chain, 1)

    def _transmit(self, queue: Virtqueue) -> None:
        while (chain := queue.pop()) is not None:
            length = chain.readable_length
            if length < NET_HDR_SIZE:
                raise VirtioError("virtio-net transmit chain shorter than its header")
            if length - NET_HDR_SIZE > MAX_FRAME:
                raise VirtioError(f"virtio-net transmit frame of {length - NET_HDR_SIZE} "
                                  "bytes")
            frame = chain.read(NET_HDR_SIZE, length - NET_HDR_SIZE)
            queue.push(chain, 0)
            if self.link_up and self.peer is not None and frame:
                self.peer.send(frame)

    # -- receive --------------------------------------------------------------------------

    def receive(self, frame: bytes) -> None:
        """A frame for the guest: into the receive queue now, or held until the driver
        posts buffers (dropped while the link is down or the driver is not ready)."""
        self.receive_batch((frame,))

    def receive_batch(self, frames: Sequence[bytes]) -> None:
        """Frames for the guest, in order, as :meth:`receive` each, with one used-buffer
        notification decision for all (a backend hands over what one of its rounds
        produced: the driver is told once, as when the device batches used buffers)."""
        if not self.link_up or self._transport is None or not frames:
            return
        if self._pending:
            for frame in frames:
                self._hold(frame)
            return
        delivered = 0

        def action(queue: Virtqueue) -> None:
            nonlocal delivered
            deliver = self._deliver
            for frame in frames:
                if not deliver(queue, frame):
                    return
                delivered += 1

        self._transport.complete(RX_QUEUE, action)
        for frame in frames[delivered:]:
            self._hold(frame)

    def _hold(self, frame: bytes) -> None:
        if len(self._pending) >= MAX_PENDING_FRAMES:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(frame)

    def _flush_pending(self, queue: Virtqueue) -> None:
        while self._pending and self._deliver(queue, self._pending[0]):
            self._pending.popleft()

    def _deliver(self, queue: Virtqueue, frame: bytes) -> bool:
        """Writes ``frame`` with its header into receive buffers; False (nothing used)
        when the driver has not posted enough of them yet."""
        total = NET_HDR_SIZE + len(frame)
        mergeable = bool(self.negotiated & VIRTIO_NET_F_MRG_RXBUF)
        if not self._rx_chains:
            # The usual case: no chain left over, and the next one holds the frame.
            chain = queue.pop()
            if chain is None:
                return False
            room = chain.writable_length
            if room == 0:
                raise VirtioError("virtio-net receive buffer that is not device-writable")
            if room >= total:
                written = chain.write(0, NET_HDR.pack(0, 0, 0, 0, 0, 0, 1) + frame)
                queue.push(chain, written)
                return True
            self._rx_chains.append(chain)
        # Take chains until the frame fits (one chain without MRG_RXBUF).
        room = sum(c.writable_length for c in self._rx_chains)
        while room < total and (mergeable or not self._rx_chains):
            chain = queue.pop()
            if chain is None:
                return False
            if chain.writable_length == 0:
                raise VirtioError("virtio-net receive buffer that is not device-writable")
            self._rx_chains.append(chain)
            room += chain.writable_length
        data = frame
        if not mergeable:
            chain = self._rx_chains.popleft()
            if total > chain.writable_length:
                # The driver must post buffers for a whole frame; QEMU truncates too.
                log.warning("virtio-net: %d-byte frame truncated to a %d-byte buffer",
                            len(frame), chain.writable_length - NET_HDR_SIZE)
            written = chain.write(0, NET_HDR.pack(0, 0, 0, 0, 0, 0, 1) + data)
            queue.push(chain, written)
            return True
        used: list[tuple[Chain, int]] = []
        offset = 0
        while offset < total:
            chain = self._rx_chains.popleft()
            n = min(chain.writable_length, total - offset)
            used.append((chain, n))
            offset += n
        # num_buffers is known before anything is written: the header goes out with
        # the data (the driver sees none of it before the used idx moves).
        stream = NET_HDR.pack(0, 0, 0, 0, 0, 0, len(used)) + data
        offset = 0
        for chain, n in used:
            chain.write(0, stream if n == total else stream[offset:offset + n])
            offset += n
        for chain, n in used:
            queue.push(chain, n)
        return True

    @property
    def pending_frames(self) -> int:
        return len(self._pending)
