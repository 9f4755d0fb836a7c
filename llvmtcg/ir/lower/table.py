"""The rule table (every family's rules, by opcode) and the loop lowering a block's
ops through it."""

from __future__ import annotations

from llvmtcg.ir.block import Block
from llvmtcg.ir.lower.control import RULES as CONTROL_RULES
from llvmtcg.ir.lower.crypto import RULES as CRYPTO_RULES
from llvmtcg.ir.lower.emitter import Emitter, LoweringError
from llvmtcg.ir.lower.floating import RULES as FLOAT_RULES
from llvmtcg.ir.lower.integer import RULES as INTEGER_RULES
from llvmtcg.ir.lower.memory import RULES as MEMORY_RULES
from llvmtcg.ir.lower.rule import RuleTable
from llvmtcg.ir.lower.vector import RULES as VECTOR_RULES

TABLE = RuleTable([INTEGER_RULES, CONTROL_RULES, MEMORY_RULES, FLOAT_RULES, VECTOR_RULES,
                    CRYPTO_RULES])


def lower_ops(em: Emitter, block: Block, table: RuleTable = TABLE) -> None:
    """Lower ``block``'s ops, in order, into ``em``; the block must end with an exit."""
    unconditional, select = table.unconditional, table.select
    for op in block.ops:
        if em.terminated and op.name != "set_label":
            # Ops after an exit and before the next label are unreachable; give them
            # a block of their own so the function stays well formed.
            em.new_block(f"dead{em.fresh()}")
        lower = unconditional.get(op.name)
        if lower is None:
            try:
                lower = select(op)
            except LoweringError:
                raise LoweringError(f"{block.name}: no lowering for op {op.name}") from None
        lower(em, op)
    if not em.terminated:
        raise LoweringError(f"{block.name}: falls off its end without a block exit")
