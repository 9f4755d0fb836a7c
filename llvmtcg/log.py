"""QEMU-style ``-d item,item`` logging to stderr or a ``-D`` file."""

from __future__ import annotations

import sys
from typing import TextIO

LOG_ITEMS = {
    "in_asm": "guest instructions of each translated block",
    "op": "the IR of each translated block",
    "llvm": "the LLVM IR of each compiled module",
    "out_asm": "the host assembly of each compiled module",
    "exec": "each exit from native code to the run loop",
    "unimp": "unimplemented features the guest used",
    "page": "guest page mappings",
    "int": "exceptions and interrupts",
    "tier": "hot blocks, and optimised regions compiled, installed and retired",
}

# Items that log translations: code a cache supplies is not translated, so it would not
# be logged; with these on, the launchers keep no code across runs.
TRANSLATION_LOG_ITEMS = frozenset({"in_asm", "op", "llvm", "out_asm"})


class LogError(ValueError):
    pass


class Log:
    """Which ``-d`` items are on, and where they go."""

    def __init__(self, items: str | set[str] = "", stream: TextIO | None = None) -> None:
        if isinstance(items, str):
            items = {i.strip() for i in items.split(",") if i.strip()}
        unknown = sorted(items - LOG_ITEMS.keys())
        if unknown:
            raise LogError(f"unknown -d item(s): {', '.join(unknown)} "
                           f"(known: {', '.join(LOG_ITEMS)})")
        self.items = set(items)
        self.stream = stream

    def enabled(self, item: str) -> bool:
        return item in self.items

    def write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text if text.endswith("\n") else text + "\n")
        stream.flush()
