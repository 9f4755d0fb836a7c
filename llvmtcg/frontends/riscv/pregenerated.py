"""The RISC-V decode tables, pregenerated: ``decode_tables.py`` holds them as built.

Building both tables from their pattern text (parsing, one compiled extractor per
pattern, the overlap checks) costs ~40 ms at every start; the generated module is
loaded in a few (its extractors are ordinary functions in Python's bytecode cache).
It is used only while its fingerprint — a hash of the files the tables are built from
(the pattern tables and ``decodetree.py``) — matches; otherwise the tables are built
from the text as before. Regenerate it after changing those files::

    python3 -m llvmtcg.frontends.riscv.gen_decode_tables

(``tests/frontends/test_pregenerated_tables.py`` fails until it is regenerated, and
checks that the loaded tables equal freshly built ones.)
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ..decodetree import DecodeTable, load_pregenerated

_HERE = Path(__file__).resolve().parent
_INPUTS = (_HERE.parent / "decodetree.py", _HERE / "insn32.py", _HERE / "insn16.py")
GENERATED = _HERE / "decode_tables.py"


def ex_rvc_register(value: int) -> int:
    """The 3-bit register fields of CIW/CL/CS/CA/CB formats name x8..x15 (or f8..f15)."""
    return value + 8


# The ``!function=`` names the tables use.
FIELD_FUNCTIONS = {"ex_rvc_register": ex_rvc_register}


def fingerprint() -> str:
    digest = hashlib.sha256()
    for path in _INPUTS:
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _loaded() -> dict[str, DecodeTable]:
    try:
        from . import decode_tables  # noqa: PLC0415 - generated; may be missing or stale
    except ImportError:
        return {}
    if decode_tables.FINGERPRINT != fingerprint():
        return {}
    return {t.name: t for t in load_pregenerated(decode_tables, FIELD_FUNCTIONS)}


def pregenerated(name: str) -> DecodeTable | None:
    """Table ``name`` from the generated module, or None if it is out of date."""
    return _loaded().get(name)
