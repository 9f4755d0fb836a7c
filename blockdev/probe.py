"""Image format probing, for images opened without a format (QEMU's bdrv_probe_all).

Only raw and qcow2 are implemented; the magic numbers of the other formats QEMU knows
are recognised so that such an image gets a clear error instead of being taken as raw.
"""

from __future__ import annotations

import struct

PROBE_BYTES = 2048  # QEMU's BLOCK_PROBE_BUF_SIZE for opening
RAW_BLOCK0_BYTES = 512  # what a write to a probed raw image's block 0 is checked on

_QCOW_MAGIC = b"QFI\xfb"
_VDI_SIGNATURE = 0xBEDA107F


def probe_format(head: bytes) -> str:
    """The format name of an image starting with ``head``: "qcow2", "raw", or the name
    of a format this block layer does not implement."""
    if head[:4] == _QCOW_MAGIC and len(head) >= 8:
        version = struct.unpack(">I", head[4:8])[0]
        return "qcow2" if version >= 2 else "qcow"
    if head[:4] == b"QED\0":
        return "qed"
    if head[:4] == b"KDMV" or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if head[:8] == b"conectix":
        return "vpc"
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if head[:6] == b"LUKS\xba\xbe":
        return "luks"
    if head[:16] in (b"WithoutFreeSpace", b"WithouFreSpacExt"):
        return "parallels"
    if len(head) >= 68 and struct.unpack("<I", head[64:68])[0] == _VDI_SIGNATURE:
        return "vdi"
    return "raw"
