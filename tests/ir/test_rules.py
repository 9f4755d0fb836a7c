"""The lowering's rule table: every IR opcode has a rule, no rule names a nonexistent
opcode, selection is unambiguous and total, and specialisations win by priority."""

from __future__ import annotations

import pytest

from llvmtcg.ir import I32, I64, Block, ExitReason, Op, RoundingMode, const
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.lower import Emitter, LoweringError, LoweringOptions, floating, integer
from llvmtcg.ir.lower.block_function import BlockFunction, lower_block_function
from llvmtcg.ir.lower.rule import RuleSet, RuleTable
from llvmtcg.ir.lower.table import TABLE, lower_ops
from llvmtcg.ir.ops import OPS

LAYOUT = CpuLayout([("r", I64, 2), ("w", I32, 2)])
G = LAYOUT.globals()


def test_every_opcode_has_a_rule_and_no_rule_names_a_nonexistent_opcode() -> None:
    assert set(OPS) - TABLE.opcodes == set(), "opcodes without a lowering rule"
    assert TABLE.opcodes - set(OPS) == set(), "rules for opcodes that do not exist"
    for opcode in OPS:
        assert TABLE.rules(opcode)[-1].when is None  # the general rule closes every list


def _noop(em: Emitter, op: Op) -> None:
    pass


def _other(em: Emitter, op: Op) -> None:
    pass


def test_a_rule_for_an_unknown_opcode_is_refused() -> None:
    rules = RuleSet("test")
    rules.rule("frobnicate")(_noop)
    with pytest.raises(LoweringError, match="unknown opcode 'frobnicate'"):
        RuleTable([rules])


def test_two_rules_of_one_priority_are_ambiguous() -> None:
    rules = RuleSet("test")
    rules.rule("add", when=lambda op: True, priority=1)(_noop)
    rules.rule("add", when=lambda op: False, priority=1)(_other)
    rules.rule("add")(_noop)
    with pytest.raises(LoweringError, match="same priority"):
        RuleTable([rules])


def test_an_unconditional_rule_may_not_hide_another() -> None:
    rules = RuleSet("test")
    rules.rule("add", priority=1)(_noop)
    rules.rule("add", when=lambda op: True)(_other)
    with pytest.raises(LoweringError, match="hides"):
        RuleTable([rules])


def test_every_opcode_needs_a_rule_matching_every_op() -> None:
    rules = RuleSet("test")
    rules.rule("add", when=lambda op: op.inputs[1].is_const)(_noop)
    with pytest.raises(LoweringError, match="no rule matches every add op"):
        RuleTable([rules])


def test_rules_of_different_families_meet_in_one_table() -> None:
    a, b = RuleSet("a"), RuleSet("b")
    a.rule("add")(_noop)
    b.rule("add", when=lambda op: True, priority=2)(_other)
    table = RuleTable([a, b])
    assert [r.family for r in table.rules("add")] == ["b", "a"]
    assert table.select(Op("add", (G["r[0]"],), (G["r[0]"], G["r[1]"]))) is _other


def test_specialisations_are_selected_by_priority() -> None:
    r0, r1, w0 = G["r[0]"], G["r[1]"], G["w[0]"]
    by_register = Op("shl", (r0,), (r0, r1))
    by_constant = Op("shl", (r0,), (r0, const(I64, 3)))
    assert TABLE.select(by_register) is integer._shift
    assert TABLE.select(by_constant) is integer._shift_by_constant
    dyn = Op("fadd", (r0,), (r0, r1), (RoundingMode.DYN,))
    rmm = Op("fadd", (r0,), (r0, r1), (RoundingMode.RMM,))
    assert TABLE.select(dyn) is floating._arith
    assert TABLE.select(rmm) is floating._arith_ties_away
    widen = Op("fcvt", (r0,), (w0,), (RoundingMode.RMM,))  # exact: no rounding at all
    narrow_rmm = Op("fcvt", (w0,), (r0,), (RoundingMode.RMM,))
    assert TABLE.select(widen) is floating._fcvt_widen
    assert TABLE.select(narrow_rmm) is floating._fcvt_narrow_ties_away
    exact_rmm = Op("itof", (r0,), (w0,), (RoundingMode.RMM,))  # i32 -> binary64
    assert TABLE.select(exact_rmm) is floating._int_to_float


def test_matching_looks_at_the_op_only() -> None:
    """Predicates take the op, never an emitter, so matching cannot emit code; and they
    answer without side effects (same answer twice, op unchanged)."""
    op = Op("sar", (G["r[0]"],), (G["r[0]"], const(I64, 65)))
    for rule in TABLE.rules("sar"):
        if rule.when is not None:
            assert rule.when(op) == rule.when(op)
    assert op == Op("sar", (G["r[0]"],), (G["r[0]"], const(I64, 65)))


def test_an_op_without_a_rule_is_a_lowering_error() -> None:
    block = Block(0x1000, ops=[Op("add", (G["r[0]"],), (G["r[0]"], G["r[1]"])),
                               Op("exit_tb", args=(ExitReason.LOOKUP,))])
    options = LoweringOptions(LAYOUT, {})
    with pytest.raises(LoweringError, match="tb_1000: no lowering for op add"):
        lower_ops(BlockFunction(options, block, set()), block, RuleTable([]))
    assert "add i64" in lower_block_function(options, block, set())
