"""Images written by qemu-img and qemu-io read here exactly as ``qemu-img convert -O raw``
reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockdev import Qcow2Node, open_node
from tests.blockdev.support import (
    open_qcow2,
    qemu_img,
    qemu_io,
    qemu_raw,
    random_data_image,
    requires_qemu_img,
)

pytestmark = requires_qemu_img

SIZE = 6 << 20


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "source.raw"
    random_data_image(path, SIZE, seed=7)
    return path


def read_all(image: Path, fmt: str | None = "qcow2") -> bytes:
    options: dict = {"file": {"driver": "file", "filename": str(image)}, "read-only": True}
    if fmt:
        options["driver"] = fmt
    with open_node(options, warn=lambda message: None) as node:
        return node.read(0, node.size)


@pytest.mark.parametrize("options", [
    ["-o", "compat=0.10"],  # version 2
    [],  # version 3, 64 KiB clusters
    ["-o", "cluster_size=512"],
    ["-o", "cluster_size=2M"],
    ["-c"],  # compressed clusters
    ["-c", "-o", "cluster_size=4096"],
    ["-c", "-o", "compat=0.10"],
    ["-o", "refcount_bits=1,cluster_size=4096"],
    ["-o", "refcount_bits=2"],
    ["-o", "refcount_bits=4"],
    ["-o", "refcount_bits=8"],
    ["-o", "refcount_bits=32"],
    ["-o", "refcount_bits=64,cluster_size=1024"],
    ["-o", "lazy_refcounts=on"],
    ["-o", "preallocation=metadata"],
    ["-o", "preallocation=falloc"],
], ids=lambda options: " ".join(options) or "default")
def test_converted_image_reads_like_qemu(options: list[str], source: Path,
                                         tmp_path: Path) -> None:
    image = tmp_path / "image.qcow2"
    qemu_img("convert", "-O", "qcow2", *options, source, image)
    assert read_all(image) == qemu_raw(image, tmp_path) == source.read_bytes()


def test_compressed_image_really_has_compressed_clusters(source: Path, tmp_path: Path) -> None:
    image = tmp_path / "c.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", source, image)
    assert "compressed" in qemu_img("check", image)
    plain = tmp_path / "p.qcow2"
    qemu_img("convert", "-O", "qcow2", source, plain)
    assert image.stat().st_size < plain.stat().st_size
    assert read_all(image) == source.read_bytes()


@pytest.mark.parametrize("compat", ["0.10", "1.1"])
def test_qemu_io_writes_zero_clusters_and_discards(compat: str, source: Path,
                                                   tmp_path: Path) -> None:
    image = tmp_path / "z.qcow2"
    qemu_img("convert", "-O", "qcow2", "-o", f"compat={compat}", source, image)
    qemu_io(image, "write -z 65536 196608", "write -z 1000 3000", "write -z -u 1M 512k",
            "discard 2M 256k", "write -P 0x5a 3000000 70000", "write -c 2M 64k")
    assert read_all(image) == qemu_raw(image, tmp_path)


def test_backing_chain_of_three_formats(source: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(source.read_bytes())
    middle = tmp_path / "middle.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", "base.raw", middle)
    qemu_io(middle, "write -P 0x11 100000 300000", "write -z 2M 64k")
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", "compat=0.10", "-F", "qcow2", "-b",
             "middle.qcow2", top)
    qemu_io(top, "write -P 0x22 250000 100000", "discard 0 64k")
    with open_qcow2(top, **{"read-only": True}) as node:
        assert isinstance(node, Qcow2Node)
        assert node.backing is not None and node.backing.backing is not None
        assert node.backing.backing.driver == "raw"
        assert node.read(0, node.size) == qemu_raw(top, tmp_path)


def test_backing_file_smaller_than_overlay_reads_zeros_past_it(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", base, "1M")
    qemu_io(base, "write -P 0x33 0 1M")
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", top, "3M")
    with open_qcow2(top, **{"read-only": True}) as node:
        data = node.read(0, node.size)
    assert data == qemu_raw(top, tmp_path)
    assert data[:1 << 20] == b"\x33" * (1 << 20) and not any(data[1 << 20:])


def test_internal_snapshots_of_qemu(source: Path, tmp_path: Path) -> None:
    image = tmp_path / "s.qcow2"
    qemu_img("convert", "-O", "qcow2", source, image)
    qemu_img("snapshot", "-c", "first", image)
    qemu_io(image, "write -P 0x44 0 1M", "write -z 3M 1M")
    qemu_img("snapshot", "-c", "second", image)
    qemu_io(image, "write -P 0x55 512 1000")
    current = qemu_raw(image, tmp_path)
    with open_qcow2(image, **{"read-only": True}) as node:
        assert isinstance(node, Qcow2Node)
        assert [(sn.id, sn.name, sn.disk_size, sn.vm_state_size) for sn in node.snapshots] \
            == [("1", "first", SIZE, 0), ("2", "second", SIZE, 0)]
        assert node.read(0, node.size) == current
    # Going back to "first" here gives what qemu-img gives.
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    ours.write_bytes(image.read_bytes())
    theirs.write_bytes(image.read_bytes())
    with open_qcow2(ours) as node:
        assert isinstance(node, Qcow2Node)
        node.apply_snapshot("first")
        assert node.read(0, node.size) == source.read_bytes()
    qemu_img("snapshot", "-a", "first", theirs)
    assert qemu_raw(ours, tmp_path) == qemu_raw(theirs, tmp_path) == source.read_bytes()


def test_probing_finds_qcow2(source: Path, tmp_path: Path) -> None:
    image = tmp_path / "p.qcow2"
    qemu_img("convert", "-O", "qcow2", source, image)
    assert read_all(image, fmt=None) == source.read_bytes()
