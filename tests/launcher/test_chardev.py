"""-serial backends: stdio puts a terminal in raw mode and restores it; the -nographic
multiplexer's Ctrl-A escapes; file and null; bad specs in QEMU's words."""

from __future__ import annotations

import os
import pty
import termios
from pathlib import Path

import pytest

from launcher.chardev import (
    ChardevError,
    FileBackend,
    NullBackend,
    StdioBackend,
    open_backend,
)


@pytest.fixture
def terminal() -> tuple[int, int]:
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def test_stdio_on_a_terminal_is_raw_until_closed(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    before = termios.tcgetattr(slave)
    backend = StdioBackend(mux=True, stdin=slave, stdout=slave)
    iflag, oflag, _, lflag = termios.tcgetattr(slave)[:4]
    assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    assert not iflag & (termios.ICRNL | termios.IXON) and oflag & termios.OPOST
    backend.close()
    assert termios.tcgetattr(slave) == before


def test_stdio_without_mux_keeps_ctrl_c_a_signal(terminal: tuple[int, int]) -> None:
    _, slave = terminal
    backend = StdioBackend(mux=False, stdin=slave, stdout=slave)
    try:
        assert termios.tcgetattr(slave)[3] & termios.ISIG
    finally:
        backend.close()


def test_ctrl_a_escapes(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    quits, breaks = [], []
    backend = StdioBackend(mux=True, stdin=slave, stdout=slave,
                           on_quit=lambda: quits.append(1), on_break=lambda: breaks.append(1))
    try:
        assert backend.filter(b"ab\x01\x01c") == b"ab\x01c"  # C-a C-a sends C-a
        assert backend.filter(b"\x01") == b"" and backend.filter(b"b") == b""  # across reads
        assert breaks == [1]
        assert backend.filter(b"\x03") == b"\x03"  # Ctrl-C goes to the guest
        assert backend.filter(b"\x01x") == b"" and quits == [1]
        assert b"QEMU: Terminated" in os.read(master, 1000)
        backend.filter(b"\x01h")
        assert b"C-a x    exit emulator" in os.read(master, 1000)
        os.write(master, b"typed\x01")
        assert backend.read_input() == b"typed"
    finally:
        backend.close()


def test_stdin_at_end_of_file_is_no_longer_watched() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    backend = StdioBackend(stdin=read_fd, stdout=os.open(os.devnull, os.O_WRONLY))
    try:
        assert backend.input_fd() == read_fd
        assert backend.read_input() == b""
        assert backend.input_fd() is None
    finally:
        os.close(read_fd)


def test_file_and_null(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    backend = open_backend(f"file:{path}")
    assert isinstance(backend, FileBackend) and backend.input_fd() is None
    backend.write(b"hello\n")
    backend.close()
    assert path.read_bytes() == b"hello\n"
    assert isinstance(open_backend("null"), NullBackend)
    assert isinstance(open_backend("vc"), NullBackend)  # no display: the console shows nothing


@pytest.mark.parametrize("spec,message", [
    ("bogus", "'bogus' is not a valid char driver"),
    ("file:/nonexistent/dir/x", "Could not open '/nonexistent/dir/x': No such file or directory"),
    ("tcp:localhost:4444", "char driver 'tcp' is not supported yet"),
])
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ChardevError, match=message):
        open_backend(spec)
