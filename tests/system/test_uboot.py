"""U-Boot 2023.01 (Debian's qemu-riscv64 builds) on ``-M virt``: it reaches its prompt,
answers commands, and drives virtio-blk disks on the block layer (qcow2 with and
without a temporary snapshot, a read-only raw disk on ``if=virtio``)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.machines.support import IMAGES, needs_images
from tests.system.console import (
    UBOOT_M,
    UBOOT_S,
    quit_emulator,
    spawn_llvmtcg,
    stop_autoboot,
    uboot_command,
)

QEMU_IMG = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img not installed "
                                    "(scripts/setup.sh installs Debian's qemu-utils)")
PATTERN = b"LLVMTCG-DISK-OK!"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_images
def test_uboot_mmode_reaches_its_prompt_and_runs_version() -> None:
    console = spawn_llvmtcg("-M", "virt", "-m", "256M", "-nographic", "-bios", str(UBOOT_M))
    try:
        console.expect("U-Boot 2023.01")
        console.expect(r"DRAM:\s+256 MiB")
        stop_autoboot(console)
        assert "U-Boot 2023.01+dfsg" in uboot_command(console, "version")
        assert uboot_command(console, "echo $((6*7))") in ("42", "$((6*7))")
        out = uboot_command(console, "fdt addr $fdtcontroladdr; "
                                     "fdt print /soc/serial@10000000 compatible")
        assert 'compatible = "ns16550a"' in out, out
        assert quit_emulator(console) == 0
    finally:
        console.close(force=True)


@needs_images
@needs_qemu_img
def test_uboot_reads_and_writes_virtio_disks(tmp_path: Path) -> None:
    """Three disks: a qcow2 image under snapshot=on (writes go to a temporary overlay:
    the file stays byte-identical), a writable qcow2 image (writes reach it and it
    passes qemu-img check), a read-only raw image on if=virtio (writes fail)."""
    assert QEMU_IMG is not None
    raw = tmp_path / "pattern.raw"
    raw.write_bytes(PATTERN * 32 + bytes((1 << 20) - 512))  # 1 MiB
    snap = tmp_path / "snap.qcow2"
    subprocess.run([QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", raw, snap], check=True)
    disk = tmp_path / "disk.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", disk, "2M"], check=True)
    before = _sha(snap)
    console = spawn_llvmtcg(
        "-M", "virt", "-m", "256M", "-nographic", "-bios", str(UBOOT_M),
        "-drive", f"file={snap},format=qcow2,if=none,id=snap,snapshot=on",
        "-device", "virtio-blk-device,drive=snap",
        "-blockdev", f"driver=qcow2,node-name=disk,file.driver=file,file.filename={disk}",
        "-device", "virtio-blk-device,drive=disk",
        "-drive", f"file={raw},format=raw,if=virtio,readonly=on")
    try:
        stop_autoboot(console)
        info = uboot_command(console, "virtio scan; virtio info")
        capacities = re.findall(r"Capacity: .*\((\d+) x 512\)", info)
        # U-Boot numbers the devices from the last slot down, where QEMU (and llvmtcg)
        # plug the first -device; the if=virtio disk is plugged after them.
        assert capacities == ["2048", "4096", "2048"], info
        snap_dev, disk_dev, raw_dev = 0, 1, 2
        out = uboot_command(console, f"virtio dev {snap_dev}; virtio read 0x84000000 0 1; "
                                     "md.b 0x84000000 0x10")
        assert "1 blocks read: OK" in out and PATTERN.decode() in out, out
        for dev in (snap_dev, disk_dev):
            out = uboot_command(console, f"virtio dev {dev}; mw.b 0x84000000 0x5a 0x200; "
                                         "virtio write 0x84000000 1 1; "
                                         "virtio read 0x85000000 1 1; md.b 0x85000000 0x10")
            assert "1 blocks written: OK" in out and "ZZZZZZZZZZZZZZZZ" in out, out
        out = uboot_command(console, f"virtio dev {raw_dev}; virtio write 0x84000000 0 1")
        assert "1 blocks written: OK" not in out, out
        assert quit_emulator(console) == 0
    finally:
        console.close(force=True)
    assert _sha(snap) == before  # snapshot=on: the image is unchanged
    check = subprocess.run([QEMU_IMG, "check", disk], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    converted = tmp_path / "disk.out"
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", disk, converted], check=True)
    assert converted.read_bytes()[512:1024] == b"Z" * 512
    assert raw.read_bytes()[:16] == PATTERN


@needs_images
@pytest.mark.slow
def test_opensbi_then_uboot_smode_reaches_its_prompt() -> None:
    console = spawn_llvmtcg("-M", "virt", "-m", "256M", "-nographic",
                            "-bios", str(IMAGES / "fw_jump.bin"), "-kernel", str(UBOOT_S),
                            timeout=240)
    try:
        console.expect("OpenSBI v1.1")
        console.expect(r"Domain0 Next Mode\s+: S-mode")
        console.expect("U-Boot 2023.01")
        stop_autoboot(console)
        assert "U-Boot 2023.01+dfsg" in uboot_command(console, "version")
        assert quit_emulator(console) == 0
    finally:
        console.close(force=True)
