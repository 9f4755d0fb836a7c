"""Character devices: stdio puts a terminal in raw mode and restores it; the
multiplexer's Ctrl-A escapes; file, null and socket output with its bounded queue and
write watch; option specs and bad ones in QEMU's words."""

from __future__ import annotations

import os
import pty
import socket
import termios
from collections.abc import Callable
from pathlib import Path

import pytest

from launcher.chardev import (
    MUX_HELP,
    OUTPUT_LIMIT,
    ChardevError,
    ChardevEvent,
    FdChardev,
    FileChardev,
    MuxChardev,
    NullChardev,
    StdioChardev,
    open_chardev,
    parse_chardev,
    parse_shorthand,
)


@pytest.fixture
def terminal() -> tuple[int, int]:
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


class Host:
    """The loop's services, run at once on this thread (posts are queued)."""

    def __init__(self) -> None:
        self.posted: list[Callable[[], None]] = []
        self.writable: dict[int, Callable[[], None]] = {}

    def post(self, work: Callable[[], None]) -> None:
        self.posted.append(work)

    def run_posted(self) -> None:
        while self.posted:
            self.posted.pop(0)()

    def watch_fd(self, fd: int, on_readable: Callable[[], None]) -> None:
        pass

    def unwatch_fd(self, fd: int) -> None:
        pass

    def watch_writable(self, fd: int, on_writable: Callable[[], None] | None) -> None:
        if on_writable is None:
            self.writable.pop(fd, None)
        else:
            self.writable[fd] = on_writable

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        callback()


class Recorder:
    def __init__(self) -> None:
        self.data = b""
        self.events: list[ChardevEvent] = []

    def receive(self, data: bytes) -> None:
        self.data += data

    def event(self, event: ChardevEvent) -> None:
        self.events.append(event)


def test_stdio_on_a_terminal_is_raw_until_closed(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    before = termios.tcgetattr(slave)
    backend = StdioChardev("serial0", signal=False, stdin=slave, stdout=slave)
    iflag, oflag, _, lflag = termios.tcgetattr(slave)[:4]
    assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    assert not iflag & (termios.ICRNL | termios.IXON) and oflag & termios.OPOST
    backend.close()
    assert termios.tcgetattr(slave) == before


def test_stdio_without_mux_keeps_ctrl_c_a_signal(terminal: tuple[int, int]) -> None:
    _, slave = terminal
    backend = StdioChardev("serial0", stdin=slave, stdout=slave)
    try:
        assert termios.tcgetattr(slave)[3] & termios.ISIG
        with pytest.raises(ChardevError, match="cannot use stdio by multiple"):
            StdioChardev("other", stdin=slave, stdout=slave)
    finally:
        backend.close()


def test_ctrl_a_escapes(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    quits = []
    backend = StdioChardev("serial0-base", signal=False, stdin=slave, stdout=slave)
    mux = MuxChardev("serial0", backend, on_quit=lambda: quits.append(1))
    monitor, serial = Recorder(), Recorder()
    mux.set_frontend(monitor)
    mux.set_frontend(serial)  # the last one attached has the focus
    try:
        mux.receive(b"ab\x01\x01c")  # C-a C-a sends C-a
        assert serial.data == b"ab\x01c"
        mux.receive(b"\x01")
        mux.receive(b"b")  # an escape across reads: a break to the focused frontend
        assert serial.events == [ChardevEvent.BREAK]
        mux.receive(b"\x03")  # Ctrl-C goes to the guest
        assert serial.data.endswith(b"\x03")
        mux.receive(b"\x01c")  # to the monitor and back
        mux.receive(b"info\r")
        assert monitor.data == b"info\r" and ChardevEvent.MUX_IN in monitor.events
        assert serial.events[-1] is ChardevEvent.MUX_OUT
        mux.receive(b"\x01c")
        assert serial.events[-1] is ChardevEvent.MUX_IN
        mux.receive(b"\x01h")
        assert os.read(master, 1000).replace(b"\r\n", b"\n") == MUX_HELP.encode().replace(
            b"\r\n", b"\n")
        assert b"C-a x    exit emulator\n\r" in MUX_HELP.encode()
        mux.receive(b"\x01x")
        assert quits == [1]
        assert b"QEMU: Terminated" in os.read(master, 1000)
    finally:
        mux.close()


def test_file_append_and_null(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    path.write_bytes(b"old\n")
    backend = FileChardev("f", str(path), append=True)
    backend.write(b"hello\n")
    backend.close()
    assert path.read_bytes() == b"old\nhello\n"
    backend = FileChardev("f", str(path))
    backend.close()
    assert path.read_bytes() == b""  # without append=on: truncated
    assert isinstance(open_chardev(parse_shorthand("null", "serial0")), NullChardev)
    # no display: the console shows nothing
    assert isinstance(open_chardev(parse_shorthand("vc", "serial0")), NullChardev)


def test_socket_output_is_queued_then_refused_and_the_watch_fires() -> None:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    class Pair(FdChardev):
        pass

    chardev = Pair("s")
    chardev._in_fd = chardev._out_fd = ours.fileno()
    host = Host()
    chardev.attach(host)
    chunk = b"x" * 4096
    taken = sent = 0
    while True:
        taken = chardev.write(chunk)
        sent += taken
        if taken < len(chunk):
            break
    assert OUTPUT_LIMIT <= sent < OUTPUT_LIMIT + 1 << 20  # the queue is bounded
    assert chardev.write(b"y") == 0  # full: the UART must wait
    fired = []
    chardev.add_write_watch(lambda: fired.append(1))
    host.run_posted()
    assert not fired
    received = b""
    while len(received) < sent:
        received += peer.recv(1 << 20)
        drain = host.writable.get(ours.fileno())
        if drain is not None:
            drain()
    host.run_posted()
    assert fired == [1]
    assert received == b"x" * sent  # nothing lost, in order
    ours.close()
    peer.close()


@pytest.mark.parametrize("text,driver,props", [
    ("stdio", "stdio", {}),
    ("mon:stdio", "stdio", {"mux": "on", "signal": "off"}),
    ("file:/tmp/x", "file", {"path": "/tmp/x"}),
    ("pty", "pty", {}),
    ("tcp::4444,server=on,wait=off", "socket",
     {"host": "", "port": "4444", "server": "on", "wait": "off"}),
    ("tcp:localhost:4444", "socket", {"host": "localhost", "port": "4444"}),
    ("unix:/tmp/s,server", "socket", {"path": "/tmp/s", "server": "on"}),
])
def test_shorthands(text: str, driver: str, props: dict[str, str]) -> None:
    spec = parse_shorthand(text, "serial0")
    assert (spec.driver, spec.id, spec.props) == (driver, "serial0", props)


@pytest.mark.parametrize("driver,pairs,message", [
    ("foo", [("id", "x")], "'foo' is not a valid char driver name"),
    ("null", [], "chardev: no id specified"),
    (None, [("id", "x")], 'chardev: "x" missing backend'),
    ("null", [("id", "x"), ("bogus", "1")], "Invalid parameter 'bogus'"),
])
def test_bad_chardev_options(driver: str | None, pairs: list[tuple[str, str]],
                             message: str) -> None:
    with pytest.raises(ChardevError, match=message):
        parse_chardev(driver, pairs)


@pytest.mark.parametrize("spec,message", [
    ("bogus", "'bogus' is not a valid char driver"),
    ("file:/nonexistent/dir/x", "Could not open '/nonexistent/dir/x': No such file or directory"),
    ("udp:localhost:4444", "char driver 'udp' is not supported"),
    ("tcp:localhost:abc", "address resolution failed for localhost:abc"),
    ("unix:/nonexistent/dir/s,server=on,wait=off",
     "Failed to bind socket to /nonexistent/dir/s: No such file or directory"),
])
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ChardevError, match=message):
        open_chardev(parse_shorthand(spec, "serial0"))


def test_input_is_held_back_while_the_frontend_is_full() -> None:
    ours, peer = socket.socketpair()
    ours.setblocking(False)

    class Pair(FdChardev):
        pass

    class Slow(Recorder):
        room = 0

        def can_receive(self) -> int:
            return self.room

    chardev = Pair("s")
    chardev._in_fd = chardev._out_fd = ours.fileno()
    frontend = Slow()
    chardev.set_frontend(frontend)
    host = Host()
    chardev.attach(host)
    host.run_posted()
    peer.sendall(b"typed ahead")
    chardev._on_readable()
    host.run_posted()
    assert frontend.data == b""  # not read: the bytes wait in the socket
    frontend.room = 5
    chardev.accept_input()
    chardev._on_readable()
    host.run_posted()
    assert frontend.data == b"typed"  # as much as there is room for
    ours.close()
    peer.close()


def test_a_full_console_still_reads_escapes() -> None:
    quits = []

    class Full(Recorder):
        def can_receive(self) -> int:
            return 0

    mux = MuxChardev("serial0", NullChardev("base"), on_quit=lambda: quits.append(1))
    serial = Full()
    mux.set_frontend(serial)
    assert mux.can_receive() == 1
    mux.receive(b"lost\x01x")
    assert serial.data == b"" and quits == [1]
