"""RISC-V RV64GC frontend.

Decoding lives in two pattern tables: :mod:`.insn32` (32-bit encodings) and :mod:`.insn16`
(RVC, expanding into the 32-bit argument sets and translators).  :class:`RiscvDecoder`
binds one set of ``trans_*`` translators to both and picks the table by the low two bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..decodetree import Candidate, Decoder

__all__ = ["INSN16", "INSN32", "RiscvDecoder", "insn_length"]


def __getattr__(name: str) -> Any:
    # The tables are built from their pattern text when first used (~50 ms): a run
    # served entirely by the code cache never decodes an instruction.
    if name == "INSN32":
        from .insn32 import INSN32
        return INSN32
    if name == "INSN16":
        from .insn16 import INSN16
        return INSN16
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def insn_length(first_halfword: int) -> int:
    """Bytes in the instruction whose lowest 16 bits are ``first_halfword``: 2 or 4.

    Longer (48/64-bit) encodings are reported as 4 bytes; none of them has a pattern,
    so they decode as illegal instructions.
    """
    return 4 if first_halfword & 3 == 3 else 2


class RiscvDecoder:
    """Both RISC-V tables bound to one set of translators (modules, mappings, objects).

    Raises:
        DecodeTreeError: a pattern of either table has no translator, or a ``trans_*``
            serves no pattern of either table.
    """

    __slots__ = ("insn16", "insn32")

    def __init__(self, *namespaces: object) -> None:
        self.insn32: Decoder
        self.insn16: Decoder
        # (the decode tree machinery too: ~10 ms of imports a warm run does not need)
        from ..decodetree import bind_decoders
        from .insn16 import INSN16
        from .insn32 import INSN32

        self.insn32, self.insn16 = bind_decoders((INSN32, INSN16), *namespaces)

    def decode(self, insn: int) -> list[Candidate]:
        """Decodings of ``insn`` (a 16-bit parcel or 32-bit word) in priority order."""
        if insn & 3 == 3:
            return self.insn32.decode(insn & 0xFFFF_FFFF)
        return self.insn16.decode(insn & 0xFFFF)

    def dispatch(self, ctx: Any, insn: int) -> bool:
        """Translate one instruction; False means illegal (the caller raises it)."""
        if insn & 3 == 3:
            return self.insn32.dispatch(ctx, insn & 0xFFFF_FFFF)
        return self.insn16.dispatch(ctx, insn & 0xFFFF)
