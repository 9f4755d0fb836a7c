"""llvmtcg-user's own command-line parser (in process: no guest runs)."""

from __future__ import annotations

import pytest

from llvmtcg.user.cli import UsageError, parse_command_line, usage


def test_options_stop_at_the_program() -> None:
    line = parse_command_line(["-strace", "-d", "in_asm", "prog", "-strace", "--", "-x"])
    assert line.values["strace"] is True and line.values["log_items"] == "in_asm"
    assert line.prog == "prog" and line.args == ["-strace", "--", "-x"]


def test_values_attached_repeated_and_after_a_double_dash() -> None:
    line = parse_command_line(["-E", "A=1", "-EB=2", "--E=C=3", "-cpu=rv64", "-L/sys",
                               "--", "-prog", "arg"])
    assert line.values["set_env"] == ["A=1", "B=2", "C=3"]
    assert line.values["cpu"] == "rv64" and line.values["sysroot"] == "/sys"
    assert line.prog == "-prog" and line.args == ["arg"]


def test_defaults_and_no_program() -> None:
    line = parse_command_line([])
    assert line.prog is None and line.args == [] and not line.help
    assert line.values["set_env"] == [] and line.values["cpu"] is None
    assert line.values["no_cache"] is False


@pytest.mark.parametrize(("argv", "message"), [
    (["-bogus", "prog"], "unknown option '-bogus'"),
    (["-d"], "option '-d' requires an argument"),
    (["-strace=1", "prog"], "option '-strace' takes no value"),
])
def test_errors_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_command_line(argv)


def test_help_lists_every_visible_option() -> None:
    assert parse_command_line(["-d", "op", "-help", "prog"]).help
    text = usage()
    for spelling in ("-L", "-E", "-U", "-0", "-cpu", "-strace", "-d", "-D", "-version",
                     "-no-cache", "-cache-dir", "-perfmap", "--debug"):
        assert f"{spelling}," in text or f"{spelling} " in text
    assert "--env-fd" not in text
