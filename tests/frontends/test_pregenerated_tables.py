"""The pregenerated RISC-V decode tables are current and equal freshly built ones."""

from __future__ import annotations

import random

from llvmtcg.frontends.decodetree import Field, load_pregenerated
from llvmtcg.frontends.riscv import (
    INSN16,
    INSN32,
    decode_tables,
    gen_decode_tables,
    insn16,
    insn32,
    pregenerated,
)


def test_generated_module_is_current():
    # (fails after a change to the pattern tables or decodetree.py: regenerate with
    # `python3 -m llvmtcg.frontends.riscv.gen_decode_tables`)
    assert pregenerated.GENERATED.read_text() == gen_decode_tables.generate()
    assert decode_tables.FINGERPRINT == pregenerated.fingerprint()


def test_the_frontend_uses_them():
    assert INSN32.source.startswith("<pregenerated") and INSN16.source.startswith("<pregen")


def _field(value):
    if isinstance(value, Field):
        return ("field", value.name, value.segments, value.signed, value.shift,
                value.function)
    return value


def _pattern(p):
    return (p.name, p.translator, p.mask, p.match, p.ignored, p.argset.name,
            p.argset.members, p.argset.cls._fields,
            tuple((m, _field(v)) for m, v in p.assignments), p.group, p.line, p.index)


def test_loaded_tables_equal_built_ones():
    fresh32 = insn32.build()
    fresh16 = insn16.build(fresh32)
    loaded32, loaded16 = load_pregenerated(decode_tables, pregenerated.FIELD_FUNCTIONS)
    rnd = random.Random(10)
    for fresh, loaded in ((fresh32, loaded32), (fresh16, loaded16)):
        assert (loaded.name, loaded.width) == (fresh.name, fresh.width)
        assert [_pattern(p) for p in loaded.patterns] == [_pattern(p) for p in fresh.patterns]
        assert {n: _field(f) for n, f in loaded.fields.items()} == \
            {n: _field(f) for n, f in fresh.fields.items()}
        assert {n: a.members for n, a in loaded.argsets.items()} == \
            {n: a.members for n, a in fresh.argsets.items()}
        # Every pattern's words with random field bits, and random words: same decodings
        # (extractors included), argument records of the same shape.
        words = [rnd.getrandbits(fresh.width) for _ in range(20000)]
        for p in fresh.patterns:
            words += [(rnd.getrandbits(fresh.width) & ~p.mask) | p.match for _ in range(20)]
        for word in words:
            ours, theirs = loaded.decode(word), fresh.decode(word)
            assert [(c.pattern, c.translator, tuple(c.args), c.args._fields) for c in ours] \
                == [(c.pattern, c.translator, tuple(c.args), c.args._fields) for c in theirs]
            assert [p.name for p in loaded.lookup(word)] == [p.name for p in fresh.lookup(word)]
    # The compressed table decodes into the 32-bit table's argument sets.
    assert {id(a) for a in loaded16.argsets.values()} >= {id(a) for a in loaded32.argsets.values()}
