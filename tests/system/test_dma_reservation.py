"""DMA and LR/SC: a device's write to a hart's reservation set makes its SC fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.system.test_smp import GUEST, launch, needs_cross_gcc

PATTERN = (0x1122334455667788).to_bytes(8, "little") * 64  # dma_lrsc.S's `buffer`


def _build(tmp_path: Path) -> Path:
    elf = tmp_path / "dma_lrsc.elf"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-march=rv64gc", "-mabi=lp64d",
                    "-static", "-Wl,--build-id=none", "-Wl,-N", "-Wl,-Ttext=0x80000000",
                    "-Wl,--no-warn-rwx-segments", "-o", str(elf),
                    str(GUEST / "dma_lrsc.S")], check=True)
    return elf


@needs_cross_gcc
def test_a_dma_write_of_the_same_bytes_makes_sc_fail(tmp_path: Path) -> None:
    """virtio-blk reads a sector holding exactly the bytes memory holds into the
    reserved doubleword between LR and SC: the SC fails (a compare-and-swap with the
    value LR read would succeed), a retried LR/SC succeeds, the request completed."""
    elf = _build(tmp_path)
    disk = tmp_path / "disk.img"
    disk.write_bytes(PATTERN + bytes(512 * 7))
    result = launch("-M", "virt", "-nographic", "-bios", "none", "-kernel", str(elf),
                    "-drive", f"file={disk},format=raw,if=none,id=d0",
                    "-device", "virtio-blk-device,drive=d0")
    assert result.stdout.decode().replace("\r\n", "\n") == (
        "sc after the device's write: 1\nretried lr/sc: 0\nrequest used/status: 1 0\n"), \
        result.stderr
    assert result.returncode == 0
    assert disk.read_bytes()[:512] == PATTERN  # (a read: the disk is unchanged)


@needs_cross_gcc
def test_a_dma_write_elsewhere_keeps_the_reservation(tmp_path: Path) -> None:
    """The same request with the reservation outside the written range: the SC
    succeeds (DMA drops only reservations on what it writes)."""
    source = (GUEST / "dma_lrsc.S").read_text()
    # Reserve the doubleword after the status byte's, not in the 512-byte buffer.
    moved = source.replace("    la s0, buffer\n    lr.d t1, (s0)",
                           "    la s0, header\n    lr.d t1, (s0)")
    assert moved != source
    variant = tmp_path / "dma_lrsc_elsewhere.S"
    variant.write_text(moved)
    elf = tmp_path / "dma_lrsc_elsewhere.elf"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-march=rv64gc", "-mabi=lp64d",
                    "-static", "-Wl,--build-id=none", "-Wl,-N", "-Wl,-Ttext=0x80000000",
                    "-Wl,--no-warn-rwx-segments", "-o", str(elf), str(variant)], check=True)
    disk = tmp_path / "disk.img"
    disk.write_bytes(PATTERN + bytes(512 * 7))
    result = launch("-M", "virt", "-nographic", "-bios", "none", "-kernel", str(elf),
                    "-drive", f"file={disk},format=raw,if=none,id=d0",
                    "-device", "virtio-blk-device,drive=d0")
    assert result.stdout.decode().replace("\r\n", "\n").startswith(
        "sc after the device's write: 0\n"), result.stderr
    assert result.returncode == 0
