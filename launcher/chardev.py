"""Character device backends for ``-serial``: stdio, null and file (issue 12 adds the
rest: sockets, pty, the monitor multiplexer).

A backend writes guest output to the host and may have an input file descriptor; the
machine loop watches that descriptor on its I/O thread and calls ``read_input``, whose
bytes go to the guest. ``stdio`` with ``mux`` (what ``-nographic`` gives, QEMU's
``mon:stdio``) understands QEMU's Ctrl-A escapes: ``C-a x`` ends the emulator, ``C-a h``
prints help, ``C-a C-a`` sends C-a, ``C-a b`` sends a break. The terminal is put in raw
mode while the backend is open and restored when it closes, on exit and on signals.
"""

from __future__ import annotations

import os
import termios
from collections.abc import Callable
from typing import Protocol

ESCAPE = 0x01  # Ctrl-A: QEMU's default term_escape_char

MUX_HELP = (
    "\r\n"
    "C-a h    print this help\r\n"
    "C-a x    exit emulator\r\n"
    "C-a s    save disk data back to file (if -snapshot)\r\n"
    "C-a t    toggle console timestamps\r\n"
    "C-a b    send break (magic sysrq)\r\n"
    "C-a c    switch between console and monitor\r\n"
    "C-a C-a  sends C-a\r\n"
)


class ChardevError(Exception):
    """A backend that cannot be opened; the message is QEMU's."""


class CharBackend(Protocol):
    def write(self, data: bytes) -> None:
        """Guest output."""
        ...

    def input_fd(self) -> int | None:
        """The descriptor to watch for guest input, or None."""
        ...

    def read_input(self) -> bytes:
        """Called when ``input_fd`` is readable: the bytes for the guest (b"" if the
        readable data was consumed by the backend itself, e.g. an escape)."""
        ...

    def close(self) -> None: ...


class NullBackend:
    """``null``: output discarded, no input."""

    def write(self, data: bytes) -> None:
        pass

    def input_fd(self) -> int | None:
        return None

    def read_input(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class FileBackend:
    """``file:PATH``: output appended to a file created or truncated at start."""

    def __init__(self, path: str) -> None:
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise ChardevError(f"Could not open '{path}': {exc.strerror}") from None

    def write(self, data: bytes) -> None:
        _write_all(self._fd, data)

    def input_fd(self) -> int | None:
        return None

    def read_input(self) -> bytes:
        return b""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class StdioBackend:
    """``stdio``: output to fd 1, input from fd 0; a terminal goes raw while open.

    Args:
        mux: handle QEMU's Ctrl-A escapes (``-nographic``); then Ctrl-C goes to the
            guest (QEMU's ``signal=off`` for mon:stdio); otherwise it stays a signal.
        on_quit: called (on the I/O thread) for ``C-a x``.
        on_break: called (on the I/O thread) for ``C-a b``.
    """

    def __init__(self, *, mux: bool = False, on_quit: Callable[[], None] | None = None,
                 on_break: Callable[[], None] | None = None,
                 stdin: int = 0, stdout: int = 1) -> None:
        self.mux = mux
        self.on_quit = on_quit
        self.on_break = on_break
        self._in = stdin
        self._out = stdout
        self._got_escape = False
        self._saved: list | None = None  # type: ignore[type-arg]
        self._eof = False
        if os.isatty(self._in):
            self._saved = termios.tcgetattr(self._in)
            self._set_raw(self._saved)

    def _set_raw(self, saved: list) -> None:  # type: ignore[type-arg]
        """QEMU's qemu_chr_set_echo_stdio(false): no echo, no line editing, no input
        translation; output post-processing (\\n -> \\r\\n) kept."""
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = saved
        iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                   | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        oflag |= termios.OPOST
        lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN)
        if self.mux:
            lflag &= ~termios.ISIG
        cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        cc = list(cc)
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        termios.tcsetattr(self._in, termios.TCSANOW,
                          [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])

    def restore(self) -> None:
        """Put the terminal back as it was (idempotent; safe in signal handlers)."""
        if self._saved is not None:
            try:
                termios.tcsetattr(self._in, termios.TCSANOW, self._saved)
            except termios.error:
                pass

    def write(self, data: bytes) -> None:
        _write_all(self._out, data)

    def input_fd(self) -> int | None:
        return None if self._eof else self._in

    def read_input(self) -> bytes:
        try:
            data = os.read(self._in, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            self._eof = True  # stdin closed: stop watching it
            return b""
        return self.filter(data) if self.mux else data

    def filter(self, data: bytes) -> bytes:
        """QEMU's mux_proc_byte: escapes acted on, the rest passed to the guest."""
        out = bytearray()
        for byte in data:
            if self._got_escape:
                self._got_escape = False
                if byte == ESCAPE:
                    out.append(byte)
                elif byte in b"h?":
                    self.write(MUX_HELP.encode())
                elif byte == ord("x"):
                    self.write(b"QEMU: Terminated\n\r")
                    if self.on_quit is not None:
                        self.on_quit()
                elif byte == ord("b") and self.on_break is not None:
                    self.on_break()
                # s, t, c: no snapshot, timestamps or monitor yet; ignored
            elif byte == ESCAPE:
                self._got_escape = True
            else:
                out.append(byte)
        return bytes(out)

    def close(self) -> None:
        self.restore()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            done = os.write(fd, view)
        except BlockingIOError:
            continue
        except BrokenPipeError:
            return  # the reader went away: output is lost, as with QEMU
        view = view[done:]


def open_backend(spec: str, *, mux: bool = False, on_quit: Callable[[], None] | None = None,
                 on_break: Callable[[], None] | None = None) -> CharBackend:
    """A backend from a ``-serial`` value: ``stdio``, ``mon:stdio``, ``null``,
    ``file:PATH``. ChardevError in QEMU's words otherwise."""
    if spec.startswith("mon:"):
        spec, mux = spec[4:], True
        if spec != "stdio":
            raise ChardevError(f"'mon:{spec}' is not supported yet (only mon:stdio)")
    if spec == "stdio":
        return StdioBackend(mux=mux, on_quit=on_quit, on_break=on_break)
    if spec == "null" or spec in ("none", "vc") or spec.startswith("vc:"):
        # "vc" is QEMU's graphical console; with no display it shows nothing.
        return NullBackend()
    if spec.startswith("file:"):
        return FileBackend(spec[5:])
    kind = spec.split(":", 1)[0]
    if kind in _LATER_DRIVERS:
        raise ChardevError(f"char driver '{kind}' is not supported yet")
    raise ChardevError(f"'{kind}' is not a valid char driver")


# QEMU's other -serial backends (issue 12 brings them).
_LATER_DRIVERS = ("tcp", "telnet", "websocket", "udp", "unix", "pty", "pipe", "serial", "tty",
                  "parallel", "chardev", "mon", "ringbuf", "memory", "msmouse", "braille",
                  "spicevmc", "spiceport", "qemu-vdagent")

