"""The process test_crash.py kills: random writes and zero writes in rounds, each round
flushed and then logged, forever.

    python -m tests.blockdev.crash_writer IMAGE SEED LOG FIRST_ROUND [CACHE_BYTES]

What round ``r`` writes is a function of (SEED, r) alone, so the test can tell which
contents each slot may hold after the kill.
"""

from __future__ import annotations

import os
import random
import sys

SLOT_SIZE = 24 * 1024
SLOT_OFFSET = 1000  # slots straddle cluster boundaries: partial-cluster COW
SLOTS_PER_ROUND = 8


def slot_count(disk_size: int) -> int:
    return (disk_size - SLOT_OFFSET) // SLOT_SIZE


def round_plan(seed: int, round_number: int, slots: int) -> list[tuple[int, str]]:
    """(slot, "data" | "zeroes") for each write of a round."""
    rng = random.Random(seed * 1_000_003 + round_number)
    return [(rng.randrange(slots), "zeroes" if rng.random() < 0.15 else "data")
            for _ in range(SLOTS_PER_ROUND)]


def slot_data(seed: int, round_number: int, slot: int) -> bytes:
    return random.Random(f"{seed}/{round_number}/{slot}").randbytes(SLOT_SIZE)


def main() -> None:
    image, seed, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from blockdev import open_node

    options = {"driver": "qcow2", "discard": "unmap",
               "file": {"driver": "file", "filename": image}}
    if len(sys.argv) > 5:  # tiny caches: tables are evicted, so written, all the time
        options["l2-cache-size"] = options["refcount-cache-size"] = int(sys.argv[5])
    node = open_node(options)
    slots = slot_count(node.size)
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    round_number = int(sys.argv[4])
    while True:
        for slot, kind in round_plan(seed, round_number, slots):
            offset = SLOT_OFFSET + slot * SLOT_SIZE
            if kind == "zeroes":
                node.write_zeroes(offset, SLOT_SIZE, may_unmap=True)
            else:
                node.write(offset, slot_data(seed, round_number, slot))
        node.flush()
        os.write(log_fd, f"{round_number}\n".encode())
        round_number += 1


if __name__ == "__main__":
    main()
