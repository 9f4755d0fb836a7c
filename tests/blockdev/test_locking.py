"""Image locking as QEMU's file.locking: OFD locks on QEMU's lock bytes, so a second
writer — another open here, or a qemu — is refused with QEMU's messages."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blockdev import BlockError, create_qcow2, open_node
from tests.blockdev.support import requires_qemu_img


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "locked.qcow2"
    create_qcow2(path, 1 << 20)
    return path


def open_image(image: Path, read_only: bool = False, **options: object):
    return open_node({"driver": "qcow2", "read-only": read_only,
                      "file": {"driver": "file", "filename": str(image), **options}})


def test_second_writer_is_refused(image: Path) -> None:
    with open_image(image):
        with pytest.raises(BlockError) as refused:
            open_image(image)
    assert str(refused.value) == 'Failed to get "write" lock'
    assert refused.value.hint == f"Is another process using the image [{image}]?"
    with open_image(image):  # closing released the lock
        pass


def test_reader_and_writer_exclude_each_other(image: Path) -> None:
    with open_image(image):
        with pytest.raises(BlockError, match='^Failed to get shared "write" lock$'):
            open_image(image, read_only=True)
    with open_image(image, read_only=True), open_image(image, read_only=True):
        with pytest.raises(BlockError, match='^Failed to get "write" lock$'):
            open_image(image)


def test_force_share_reads_beside_a_writer(image: Path) -> None:
    with open_image(image) as writer:
        writer.write(0, b"shared")
        writer.flush()
        with open_node({"driver": "qcow2", "read-only": True, "force-share": True,
                        "file": {"driver": "file", "filename": str(image)}}) as reader:
            assert reader.read(0, 6) == b"shared"
    with pytest.raises(BlockError, match="force-share=on can only be used with read-only"):
        open_node({"driver": "qcow2", "force-share": True,
                   "file": {"driver": "file", "filename": str(image)}})


def test_locking_off_takes_no_lock(image: Path) -> None:
    with open_image(image, locking="off"), open_image(image):
        pass


def test_raw_images_are_locked_too(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    raw.write_bytes(bytes(4096))
    options = {"driver": "raw", "file": {"driver": "file", "filename": str(raw)}}
    with open_node(options):
        with pytest.raises(BlockError, match='"write" lock'):
            open_node(options)


def _lock_bytes_held(fd: int) -> bool:
    """Whether another open file description holds a lock on QEMU's lock bytes."""
    query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 100, 200, 0)
    l_type = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query))[0]
    return l_type != fcntl.F_UNLCK


@pytest.fixture
def qemu_io_holding(image: Path) -> Iterator[subprocess.Popen]:
    """A qemu-io with the image open for writing, waiting for commands."""
    process = subprocess.Popen(["qemu-io", "-f", "qcow2", str(image)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # It holds the lock once it is open. Wait by asking the kernel whether any byte
        # of QEMU's lock range (100..299) is locked: probing with an open of our own
        # would take locks, and a qemu-io that meets them gives up and exits.
        deadline = time.monotonic() + 30
        with open(image, "rb") as f:
            while time.monotonic() < deadline and not _lock_bytes_held(f.fileno()):
                time.sleep(0.05)
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


@requires_qemu_img
def test_running_qemu_refuses_us(image: Path, qemu_io_holding: subprocess.Popen) -> None:
    with pytest.raises(BlockError, match='^Failed to get "write" lock$'):
        open_image(image)
    with pytest.raises(BlockError, match='^Failed to get shared "write" lock$'):
        open_image(image, read_only=True)


@requires_qemu_img
def test_we_refuse_qemu(image: Path) -> None:
    with open_image(image):
        info = subprocess.run(["qemu-img", "info", str(image)], capture_output=True, text=True)
        assert info.returncode != 0
        assert 'Failed to get shared "write" lock' in info.stderr
        assert f"Is another process using the image [{image}]?" in info.stderr
        # -U (force share) reads beside a writer, as it does beside a qemu.
        shared = subprocess.run(["qemu-img", "info", "-U", str(image)], capture_output=True,
                                text=True)
        assert shared.returncode == 0 and "qcow2" in shared.stdout
    with open_image(image, read_only=True):
        write = subprocess.run(["qemu-io", "-c", "write 0 512", str(image)],
                               capture_output=True, text=True)
        assert 'Failed to get "write" lock' in write.stderr
        info = subprocess.run(["qemu-img", "info", str(image)], capture_output=True, text=True)
        assert info.returncode == 0  # readers share
