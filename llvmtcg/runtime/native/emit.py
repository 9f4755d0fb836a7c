"""Emitting a block from stencils: copy the bytes, patch the holes, place it in the arena.

A block is built in a ``bytearray`` (each stencil appended by one ``struct`` pack of its
bytes and hole values, see ``stencils._compile_emitter``), then copied into the
:class:`CodeArena` in one piece, so nothing executable is ever half-written. Jumps
inside the block go to :class:`Label` s (relative, resolved at :meth:`Assembler.finish`
without knowing the final address); jumps to code elsewhere in the arena (other blocks,
shared stubs) take an absolute address and are resolved once the block's place is
known.
"""

from __future__ import annotations

import struct

from llvmtcg.runtime.native.arena import CodeArena
from llvmtcg.runtime.native.stencils import EmitError, Stencil

__all__ = ["Assembler", "EmitError", "Label"]

_S32 = struct.Struct("<i")


class Label:
    """A position in the block being assembled; bound once with :meth:`Assembler.bind`."""

    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset: int | None = None


class Assembler:
    """Builds one block of concatenated stencils.

    ``emit(stencil, *operands)`` appends a stencil; operands are ints (U31, I64) and
    :class:`Label` s or absolute arena addresses (LABEL), in the stencil's operand order.
    ``stencil.emit(assembler, *operands)`` does the same without the argument check
    (a wrong operand count or type is then a ``TypeError``): the hot path.
    """

    __slots__ = ("code", "jumps", "falls_through", "_labels")

    def __init__(self) -> None:
        self.code = bytearray()
        # (offset of a rel32 field, its target, addend), for finish()
        self.jumps: list[tuple[int, Label | int, int]] = []
        self.falls_through = False  # the last stencil continues after the block's end
        self._labels: list[Label] = []

    def label(self) -> Label:
        return Label()

    def bind(self, label: Label) -> None:
        """Place ``label`` at the current end of the block."""
        if label.offset is not None:
            raise EmitError("label bound twice")
        label.offset = len(self.code)
        self._labels.append(label)

    def emit(self, stencil: Stencil, *operands: int | Label) -> None:
        """Append ``stencil`` with its holes filled from ``operands``.

        Raises:
            EmitError: wrong operand count or type, or a value that does not fit its
                hole; nothing was appended.
        """
        try:
            stencil.emit(self, *operands)
        except TypeError:
            wanted = ", ".join(f"{o.name}: {o.kind.value}" for o in stencil.operands)
            raise EmitError(f"stencil {stencil.name} takes ({wanted}), got "
                            f"{operands!r}") from None

    def finish(self, arena: CodeArena, align: int = 16) -> int:
        """Resolve the jumps, copy the block into ``arena`` and return its address.

        Raises:
            EmitError: an unbound label, a jump out of rel32 reach, or a block whose
                last stencil (or a label at its end) would run past its last byte.
            ArenaFull: no room; nothing was written.
        """
        code = self.code
        end = len(code)
        labels = self._labels  # (bound in order, at growing offsets: the last is last)
        if self.falls_through or (labels and labels[-1].offset == end):
            raise EmitError("the block's last stencil continues past the end of the block "
                            "(end blocks with an exit or a jump)")
        absolute = []
        for offset, target, addend in self.jumps:
            if type(target) is Label:
                if target.offset is None:
                    raise EmitError("a jump targets a label that was never bound")
                _S32.pack_into(code, offset, target.offset + addend - offset)
            else:
                absolute.append((offset, target, addend))
        address = arena.alloc_code(end, align)
        for offset, target, addend in absolute:
            displacement = target + addend - (address + offset)
            if not -0x80000000 <= displacement <= 0x7FFFFFFF:
                raise EmitError(f"jump target {target:#x} is out of rel32 reach of the "
                                f"block at {address:#x}")
            _S32.pack_into(code, offset, displacement)
        arena.write(address, code)
        return address

    def address_of(self, label: Label, block_address: int) -> int:
        """Where ``label`` ended up in the block placed at ``block_address``."""
        if label.offset is None:
            raise EmitError("label was never bound")
        return block_address + label.offset
