"""Damaged or hostile images: one BlockError with a one-line message (QEMU's where QEMU
has one), never a traceback from elsewhere or a hang; corruption found during I/O is
an I/O error, and a writable image gets QEMU's corrupt bit."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from blockdev import BlockError, Qcow2Node, create_qcow2, open_node
from blockdev.qcow2.format import INCOMPAT_CORRUPT
from tests.blockdev.support import qemu_img, requires_qemu_img

HEADER = struct.Struct(">IIQIIQIIQQIIQ")
FIELDS = ("magic", "version", "backing_file_offset", "backing_file_size", "cluster_bits",
          "size", "crypt_method", "l1_size", "l1_table_offset", "refcount_table_offset",
          "refcount_table_clusters", "nb_snapshots", "snapshots_offset")


def patch_header(image: Path, **fields: int) -> None:
    with image.open("r+b") as f:
        values = dict(zip(FIELDS, HEADER.unpack(f.read(HEADER.size)), strict=True))
        values.update(fields)
        f.seek(0)
        f.write(HEADER.pack(*(values[name] for name in FIELDS)))


def read_header(image: Path) -> dict[str, int]:
    with image.open("rb") as f:
        return dict(zip(FIELDS, HEADER.unpack(f.read(HEADER.size)), strict=True))


def patch_u64(image: Path, offset: int, value: int) -> None:
    with image.open("r+b") as f:
        f.seek(offset)
        f.write(struct.pack(">Q", value))


def read_u64(image: Path, offset: int) -> int:
    with image.open("rb") as f:
        f.seek(offset)
        return struct.unpack(">Q", f.read(8))[0]


def open_error(image: Path, driver: str | None = "qcow2", read_only: bool = False) -> str:
    options: dict = {"file": {"driver": "file", "filename": str(image)},
                     "read-only": read_only}
    if driver:
        options["driver"] = driver
    with pytest.raises(BlockError) as error:
        open_node(options, warn=lambda message: None).close()
    message = str(error.value)
    assert "\n" not in message and message
    return message


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.qcow2"
    create_qcow2(path, 4 << 20)
    with open_node({"driver": "qcow2", "file": {"driver": "file",
                                                 "filename": str(path)}}) as node:
        node.write(0, b"\x11" * 200_000)
    return path


def first_l2_offset(image: Path) -> int:
    return read_u64(image, read_header(image)["l1_table_offset"]) & 0x00FFFFFFFFFFFE00


@pytest.mark.parametrize("length", [0, 3, 20, 71, 90])
def test_truncated_header(image: Path, length: int) -> None:
    with image.open("r+b") as f:
        f.truncate(length)
    message = open_error(image)
    assert "truncated" in message or "not in qcow2 format" in message


def test_truncated_header_found_by_probing(image: Path) -> None:
    with image.open("r+b") as f:
        f.truncate(80)
    assert "qcow2 header is truncated" in open_error(image, driver=None)


def test_truncated_file_cuts_the_tables(image: Path) -> None:
    l1 = read_header(image)["l1_table_offset"]
    with image.open("r+b") as f:
        f.truncate(l1 + 4)
    assert "Active L1 table" in open_error(image)


@pytest.mark.parametrize("fields,message", [
    ({"magic": 0x12345678}, "Image is not in qcow2 format"),
    ({"version": 4}, "Unsupported qcow2 version 4"),
    ({"version": 1}, "Unsupported qcow2 version 1"),
    ({"cluster_bits": 8}, "Unsupported cluster size: 2^8"),
    ({"cluster_bits": 22}, "Unsupported cluster size: 2^22"),
    ({"cluster_bits": 0xFFFFFFFF}, "Unsupported cluster size: 2^4294967295"),
    ({"l1_table_offset": 1 << 40}, "Active L1 table (offset 0x10000000000, 8 bytes) lies "
                                   "past the end of the image file"),
    ({"l1_table_offset": 0x30001}, "Active L1 table offset invalid"),
    ({"l1_size": 0}, "L1 table is too small"),
    ({"l1_size": 0x7FFFFFFF}, "Active L1 table too large"),
    ({"refcount_table_offset": 1 << 50}, "Reference count table (offset"),
    ({"refcount_table_clusters": 0}, "Image does not contain a reference count table"),
    ({"nb_snapshots": 3, "snapshots_offset": 1 << 45}, "Snapshot table (offset"),
    ({"backing_file_offset": 1 << 20, "backing_file_size": 4}, "Invalid backing file offset"),
    ({"backing_file_offset": 4000, "backing_file_size": 2000}, "Backing file name too long"),
    ({"crypt_method": 1}, "Encrypted qcow2 images are not supported"),
])
def test_corrupted_header(image: Path, fields: dict[str, int], message: str) -> None:
    patch_header(image, **fields)
    assert message in open_error(image)


def test_bad_version_3_fields(image: Path) -> None:
    patch_u64(image, 72, 1 << 5)  # an incompatible feature nobody knows
    assert open_error(image) == "Unsupported qcow2 feature(s): Unknown incompatible " \
                                "feature: 20"
    patch_u64(image, 72, 1 << 4)  # extended L2 entries: QEMU has them, we do not
    assert open_error(image) == "Unsupported qcow2 feature(s): extended L2 entries"
    patch_u64(image, 72, 0)
    with image.open("r+b") as f:
        f.seek(96)
        f.write(struct.pack(">II", 7, 112))  # refcount_order 7
    assert "Reference count entry width too large" in open_error(image)
    with image.open("r+b") as f:
        f.seek(96)
        f.write(struct.pack(">II", 4, 100))  # header_length below 104
    assert open_error(image) == "qcow2 header too short"


@pytest.mark.parametrize("target", ["refcount_table_offset", "l1_table_offset"])
def test_refcount_block_on_a_table_is_refused(image: Path, target: str) -> None:
    header = read_header(image)
    patch_u64(image, header["refcount_table_offset"], header[target])
    assert "Invalid reference count table entry 0" in open_error(image)


def test_wrong_counts_never_let_metadata_be_overwritten(image: Path) -> None:
    # Every count zero: the allocator would take cluster 0 (the header) next.
    header = read_header(image)
    block = read_u64(image, header["refcount_table_offset"])
    with image.open("r+b") as f:
        f.seek(block)
        f.write(bytes(4096))
    before = image.read_bytes()[:65536 * 4]
    warnings: list[str] = []
    with open_node({"driver": "qcow2", "file": {"driver": "file", "filename": str(image)}},
                   warn=warnings.append) as node:
        with pytest.raises(OSError):
            node.write(3 << 20, b"new data")
    assert "Preventing invalid write on metadata (overlaps with qcow2_header)" in warnings[0]
    after = image.read_bytes()
    assert after[:72] == before[:72] and after[4096:65536 * 4] == before[4096:]


def test_zstd_compression_type_is_refused(image: Path) -> None:
    patch_u64(image, 72, 1 << 3)
    with image.open("r+b") as f:
        f.seek(104)
        f.write(b"\x01")
    assert "compression type" in open_error(image)


def test_missing_backing_file(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.qcow2"
    create_qcow2(overlay, 1 << 20, backing_file="gone.qcow2", backing_format="qcow2")
    assert open_error(overlay) == (f"Could not open backing file: Could not open "
                                   f"'{tmp_path / 'gone.qcow2'}': No such file or directory")
    # Without opening the backing file ("backing": null) the image opens.
    with open_node({"driver": "qcow2", "backing": None,
                    "file": {"driver": "file", "filename": str(overlay)}}) as node:
        assert node.backing is None and node.read(0, 4) == bytes(4)


@pytest.mark.parametrize("format_known", [True, False])
def test_backing_file_loop(tmp_path: Path, format_known: bool) -> None:
    first, second = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    fmt = "qcow2" if format_known else None
    create_qcow2(first, 1 << 20, backing_file="b.qcow2", backing_format=fmt)
    create_qcow2(second, 1 << 20, backing_file="a.qcow2", backing_format=fmt)
    message = open_error(first)
    assert message.startswith("Could not open backing file:")
    assert "creates an infinite loop" in message
    itself = tmp_path / "self.qcow2"
    create_qcow2(itself, 1 << 20, backing_file="self.qcow2", backing_format=fmt)
    assert "creates an infinite loop" in open_error(itself, read_only=True)


def test_corrupt_image_cannot_be_opened_writable(image: Path) -> None:
    patch_u64(image, 72, INCOMPAT_CORRUPT)
    assert open_error(image) == "qcow2: Image is corrupt; cannot be opened read/write"
    with open_node({"driver": "qcow2", "read-only": True,
                    "file": {"driver": "file", "filename": str(image)}}) as node:
        assert node.read(0, 4) == b"\x11" * 4


@pytest.mark.parametrize("where", ["past the end", "into metadata", "unaligned"])
def test_l2_entry_pointing_outside_the_data(image: Path, where: str) -> None:
    l2 = first_l2_offset(image)
    entry = read_u64(image, l2)
    bad = {"past the end": 1 << 40, "into metadata": read_header(image)["l1_table_offset"],
           "unaligned": (entry & 0x00FFFFFFFFFFFE00) + 512}[where]
    patch_u64(image, l2, (1 << 63) | bad)
    warnings: list[str] = []
    node = open_node({"driver": "qcow2", "file": {"driver": "file", "filename": str(image)}},
                     warn=warnings.append)
    assert isinstance(node, Qcow2Node)
    assert node.read(70_000, 4) == b"\x11" * 4  # the other clusters are fine
    with pytest.raises(OSError) as error:
        node.read(0, 4096)
    assert error.value.errno == errno.EIO
    assert isinstance(error.value, BlockError) and "\n" not in str(error.value)
    assert len(warnings) == 1
    assert warnings[0].startswith("qcow2: Marking image as corrupt: ")
    assert "further corruption events will be suppressed" in warnings[0]
    with pytest.raises(OSError):  # the node is unusable from now on, as in QEMU
        node.read(70_000, 4)
    node.close()
    assert read_u64(image, 72) & INCOMPAT_CORRUPT
    assert open_error(image) == "qcow2: Image is corrupt; cannot be opened read/write"


def test_corruption_in_a_read_only_image_is_not_fatal(image: Path) -> None:
    patch_u64(image, first_l2_offset(image), (1 << 63) | (1 << 40))
    warnings: list[str] = []
    with open_node({"driver": "qcow2", "read-only": True,
                    "file": {"driver": "file", "filename": str(image)}},
                   warn=warnings.append) as node:
        with pytest.raises(OSError):
            node.read(0, 512)
        assert node.read(70_000, 4) == b"\x11" * 4
    assert warnings and warnings[0].startswith("qcow2: Image is corrupt: ")
    assert not read_u64(image, 72) & INCOMPAT_CORRUPT


def test_write_into_metadata_is_prevented(image: Path) -> None:
    header = read_header(image)
    patch_u64(image, first_l2_offset(image), (1 << 63) | header["refcount_table_offset"])
    before = image.read_bytes()[header["refcount_table_offset"]:][:4096]
    with open_node({"driver": "qcow2", "file": {"driver": "file", "filename": str(image)}},
                   warn=lambda message: None) as node:
        with pytest.raises(OSError):
            node.write(0, b"\xee" * 512)
    assert image.read_bytes()[header["refcount_table_offset"]:][:4096] == before


def test_l1_entry_past_the_end(image: Path) -> None:
    patch_u64(image, read_header(image)["l1_table_offset"], (1 << 63) | (1 << 41))
    with open_node({"driver": "qcow2", "read-only": True,
                    "file": {"driver": "file", "filename": str(image)}},
                   warn=lambda message: None) as node:
        with pytest.raises(OSError, match="L2 table offset 0x20000000000 is past the end"):
            node.read(0, 512)


@requires_qemu_img
def test_damaged_compressed_cluster_is_an_io_error(tmp_path: Path) -> None:
    raw = tmp_path / "r.raw"
    raw.write_bytes(b"compressible " * 10_000)
    image = tmp_path / "c.qcow2"
    qemu_img("convert", "-c", "-f", "raw", "-O", "qcow2", raw, image)
    entry = read_u64(image, first_l2_offset(image))
    compressed_at = entry & ((1 << 54) - 1)
    with image.open("r+b") as f:
        f.seek(compressed_at)
        f.write(b"\xff" * 64)
    with open_node({"driver": "qcow2", "read-only": True,
                    "file": {"driver": "file", "filename": str(image)}}) as node:
        with pytest.raises(OSError, match="compressed cluster .* is damaged"):
            node.read(0, 512)


def test_snapshot_table_entry_past_the_end(image: Path) -> None:
    with open_node({"driver": "qcow2", "file": {"driver": "file",
                                                 "filename": str(image)}}) as node:
        assert isinstance(node, Qcow2Node)
        node.create_snapshot("s")
    snapshots = read_header(image)["snapshots_offset"]
    patch_u64(image, snapshots, 1 << 40)  # the snapshot's L1 table offset
    assert "Snapshot L1 table of snapshot 1 lies past the end" in open_error(image)
    patch_u64(image, snapshots, 0x10001)
    assert "Snapshot L1 table offset invalid" in open_error(image)


def test_garbage_file_probes_as_raw_and_garbage_qcow2_fails(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(b"QFI\xfb" + b"\xff" * 4092)
    assert "Unsupported qcow2 version" in open_error(garbage, driver=None)
    vmdk = tmp_path / "disk.vmdk"
    vmdk.write_bytes(b"KDMV" + bytes(2000))
    assert "image format 'vmdk' is not supported" in open_error(vmdk, driver=None)
