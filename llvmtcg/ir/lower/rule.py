"""Lowering rules and the table that selects one per op.

A rule lowers one IR op through an :class:`~llvmtcg.ir.lower.emitter.Emitter`. Each
family module (``integer``, ``control``, ``memory``, ``floating``) collects its rules
in a :class:`RuleSet`; ``table.py`` merges the families into the one
:class:`RuleTable` keyed by opcode.

An opcode may have several rules: specialisations (a constant shift count, a rounding
mode x86 lacks) are separate entries with a ``when`` predicate and a higher
``priority`` than the general rule, which has no predicate. Matching looks at the op
only (its operands' kinds, its arguments) and never emits code; the highest-priority
rule whose predicate holds lowers the op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llvmtcg.ir.block import Op
from llvmtcg.ir.lower.emitter import Emitter, LoweringError
from llvmtcg.ir.ops import OPS

LowerFn = Callable[[Emitter, Op], None]
Match = Callable[[Op], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """Lower ``opcode`` with ``lower`` when ``when`` (None: always) holds; rules of one
    opcode are tried from the highest ``priority`` down."""

    opcode: str
    lower: LowerFn
    when: Match | None = None
    priority: int = 0
    family: str = ""

    def __str__(self) -> str:
        guard = f" when {getattr(self.when, '__name__', self.when)}" if self.when else ""
        return (f"{self.family}.{self.lower.__name__} ({self.opcode}, "
                f"priority {self.priority}{guard})")


class RuleSet:
    """The rules of one family, registered with :meth:`rule`."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.rules: list[Rule] = []

    def rule(self, *opcodes: str, when: Match | None = None,
             priority: int = 0) -> Callable[[LowerFn], LowerFn]:
        """Decorator: ``fn`` lowers each of ``opcodes`` (when ``when`` holds)."""
        def register(fn: LowerFn) -> LowerFn:
            for opcode in opcodes:
                self.rules.append(Rule(opcode, fn, when, priority, self.family))
            return fn
        return register


class RuleTable:
    """Every rule, by opcode. Built once; checks that each opcode exists, that its
    rules have distinct priorities and that its lowest-priority rule (only that one)
    matches every op, so selection is unambiguous and total."""

    def __init__(self, sets: Iterable[RuleSet]) -> None:
        by_opcode: dict[str, list[Rule]] = {}
        for rule_set in sets:
            for rule in rule_set.rules:
                if rule.opcode not in OPS:
                    raise LoweringError(f"rule {rule} for unknown opcode {rule.opcode!r}")
                by_opcode.setdefault(rule.opcode, []).append(rule)
        self._rules: dict[str, tuple[Rule, ...]] = {}
        # Opcodes lowered by one unconditional rule (most): selected by one dict lookup.
        self.unconditional: dict[str, LowerFn] = {}
        for opcode, rules in by_opcode.items():
            rules.sort(key=lambda r: -r.priority)
            for higher, lower in zip(rules, rules[1:], strict=False):
                if higher.priority == lower.priority:
                    raise LoweringError(f"rules {higher} and {lower} have the same priority")
            for rule in rules[:-1]:
                if rule.when is None:
                    raise LoweringError(f"rule {rule} matches every op: it hides {rules[-1]}")
            if rules[-1].when is not None:
                raise LoweringError(f"no rule matches every {opcode} op (last: {rules[-1]})")
            self._rules[opcode] = tuple(rules)
            if len(rules) == 1:
                self.unconditional[opcode] = rules[0].lower

    @property
    def opcodes(self) -> frozenset[str]:
        return frozenset(self._rules)

    def rules(self, opcode: str) -> tuple[Rule, ...]:
        """The rules of ``opcode``, highest priority first (empty if none)."""
        return self._rules.get(opcode, ())

    def select(self, op: Op) -> LowerFn:
        """The function lowering ``op``."""
        for rule in self._rules.get(op.name, ()):
            if rule.when is None or rule.when(op):
                return rule.lower
        raise LoweringError(f"no lowering for op {op.name}")
