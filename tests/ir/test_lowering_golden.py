"""Golden tests of the LLVM text the lowering emits (Cranelift's file tests, in spirit).

Each ``tests/ir/lowering/*.test`` file holds IR in its text form (``str(block)``), the
properties the output must have as ``CHECK:`` lines, and the complete expected LLVM
module. The test parses the IR (checking that the file's IR is in the canonical text
form), lowers it, checks that LLVM accepts the module, that the ``CHECK:`` substrings
appear in order (each after the previous one's match, FileCheck style), and that the
whole text equals the expected text: any change in the lowering's output fails here.

Format of a file (directives first, all optional)::

    ; free comment lines
    ; lower: block | region | accessors      what to lower (default: block)
    ; option: inline_memory flat_memory count_insns hot_threshold=N
    ; helper: NAME RET(ARG,...) FLAG|FLAG    a helper the IR calls (RET may be void)
    ; indirect: 0x1000 0x2000                a region's indirect-jump targets
    ; accessors: llvmtcg_ld_03_0 ...         the accessors to define (lower: accessors)
    IN tb_1000 pc=0x1000                     one or more blocks (a region: head first)
     ---- 0x0000000000001000
     add_i64 r[0],r[1],$0x1
     ...
    CHECK: add i64 %v1, 1
    ; ---- expected LLVM (LLVMTCG_UPDATE_GOLDEN=1 rewrites everything below) ----
    <the module text>

The CPU-state layout is ``LAYOUT`` below: eight i64 registers ``r[0..7]`` and four
i32 registers ``w[0..3]``, two MMU indexes, 256-entry TLBs.

**Update mode**: after an intended change of the lowering, run

    LLVMTCG_UPDATE_GOLDEN=1 python3 -m pytest -q tests/ir/test_lowering_golden.py

which rewrites the expected text of every file (the ``CHECK:`` lines still have to
pass), then review the diff (``git diff tests/ir/lowering``) like any code change.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from llvmtcg.ir import I32, I64
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.lower import Lowering
from llvmtcg.ir.parse import parse_blocks
from llvmtcg.ir.types import IRType

LAYOUT = CpuLayout([("r", I64, 8), ("w", I32, 4)], n_mmu_idx=2, tlb_bits=8)
GOLDEN_DIR = Path(__file__).parent / "lowering"
UPDATE = os.environ.get("LLVMTCG_UPDATE_GOLDEN", "") not in ("", "0")
SEPARATOR = ("; ---- expected LLVM (LLVMTCG_UPDATE_GOLDEN=1 rewrites everything below) "
             "----")
_TYPES: dict[str, IRType | None] = {"i32": I32, "i64": I64, "void": None}
_HELPER = re.compile(r"(\w+) (\w+)\(([\w, ]*)\)\s*([\w|]*)")


@dataclass
class GoldenFile:
    path: Path
    head: list[str] = field(default_factory=list)  # everything above the separator
    kind: str = "block"
    options: dict[str, object] = field(default_factory=dict)
    helpers: dict[str, HelperDecl] = field(default_factory=dict)
    indirect: list[int] = field(default_factory=list)
    accessors: list[str] = field(default_factory=list)
    ir: list[str] = field(default_factory=list)
    checks: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    expected: str | None = None


def read_golden(path: Path) -> GoldenFile:
    text = path.read_text()
    head, sep, expected = text.partition(SEPARATOR + "\n")
    golden = GoldenFile(path, head.splitlines(), expected=expected if sep else None)
    for number, line in enumerate(golden.head, 1):
        if line.startswith("; "):
            key, colon, value = line[2:].partition(":")
            if not colon:
                continue
            value = value.strip()
            if key == "lower":
                golden.kind = value
            elif key == "option":
                for item in value.split():
                    name, _, arg = item.partition("=")
                    number = int(arg, 0) if arg else 1
                    golden.options[name] = number if name == "hot_threshold" else bool(number)
            elif key == "helper":
                m = _HELPER.fullmatch(value)
                assert m, f"{path.name}:{number}: bad helper directive {value!r}"
                name, ret, args, flags = m.groups()
                flag = HelperFlag.NONE
                for f in filter(None, flags.split("|")):
                    flag |= HelperFlag[f]
                golden.helpers[name] = HelperDecl(
                    name, _TYPES[ret], tuple(_TYPES[a.strip()] for a in args.split(",")
                                             if a.strip()), flag)
            elif key == "indirect":
                golden.indirect = [int(v, 0) for v in value.split()]
            elif key == "accessors":
                golden.accessors = value.split()
        elif line.startswith("CHECK:"):
            golden.checks.append((number, line[len("CHECK:"):].strip()))
        elif line.startswith(("IN ", " ")):
            golden.ir.append(line)
        elif line.strip():
            raise AssertionError(f"{path.name}:{number}: unexpected line {line!r}")
    return golden


def lower(golden: GoldenFile) -> str:
    """The module text for the file's IR (and check that the IR is canonical text)."""
    ir_text = "".join(line + "\n" for line in golden.ir)
    blocks = parse_blocks(ir_text, LAYOUT.globals(), golden.helpers)
    assert "".join(str(b) for b in blocks) == ir_text, \
        f"{golden.path.name}: the IR is not in its canonical text form (str(block))"
    lowering = Lowering(LAYOUT, golden.helpers, **golden.options)
    if golden.kind == "block":
        return lowering.lower_module(blocks)
    if golden.kind == "region":
        return lowering.lower_region(f"rg_{blocks[0].pc:x}", blocks,
                                     indirect_targets=golden.indirect)[0]
    if golden.kind == "accessors":
        return lowering.accessor_module(golden.accessors)
    raise AssertionError(f"{golden.path.name}: unknown 'lower: {golden.kind}'")


def check_in_order(golden: GoldenFile, text: str) -> None:
    """Each CHECK substring occurs in ``text`` after the previous one's match."""
    position = 0
    for number, expected in golden.checks:
        found = text.find(expected, position)
        assert found >= 0, (f"{golden.path.name}:{number}: CHECK {expected!r} not found "
                            f"after offset {position} of the output:\n{text}")
        position = found + len(expected)


GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.test"))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_lowering_matches_golden(path: Path) -> None:
    golden = read_golden(path)
    assert golden.ir or golden.kind == "accessors", f"{path.name}: no IR"
    assert golden.checks, f"{path.name}: say what matters in CHECK: lines"
    text = lower(golden)
    llvm.parse_assembly(text).verify()  # the golden text is valid LLVM IR
    check_in_order(golden, text)
    if UPDATE:
        path.write_text("\n".join([*golden.head, SEPARATOR, ""]) + text)
        return
    assert golden.expected is not None, \
        f"{path.name}: no expected text (run with LLVMTCG_UPDATE_GOLDEN=1 to write it)"
    if text != golden.expected:
        diff = "".join(difflib.unified_diff(golden.expected.splitlines(True),
                                            text.splitlines(True), "expected", "lowered"))
        pytest.fail(f"{path.name}: the lowering's output changed (if intended, run with "
                    f"LLVMTCG_UPDATE_GOLDEN=1 and review the diff):\n{diff}")


def test_golden_files_exist() -> None:
    assert len(GOLDEN_FILES) >= 10


def test_the_comparison_is_exact() -> None:
    """The expected text is compared whole: one changed character is a failure."""
    golden = read_golden(GOLDEN_DIR / "integer_operands.test")
    text = lower(golden)
    assert golden.expected == text
    assert golden.expected.replace("add i64", "sub i64", 1) != text


def test_a_failed_check_is_reported(tmp_path: Path) -> None:
    golden = read_golden(GOLDEN_DIR / "integer_operands.test")
    golden.checks = [*golden.checks, (0, "this text is not in the output")]
    with pytest.raises(AssertionError, match="not found"):
        check_in_order(golden, lower(golden))


def test_checks_must_be_in_order() -> None:
    golden = read_golden(GOLDEN_DIR / "integer_operands.test")
    golden.checks = list(reversed(golden.checks))
    assert len(golden.checks) >= 2
    with pytest.raises(AssertionError, match="not found"):
        check_in_order(golden, lower(golden))
