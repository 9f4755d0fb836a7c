"""The decodetree generator on small synthetic tables."""

from __future__ import annotations

import random
import types

import pytest

from llvmtcg.frontends.decodetree import (
    NO_ARGS,
    Decoder,
    DecodeTreeError,
    Field,
    Segment,
    bind_decoders,
    build_table,
)

# A toy 16-bit ISA: op in the top nibble.
TOY = r"""
%ra      8:4
%rb      4:4
%imm8    0:s8
%uimm4   0:4
%split   11:s1 0:3 8:2    <<1        # imm[5] imm[4:2] imm[1:0], then scaled
%plus    4:4  !function=plus_eight

&rr      ra rb
&ri      ra imm

@rr      &rr %ra %rb
@ri8     &ri %ra imm=%imm8

add      0000 .... .... ----   @rr
addi     0001 .... ........    @ri8
li       0010 ---- ........    @ri8 ra=0 -> addi
split    0011 .-.. .... -...    &ri ra=%plus imm=%split
nop      0100 0000 0000 0000
{
  hlt_res  0101 0000 ---- ----  !reserved
  hlt      0101 .... ---- ----  &ri %ra imm=0 -> addi
  mov      0101 .... ---- ....  &ri %ra imm=%uimm4
}
"""
FUNCTIONS = {"plus_eight": lambda v: v + 8}


def toy():
    return build_table(TOY, name="toy", width=16, functions=FUNCTIONS)


def recorder(log, name, result=True):
    def trans(ctx, args):
        log.append((name, args))
        return result

    return trans


def toy_translators(log, **results):
    return {
        f"trans_{n}": recorder(log, n, results.get(n, True))
        for n in ("add", "addi", "split", "nop", "mov")
    }


# --------------------------------------------------------------------------- fields


def test_field_segments_sign_and_shift():
    f = Field("f", (Segment(11, 1), Segment(0, 3), Segment(8, 2)), signed=True, shift=1)
    assert f.mask == 0x0B07
    assert f.width == 6
    # imm[5]=1 (bit 11), imm[4:2]=0b011 (bits 2:0), imm[1:0]=0b10 (bits 9:8)
    word = (1 << 11) | 0b011 | (0b10 << 8)
    raw = 0b101110
    assert f.extract(word) == (raw - 64) * 2
    assert f.extract(0) == 0


def test_generated_extractors_agree_with_field_extract():
    table = toy()
    rnd = random.Random(7)
    for pattern in table.patterns:
        if pattern.reserved:
            continue
        for _ in range(200):
            word = pattern.match | (rnd.getrandbits(16) & ~pattern.mask)
            args = pattern.extract(word)
            expected = {
                member: src.extract(word) if isinstance(src, Field) else src
                for member, src in pattern.assignments
            }
            assert args._asdict() == expected, (pattern.name, hex(word))


def test_decode_args_signed_unsigned_function_and_constants():
    table = toy()
    (c,) = table.decode(0x1A80)  # addi ra=10 imm=0x80 -> -128
    assert (c.pattern, c.translator, c.args) == ("addi", "addi", (10, -128))
    assert c.args.ra == 10 and c.args.imm == -128
    (c,) = table.decode(0x2A7F)  # li: ra overridden to 0, reuses trans_addi
    assert (c.pattern, c.translator, c.args._asdict()) == ("li", "addi", {"ra": 0, "imm": 127})
    (c,) = table.decode(0x3_2_5_5)  # split: ra = 5 + 8; imm = (0,101,10)<<1
    assert c.args._asdict() == {"ra": 13, "imm": 0b010110 * 2}
    (c,) = table.decode(0x3_B_0_7)  # bit 11 set: negative
    assert c.args.imm == (0b111111 - 64) * 2
    (c,) = table.decode(0x4000)
    assert c.args == () and type(c.args) is NO_ARGS.cls
    assert table.decode(0x4001) == []  # nop has every bit fixed
    (c,) = table.decode(0x0ABF)  # '-' bits are ignored
    assert c.args._asdict() == {"ra": 10, "rb": 11}


def test_group_priority_and_reserved():
    table = toy()
    assert table.decode(0x5000) == []  # reserved hides hlt and mov
    assert [p.name for p in table.lookup(0x5000)] == ["hlt_res", "hlt", "mov"]
    assert [c.pattern for c in table.decode(0x5312)] == ["hlt", "mov"]
    mov = table.decode(0x5312)[1]
    assert (mov.translator, mov.args._asdict()) == ("mov", {"ra": 3, "imm": 2})


# --------------------------------------------------------------------------- dispatch


def test_dispatch_falls_through_group_until_true():
    log = []
    dec = Decoder(toy(), toy_translators(log, addi=False))
    assert dec.dispatch("ctx", 0x5312) is True
    assert [name for name, _ in log] == ["addi", "mov"]  # hlt -> trans_addi said no

    log.clear()
    dec = Decoder(toy(), toy_translators(log, addi=False, mov=False))
    assert dec.dispatch("ctx", 0x5312) is False
    assert [name for name, _ in log] == ["addi", "mov"]


def test_dispatch_reserved_and_unmatched_never_reach_a_translator():
    log = []
    dec = Decoder(toy(), toy_translators(log))
    assert dec.dispatch(None, 0x5000) is False
    assert dec.dispatch(None, 0xF000) is False
    assert log == []
    assert dec.dispatch(None, 0x0ABF) is True
    assert log == [("add", (10, 11))]


def test_translator_must_return_bool():
    ns = toy_translators([])
    ns["trans_add"] = lambda ctx, a: None
    dec = Decoder(toy(), ns)
    with pytest.raises(TypeError, match="trans_add returned None"):
        dec.dispatch(None, 0x0ABF)


def test_translators_from_module_object_and_mapping():
    log = []
    ns = toy_translators(log)
    module = types.ModuleType("fake_trans")
    module.trans_add = ns.pop("trans_add")
    module.helper = lambda: None  # not a trans_*: ignored

    class Methods:
        def trans_nop(self, ctx, args):
            log.append(("nop-method", args))
            return True

    ns.pop("trans_nop")
    dec = Decoder(toy(), module, Methods(), ns)
    assert dec.dispatch(None, 0x4000) and dec.dispatch(None, 0x0ABF)
    assert [name for name, _ in log] == ["nop-method", "add"]


def test_missing_translator_is_an_error():
    ns = toy_translators([])
    del ns["trans_mov"]
    with pytest.raises(DecodeTreeError, match="no trans_mov for mov"):
        Decoder(toy(), ns)


def test_translator_without_pattern_is_an_error():
    ns = toy_translators([])
    ns["trans_sub"] = recorder([], "sub")
    with pytest.raises(DecodeTreeError, match="trans_sub has no pattern"):
        Decoder(toy(), ns)


def test_same_translator_name_in_two_namespaces_is_an_error():
    ns = toy_translators([])
    with pytest.raises(DecodeTreeError, match="trans_add is defined in two"):
        Decoder(toy(), ns, {"trans_add": recorder([], "other")})


def test_shared_translators_across_tables():
    # Like RVC: a 16-bit table decodes into the 32-bit table's argument set and reuses
    # its translator.
    wide = build_table(
        "%r 24:4\n%i 16:s8\n&ri ra imm\n"
        "addi 0001 .... ........ ---------------- &ri ra=%r imm=%i\n",
        name="wide",
        width=32,
    )
    narrow = build_table(
        "%r 8:4\n%i 0:s8\nc_addi 0001 .... ........ &ri ra=%r imm=%i -> addi\n",
        name="narrow",
        width=16,
        argsets=wide.argsets,
    )
    log = []
    d32, d16 = bind_decoders((wide, narrow), {"trans_addi": recorder(log, "addi")})
    assert d32.dispatch(None, 0x1AFF_0000) and d16.dispatch(None, 0x1AFF)
    assert log == [("addi", (10, -1)), ("addi", (10, -1))]
    # Each table alone leaves nothing unbound, but a narrow table with its own &ri
    # would hand trans_addi a different record type: refused.
    other = build_table(
        "%r 8:4\n%i 0:s8\n&ri ra imm\nc_addi 0001 .... ........ &ri ra=%r imm=%i -> addi\n",
        name="other",
        width=16,
    )
    with pytest.raises(DecodeTreeError, match="gets &ri from wide:addi but &ri from other"):
        bind_decoders((wide, other), {"trans_addi": recorder(log, "addi")})


# --------------------------------------------------------------------------- table errors


def build(text, width=16):
    return build_table(text, name="t", width=width, functions=FUNCTIONS)


def test_identical_patterns_outside_group_are_an_error():
    with pytest.raises(DecodeTreeError, match=r"t:3/4: patterns a and b overlap \(identical"):
        build("%x 0:8\n&x x\na 0000 0000 ........ &x %x\nb 0000 0000 ........ &x %x\n")


def test_partial_overlap_outside_group_is_an_error():
    with pytest.raises(DecodeTreeError, match="patterns a and b overlap;"):
        build("%x 0:8\n%y 8:8\na 0000 0000 ........ %x\nb ........ 0000 0001 %y\n")


def test_overlap_inside_group_is_allowed():
    table = build("%x 0:8\n%y 8:8\n{\na 0000 0000 ........ %x\nb ........ 0000 0001 %y\n}\n")
    assert [p.name for p in table.lookup(0x0001)] == ["a", "b"]


def test_identical_patterns_with_same_translator_in_group_are_an_error():
    text = "{\na 0000 0000 0000 0000\nb 0000 0000 0000 0000 -> a\n}\n"
    with pytest.raises(DecodeTreeError, match="b duplicates a"):
        build(text)


def test_pattern_hidden_by_reserved_is_an_error():
    text = "%x 0:8\n{\nr 0000 0000 -------- !reserved\na 0000 0000 ........ %x\n}\n"
    with pytest.raises(DecodeTreeError, match="a can never match, reserved r hides it"):
        build(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 0000 0000 ........\n", r"bits 0xff are '\.' but no field reads them"),
        ("a 0000 0000 0000\n", "12 bits, expected 16"),
        ("&x x y\n%x 0:8\na 0000 0000 ........ &x %x\n", r"missing \['y'\]"),
        ("a 0000 0000 ........ %nosuch\n", "unknown field %nosuch"),
        ("a 0000 0000 ........ @nosuch\n", "unknown format @nosuch"),
        ("%f 12:s8\n", "outside a 16-bit word"),
        ("%f 0:4 4:s4\n", "only the first"),
        ("%f 0:4 2:4\n", "segments overlap"),
        ("%f 0:4 !function=nosuch\n", "unknown function"),
        ("{\na 0000 0000 0000 0000\n", "unclosed"),
        ("}\n", "without"),
        ("a 0000 0000 0000 0000\na 0000 0000 0000 0001\n", "defined twice"),
        ("a 0000 0000 0000 0000 !reserved -> b\n", "takes no translator"),
        ("@f 1111 ............\na 0000 0000 0000 0000 @f\n", "conflict with its format"),
    ],
)
def test_malformed_tables_are_rejected(text, message):
    with pytest.raises(DecodeTreeError, match=message):
        build(text)


# --------------------------------------------------------------------------- the tree


def test_tree_agrees_with_linear_scan_on_a_big_overlapping_group():
    # Twelve patterns that overlap in every combination force the tree to split on
    # single bits and copy the undecided patterns into both halves.
    rnd = random.Random(3)
    lines = ["{"]
    for i in range(12):
        bits = "".join(rnd.choice("01-----") for _ in range(16))
        lines.append(f"p{i} {bits}")
    lines.append("}")
    table = build("\n".join(lines) + "\n")
    for word in range(1 << 16):
        expected = [p.name for p in table.patterns if p.matches(word)]
        assert [p.name for p in table.lookup(word)] == expected
