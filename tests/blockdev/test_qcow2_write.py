"""Images written here pass ``qemu-img check`` with no errors and no leaks, and match
``qemu-img compare`` against a raw file holding what was written."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from blockdev import BlockError, Qcow2Node, create_qcow2, open_node
from blockdev.qcow2.format import INCOMPAT_DIRTY
from tests.blockdev.support import (
    assert_consistent,
    assert_same_as_raw,
    open_qcow2,
    qemu_img,
    qemu_io,
    qemu_raw,
    random_data_image,
    requires_qemu_img,
)

pytestmark = requires_qemu_img


def random_ops(node: Qcow2Node, model: bytearray, rng: random.Random, count: int,
               max_length: int = 200_000) -> None:
    """Random writes, write_zeroes and discards, applied to ``model`` too (a discard of
    whole clusters reads back as zeros here: no backing file)."""
    size = len(model)
    for _ in range(count):
        offset = rng.randrange(size)
        length = min(rng.randrange(1, max_length), size - offset)
        op = rng.random()
        if op < 0.7:
            data = rng.randbytes(length) if rng.random() < 0.8 else b"\x5a" * length
            node.write(offset, data)
            model[offset:offset + length] = data
        elif op < 0.85:
            node.write_zeroes(offset, length, may_unmap=rng.random() < 0.5)
            model[offset:offset + length] = bytes(length)
        else:
            node.discard(offset, length)
            cs = node.cluster_size
            start = -(-offset // cs) * cs
            end = min(offset + length, size)
            end = end if end == size else end // cs * cs
            if end > start:
                model[start:end] = bytes(end - start)
        if rng.random() < 0.05:
            node.flush()


@pytest.mark.parametrize("version,cluster_size,refcount_bits,lazy", [
    (3, 65536, 16, False),
    (2, 65536, 16, False),
    (3, 512, 16, False),
    (3, 4096, 1, False),
    (3, 4096, 2, False),
    (3, 2048, 4, False),
    (3, 1024, 8, False),
    (3, 4096, 32, False),
    (3, 512, 64, False),
    (3, 65536, 16, True),
    (2, 2 << 20, 16, False),
])
def test_random_io_keeps_the_image_consistent(version: int, cluster_size: int,
                                              refcount_bits: int, lazy: bool,
                                              tmp_path: Path) -> None:
    size = 12 << 20
    image = tmp_path / "image.qcow2"
    create_qcow2(image, size, version=version, cluster_size=cluster_size,
                 refcount_bits=refcount_bits, lazy_refcounts=lazy)
    assert_consistent(image)
    model = bytearray(size)
    rng = random.Random(cluster_size * 7 + refcount_bits + version)
    with open_qcow2(image, discard="unmap") as node:
        assert isinstance(node, Qcow2Node)
        random_ops(node, model, rng, 150)
        assert node.read(0, size) == model
    assert_consistent(image)
    assert_same_as_raw(image, bytes(model), tmp_path)
    with open_qcow2(image, discard="unmap") as node:  # a second session on the same image
        random_ops(node, model, rng, 60)
    assert_consistent(image)
    assert_same_as_raw(image, bytes(model), tmp_path)


def test_refcount_table_grows(tmp_path: Path) -> None:
    # 512-byte clusters with 64-bit refcounts: one refcount block counts 64 clusters and
    # a one-cluster refcount table covers 2 MiB, so 6 MiB of data moves it twice.
    image = tmp_path / "grow.qcow2"
    size = 6 << 20
    create_qcow2(image, size, cluster_size=512, refcount_bits=64)
    data = random.Random(3).randbytes(size)
    with open_qcow2(image) as node:
        assert isinstance(node, Qcow2Node)
        first_table = node.refcounts.table_offset
        for offset in range(0, size, 300_000):
            node.write(offset, data[offset:offset + 300_000])
        assert node.refcounts.table_offset != first_table
        assert node.refcounts.table_clusters > 1
    assert_consistent(image)
    assert_same_as_raw(image, data, tmp_path)


def test_zero_writes_make_zero_clusters_in_version_3(tmp_path: Path) -> None:
    image = tmp_path / "z.qcow2"
    create_qcow2(image, 4 << 20)
    with open_qcow2(image) as node:
        node.write(0, b"\xff" * (4 << 20))
        node.write_zeroes(1 << 20, 1 << 20)  # keeps its clusters, marked zero
        node.write_zeroes(100, 1000)  # inside a cluster: written as zeros
    mapping = json.loads(qemu_img("map", "--output=json", image))
    zero_extents = [(e["start"], e["length"]) for e in mapping if e["zero"]]
    assert (1 << 20, 1 << 20) in zero_extents
    data = qemu_raw(image, tmp_path)
    assert data == b"\xff" * 100 + bytes(1000) + b"\xff" * ((1 << 20) - 1100) + \
        bytes(1 << 20) + b"\xff" * (2 << 20)
    assert_consistent(image)


def test_discard_is_ignored_unless_discard_unmap(tmp_path: Path) -> None:
    image = tmp_path / "d.qcow2"
    create_qcow2(image, 1 << 20)
    with open_qcow2(image) as node:
        node.write(0, b"\x01" * (1 << 20))
        node.discard(0, 1 << 20)  # discard=ignore, QEMU's default
        assert node.read(0, 16) == b"\x01" * 16
    with open_qcow2(image, discard="unmap") as node:
        node.discard(0, 1 << 20)
        assert node.read(0, 1 << 20) == bytes(1 << 20)
    mapping = json.loads(qemu_img("map", "--output=json", image))
    assert not any(extent["data"] for extent in mapping)
    assert_consistent(image)


def test_flush_makes_writes_visible_to_another_reader(tmp_path: Path) -> None:
    image = tmp_path / "f.qcow2"
    create_qcow2(image, 2 << 20)
    node = open_qcow2(image)
    node.write(70_000, b"durable")
    node.flush()
    # Without closing (the writer could be killed now), the file holds the data.
    reader = open_qcow2(image, **{"read-only": True, "force-share": True})
    assert reader.read(70_000, 7) == b"durable"
    reader.close()
    node.close()


def test_snapshots_create_apply_delete(tmp_path: Path) -> None:
    size = 8 << 20
    image = tmp_path / "snap.qcow2"
    create_qcow2(image, size)
    rng = random.Random(11)
    model = bytearray(size)
    states: dict[str, bytes] = {}
    with open_qcow2(image, discard="unmap") as node:
        assert isinstance(node, Qcow2Node)
        random_ops(node, model, rng, 40)
        node.create_snapshot("base")
        states["base"] = bytes(model)
        random_ops(node, model, rng, 40)
        node.create_snapshot("second")
        states["second"] = bytes(model)
        random_ops(node, model, rng, 40)
        assert node.read(0, size) == model
    assert_consistent(image)
    assert_same_as_raw(image, bytes(model), tmp_path)
    listing = qemu_img("snapshot", "-l", image)
    assert " base " in listing and " second " in listing

    # qemu-img sees each snapshot's contents as they were.
    for name, state in states.items():
        copy = tmp_path / f"{name}.qcow2"
        copy.write_bytes(image.read_bytes())
        qemu_img("snapshot", "-a", name, copy)
        assert qemu_raw(copy, tmp_path) == state

    with open_qcow2(image, discard="unmap") as node:
        node.apply_snapshot("base")
        assert node.read(0, size) == states["base"]
        model = bytearray(states["base"])
        random_ops(node, model, rng, 30)
        node.delete_snapshot("second")
        node.create_snapshot("third")
        states["third"] = bytes(model)
        random_ops(node, model, rng, 30)
        node.delete_snapshot("base")
        assert [sn.name for sn in node.snapshots] == ["third"]
    assert_consistent(image)
    assert_same_as_raw(image, bytes(model), tmp_path)
    with open_qcow2(image) as node:
        node.apply_snapshot("third")
        node.delete_snapshot("third")
        assert node.snapshots == []
    assert_consistent(image)
    assert_same_as_raw(image, states["third"], tmp_path)


def test_snapshot_ids_and_names_as_qemu(tmp_path: Path) -> None:
    image = tmp_path / "ids.qcow2"
    qemu_img("create", "-f", "qcow2", image, "1M")
    qemu_img("snapshot", "-c", "theirs", image)
    with open_qcow2(image) as node:
        sn = node.create_snapshot("ours")
        assert sn.id == "2"
        node.create_snapshot("ours")  # duplicate names are allowed, as in QEMU
        with pytest.raises(BlockError, match="Snapshot 'nothing' not found"):
            node.apply_snapshot("nothing")
        assert node.find_snapshot("1").name == "theirs"
        assert node.find_snapshot("ours").id == "2"
    lines = qemu_img("snapshot", "-l", image).splitlines()[2:]
    assert [line.split()[:2] for line in lines] == [["1", "theirs"], ["2", "ours"],
                                                     ["3", "ours"]]
    assert_consistent(image)


def test_vm_state_is_stored_with_a_snapshot(tmp_path: Path) -> None:
    image = tmp_path / "vm.qcow2"
    create_qcow2(image, 3 << 20)
    state = random.Random(5).randbytes(300_000)
    with open_qcow2(image) as node:
        assert isinstance(node, Qcow2Node)
        node.write(0, b"disk")
        node.write_vm_state(0, state)
        assert node.read_vm_state(0, len(state)) == state
        node.create_snapshot("vm", vm_state_size=len(state), vm_clock_nsec=5 * 10**9)
        # The active image drops its copy of the state; the snapshot keeps it.
        assert node.read_vm_state(0, 16) == bytes(16)
        node.write(0, b"DISK")
    listing = qemu_img("snapshot", "-l", image)
    assert "293 KiB" in listing and "00:00:05.000" in listing
    assert_consistent(image)
    with open_qcow2(image) as node:
        node.apply_snapshot("vm")
        assert node.read(0, 4) == b"disk"
        assert node.read_vm_state(0, len(state)) == state
    assert_consistent(image)


@pytest.mark.parametrize("backing_format", ["raw", "qcow2"])
def test_overlay_on_backing_file_copies_on_write(backing_format: str,
                                                 tmp_path: Path) -> None:
    size = 5 << 20
    base_raw = tmp_path / "base.raw"
    base_data = random_data_image(base_raw, size, seed=4)
    base = base_raw
    if backing_format == "qcow2":
        base = tmp_path / "base.qcow2"
        qemu_img("convert", "-c", "-O", "qcow2", base_raw, base)
    before = base.read_bytes()
    overlay = tmp_path / "overlay.qcow2"
    create_qcow2(overlay, size, backing_file=base.name, backing_format=backing_format)
    model = bytearray(base_data)
    rng = random.Random(9)
    with open_qcow2(overlay, discard="unmap") as node:
        assert node.backing is not None and node.backing.read_only
        for _ in range(60):
            offset = rng.randrange(size)
            data = rng.randbytes(min(rng.randrange(1, 100_000), size - offset))
            node.write(offset, data)
            model[offset:offset + len(data)] = data
        node.write_zeroes(1 << 20, 1 << 20)
        model[1 << 20:2 << 20] = bytes(1 << 20)
        node.discard(3 << 20, 64 << 10)  # reads zeros after, not the backing file
        model[3 << 20:(3 << 20) + (64 << 10)] = bytes(64 << 10)
        assert node.read(0, size) == model
    assert base.read_bytes() == before
    assert_consistent(overlay)
    assert qemu_raw(overlay, tmp_path) == model


def test_writing_into_compressed_and_shared_clusters(tmp_path: Path) -> None:
    source = tmp_path / "s.raw"
    data = bytearray(random_data_image(source, 4 << 20, seed=12))
    image = tmp_path / "c.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", source, image)
    qemu_img("snapshot", "-c", "before", image)
    with open_qcow2(image) as node:
        for offset in (0, 70_000, 1 << 20, (3 << 20) + 5):
            node.write(offset, b"\x99" * 3000)
            data[offset:offset + 3000] = b"\x99" * 3000
    assert_consistent(image)
    assert qemu_raw(image, tmp_path) == data
    qemu_img("snapshot", "-a", "before", image)
    assert qemu_raw(image, tmp_path) == source.read_bytes()


def test_lazy_refcounts_dirty_image_is_repaired_on_open(tmp_path: Path) -> None:
    image = tmp_path / "lazy.qcow2"
    create_qcow2(image, 4 << 20, lazy_refcounts=True)
    # A process that writes and dies without closing leaves the dirty bit and counts
    # that lag behind the L2 tables it flushed.
    script = (f"from blockdev import open_node\n"
              f"n = open_node({{'driver': 'qcow2', 'file': {{'driver': 'file', "
              f"'filename': {str(image)!r}}}}})\n"
              f"n.write(0, b'\\x42' * 3000000)\n"
              f"n.l2_cache.write_dirty()\n"
              f"import os; os._exit(0)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with open_qcow2(image, **{"read-only": True}) as node:
        assert isinstance(node, Qcow2Node)
        assert node.header.incompatible_features & INCOMPAT_DIRTY
        assert node.read(0, 3_000_000) == b"\x42" * 3_000_000
    report = subprocess.run(["qemu-img", "check", str(image)], capture_output=True,
                            text=True)
    assert report.returncode != 0  # the counts really are behind
    with open_qcow2(image) as node:  # writable: repaired, then clean
        assert not node.dirty
    assert_consistent(image)
    assert qemu_raw(image, tmp_path) == b"\x42" * 3_000_000 + bytes((4 << 20) - 3_000_000)


def test_images_we_write_open_in_qemu_io(tmp_path: Path) -> None:
    image = tmp_path / "q.qcow2"
    create_qcow2(image, 1 << 20, version=2)
    with open_qcow2(image) as node:
        node.write(4096, b"\x77" * 8192)
    qemu_io(image, "read -P 0x77 4096 8192", "read -P 0 0 4096", "write -P 0x11 0 512")
    with open_qcow2(image) as node:
        assert node.read(0, 512) == b"\x11" * 512


def test_create_rejects_bad_parameters(tmp_path: Path) -> None:
    image = tmp_path / "x.qcow2"
    with pytest.raises(BlockError, match="power of two"):
        create_qcow2(image, 1 << 20, cluster_size=3000)
    with pytest.raises(BlockError, match="compatibility level"):
        create_qcow2(image, 1 << 20, version=2, refcount_bits=8)
    with pytest.raises(BlockError, match="multiple of 512"):
        create_qcow2(image, 1000)


def test_read_only_node_refuses_writes(tmp_path: Path) -> None:
    image = tmp_path / "ro.qcow2"
    create_qcow2(image, 1 << 20)
    with open_node({"driver": "qcow2", "read-only": True,
                    "file": {"driver": "file", "filename": str(image)}}) as node:
        with pytest.raises(OSError):
            node.write(0, b"x")
        with pytest.raises(OSError):
            node.write_zeroes(0, 512)
        with pytest.raises(OSError):
            node.create_snapshot("s")
