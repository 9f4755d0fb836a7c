"""docs/library.md's walk-through runs: every ``python`` block, in order, in one
namespace (its asserts are the test)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "library.md"


@pytest.mark.skipif(shutil.which("riscv64-linux-gnu-gcc") is None,
                    reason="riscv64 cross compiler not installed")
def test_the_walk_through_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 5
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}[block {number}]", "exec"), namespace)  # noqa: S102
