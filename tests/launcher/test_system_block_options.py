"""-drive, -blockdev, -snapshot and virtio-blk on ``-M virt``: the options reach the block
layer (raw, qcow2, snapshot overlays, read-only, cache modes, locking) and every mistake
is QEMU's one-line message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from blockdev.file import FileNode
from blockdev.node import NodeFlags
from launcher.system.options import parse_args
from machines import riscv64_virt as virt
from machines.machine import BlockdevOptions, DeviceOptions, DriveOptions, MachineOptions
from tests.launcher.test_system_riscv64 import PROG, qemu, run
from tests.machines.support import needs_qemu, phys_read, phys_write

QEMU_IMG = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not installed")
VIRTIO_LAST_SLOT = virt.VIRTIO_BASE + (virt.VIRTIO_COUNT - 1) * virt.VIRTIO_STRIDE
CONFIG = 0x100  # virtio-mmio device configuration space


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path (the current directory) with d.raw (1 MiB raw) and d.qcow2 (2 MiB)."""
    assert QEMU_IMG is not None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.raw").write_bytes(b"R" * (1 << 20))
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "d.qcow2", "2M"], check=True)
    return tmp_path


# Each is what qemu-system-riscv64 prints (checked against it below when installed).
SAME_AS_QEMU = [
    (["-drive", "file=d.qcow2,format=raw,if=none,id=a,foo=1"],
     "Block format 'raw' does not support the option 'foo'"),
    (["-drive", "file=nope.img,format=raw,if=none,id=a"],
     "Could not open 'nope.img': No such file or directory"),
    (["-blockdev", "driver=file,filename=d.raw"],
     "'node-name' must be specified for the root node"),
    (["-blockdev", "driver=qcow2,node-name=q,file.driver=file,file.filename=d.raw"],
     "Image is not in qcow2 format"),
    (["-drive", "file=d.raw,format=qcow2,if=none,id=a"], "Image is not in qcow2 format"),
    (["-drive", "file=d.raw,format=raw,if=none,id=a,cache=bogus"], "invalid cache option"),
    (["-drive", "file=d.raw,format=raw,if=none,id=a,snapshot=maybe"],
     "Parameter 'snapshot' expects 'on' or 'off'"),
    (["-blockdev", "driver=raw,node-name=r,file.driver=file,file.filename=d.raw,foo=1"],
     "Parameter 'foo' is unexpected"),
    (["-blockdev", '{"driver":'], "JSON parse error, premature EOI"),
    (["-blockdev", "driver=raw,node-name=r,file.driver=file,file.filename=nope.img"],
     "Could not open 'nope.img': No such file or directory"),
]


@needs_qemu_img
@pytest.mark.parametrize("argv,message", SAME_AS_QEMU)
def test_block_option_errors(images: Path, argv: list[str], message: str) -> None:
    argv = ["-M", "virt", "-bios", "none", "-display", "none", *argv]
    status, _, err = run(*argv)
    option = f"{argv[-2]} {argv[-1]}"
    assert (status, err) == (1, f"{PROG}: {option}: {message}\n")


@needs_qemu
@needs_qemu_img
@pytest.mark.parametrize("argv,message", SAME_AS_QEMU)
def test_block_option_errors_are_qemus(images: Path, argv: list[str], message: str) -> None:
    status, _, err = qemu("-M", "virt", "-bios", "none", "-display", "none", "-S", *argv)
    assert status == 1 and f": {message}" in err.splitlines()[0]


@needs_qemu_img
def test_a_locked_image_is_refused(images: Path) -> None:
    holder = FileNode(str(images / "d.qcow2"), node_name="holder", read_only=False,
                      flags=NodeFlags())
    try:
        status, _, err = run("-M", "virt", "-bios", "none", "-display", "none",
                             "-drive", "file=d.qcow2,format=qcow2,if=none,id=d0")
    finally:
        holder.close()
    assert status == 1
    assert err == (f"{PROG}: -drive file=d.qcow2,format=qcow2,if=none,id=d0: Failed to get "
                   f'"write" lock\nIs another process using the image [d.qcow2]?\n')


def test_snapshot_applies_to_every_drive() -> None:
    from launcher.system.main import _check_drive
    options = parse_args(["-snapshot", "-drive", "file=a,format=raw,if=none,id=a"])
    assert options.snapshot
    assert _check_drive(options.drives[0], options.snapshot).snapshot
    assert not _check_drive("file=a,format=raw,if=none,id=a", False).snapshot
    assert _check_drive("file=a,format=raw,if=none,snapshot=on", False).snapshot
    drive = _check_drive("file=a,format=qcow2,cache=unsafe,file.locking=off,"
                         "lazy-refcounts=on", False)
    assert drive.cache == "unsafe"
    assert drive.block_options == (("file.locking", "off"), ("lazy-refcounts", "on"))


def _build(options: MachineOptions) -> virt.Machine:
    return virt.build(options)


def _blk_capacity(machine: virt.Machine, slot_base: int) -> int:
    return (phys_read(machine.memory, slot_base + CONFIG, 4)
            | phys_read(machine.memory, slot_base + CONFIG + 4, 4) << 32)


@needs_qemu_img
def test_qcow2_blockdev_and_if_virtio_drives_become_virtio_blk(images: Path) -> None:
    machine = _build(MachineOptions(
        bios="none",
        blockdevs=(BlockdevOptions({"driver": "qcow2", "node-name": "hd",
                                    "file": {"driver": "file", "filename": "d.qcow2"}}),),
        drives=(DriveOptions("d.raw", "virtio", "raw", read_only=True),),
        devices=(DeviceOptions("virtio-blk-device", (("drive", "hd"),)),)))
    try:
        device_ids = [phys_read(machine.memory, virt.VIRTIO_BASE + i * virt.VIRTIO_STRIDE + 8,
                                4) for i in range(virt.VIRTIO_COUNT)]
        assert device_ids == [0, 0, 0, 0, 0, 0, 2, 2]
        assert _blk_capacity(machine, VIRTIO_LAST_SLOT) == 4096  # the qcow2 image: 2 MiB
        raw_slot = VIRTIO_LAST_SLOT - virt.VIRTIO_STRIDE
        assert _blk_capacity(machine, raw_slot) == 2048
        phys_write(machine.memory, raw_slot + 0x14, 4, 0)  # DeviceFeaturesSel = 0
        assert phys_read(machine.memory, raw_slot + 0x10, 4) & (1 << 5)  # VIRTIO_BLK_F_RO
    finally:
        machine.close()
    # closing the machine released the images' locks: a writer may open them now
    FileNode(str(images / "d.qcow2"), node_name="w", read_only=False, flags=NodeFlags()).close()


@needs_qemu_img
def test_writethrough_drive_starts_with_the_write_cache_off(images: Path) -> None:
    for cache, writeback in (("writethrough", 0), ("writeback", 1), ("unsafe", 1)):
        machine = _build(MachineOptions(
            bios="none", drives=(DriveOptions("d.raw", "none", "raw", "d0", cache=cache),),
            devices=(DeviceOptions("virtio-blk-device", (("drive", "d0"),)),)))
        try:
            # struct virtio_blk_config: writeback is the byte at offset 32
            assert phys_read(machine.memory, VIRTIO_LAST_SLOT + CONFIG + 32, 1) == writeback
        finally:
            machine.close()
