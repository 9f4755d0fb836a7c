"""Lowering: IR blocks -> LLVM IR text.

Layout (one role per module):

* ``lowering.py`` — :class:`Lowering`, the entry point: builds modules of block
  functions, region functions and accessor functions, with their declarations;
* ``emitter.py`` — :class:`Emitter`, the API rules write LLVM IR through;
* ``rule.py`` — rules, rule sets and the rule table (selection by opcode and priority);
* ``integer.py``, ``control.py``, ``memory.py``, ``floating.py`` — the rules, by family;
  ``table.py`` merges them into one table and lowers a block's ops through it;
* ``block_function.py``, ``region_function.py``, ``accessor_function.py`` — the
  three function shapes (cheap-tier block, hot region, shared memory accessor);
* ``symbols.py`` — names of module globals and accessors, shared with the runtime.
"""

from llvmtcg.ir.lower.emitter import Emitter, LoweringError, LoweringOptions
from llvmtcg.ir.lower.lowering import Lowering
from llvmtcg.ir.lower.symbols import (
    INDIRECT_TARGETS,
    accessor_name,
    counter_symbol,
    has_indirect_exit,
    slot_symbol,
    target_symbol,
)

__all__ = [
    "INDIRECT_TARGETS", "Emitter", "Lowering", "LoweringError", "LoweringOptions",
    "accessor_name", "counter_symbol", "has_indirect_exit", "slot_symbol", "target_symbol",
]
