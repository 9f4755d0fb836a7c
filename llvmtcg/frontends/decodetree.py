"""Bit-pattern tables -> mask/match decision tree -> ``trans_<name>`` dispatch.

A small decodetree in the spirit of QEMU's ``scripts/decodetree.py``, built in pure
Python once at import time.  A frontend writes its instructions as text, one line per
pattern, in a dialect of QEMU's ``.decode`` format::

    # fields: bit slices, most significant segment first; ``s`` = sign-extend
    %rd        7:5
    %imm_b     31:s1 7:1 25:6 8:4  <<1          # scaled by 2
    %rs1_3     7:3  !function=ex_rvc_register   # odd cases: a Python function

    # argument sets: the record a translator receives
    &r         rd rs1 rs2

    # formats: an argument set plus where each member comes from
    @r         &r %rd %rs1 %rs2

    # patterns: name, bits (0/1 fixed, . field, - ignored), format, overrides
    add        0000000 ..... ..... 000 ..... 0110011  @r
    c_mv       100 0 ..... ..... 10  @cr rs1=0  -> add   # reuse trans_add
    {                                                     # overlap on purpose:
      c_jr_res 100 0 00000 00000 10  !reserved           #   first match wins
      c_jr     100 0 ..... 00000 10  @c_jr -> jalr
    }

Rules checked at build time (a table that breaks one is a bug, so it fails the import):

* two patterns outside a ``{ }`` group must not both match any word;
* every ``.`` bit of a pattern must belong to one of its fields (catches typos in field
  positions), and every member of its argument set must be assigned exactly once;
* inside a group, a pattern hidden by an earlier ``!reserved`` one is dead code.

A :class:`Decoder` binds the translators: pattern ``foo`` (or ``-> foo``) calls
``trans_foo(ctx, args)``.  A pattern without a translator or a ``trans_*`` without a
pattern is an error when the decoder is built.  ``dispatch`` tries the matching patterns
in table order until a translator returns True; a ``!reserved`` pattern stops the search,
so reserved encodings never reach a translator.
"""

from __future__ import annotations

import dataclasses
import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NO_ARGS",
    "ArgSet",
    "Candidate",
    "DecodeTable",
    "DecodeTreeError",
    "Decoder",
    "Field",
    "Pattern",
    "Segment",
    "bind_decoders",
    "build_table",
]

Translator = Callable[[Any, Any], bool]
FieldFunction = Callable[[int], int]


class DecodeTreeError(Exception):
    """A pattern table or a translator binding is inconsistent."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Segment:
    """``length`` bits of the instruction word starting at bit ``pos``."""

    pos: int
    length: int

    @property
    def mask(self) -> int:
        return ((1 << self.length) - 1) << self.pos


@dataclass(frozen=True, slots=True)
class Field:
    """A value assembled from bit segments (most significant first).

    The concatenated segments are sign-extended if ``signed``, then shifted left by
    ``shift`` (branch offsets are stored halved), then passed through ``function`` if
    one is given (compressed register numbers, anything a slice cannot express).
    """

    name: str
    segments: tuple[Segment, ...]
    signed: bool = False
    shift: int = 0
    function: Callable[[int], int] | None = None

    @property
    def mask(self) -> int:
        m = 0
        for seg in self.segments:
            m |= seg.mask
        return m

    @property
    def width(self) -> int:
        return sum(seg.length for seg in self.segments)

    def extract(self, word: int) -> int:
        """The field's value in ``word`` (slow path; decoders use generated code)."""
        value = 0
        for seg in self.segments:
            value = (value << seg.length) | ((word >> seg.pos) & ((1 << seg.length) - 1))
        if self.signed:
            sign = 1 << (self.width - 1)
            value = (value ^ sign) - sign
        value <<= self.shift
        return self.function(value) if self.function else value

    def expression(self, word: str, function_name: str) -> str:
        """Python source computing this field from the variable ``word``."""
        parts = []
        below = self.width
        for seg in self.segments:
            below -= seg.length
            part = f"(({word} >> {seg.pos}) & {(1 << seg.length) - 1:#x})"
            parts.append(f"({part} << {below})" if below else part)
        expr = " | ".join(parts)
        if self.signed:
            sign = 1 << (self.width - 1)
            expr = f"((({expr}) ^ {sign:#x}) - {sign:#x})"
        if self.shift:
            expr = f"(({expr}) << {self.shift})"
        if self.function:
            expr = f"{function_name}({expr})"
        return expr


@dataclass(frozen=True, slots=True)
class ArgSet:
    """A named record type that translators receive (``&name member member ...``).

    ``cls`` is a named tuple class: immutable, fields by name, cheap to build.
    """

    name: str
    members: tuple[str, ...]
    cls: type


def _make_argset(name: str, members: Sequence[str]) -> ArgSet:
    # Named tuples rather than frozen dataclasses: one is built per decoded instruction,
    # and tuple.__new__ is about four times cheaper than a frozen dataclass __init__.
    cls_name = "Args" + "".join(part.capitalize() for part in name.split("_"))
    return ArgSet(name, tuple(members), namedtuple(cls_name, members, module=__name__))


# Patterns without operands (ecall, c.ebreak) share one argument set in every table, so
# a 16-bit pattern can reuse a 32-bit operand-less translator.
NO_ARGS = _make_argset("none", ())


@dataclass(frozen=True, slots=True, eq=False)
class Pattern:
    """One instruction pattern after format expansion.

    ``assignments`` pairs each member of ``argset`` with a :class:`Field` or a constant.
    ``group`` is the index of the outermost ``{ }`` group holding the pattern, or None.
    """

    name: str
    translator: str | None
    mask: int
    match: int
    ignored: int
    argset: ArgSet
    assignments: tuple[tuple[str, Field | int], ...]
    group: int | None
    line: int
    index: int
    extract: Callable[[int], Any] = dataclasses.field(repr=False)  # word -> args

    @property
    def reserved(self) -> bool:
        return self.translator is None

    def matches(self, word: int) -> bool:
        return word & self.mask == self.match

    @property
    def field_mask(self) -> int:
        """Bits that some assigned field reads."""
        return _field_mask(self.assignments)

    def bits(self, width: int) -> str:
        """The pattern as a bit string, most significant bit first."""
        out = []
        for bit in range(width - 1, -1, -1):
            b = 1 << bit
            if self.mask & b:
                out.append("1" if self.match & b else "0")
            else:
                out.append("-" if self.ignored & b else ".")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A decoding of a word: pattern name, translator name (``trans_`` omitted), args."""

    pattern: str
    translator: str
    args: Any


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class _Switch:
    mask: int
    children: dict[int, _Switch | _Leaf]


@dataclass(frozen=True, slots=True)
class _Leaf:
    patterns: tuple[Pattern, ...]


_EMPTY_LEAF = _Leaf(())

# Below this many patterns with no bit in common, a linear mask/match scan is as fast
# as another level of switching and avoids duplicating patterns into both halves.
_SCAN_LIMIT = 4


def _build_tree(patterns: list[Pattern], tested: int) -> _Switch | _Leaf:
    if len(patterns) <= 1:
        return _Leaf(tuple(patterns))
    common = ~tested
    for p in patterns:
        common &= p.mask
    if common:
        buckets: dict[int, list[Pattern]] = {}
        for p in patterns:
            buckets.setdefault(p.match & common, []).append(p)
        if len(buckets) == 1:
            return _build_tree(patterns, tested | common)
        return _Switch(
            common, {key: _build_tree(ps, tested | common) for key, ps in buckets.items()}
        )
    # Overlapping patterns (a group) share no untested fixed bit.  Split on the bit
    # that the most of them fix; the ones that leave it open go down both sides, and
    # since lists keep their order the priority order survives.
    if len(patterns) <= _SCAN_LIMIT:
        return _Leaf(tuple(patterns))
    best, best_count = 0, 0
    untested_union = 0
    for p in patterns:
        untested_union |= p.mask & ~tested
    bit = untested_union
    while bit:
        low = bit & -bit
        bit ^= low
        count = sum(1 for p in patterns if p.mask & low)
        if count > best_count:
            best, best_count = low, count
    if not best:
        return _Leaf(tuple(patterns))
    zero = [p for p in patterns if not (p.mask & best and p.match & best)]
    one = [p for p in patterns if not (p.mask & best and not p.match & best)]
    return _Switch(
        best, {0: _build_tree(zero, tested | best), best: _build_tree(one, tested | best)}
    )


# --------------------------------------------------------------------------- table


class DecodeTable:
    """Patterns of one instruction width compiled into a decision tree."""

    def __init__(
        self,
        name: str,
        width: int,
        fields: Mapping[str, Field],
        argsets: Mapping[str, ArgSet],
        patterns: Sequence[Pattern],
        source: str,
    ) -> None:
        self.name = name
        self.width = width
        self.fields = dict(fields)
        self.argsets = dict(argsets)
        self.patterns = tuple(patterns)
        self.source = source  # the generated extractor code, for debugging
        self._by_name = {p.name: p for p in patterns}
        self._root = _build_tree(list(patterns), 0)

    def __repr__(self) -> str:
        return f"<DecodeTable {self.name}: {len(self.patterns)} patterns, {self.width} bits>"

    def pattern(self, name: str) -> Pattern:
        return self._by_name[name]

    def _leaf(self, word: int) -> tuple[Pattern, ...]:
        node = self._root
        while node.__class__ is _Switch:
            node = node.children.get(word & node.mask, _EMPTY_LEAF)  # type: ignore[union-attr]
        return node.patterns  # type: ignore[union-attr]

    def lookup(self, word: int) -> list[Pattern]:
        """All patterns matching ``word`` in priority order, reserved ones included."""
        return [p for p in self._leaf(word) if word & p.mask == p.match]

    def decode(self, word: int) -> list[Candidate]:
        """Decodings of ``word`` in priority order; empty if illegal or reserved."""
        out = []
        for p in self._leaf(word):
            if word & p.mask == p.match:
                if p.translator is None:
                    break
                out.append(Candidate(p.name, p.translator, p.extract(word)))
        return out

    def translators(self) -> set[str]:
        return {p.translator for p in self.patterns if p.translator is not None}


# --------------------------------------------------------------------------- parser

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_BITS_RE = re.compile(r"[01.\-]+$")
_SEGMENT_RE = re.compile(r"(\d+):(s?)(\d+)$")
_ASSIGN_RE = re.compile(rf"({_IDENT})=(%{_IDENT}|-?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|\d+))$")
_IDENT_RE = re.compile(_IDENT + "$")


@dataclass(slots=True)
class _Format:
    bits: str | None
    argset: ArgSet | None
    assignments: dict[str, str | int]


@dataclass(slots=True)
class _RawPattern:
    name: str
    translator: str | None
    bits: str
    argset: ArgSet | None
    assignments: dict[str, str | int]
    group: int | None
    line: int


class _Parser:
    def __init__(
        self,
        table: str,
        width: int,
        functions: Mapping[str, FieldFunction],
        argsets: Mapping[str, ArgSet],
    ) -> None:
        self.table = table
        self.width = width
        self.functions = functions
        self.fields: dict[str, Field] = {}
        self.argsets: dict[str, ArgSet] = dict(argsets)
        self.formats: dict[str, _Format] = {}
        self.raw: list[_RawPattern] = []
        self.line = 0

    def error(self, message: str) -> DecodeTreeError:
        return DecodeTreeError(f"{self.table}:{self.line}: {message}")

    def parse(self, text: str) -> None:
        group_stack: list[int] = []
        groups_opened = 0
        for self.line, raw_line in enumerate(text.splitlines(), 1):
            tokens = raw_line.split("#", 1)[0].split()
            if not tokens:
                continue
            head = tokens[0]
            if head == "{" and len(tokens) == 1:
                group_stack.append(groups_opened)
                groups_opened += 1
            elif head == "}" and len(tokens) == 1:
                if not group_stack:
                    raise self.error("'}' without '{'")
                group_stack.pop()
            elif head.startswith("%"):
                self.parse_field(head[1:], tokens[1:])
            elif head.startswith("&"):
                self.parse_argset(head[1:], tokens[1:])
            elif head.startswith("@"):
                self.parse_format(head[1:], tokens[1:])
            else:
                self.parse_pattern(head, tokens[1:], group_stack[0] if group_stack else None)
        if group_stack:
            raise DecodeTreeError(f"{self.table}: unclosed '{{' group at end of table")

    def check_name(self, name: str, namespace: Mapping[str, object], kind: str) -> None:
        if not _IDENT_RE.match(name):
            raise self.error(f"bad {kind} name {name!r}")
        if name in namespace:
            raise self.error(f"{kind} {name!r} defined twice")

    def parse_field(self, name: str, tokens: list[str]) -> None:
        self.check_name(name, self.fields, "field")
        segments: list[Segment] = []
        signed = False
        shift = 0
        function = None
        for tok in tokens:
            if m := _SEGMENT_RE.match(tok):
                pos, sign, length = int(m[1]), m[2], int(m[3])
                if sign and segments:
                    raise self.error("only the first (most significant) segment may be signed")
                if length == 0 or pos + length > self.width:
                    raise self.error(f"segment {tok} outside a {self.width}-bit word")
                signed = signed or bool(sign)
                segments.append(Segment(pos, length))
            elif tok.startswith("<<") and tok[2:].isdigit():
                shift = int(tok[2:])
            elif tok.startswith("!function="):
                fname = tok[len("!function=") :]
                if fname not in self.functions:
                    raise self.error(f"field {name}: unknown function {fname!r}")
                function = self.functions[fname]
            else:
                raise self.error(f"field {name}: cannot parse {tok!r}")
        if not segments:
            raise self.error(f"field {name} has no bit segments")
        field = Field(name, tuple(segments), signed, shift, function)
        if len({b for s in segments for b in range(s.pos, s.pos + s.length)}) != field.width:
            raise self.error(f"field {name}: segments overlap")
        self.fields[name] = field

    def parse_argset(self, name: str, tokens: list[str]) -> None:
        self.check_name(name, self.argsets, "argument set")
        for tok in tokens:
            if not _IDENT_RE.match(tok):
                raise self.error(f"argument set {name}: bad member {tok!r}")
        if len(set(tokens)) != len(tokens):
            raise self.error(f"argument set {name}: repeated member")
        self.argsets[name] = _make_argset(name, tokens)

    def parse_operands(
        self, tokens: list[str], allow_pattern_only: bool
    ) -> tuple[str, ArgSet | None, dict[str, str | int], str | None, str | None, bool]:
        """Split a format/pattern line into bits, argset, assignments, format, ->, !reserved."""
        bits = ""
        argset = None
        assignments: dict[str, str | int] = {}
        fmt = None
        translator = None
        reserved = False
        it = iter(tokens)
        for tok in it:
            if _BITS_RE.match(tok):
                bits += tok
            elif tok.startswith("&"):
                if argset is not None or tok[1:] not in self.argsets:
                    raise self.error(f"unknown or second argument set {tok}")
                argset = self.argsets[tok[1:]]
            elif tok.startswith("%"):
                self.assign(assignments, tok[1:], tok)
            elif m := _ASSIGN_RE.match(tok):
                value = m[2]
                self.assign(assignments, m[1], value if value.startswith("%") else int(value, 0))
            elif allow_pattern_only and tok.startswith("@"):
                if fmt is not None:
                    raise self.error("a pattern takes one format")
                fmt = tok[1:]
            elif allow_pattern_only and tok.startswith("->"):
                translator = tok[2:] or next(it, "")
                if not _IDENT_RE.match(translator):
                    raise self.error(f"bad translator name after '->': {translator!r}")
            elif allow_pattern_only and tok == "!reserved":
                reserved = True
            else:
                raise self.error(f"cannot parse {tok!r}")
        return bits, argset, assignments, fmt, translator, reserved

    def assign(self, assignments: dict[str, str | int], member: str, value: str | int) -> None:
        if member in assignments:
            raise self.error(f"{member} assigned twice")
        if isinstance(value, str) and value[1:] not in self.fields:
            raise self.error(f"unknown field {value}")
        assignments[member] = value

    def parse_format(self, name: str, tokens: list[str]) -> None:
        self.check_name(name, self.formats, "format")
        bits, argset, assignments, _, _, _ = self.parse_operands(tokens, False)
        if bits and len(bits) != self.width:
            raise self.error(f"format {name}: {len(bits)} bits, expected {self.width}")
        self.formats[name] = _Format(bits or None, argset, assignments)

    def parse_pattern(self, name: str, tokens: list[str], group: int | None) -> None:
        if not _IDENT_RE.match(name):
            raise self.error(f"cannot parse line starting with {name!r}")
        if any(p.name == name for p in self.raw):
            raise self.error(f"pattern {name!r} defined twice")
        bits, argset, assignments, fmt_name, translator, reserved = self.parse_operands(
            tokens, True
        )
        if len(bits) != self.width:
            raise self.error(f"pattern {name}: {len(bits)} bits, expected {self.width}")
        if fmt_name is not None:
            fmt = self.formats.get(fmt_name)
            if fmt is None:
                raise self.error(f"pattern {name}: unknown format @{fmt_name}")
            if fmt.bits:
                bits = self.merge_bits(name, fmt.bits, bits)
            if argset is None:
                argset = fmt.argset
            # The pattern's own assignments override the format's (c.li: rs1=0).
            assignments = {**fmt.assignments, **assignments}
        if reserved:
            if translator is not None:
                raise self.error(f"pattern {name}: !reserved takes no translator")
        else:
            translator = translator or name
        self.raw.append(_RawPattern(name, translator, bits, argset, assignments, group, self.line))

    def merge_bits(self, name: str, fmt_bits: str, bits: str) -> str:
        out = []
        for a, b in zip(fmt_bits, bits, strict=True):
            if a in "01" and b in "01" and a != b:
                raise self.error(f"pattern {name}: fixed bits conflict with its format")
            out.append(a if a in "01" else b if b in "01" else "-" if "-" in (a, b) else ".")
        return "".join(out)


def _bits_to_masks(bits: str) -> tuple[int, int, int]:
    # (string translation and int(): a loop over the characters costs ~0.1 ms a pattern)
    mask = int(bits.translate(_MASK_DIGITS), 2)
    match = int(bits.translate(_MATCH_DIGITS), 2)
    ignored = int(bits.translate(_IGNORED_DIGITS), 2)
    return mask, match, ignored


_MASK_DIGITS = str.maketrans("01.-", "1100")
_MATCH_DIGITS = str.maketrans("01.-", "0100")
_IGNORED_DIGITS = str.maketrans("01.-", "0001")


def _overlap(a: Pattern, b: Pattern) -> bool:
    return (a.match ^ b.match) & a.mask & b.mask == 0


def _shadows(a: Pattern, b: Pattern) -> bool:
    """Every word matching ``b`` also matches ``a``."""
    return a.mask & ~b.mask == 0 and (a.match ^ b.match) & a.mask == 0


def build_table(
    text: str,
    *,
    name: str,
    width: int,
    functions: Mapping[str, FieldFunction] | None = None,
    argsets: Mapping[str, ArgSet] | None = None,
) -> DecodeTable:
    """Parse a pattern table and compile it.

    Args:
        text: the table in the format described in the module docstring.
        name: used in error messages and ``repr``.
        width: instruction width in bits (16 or 32 for RISC-V).
        functions: ``!function=`` names available to fields.
        argsets: argument sets defined by another table; the RISC-V 16-bit table decodes
            into the 32-bit table's sets so the same translators serve both.

    Raises:
        DecodeTreeError: the table is malformed or two patterns overlap outside a group.
    """
    parser = _Parser(name, width, functions or {}, argsets or {})
    parser.parse(text)

    # Generate one extractor per pattern: a straight-line constructor call is several
    # times faster than interpreting the field list for every decoded instruction.
    namespace: dict[str, Any] = {"_new": tuple.__new__}
    lines: list[str] = []
    checked: list[tuple[_RawPattern, ArgSet, tuple[tuple[str, Field | int], ...],
                        tuple[int, int, int]]] = []
    for index, raw in enumerate(parser.raw):
        parser.line = raw.line
        argset, assignments = _resolve_assignments(parser, raw)
        masks = _bits_to_masks(raw.bits)
        mask, match, ignored = masks
        unread = ((1 << width) - 1) & ~mask & ~ignored & ~_field_mask(assignments)
        if unread:
            raise parser.error(
                f"pattern {raw.name}: bits {unread:#x} are '.' but no field reads them"
                " (mark ignored bits '-')"
            )
        values = []
        for _, source in assignments:
            if isinstance(source, Field):
                fn_name = f"_fn_{source.name}"
                if source.function is not None:
                    namespace[fn_name] = source.function
                values.append(source.expression("w", fn_name))
            else:
                values.append(repr(source))
        cls_name = f"_cls_{argset.cls.__name__}_{id(argset.cls):x}"
        namespace[cls_name] = argset.cls
        tuple_src = ", ".join(values) + ("," if len(values) == 1 else "")
        lines.append(f"def _extract_{index}(w):  # {raw.name}")
        lines.append(f"    return _new({cls_name}, ({tuple_src}))")
        checked.append((raw, argset, assignments, masks))
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<decodetree {name}>", "exec"), namespace)

    patterns = [
        Pattern(
            raw.name,
            raw.translator,
            *masks,
            argset,
            assignments,
            raw.group,
            raw.line,
            index,
            namespace[f"_extract_{index}"],
        )
        for index, (raw, argset, assignments, masks) in enumerate(checked)
    ]
    table = DecodeTable(name, width, parser.fields, parser.argsets, patterns, source)
    _check_overlaps(table)
    return table


def _resolve_assignments(
    parser: _Parser, raw: _RawPattern
) -> tuple[ArgSet, tuple[tuple[str, Field | int], ...]]:
    """The pattern's argument set and, per member in order, its field or constant."""
    argset = raw.argset
    if argset is None:
        # No argument set named: its members are the assigned names, as in QEMU.
        argset = _make_argset(raw.name, list(raw.assignments)) if raw.assignments else NO_ARGS
    missing = [m for m in argset.members if m not in raw.assignments]
    extra = [m for m in raw.assignments if m not in argset.members]
    if missing or extra:
        raise parser.error(
            f"pattern {raw.name}: &{argset.name} needs {' '.join(argset.members) or '-'}"
            f" (missing {missing}, not members {extra})"
        )
    resolved: list[tuple[str, Field | int]] = []
    for member in argset.members:
        value = raw.assignments[member]
        resolved.append((member, parser.fields[value[1:]] if isinstance(value, str) else value))
    return argset, tuple(resolved)


def _field_mask(assignments: Iterable[tuple[str, Field | int]]) -> int:
    mask = 0
    for _, source in assignments:
        if isinstance(source, Field):
            mask |= source.mask
    return mask


def _check_overlaps(table: DecodeTable) -> None:
    # The tree puts every pattern in the leaf of every word it matches, so two patterns
    # that overlap share a leaf: checking pairs within leaves is enough.
    checked: set[tuple[int, int]] = set()
    for leaf in _leaves(table._root):
        for i, a in enumerate(leaf.patterns):
            for b in leaf.patterns[i + 1 :]:
                if (a.index, b.index) in checked or not _overlap(a, b):
                    continue
                checked.add((a.index, b.index))
                _check_pair(table.name, a, b)


def _leaves(node: _Switch | _Leaf) -> Iterable[_Leaf]:
    if isinstance(node, _Leaf):
        yield node
    else:
        for child in node.children.values():
            yield from _leaves(child)


def _check_pair(table: str, a: Pattern, b: Pattern) -> None:
    where = f"{table}:{a.line}/{b.line}"
    if a.group is None or a.group != b.group:
        same = " (identical mask/match)" if (a.mask, a.match) == (b.mask, b.match) else ""
        raise DecodeTreeError(
            f"{where}: patterns {a.name} and {b.name} overlap{same};"
            " put intended overlaps in a { } group"
        )
    if a.reserved and _shadows(a, b):
        raise DecodeTreeError(f"{where}: {b.name} can never match, reserved {a.name} hides it")
    if (a.mask, a.match, a.translator) == (b.mask, b.match, b.translator):
        raise DecodeTreeError(f"{where}: {b.name} duplicates {a.name}")


# --------------------------------------------------------------------------- binding


def _collect_translators(namespaces: Iterable[object]) -> dict[str, Translator]:
    found: dict[str, Translator] = {}
    for ns in namespaces:
        if isinstance(ns, Mapping):
            items = [(k, v) for k, v in ns.items() if isinstance(k, str)]
        else:
            # Modules and objects alike; getattr so bound methods work too.
            items = [(k, getattr(ns, k)) for k in dir(ns) if k.startswith("trans_")]
        for key, value in items:
            if not key.startswith("trans_") or not callable(value):
                continue
            if key in found and found[key] is not value:
                raise DecodeTreeError(f"{key} is defined in two translator namespaces")
            found[key] = value
    return found


def bind_decoders(tables: Sequence[DecodeTable], *namespaces: object) -> tuple[Decoder, ...]:
    """Bind the translators in ``namespaces`` to several tables that share them.

    Every ``trans_*`` must serve a pattern of at least one table, and every pattern must
    find its translator; all patterns reaching one translator must use the same argument
    set, since that is the record type the translator is written against.

    Raises:
        DecodeTreeError: a translator or pattern is unmatched or argument sets disagree.
    """
    translators = _collect_translators(namespaces)
    argset_of: dict[str, tuple[ArgSet, str]] = {}
    problems = []
    for table in tables:
        for p in table.patterns:
            if p.translator is None:
                continue
            seen = argset_of.setdefault(p.translator, (p.argset, f"{table.name}:{p.name}"))
            if seen[0] is not p.argset:
                problems.append(
                    f"trans_{p.translator} gets &{seen[0].name} from {seen[1]} but"
                    f" &{p.argset.name} from {table.name}:{p.name}"
                )
            if "trans_" + p.translator not in translators:
                problems.append(f"{table.name}:{p.line}: no trans_{p.translator} for {p.name}")
    used = {"trans_" + t for t in argset_of}
    problems += [f"{key} has no pattern" for key in sorted(translators.keys() - used)]
    if problems:
        raise DecodeTreeError("; ".join(dict.fromkeys(problems)))
    return tuple(Decoder._bound(table, translators) for table in tables)


# Decoded words a Decoder remembers (a static glibc program has ~10k distinct ones).
_MAX_DECODED_WORDS = 1 << 16


class Decoder:
    """A table with its translators bound: ``dispatch(ctx, word)`` runs one instruction."""

    __slots__ = ("table", "_translators", "_decoded")

    table: DecodeTable
    _translators: tuple[Translator | None, ...]
    _decoded: dict[int, tuple[tuple[Translator, Any, Pattern], ...]]

    def __init__(self, table: DecodeTable, *namespaces: object) -> None:
        (bound,) = bind_decoders((table,), *namespaces)
        self.table = bound.table
        self._translators = bound._translators
        self._decoded = {}

    @classmethod
    def _bound(cls, table: DecodeTable, translators: Mapping[str, Translator]) -> Decoder:
        self = cls.__new__(cls)
        self.table = table
        self._translators = tuple(
            None if p.translator is None else translators["trans_" + p.translator]
            for p in table.patterns
        )
        self._decoded = {}
        return self

    def __repr__(self) -> str:
        return f"<Decoder {self.table.name}>"

    def decode(self, word: int) -> list[Candidate]:
        return self.table.decode(word)

    def dispatch(self, ctx: Any, word: int) -> bool:
        """Call the translators of the patterns matching ``word`` until one returns True.

        Returns False if none accepted the word (or it hit a reserved pattern); the
        caller raises the illegal-instruction exception in that one place.
        """
        candidates = self._decoded.get(word)
        if candidates is None:
            candidates = self._decode_for_dispatch(word)
        for fn, args, pattern in candidates:
            result = fn(ctx, args)
            if result is True:
                return True
            if result is not False:
                # A translator that forgets to return would silently fall through
                # to the next pattern; make that bug loud.
                raise TypeError(f"trans_{pattern.translator} returned {result!r}, "
                                f"expected bool")
        return False

    def _decode_for_dispatch(self, word: int) -> tuple[tuple[Translator, Any, Pattern], ...]:
        """The (translator, fields, pattern) candidates of ``word`` in priority order, up
        to a reserved pattern; remembered per word (the fields are immutable named
        tuples, so translations of the same word share them)."""
        translators = self._translators
        out = []
        for p in self.table._leaf(word):
            if word & p.mask != p.match:
                continue
            fn = translators[p.index]
            if fn is None:
                break
            out.append((fn, p.extract(word), p))
        candidates = tuple(out)
        if len(self._decoded) >= _MAX_DECODED_WORDS:
            self._decoded.clear()  # (bounded: a guest has only so many distinct words)
        self._decoded[word] = candidates
        return candidates


# --------------------------------------------------------------------------- pregenerated
#
# Building a table parses its text and compiles one extractor per pattern (~40 ms for
# RISC-V at every start). A frontend can instead ship the built tables as a generated
# Python module (:func:`pregenerated_source`): data literals plus the extractors as
# real functions, which Python's bytecode cache keeps compiled. :func:`load_pregenerated`
# rebuilds the tables from it, without the checks (the generator ran them).


def pregenerated_source(tables: Sequence[DecodeTable], functions: Mapping[str, FieldFunction],
                        fingerprint: str, header: str) -> str:
    """Python source of a module holding ``tables`` (built by :func:`build_table`,
    sharing argument sets as built); ``functions``: every ``!function=`` by name;
    ``fingerprint`` identifies the inputs the tables were built from."""
    names_of = {id(fn): name for name, fn in functions.items()}
    argsets: list[ArgSet] = []
    argset_index: dict[int, int] = {}
    fields: list[Field] = []
    field_index: dict[int, int] = {}

    def argset_ref(argset: ArgSet) -> int:
        if id(argset) not in argset_index:
            argset_index[id(argset)] = len(argsets)
            argsets.append(argset)
        return argset_index[id(argset)]

    def field_ref(f: Field) -> int:
        if id(f) not in field_index:
            if f.function is not None and id(f.function) not in names_of:
                raise DecodeTreeError(f"field {f.name}: its function is not in functions")
            field_index[id(f)] = len(fields)
            fields.append(f)
        return field_index[id(f)]

    table_rows = []
    extractor_lines: list[str] = []
    for t, table in enumerate(tables):
        named_fields = {name: field_ref(f) for name, f in table.fields.items()}
        named_argsets = {name: argset_ref(a) for name, a in table.argsets.items()}
        rows = []
        extractor_lines.append(f"    table_{t} = (")
        for p in table.patterns:
            assignments = tuple((m, ("f", field_ref(s)) if isinstance(s, Field) else ("c", s))
                                for m, s in p.assignments)
            rows.append((p.name, p.translator, p.mask, p.match, p.ignored,
                         argset_ref(p.argset), assignments, p.group, p.line))
            values = [s.expression("w", f"_fn{field_ref(s)}") if isinstance(s, Field)
                      else repr(s) for _, s in p.assignments]
            tuple_src = ", ".join(values) + ("," if len(values) == 1 else "")
            extractor_lines.append(
                f"        lambda w: _new(_a{argset_ref(p.argset)}, ({tuple_src})),"
                f"  # {p.name}")
        extractor_lines.append("    )")
        table_rows.append((table.name, table.width, named_fields, named_argsets,
                           tuple(rows)))
    argset_rows = tuple("NO_ARGS" if a is NO_ARGS else (a.name, a.members) for a in argsets)
    field_rows = tuple((f.name, tuple((s.pos, s.length) for s in f.segments), f.signed,
                        f.shift, None if f.function is None else names_of[id(f.function)])
                       for f in fields)
    out = [header.rstrip("\n"), "", "# ruff: noqa", "",
           f"FINGERPRINT = {fingerprint!r}", f"ARGSETS = {argset_rows!r}",
           f"FIELDS = {field_rows!r}", "TABLES = ("]
    out += [f"    {row!r}," for row in table_rows]
    out += [")", "", "", "def extractors(_new, _a, _functions):",
            "    \"\"\"Per table, one extractor per pattern (word -> argument set).\"\"\""]
    out += [f"    _a{i} = _a[{i}]" for i in range(len(argsets))]
    out += [f"    _fn{i} = _functions[{names_of[id(f.function)]!r}]"
            for i, f in enumerate(fields) if f.function is not None]
    out += extractor_lines
    out.append("    return (" + ", ".join(f"table_{t}" for t in range(len(tables))) + ",)")
    return "\n".join(out) + "\n"


def load_pregenerated(module: Any, functions: Mapping[str, FieldFunction]
                      ) -> tuple[DecodeTable, ...]:
    """The tables of a module :func:`pregenerated_source` wrote."""
    argsets = [NO_ARGS if row == "NO_ARGS" else _make_argset(*row) for row in module.ARGSETS]
    fields = [Field(name, tuple(Segment(*s) for s in segments), signed, shift,
                    None if fn is None else functions[fn])
              for name, segments, signed, shift, fn in module.FIELDS]
    extractors = module.extractors(tuple.__new__, [a.cls for a in argsets], functions)
    tables = []
    for (name, width, named_fields, named_argsets, rows), extract in zip(
            module.TABLES, extractors, strict=True):
        patterns = [
            Pattern(p_name, translator, mask, match, ignored, argsets[argset],
                    tuple((m, fields[v] if kind == "f" else v) for m, (kind, v) in assigned),
                    group, line, index, extract[index])
            for index, (p_name, translator, mask, match, ignored, argset, assigned, group,
                        line) in enumerate(rows)]
        tables.append(DecodeTable(
            name, width, {n: fields[i] for n, i in named_fields.items()},
            {n: argsets[i] for n, i in named_argsets.items()}, patterns,
            f"<pregenerated: {module.__name__}>"))
    return tuple(tables)
