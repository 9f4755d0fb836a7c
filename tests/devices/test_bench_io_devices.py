"""bench/io_devices stays runnable: it drives virtio-blk (raw, qcow2 read and write) and
virtio-net receive as Linux does and checks every request completes with status OK and
every frame is delivered (no drops, nothing held)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img (qemu-utils)")
def test_bench_io_devices_runs_every_scenario() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "io_devices"), "--size-mib", "2",
                          "--request-kib", "256", "--runs", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0] for line in run.stdout.splitlines()[1:-1]}
    assert rows == {"blk-raw-read", "blk-qcow2-read", "blk-qcow2-write", "net-rx"}
