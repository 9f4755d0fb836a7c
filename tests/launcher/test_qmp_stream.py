"""QMP's input stream cut into JSON values as QEMU's lexer cuts it, and HMP's
expression and format parsing (the end-to-end tests are tests/system/test_monitor.py)."""

from __future__ import annotations

import pytest

from launcher.monitor.hmp import Format, HmpError, _Expr, parse_format
from launcher.monitor.qmp import MAX_VALUE_BYTES, JsonStreamer, QmpError


def feed(*chunks: bytes) -> list[object]:
    out: list[object] = []
    streamer = JsonStreamer(out.append)
    for chunk in chunks:
        streamer.feed(chunk)
    return [f"error: {v.desc}" if isinstance(v, QmpError) else v for v in out]


def test_values_span_reads_and_lines() -> None:
    assert feed(b'{"execute":', b' "a"}{"execute": "b"', b"}\n") == [
        {"execute": "a"}, {"execute": "b"}]
    assert feed(b'{"s": "}{\\"", "n": [1, {"x": null}]}') == [{"s": '}{"', "n": [1, {"x": None}]}]


def test_scalars_and_keywords() -> None:
    assert feed(b"42\n", b'"str"\n', b"true\n") == [42, "str", True]
    assert feed(b"garbage\n") == ["error: JSON parse error, invalid keyword 'garbage'"]


def test_an_error_skips_the_rest_of_its_line_only() -> None:
    assert feed(b'{bad json} {"a": 1}\n{"b": 2}\n') == [
        "error: JSON parse error, invalid keyword 'bad'", {"b": 2}]
    assert feed(b"}\n[1]\n") == ["error: JSON parse error, expecting value", [1]]
    assert feed(b"\x00\n{}\n") == ["error: JSON parse error, stray '\x00'", {}]


def test_oversized_and_deep_values_are_refused() -> None:
    big = b'{"x": "' + b"a" * (MAX_VALUE_BYTES + 10) + b'"}\n{"ok": 1}\n'
    assert feed(big) == ["error: JSON parse error, request too large", {"ok": 1}]
    assert feed(b"[" * 2000 + b"\n[]\n") == ["error: JSON parse error, nesting too deep", []]


def test_hmp_formats() -> None:
    assert parse_format("4xw") == Format(4, "x", 4)
    assert parse_format("2i") == Format(2, "i", 0)
    assert parse_format("") == Format()
    with pytest.raises(HmpError, match="invalid char in format: 'z'"):
        parse_format("2z")


@pytest.mark.parametrize("text,value", [
    ("1+2*3", 7), ("(1+2)*3", 9), ("0x10 - 1", 15), ("-1", (1 << 64) - 1), ("~0 & 0xff", 255),
    ("7 % 4 | 8", 11), ("010", 8), ("6/4", 1),
])
def test_hmp_expressions(text: str, value: int) -> None:
    assert _Expr(text, None).parse() == value  # type: ignore[arg-type]


@pytest.mark.parametrize("text,message", [
    ("(1+2", "'\\)' expected"), ("1/0", "division by zero"), ("", "expression expected"),
    ("1 +", "unexpected end of expression"),
])
def test_hmp_bad_expressions(text: str, message: str) -> None:
    with pytest.raises(HmpError, match=message):
        _Expr(text, None).parse()  # type: ignore[arg-type]
