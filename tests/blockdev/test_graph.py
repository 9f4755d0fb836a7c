"""Opening nodes from QEMU-style options: drivers, children by dict or node name,
flattened keys, inheritance, probing, raw windows, the -snapshot overlay."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from blockdev import (
    BlockError,
    BlockGraph,
    FileNode,
    Qcow2Node,
    RawNode,
    create_qcow2,
    open_node,
)

PROBE_WARNING = (
    "WARNING: Image format was not specified for '{}' and probing guessed raw.\n"
    "         Automatically detecting the format is dangerous for raw images, write "
    "operations on block 0 will be restricted.\n"
    "         Specify the 'raw' format explicitly to remove the restrictions.")


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(bytes(range(256)) * 64)
    return path


@pytest.fixture
def qcow2(tmp_path: Path) -> Path:
    path = tmp_path / "disk.qcow2"
    create_qcow2(path, 1 << 20)
    return path


def test_nested_options_make_a_graph(qcow2: Path) -> None:
    graph = BlockGraph()
    node = graph.open({"driver": "qcow2", "node-name": "hd", "read-only": True,
                       "file": {"driver": "file", "node-name": "hd-file",
                                "filename": str(qcow2)}})
    assert isinstance(node, Qcow2Node)
    assert (node.node_name, node.driver, node.read_only, node.size) == \
        ("hd", "qcow2", True, 1 << 20)
    assert node.children["file"] is graph.get("hd-file")
    assert isinstance(graph.get("hd-file"), FileNode)
    assert node.filename == str(qcow2) and node.backing is None
    with pytest.raises(BlockError, match="Duplicate nodes with node-name='hd'"):
        graph.open({"driver": "raw", "node-name": "hd", "file": {"filename": str(qcow2)}})
    graph.close_all()
    assert graph.nodes == {}


def test_flattened_keys_and_keyval_strings(qcow2: Path) -> None:
    with open_node({"driver": "qcow2", "read-only": "on", "file.driver": "file",
                    "file.filename": str(qcow2), "file.locking": "off"}) as node:
        assert node.read_only and node.children["file"].flags.locking == "off"


def test_automatic_node_names(qcow2: Path) -> None:
    graph = BlockGraph()
    node = graph.open({"driver": "qcow2", "file": {"filename": str(qcow2)}})
    assert node.node_name.startswith("#block")
    assert node.children["file"].node_name.startswith("#block")
    assert node.node_name != node.children["file"].node_name
    graph.close_node(node)
    assert graph.nodes == {}


def test_children_by_node_name(qcow2: Path, tmp_path: Path) -> None:
    graph = BlockGraph()
    graph.open({"driver": "file", "node-name": "proto", "filename": str(qcow2)})
    node = graph.open({"driver": "qcow2", "node-name": "fmt", "file": "proto"})
    assert node.children["file"] is graph.get("proto")
    overlay, base_image = tmp_path / "overlay.qcow2", tmp_path / "base.qcow2"
    create_qcow2(overlay, 1 << 20)
    create_qcow2(base_image, 1 << 20)
    base = graph.open({"driver": "qcow2", "node-name": "base", "read-only": True,
                       "file": {"filename": str(base_image)}})
    top = graph.open({"driver": "qcow2", "node-name": "top", "backing": "base",
                      "file": {"filename": str(overlay)}})
    assert top.backing is base
    with pytest.raises(BlockError, match="Cannot find device='' nor node-name='nothing'"):
        graph.open({"driver": "qcow2", "file": "nothing"})
    graph.close_all()


@pytest.mark.parametrize("options,message", [
    ({"driver": "qcow2", "file": {"filename": "x"}, "bogus": 1},
     "Parameter 'bogus' is unexpected"),
    ({"driver": "nbd"}, "Unknown driver 'nbd'"),
    ({"driver": "vmdk", "file": {"filename": "x"}}, "Block format 'vmdk' is not supported"),
    ({"driver": "file"}, "Parameter 'filename' is missing"),
    ({"driver": "qcow2"}, "Parameter 'file' is missing"),
    ({"driver": "raw", "node-name": "1bad", "file": {"filename": "x"}},
     "Invalid node-name: '1bad'"),
    ({"driver": "raw", "read-only": "maybe", "file": {"filename": "x"}},
     "Parameter 'read-only' expects 'on' or 'off'"),
    ({"driver": "raw", "discard": "sometimes", "file": {"filename": "x"}},
     "Parameter 'discard' does not accept value 'sometimes'"),
    ({"driver": "raw", "cache": {"direct": True}, "file": {"filename": "x"}},
     "cache.direct=on (O_DIRECT) is not supported"),
    ({"driver": "file", "filename": "/nonexistent/disk.img"},
     "Could not open '/nonexistent/disk.img': No such file or directory"),
    ({"driver": "file", "filename": "/dev/null", "read-only": True},
     "'file' driver requires '/dev/null' to be a regular file"),
])
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(BlockError) as error:
        open_node(options)
    assert str(error.value) == message or str(error.value).startswith(message)


def test_host_device(raw: Path) -> None:
    with open_node({"driver": "host_device", "filename": "/dev/null",
                    "read-only": True}) as node:
        assert node.size == 0
    with pytest.raises(BlockError, match="'host_device' driver requires .* to be either a "
                                         "character or block device"):
        open_node({"driver": "host_device", "filename": str(raw)})


def test_inherited_options(qcow2: Path) -> None:
    with open_node({"driver": "qcow2", "discard": "unmap", "cache": {"no-flush": True},
                    "file": {"filename": str(qcow2)}}) as node:
        file = node.children["file"]
        assert file.flags.discard and file.flags.no_flush
        assert node.flags.discard
    with open_node({"driver": "qcow2", "read-only": True,
                    "file": {"filename": str(qcow2)}}) as node:
        assert node.children["file"].read_only
    with pytest.raises(BlockError, match="is read-only"):
        open_node({"driver": "qcow2", "file": {"filename": str(qcow2), "read-only": True}})


def test_raw_window(raw: Path) -> None:
    with open_node({"driver": "raw", "offset": 1024, "size": "8k",
                    "file": {"filename": str(raw)}}) as node:
        assert isinstance(node, RawNode) and node.size == 8192
        assert node.read(0, 4) == bytes([0, 1, 2, 3])
        node.write(8192 - 2, b"ab")
        with pytest.raises(OSError):
            node.write(8192, b"x")
    data = raw.read_bytes()
    assert data[1024 + 8190:1024 + 8192] == b"ab" and data[1024 + 8192] == 0
    with pytest.raises(BlockError, match=r"The sum of offset \(10000\) and size \(8192\) has "
                                         "to be smaller or equal"):
        open_node({"driver": "raw", "offset": 10000, "size": 8192,
                   "file": {"filename": str(raw)}})
    with pytest.raises(BlockError, match="Specified size is not multiple of 512"):
        open_node({"driver": "raw", "size": 1000, "file": {"filename": str(raw)}})


def test_probing_raw_warns_and_protects_block_0(raw: Path, qcow2: Path) -> None:
    warnings: list[str] = []
    with open_node({"file": {"filename": str(raw)}}, warn=warnings.append) as node:
        assert node.driver == "raw"
        assert warnings == [PROBE_WARNING.format(raw)]
        node.write(0, b"\x00" * 512)  # fine: still raw
        with pytest.raises(OSError) as refused:
            node.write(0, qcow2.read_bytes()[:512])  # would turn it into a qcow2
        assert refused.value.errno == errno.EPERM
        node.write(512, qcow2.read_bytes()[:512])  # elsewhere it is only data
    warnings.clear()
    with open_node({"read-only": True, "file": {"filename": str(raw)}},
                   warn=warnings.append):
        assert warnings == []  # read-only: nothing to protect
    with open_node({"driver": "raw", "file": {"filename": str(raw)}},
                   warn=warnings.append) as node:
        node.write(0, qcow2.read_bytes()[:512])  # explicit raw: no restriction
        assert warnings == []
    with open_node({"file": {"filename": str(qcow2)}}, warn=warnings.append) as node:
        assert node.driver == "qcow2" and warnings == []


def test_backing_from_json_filename(tmp_path: Path, raw: Path) -> None:
    overlay = tmp_path / "overlay.qcow2"
    backing = f'json:{{"driver": "raw", "file": {{"driver": "file", "filename": "{raw}"}}}}'
    create_qcow2(overlay, raw.stat().st_size, backing_file=backing)
    with open_node({"driver": "qcow2", "file": {"filename": str(overlay)}}) as node:
        assert node.backing is not None and node.backing.driver == "raw"
        assert node.read(0, 8) == bytes(range(8))


@pytest.mark.parametrize("fmt", ["qcow2", "raw", None])
def test_snapshot_overlay_leaves_the_image_byte_identical(fmt: str | None, raw: Path,
                                                          qcow2: Path,
                                                          tmp_path: Path) -> None:
    image = qcow2 if fmt == "qcow2" else raw
    before = image.read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    graph = BlockGraph(warn=lambda message: None)
    node = graph.open_image(str(image), format=fmt, snapshot=True, node_name="disk",
                            tmpdir=str(scratch))
    assert isinstance(node, Qcow2Node) and not node.read_only
    assert node.node_name == "disk"
    assert node.backing is not None and node.backing.read_only
    assert os.listdir(scratch) == []  # the overlay's file is deleted already
    node.write(0, b"\xaa" * 5000)
    node.write_zeroes(8192, 4096)
    node.flush()
    assert node.read(0, 5000) == b"\xaa" * 5000
    # Others may read the image beside us, as beside a qemu -snapshot.
    with open_node({"read-only": True, "file": {"filename": str(image)}},
                   warn=lambda message: None):
        pass
    graph.close_all()
    assert image.read_bytes() == before


def test_open_image_plain(raw: Path) -> None:
    graph = BlockGraph()
    node = graph.open_image(str(raw), format="raw", read_only=True, node_name="d")
    assert node.read_only and graph.get("d") is node
    with pytest.raises(OSError):
        node.write(0, b"x")
    graph.close_all()
