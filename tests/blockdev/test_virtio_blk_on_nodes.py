"""virtio-blk (devices/virtio/blk.py) on block-layer nodes: the nodes are its backend."""

from __future__ import annotations

import struct
from pathlib import Path

from blockdev import BlockGraph, create_qcow2, open_node
from devices.virtio.blk import VIRTIO_BLK_F_RO, RequestType, Status
from tests.devices.test_virtio_blk import Blk

SECTOR = 512


def segment(sector: int, sectors: int, flags: int = 0) -> bytes:
    return struct.pack("<QII", sector, sectors, flags)


def test_guest_io_on_a_qcow2_node(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    create_qcow2(image, 1 << 20, cluster_size=4096)
    node = open_node({"driver": "qcow2", "discard": "unmap",
                      "file": {"driver": "file", "filename": str(image)}})
    blk = Blk(node)  # type: ignore[arg-type]
    assert blk.config(0, 8) == (1 << 20) // SECTOR
    data = bytes(range(256)) * 48  # sectors 7..30
    assert blk.status(RequestType.OUT, sector=7, out=data) == Status.OK
    _, _, answer = blk.submit(RequestType.IN, sector=7, data_in=len(data))
    assert answer == data + bytes([Status.OK])
    assert blk.status(RequestType.FLUSH) == Status.OK
    assert blk.status(RequestType.WRITE_ZEROES, out=segment(8, 16, 1)) == Status.OK
    assert blk.status(RequestType.DISCARD, out=segment(0, 8)) == Status.OK
    node.close()
    with open_node({"driver": "qcow2", "read-only": True,
                    "file": {"driver": "file", "filename": str(image)}}) as reader:
        assert reader.read(0, 24 * SECTOR) == bytes(24 * SECTOR)  # discarded, zeroed
        assert reader.read(24 * SECTOR, 7 * SECTOR) == data[17 * SECTOR:]


def test_read_only_and_corrupt_images_through_the_device(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    create_qcow2(image, 1 << 20)
    graph = BlockGraph(warn=lambda message: None)
    node = graph.open_image(str(image), format="qcow2", read_only=True)
    blk = Blk(node)  # type: ignore[arg-type]
    assert blk.driver.device_features() & VIRTIO_BLK_F_RO
    assert blk.status(RequestType.OUT, out=bytes(SECTOR)) == Status.IOERR
    graph.close_all()
    # An L1 entry pointing past the end: the guest sees an I/O error, no crash.
    with image.open("r+b") as f:
        f.seek(40)
        l1 = struct.unpack(">Q", f.read(8))[0]
        f.seek(l1)
        f.write(struct.pack(">Q", (1 << 63) | (1 << 40)))
    node = graph.open_image(str(image), format="qcow2")
    blk = Blk(node)  # type: ignore[arg-type]
    assert blk.status(RequestType.IN, data_in=SECTOR) == Status.IOERR
    assert blk.status(RequestType.IN, sector=8, data_in=SECTOR) == Status.IOERR  # unusable
    graph.close_all()
