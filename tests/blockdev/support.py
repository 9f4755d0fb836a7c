"""Helpers for the block-layer tests: Debian's qemu-utils (qemu-img, qemu-io) is the
oracle."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from blockdev import BlockNode, open_node

requires_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-io") is None,
    reason="qemu-img/qemu-io (Debian qemu-utils) are not installed")


def qemu_img(*args: str | Path) -> str:
    result = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"qemu-img {args}: {result.stderr}"
    return result.stdout


def qemu_io(image: Path, *commands: str, fmt: str = "qcow2") -> None:
    args = ["qemu-io", "-f", fmt]
    for command in commands:
        args += ["-c", command]
    result = subprocess.run([*args, str(image)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "error" not in result.stdout.lower(), \
        f"qemu-io {commands}: {result.stdout}{result.stderr}"


def qemu_check(image: Path) -> dict[str, Any]:
    """``qemu-img check`` as JSON (corruptions/leaks keys only when non-zero)."""
    result = subprocess.run(["qemu-img", "check", "--output=json", str(image)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 2, 3), f"qemu-img check failed: {result.stderr}"
    report = json.loads(result.stdout)
    report["messages"] = result.stderr
    return report


def assert_consistent(image: Path, leaks_allowed: bool = False) -> None:
    report = qemu_check(image)
    assert report.get("corruptions", 0) == 0 and report.get("check-errors", 0) == 0, report
    if not leaks_allowed:
        assert report.get("leaks", 0) == 0, report


def qemu_raw(image: Path, tmp_path: Path) -> bytes:
    """The guest-visible contents as ``qemu-img convert -O raw`` produces them."""
    out = tmp_path / (image.name + ".converted.raw")
    qemu_img("convert", "-O", "raw", image, out)
    data = out.read_bytes()
    out.unlink()
    return data


def assert_same_as_raw(image: Path, reference: bytes, tmp_path: Path) -> None:
    raw = tmp_path / (image.name + ".reference.raw")
    raw.write_bytes(reference)
    result = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(image),
                             str(raw)], capture_output=True, text=True, timeout=120)
    raw.unlink()
    assert result.returncode == 0, result.stdout + result.stderr


def open_qcow2(image: Path, **options: Any) -> BlockNode:
    return open_node({"driver": "qcow2", "file": {"driver": "file", "filename": str(image)},
                      **options})


def random_data_image(path: Path, size: int, seed: int) -> bytes:
    """A raw image with random runs, runs of one byte value, and zero gaps."""
    rng = random.Random(seed)
    data = bytearray(size)
    for i in range(max(8, size >> 16)):
        offset = rng.randrange(size)
        length = min(rng.randrange(1, 150_000), size - offset)
        data[offset:offset + length] = (rng.randbytes(length) if i % 3
                                        else bytes([rng.randrange(1, 256)]) * length)
    path.write_bytes(data)
    return bytes(data)
