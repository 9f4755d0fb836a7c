"""The IR one guest instruction produced, recorded once and replayed into later blocks.

A frontend translating the same instruction word again (in the same translation
context) gets the same ops except for the block-local temps and labels, which are
numbered per block: a :class:`Recording` holds the ops as first built and appends them
to another block with those renumbered from that block's counts. What may be
recorded at all (nothing that depends on the instruction's address or on earlier
instructions of the block) is the frontend's decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llvmtcg.ir.block import Op
from llvmtcg.ir.builder import Builder, local_temp
from llvmtcg.ir.types import Label, Temp, TempKind

_LOCAL = TempKind.LOCAL
_new_op = tuple.__new__


@dataclass(slots=True)
class Recording:
    """Ops of one instruction as it was first translated, in a block that then had
    ``local_base`` locals and ``label_base`` labels.

    ``locals_``: the locals it made, in order; ``labels_used``: the labels its branches
    name (for :meth:`Builder.finish`'s check).
    """

    ops: tuple[Op, ...]
    locals_: tuple[Temp, ...]
    n_labels: int
    labels_used: tuple[Label, ...]
    local_base: int
    label_base: int
    # (block's locals, block's labels) -> (ops, locals, labels used) renumbered for a
    # block with those counts (blocks are short: a few variants per recording)
    _rebased: dict[tuple[int, int], tuple[tuple[Op, ...], tuple[Temp, ...],
                                          tuple[Label, ...]]] = field(
        default_factory=dict, compare=False, repr=False)

    def replay(self, builder: Builder) -> None:
        """Append the recorded ops to ``builder``'s block as if it had built them."""
        block = builder.block
        locals_ = self.locals_
        if not locals_ and not self.n_labels:
            block.ops.extend(self.ops)
            return
        n_locals, n_labels = len(block.locals), block.n_labels
        if n_locals == self.local_base and n_labels == self.label_base:
            ops, labels_used = self.ops, self.labels_used
        else:
            key = (n_locals, n_labels)
            rebased = self._rebased.get(key)
            if rebased is None:
                rebased = self._rebased[key] = self._rebase(n_locals, n_labels)
            ops, locals_, labels_used = rebased
        block.ops.extend(ops)
        block.locals.extend(locals_)
        block.n_labels += self.n_labels
        if labels_used:
            builder._labels_used.extend(labels_used)  # noqa: SLF001 - the builder's own record

    def _rebase(self, n_locals: int, n_labels: int) -> tuple[
            tuple[Op, ...], tuple[Temp, ...], tuple[Label, ...]]:
        locals_ = tuple(local_temp(t.type, n_locals + i) for i, t in enumerate(self.locals_))
        temps = {old.name: new for old, new in zip(self.locals_, locals_, strict=True)}
        labels = {self.label_base + i: Label(n_labels + i) for i in range(self.n_labels)}
        ops = tuple(_renumber(op, temps, labels) for op in self.ops)
        return ops, locals_, tuple(labels[label.index] for label in self.labels_used)


def record(builder: Builder, first_op: int, first_local: int, first_label: int,
           first_label_used: int) -> Recording | None:
    """The ops ``builder`` appended since its block had ``first_op`` ops,
    ``first_local`` locals and ``first_label`` labels (and had named
    ``first_label_used`` labels); None if they use a local or a label made before
    (they depend on the instructions before them)."""
    block = builder.block
    ops = block.ops[first_op:]
    made = block.locals[first_local:]
    names = {t.name for t in made} if made else ()
    for op in ops:
        for t in op.outputs:
            if t.kind is _LOCAL and t.name not in names:
                return None
        for t in op.inputs:
            if t.kind is _LOCAL and t.name not in names:
                return None
        for arg in op.args:
            if type(arg) is Label and arg.index < first_label:
                return None
    return Recording(tuple(ops), tuple(made), block.n_labels - first_label,
                     tuple(builder._labels_used[first_label_used:]),  # noqa: SLF001
                     first_local, first_label)


def _renumber(op: Op, temps: dict[str, Temp], labels: dict[int, Label]) -> Op:
    outputs = tuple(temps.get(t.name, t) if t.kind is _LOCAL else t for t in op.outputs)
    inputs = tuple(temps.get(t.name, t) if t.kind is _LOCAL else t for t in op.inputs)
    args = tuple(labels.get(a.index, a) if type(a) is Label else a for a in op.args)
    return _new_op(Op, (op.name, outputs, inputs, args))
