"""Crash safety: a process doing random writes is killed with SIGKILL at random moments;
``qemu-img check`` then finds no corruption (leaked clusters are allowed), and every
write completed before a flush is still there."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blockdev import Qcow2Node, create_qcow2
from tests.blockdev import crash_writer
from tests.blockdev.support import (
    assert_consistent,
    open_qcow2,
    qemu_img,
    qemu_raw,
    requires_qemu_img,
)

pytestmark = requires_qemu_img

DISK_SIZE = 16 << 20
ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(image: Path, seed: int, log: Path, first_round: int, delay: float,
                 cache_bytes: int | None) -> None:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    child = subprocess.Popen([sys.executable, "-m", "tests.blockdev.crash_writer", str(image),
                              str(seed), str(log), str(first_round),
                              *([str(cache_bytes)] if cache_bytes else [])], cwd=ROOT, env=env,
                             stderr=subprocess.PIPE)
    # Kill at a random moment after the writer got going (however loaded the machine).
    deadline = time.monotonic() + 60
    logged = len(flushed_rounds(log))
    while len(flushed_rounds(log)) == logged and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    alive = child.poll() is None
    child.send_signal(signal.SIGKILL)
    _, stderr = child.communicate(timeout=30)
    assert alive, f"the writer died by itself: {stderr.decode()}"


def flushed_rounds(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def check_contents(contents: bytes, initial: bytes, seed: int, executed: list[int],
                   flushed: set[int]) -> None:
    """Each slot holds, sector by sector, what its last flushed write put there or what
    a later write that was never flushed (a round cut by the kill) put there."""
    slots = crash_writer.slot_count(DISK_SIZE)
    size, sector = crash_writer.SLOT_SIZE, 512
    writers: dict[int, list[tuple[int, str]]] = {}
    for r in executed:
        for slot, kind in crash_writer.round_plan(seed, r, slots):
            writers.setdefault(slot, []).append((r, kind))
    for slot in range(slots):
        offset = crash_writer.SLOT_OFFSET + slot * size
        history = writers.get(slot, [])
        last_flushed = max((i for i, (r, _) in enumerate(history) if r in flushed),
                           default=None)
        since = history if last_flushed is None else history[last_flushed:]
        candidates = [initial[offset:offset + size]] if last_flushed is None else []
        for r, kind in since:
            candidates.append(bytes(size) if kind == "zeroes"
                              else crash_writer.slot_data(seed, r, slot))
        actual = contents[offset:offset + size]
        # A write cut by the kill changes whole disk sectors: compare those.
        cuts = [0, *range(sector - offset % sector, size, sector), size]
        for lo, hi in zip(cuts, cuts[1:], strict=False):
            assert any(actual[lo:hi] == c[lo:hi] for c in candidates), \
                f"slot {slot} bytes {lo}..{hi} hold data no write put there"


@pytest.mark.parametrize("variant", ["v3", "v2", "small-clusters", "tiny-caches",
                                     "snapshot", "backing", "lazy-refcounts"])
def test_kill_during_heavy_writes_leaves_a_consistent_image(variant: str,
                                                            tmp_path: Path) -> None:
    image = tmp_path / "crash.qcow2"
    initial = bytes(DISK_SIZE)
    small = variant in ("small-clusters", "tiny-caches", "snapshot")
    # Two-table caches (4 KiB clusters): tables are written back all the time, not
    # just at flushes, so a wrong write order shows at almost any moment of a kill.
    cache_bytes = 2 * 4096 if variant in ("tiny-caches", "snapshot") else None
    if variant == "backing":
        base = tmp_path / "base.raw"
        initial = random.Random(1).randbytes(DISK_SIZE)
        base.write_bytes(initial)
        create_qcow2(image, DISK_SIZE, backing_file="base.raw", backing_format="raw")
    else:
        create_qcow2(image, DISK_SIZE, version=2 if variant == "v2" else 3,
                     cluster_size=4096 if small else 65536,
                     refcount_bits=8 if small else 16,
                     lazy_refcounts=variant == "lazy-refcounts")
    if variant == "snapshot":  # writes then copy shared clusters and L2 tables
        initial = random.Random(2).randbytes(DISK_SIZE)
        with open_qcow2(image) as node:
            assert isinstance(node, Qcow2Node)
            node.write(0, initial)
            node.create_snapshot("before")
    rng = random.Random(variant)
    seed = rng.randrange(1 << 30)
    log = tmp_path / "flushed.log"
    executed: list[int] = []
    first_round = 0
    for _ in range(2):  # the second writer starts on the image the first one left
        logged_before = len(flushed_rounds(log))
        run_and_kill(image, seed, log, first_round, rng.uniform(0.0, 0.8), cache_bytes)
        new = flushed_rounds(log)[logged_before:]
        last_flushed = new[-1] if new else first_round - 1
        executed += range(first_round, last_flushed + 2)  # + the round the kill cut
        first_round = last_flushed + 2
        if variant == "lazy-refcounts":
            # Counts lag behind by design; opening writable repairs them first.
            with open_qcow2(image):
                pass
            assert_consistent(image)
        else:
            assert_consistent(image, leaks_allowed=True)
    assert len(executed) > 4, "the writer made too little progress to test anything"
    check_contents(qemu_raw(image, tmp_path), initial, seed, executed,
                   set(flushed_rounds(log)))
    if variant == "snapshot":
        qemu_img("snapshot", "-a", "before", image)
        assert qemu_raw(image, tmp_path) == initial
