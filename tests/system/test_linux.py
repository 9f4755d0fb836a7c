"""Linux 6.1 on ``-M virt`` (OpenSBI fw_jump, BusyBox initramfs): boots to BOOT-OK and
powers off with status 0; mounts an ext2 disk on virtio-blk, writes a file the host then
finds in the image. Slow (minutes) until the baseline tier makes translation cheap."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pexpect
import pytest

from tests.machines.support import IMAGES, needs_images
from tests.system.console import spawn_llvmtcg

pytestmark = [pytest.mark.slow, needs_images]
BOOT = ("-M", "virt", "-m", "256M", "-nographic", "-bios", str(IMAGES / "fw_jump.bin"),
        "-kernel", str(IMAGES / "Image"), "-append", "console=ttyS0")
BOOT_TIMEOUT = 3600  # seconds per step; minutes on an idle machine today, far more when loaded


def test_linux_boots_to_boot_ok_and_powers_off() -> None:
    console = spawn_llvmtcg(*BOOT, "-initrd", str(IMAGES / "initramfs-poweroff.cpio.gz"),
                            timeout=BOOT_TIMEOUT)
    try:
        console.expect("BOOT-OK")
        console.expect("POWEROFF")
        console.expect(pexpect.EOF)
    finally:
        console.close(force=True)
    assert console.exitstatus == 0


@pytest.mark.skipif(shutil.which("mkfs.ext2") is None or shutil.which("debugfs") is None,
                    reason="needs e2fsprogs (mkfs.ext2, debugfs)")
def test_linux_mounts_an_ext2_disk_on_virtio_blk(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "hello.txt").write_text("from the host\n")
    disk = tmp_path / "disk.img"
    subprocess.run(["mkfs.ext2", "-q", "-d", str(content), str(disk), "8M"], check=True)
    console = spawn_llvmtcg(*BOOT, "-initrd", str(IMAGES / "initramfs.cpio.gz"),
                            "-drive", f"file={disk},format=raw,if=none,id=d0",
                            "-device", "virtio-blk-device,drive=d0", timeout=BOOT_TIMEOUT)
    try:
        console.expect("BOOT-OK")
        console.expect(r"[#$] ")
        console.sendline("mkdir -p /mnt && mount -t ext2 /dev/vda /mnt && cat /mnt/hello.txt")
        console.expect("from the host", timeout=120)
        console.expect(r"[#$] ")
        console.sendline("echo from-the-guest > /mnt/guest.txt && umount /mnt && sync && "
                         "echo DONE-$((6*7))")
        console.expect("DONE-42", timeout=120)
        console.sendline("poweroff -f")
        console.expect(pexpect.EOF, timeout=120)
    finally:
        console.close(force=True)
    out = subprocess.run(["debugfs", "-R", "cat /guest.txt", str(disk)], capture_output=True,
                         text=True, check=True).stdout
    assert out == "from-the-guest\n"
