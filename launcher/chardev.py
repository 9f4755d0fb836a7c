"""Character devices: QEMU's ``-chardev`` backends and the multiplexer.

A :class:`Chardev` connects one *frontend* (the UART, a monitor, or a :class:`MuxChardev`
that shares the backend between several) to a host channel: ``stdio``, ``null``,
``file``, ``pipe``, ``pty`` or ``socket`` (unix or tcp, server or client).

Threads: host descriptors are watched by the machine loop's I/O thread (the ``IoHost``
is :class:`machines.loop.MachineLoop`); what a backend reads is *posted* to the loop's
thread, where every frontend runs (``receive``/``event``), so frontends touch devices
and monitors without locks, and no Python runs on the guest's path until input arrives.

Output (``write``, on the loop thread) never blocks the guest on a slow channel: a
backend writes what the descriptor takes now and queues the rest, up to
:data:`OUTPUT_LIMIT` bytes, which the I/O thread drains; beyond that ``write`` returns
how much it took, and the UART keeps THRE clear until the backend's write watch fires
(QEMU's serial_xmit retry), so the guest waits instead of losing output. A socket or pty
with no client keeps the last :data:`BACKLOG_LIMIT` bytes for the next client and
drops older ones, so an absent client never stalls the guest (QEMU drops everything).
stdio and files are written blocking, as QEMU does.
"""

from __future__ import annotations

import enum
import os
import pty
import socket
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Protocol

ESCAPE = 0x01  # Ctrl-A: QEMU's default term_escape_char
OUTPUT_LIMIT = 64 * 1024
LOW_WATER = OUTPUT_LIMIT // 2
BACKLOG_LIMIT = 64 * 1024
MAX_MUX = 4  # QEMU's MAX_MUX frontends on one multiplexer

# QEMU's mux_help, '%' standing for the escape key's name; lines end in "\n\r" as there.
_MUX_HELP = (
    "% h    print this help\n\r",
    "% x    exit emulator\n\r",
    "% s    save disk data back to file (if -snapshot)\n\r",
    "% t    toggle console timestamps\n\r",
    "% b    send break (magic sysrq)\n\r",
    "% c    switch between console and monitor\n\r",
    "% %  sends %\n\r",
)
MUX_HELP = "\n\r" + "".join(line.replace("%", "C-a") for line in _MUX_HELP)


class ChardevError(Exception):
    """A backend that cannot be opened or a bad option; the message is QEMU's."""


class ChardevEvent(enum.Enum):
    """QEMU's QEMUChrEvent."""

    OPENED = "opened"  # a client connected (or the backend opened)
    CLOSED = "closed"  # the client went away
    BREAK = "break"  # a serial break (C-a b)
    MUX_IN = "mux-in"  # a multiplexer gave this frontend the focus
    MUX_OUT = "mux-out"  # ... and took it away


class Frontend(Protocol):
    """What a chardev delivers to (on the loop's thread). A frontend may also have
    ``can_receive() -> int`` (QEMU's chr_can_read): while it returns 0 the backend
    stops reading its descriptor until the frontend calls ``chardev.accept_input()``,
    so a client typing faster than the guest reads is held back by the host's socket
    or pipe buffer rather than queued here without bound."""

    def receive(self, data: bytes) -> None: ...

    def event(self, event: ChardevEvent) -> None: ...


class IoHost(Protocol):
    """The machine loop's services a backend uses (machines.loop.MachineLoop)."""

    def post(self, work: Callable[[], None]) -> None: ...

    def watch_fd(self, fd: int, on_readable: Callable[[], None]) -> None: ...

    def unwatch_fd(self, fd: int) -> None: ...

    def watch_writable(self, fd: int, on_writable: Callable[[], None] | None) -> None: ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None: ...


class Chardev:
    """A backend: ``id`` (QEMU's label), one frontend, output and input."""

    driver = "null"

    def __init__(self, chardev_id: str) -> None:
        self.id = chardev_id
        self.frontend: Frontend | None = None
        self.host: IoHost | None = None
        # Bumped when a connection ends: input read from an earlier connection but not
        # yet handled on the loop thread is dropped (its replies would go to the next).
        self._generation = 0

    # -- wiring ---------------------------------------------------------------------------
    def set_frontend(self, frontend: Frontend) -> None:
        if self.frontend is not None:
            raise ChardevError(f"Device '{self.id}' is in use")
        self.frontend = frontend

    def attach(self, host: IoHost) -> None:
        """Start watching host descriptors (the loop exists from now on)."""
        self.host = host
        self.start()

    def start(self) -> None:
        """Subclasses: register descriptors; report OPENED if connected."""
        self._event(ChardevEvent.OPENED)

    @property
    def connected(self) -> bool:
        return True

    @property
    def filename(self) -> str:
        """What query-chardev / info chardev shows."""
        return self.driver

    # -- output (loop thread) -------------------------------------------------------------
    def write(self, data: bytes) -> int:
        """Send ``data`` to the host; returns how many bytes were taken (fewer when the
        channel is backed up: call :meth:`add_write_watch` to be told when to retry)."""
        return len(data)

    def add_write_watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop thread once ``write`` takes bytes again."""
        self._post(callback)

    def accept_input(self) -> None:
        """The frontend has room again (loop thread): resume reading if held back."""

    def _frontend_room(self) -> int:
        can_receive = getattr(self.frontend, "can_receive", None)
        return 4096 if can_receive is None else min(4096, can_receive())

    def close(self) -> None:
        pass

    # -- helpers for subclasses -----------------------------------------------------------
    def _post(self, work: Callable[[], None]) -> None:
        if self.host is not None:
            self.host.post(work)

    def _deliver(self, data: bytes) -> None:
        """Input for the frontend (from the I/O thread)."""
        frontend = self.frontend
        if frontend is not None and data:
            generation = self._generation

            def receive() -> None:
                if generation == self._generation:
                    frontend.receive(data)
            self._post(receive)

    def _event(self, event: ChardevEvent) -> None:
        frontend = self.frontend
        if frontend is not None:
            generation = self._generation

            def deliver() -> None:
                # An OPENED for a connection that has ended since is stale.
                if event is not ChardevEvent.OPENED or generation == self._generation:
                    frontend.event(event)
            self._post(deliver)


class NullChardev(Chardev):
    """``null``: output discarded, no input."""

    driver = "null"


def _write_all(fd: int, data: bytes) -> None:
    """Blocking write of everything (stdio, files)."""
    view = memoryview(data)
    while view:
        try:
            done = os.write(fd, view)
        except BlockingIOError:
            import select
            select.select([], [fd], [], 1.0)
            continue
        except InterruptedError:
            continue
        except OSError:
            return  # the reader went away (EPIPE, EIO): output is lost, as with QEMU
        view = view[done:]


class FdChardev(Chardev):
    """A backend over host descriptors: non-blocking output queued up to OUTPUT_LIMIT
    and drained by the I/O thread; input read on the I/O thread and posted."""

    blocking_output = False
    keeps_backlog = False  # sockets/pty: keep output for the next client

    def __init__(self, chardev_id: str) -> None:
        super().__init__(chardev_id)
        self._lock = threading.RLock()
        self._in_fd: int | None = None
        self._out_fd: int | None = None
        self._outbuf = bytearray()
        self._backlog = bytearray()
        self._watches: list[Callable[[], None]] = []
        self._draining = False
        self._input_held = False

    @property
    def connected(self) -> bool:
        return self._out_fd is not None

    def start(self) -> None:
        self._watch_input()
        if self.connected:
            self._event(ChardevEvent.OPENED)

    def _watch_input(self) -> None:
        if self._in_fd is not None and self.host is not None:
            self.host.watch_fd(self._in_fd, self._on_readable)

    # -- output -----------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        with self._lock:
            fd = self._out_fd
            if fd is None:
                if self.keeps_backlog:
                    self._backlog += data
                    del self._backlog[:-BACKLOG_LIMIT]
                return len(data)
            if self.blocking_output:
                _write_all(fd, data)
                return len(data)
            written = 0
            if not self._outbuf:
                try:
                    written = os.write(fd, data)
                except (BlockingIOError, InterruptedError):
                    written = 0
                except OSError:
                    self._lost_output()
                    return len(data)
            rest = data[written:]
            take = rest[:max(0, OUTPUT_LIMIT - len(self._outbuf))]
            if take:
                self._outbuf += take
                self._want_drain()
            return written + len(take)

    def add_write_watch(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if self._out_fd is None or len(self._outbuf) < OUTPUT_LIMIT:
                self._post(callback)
            else:
                self._watches.append(callback)

    def accept_input(self) -> None:
        with self._lock:
            held, self._input_held = self._input_held, False
        if held:
            self._watch_input()

    def _want_drain(self) -> None:
        if not self._draining and self.host is not None and self._out_fd is not None:
            self._draining = True
            self.host.watch_writable(self._out_fd, self._drain)

    def _drain(self) -> None:
        """I/O thread: the descriptor is writable."""
        with self._lock:
            fd = self._out_fd
            if fd is None:
                return
            try:
                done = os.write(fd, self._outbuf)
            except (BlockingIOError, InterruptedError):
                done = 0
            except OSError:
                self._lost_output()
                return
            del self._outbuf[:done]
            if not self._outbuf and self.host is not None:
                self._draining = False
                self.host.watch_writable(fd, None)
            if len(self._outbuf) < LOW_WATER and self._watches:
                watches, self._watches = self._watches, []
                for callback in watches:
                    self._post(callback)

    def _lost_output(self) -> None:
        """Writing failed (the peer went away)."""
        self._hangup()

    def _flush_backlog(self) -> None:
        with self._lock:
            backlog, self._backlog = bytes(self._backlog), bytearray()
        if backlog:
            self.write(backlog)

    # -- input ------------------------------------------------------------------------
    def _on_readable(self) -> None:
        fd = self._in_fd
        if fd is None:
            return
        room = self._frontend_room()
        if room <= 0:  # hold the input back until the guest reads
            with self._lock:
                self._input_held = True
            if self.host is not None:
                self.host.unwatch_fd(fd)
            return
        try:
            data = os.read(fd, room)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._hangup()
            return
        self._deliver(data)

    def _hangup(self) -> None:
        """End of input / broken output: stop watching (subclasses reconnect)."""
        with self._lock:
            fd = self._in_fd
            self._in_fd = None
        if fd is not None and self.host is not None:
            self.host.unwatch_fd(fd)

    def _close_fds(self) -> None:
        with self._lock:
            fds = {self._in_fd, self._out_fd} - {None}
            self._in_fd = self._out_fd = None
            self._outbuf.clear()
            draining, self._draining = self._draining, False
        for fd in fds:
            if self.host is not None:
                self.host.unwatch_fd(fd)  # type: ignore[arg-type]
                if draining:
                    self.host.watch_writable(fd, None)  # type: ignore[arg-type]
                # Closed on the I/O thread after its selector forgot the fd.
                self.host.call_later(0, lambda fd=fd: _close_quietly(fd))
            else:
                _close_quietly(fd)  # type: ignore[arg-type]

    def close(self) -> None:
        self._flush_output()
        with self._lock:
            fds = {self._in_fd, self._out_fd} - {None}
            self._in_fd = self._out_fd = None
        for fd in fds:
            _close_quietly(fd)  # type: ignore[arg-type]

    def _flush_output(self, timeout_s: float = 2.0) -> None:
        """At exit: what is still queued (the reply to ``quit``) goes out, unless the
        reader stays stuck for ``timeout_s``."""
        import select
        deadline = time.monotonic() + timeout_s
        with self._lock:
            fd = self._out_fd
            while fd is not None and self._outbuf and time.monotonic() < deadline:
                if not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
                    break
                try:
                    del self._outbuf[:os.write(fd, self._outbuf)]
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    break


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class FileChardev(FdChardev):
    """``file,path=P[,append=on]``: output to a file (created; truncated unless append)."""

    driver = "file"
    blocking_output = True

    def __init__(self, chardev_id: str, path: str, append: bool = False) -> None:
        super().__init__(chardev_id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        try:
            self._out_fd = os.open(path, flags, 0o666)
        except OSError as exc:
            raise ChardevError(f"Could not open '{path}': {exc.strerror}") from None


class PipeChardev(FdChardev):
    """``pipe,path=P``: FIFOs P.in (input) and P.out (output), or P for both."""

    driver = "pipe"

    def __init__(self, chardev_id: str, path: str) -> None:
        super().__init__(chardev_id)
        try:
            # O_RDWR on the input: a FIFO never reads as EOF when its writer goes away.
            self._in_fd = os.open(path + ".in", os.O_RDWR | os.O_CLOEXEC)
            self._out_fd = os.open(path + ".out", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            for fd in (self._in_fd, self._out_fd):
                if fd is not None:
                    os.close(fd)
            try:
                self._in_fd = self._out_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise ChardevError(f"Could not open '{path}': {exc.strerror}") from None
        for fd in (self._in_fd, self._out_fd):
            os.set_blocking(fd, False)


class StdioChardev(FdChardev):
    """``stdio``: output to fd 1, input from fd 0; a terminal goes raw while open and
    is restored on close, on exit and on signals (the launcher calls ``restore``).

    ``signal=off`` (what ``mon:stdio`` uses) passes Ctrl-C to the guest instead of
    making it a signal."""

    driver = "stdio"
    blocking_output = True
    in_use = False  # QEMU allows one stdio chardev

    def __init__(self, chardev_id: str, *, signal: bool = True, stdin: int = 0,
                 stdout: int = 1) -> None:
        super().__init__(chardev_id)
        if StdioChardev.in_use:
            raise ChardevError("cannot use stdio by multiple character devices")
        StdioChardev.in_use = True
        self.signal = signal
        self._tty = stdin
        self._in_fd = stdin
        self._out_fd = stdout
        self._saved: list | None = None  # type: ignore[type-arg]
        if os.isatty(stdin):
            self._saved = termios.tcgetattr(stdin)
            self._set_raw(self._saved)

    def _set_raw(self, saved: list) -> None:  # type: ignore[type-arg]
        """QEMU's qemu_chr_set_echo_stdio(false): no echo, no line editing, no input
        translation; output post-processing (\\n -> \\r\\n) kept."""
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = saved
        iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                   | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        oflag |= termios.OPOST
        lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN)
        if not self.signal:
            lflag &= ~termios.ISIG
        cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        cc = list(cc)
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        assert self._in_fd is not None
        termios.tcsetattr(self._in_fd, termios.TCSANOW,
                          [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])

    def restore(self) -> None:
        """Put the terminal back as it was (idempotent; safe in signal handlers)."""
        if self._saved is not None:
            try:
                termios.tcsetattr(self._tty, termios.TCSANOW, self._saved)
            except termios.error:
                pass

    def _hangup(self) -> None:
        super()._hangup()  # stdin at EOF: stop reading, keep writing

    def close(self) -> None:
        self.restore()
        with self._lock:
            self._in_fd = self._out_fd = None
        StdioChardev.in_use = False


class PtyChardev(FdChardev):
    """``pty``: a new pseudo-terminal; prints its name as QEMU does. The slave side
    stays open here too, so the guest's output waits in the pty (and our queue) for a
    reader rather than being lost."""

    driver = "pty"

    def __init__(self, chardev_id: str, announce: Callable[[str], None]) -> None:
        super().__init__(chardev_id)
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._slave = slave
        self._in_fd = self._out_fd = master
        self.pty_name = os.ttyname(slave)
        announce(f"char device redirected to {self.pty_name} (label {chardev_id})\n")

    @property
    def filename(self) -> str:
        return f"pty:{self.pty_name}"

    def close(self) -> None:
        super().close()
        _close_quietly(self._slave)


# Telnet (RFC 854) as QEMU's socket chardev speaks it with telnet=on: at each connection
# it offers binary, no-echo, character-at-a-time mode, and it removes the client's
# commands from the input (tcp_chr_telnet_init, tcp_chr_process_IAC_bytes).
IAC, IAC_BREAK, WILL, DO = 0xFF, 0xF3, 0xFB, 0xFD
TELNET_ECHO, TELNET_SGA, TELNET_BINARY = 0x01, 0x03, 0x00
TELNET_INIT = bytes([IAC, WILL, TELNET_ECHO, IAC, WILL, TELNET_SGA, IAC, WILL, TELNET_BINARY,
                     IAC, DO, TELNET_BINARY])


class TelnetFilter:
    """The client's bytes without its telnet commands: IAC IAC is a 0xFF data byte,
    IAC BREAK a break (``on_break``), and any other IAC command is taken to be three
    bytes long (IAC, command, option), as QEMU takes them."""

    def __init__(self, on_break: Callable[[], None]) -> None:
        self._on_break = on_break
        self._state = 0  # QEMU's do_telnetopt - 1: 0 data, 1 after IAC, 2 after a command

    def reset(self) -> None:
        self._state = 0

    def filter(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self._state == 0:
                if byte == IAC:
                    self._state = 1
                else:
                    out.append(byte)
            elif self._state == 1:
                if byte == IAC:
                    out.append(IAC)
                    self._state = 0
                elif byte == IAC_BREAK:
                    self._on_break()
                    self._state = 0
                else:
                    self._state = 2  # (the option byte follows)
            else:
                self._state = 0
        return bytes(out)


WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3


class WebSocketServer:
    """The server side of RFC 6455 as QEMU's websocket chardev speaks it: the HTTP
    upgrade handshake (``101 Switching Protocols``), then the client's masked frames in
    (text, binary and continuation frames carry data; ping is answered with pong; close
    ends the connection) and binary frames out."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self._send = send  # raw bytes to the client
        self._buffer = bytearray()
        self.open = False  # the handshake is done
        self.closed = False  # the client sent close (or broke the protocol)

    def receive(self, data: bytes) -> bytes:
        """The payload bytes in ``data`` (more may follow in later reads)."""
        self._buffer += data
        if not self.open:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 16384:
                    self._fail(b"431 Request Header Fields Too Large")
                return b""
            request, self._buffer = bytes(self._buffer[:end]), self._buffer[end + 4:]
            if not self._handshake(request):
                return b""
        out = bytearray()
        while not self.closed:
            frame = self._frame()
            if frame is None:
                break
            opcode, payload = frame
            if opcode in (0x0, 0x1, 0x2):
                out += payload
            elif opcode == 0x8:  # close: answered, then the connection ends
                self._send(b"\x88\x00")
                self.closed = True
            elif opcode == 0x9:
                self._send(self.frame(payload, opcode=0xA))
        return bytes(out)

    def _handshake(self, request: bytes) -> bool:
        lines = request.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if not lines[0].startswith("GET ") or key is None or \
                "websocket" not in headers.get("upgrade", "").lower():
            self._fail(b"400 Bad Request")
            return False
        import base64
        import hashlib
        accept = base64.b64encode(hashlib.sha1(key.encode() + WEBSOCKET_GUID).digest())
        self._send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
                   + (b"Sec-WebSocket-Protocol: binary\r\n"
                      if "binary" in headers.get("sec-websocket-protocol", "") else b"")
                   + b"\r\n")
        self.open = True
        return True

    def _fail(self, status: bytes) -> None:
        self._send(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        self.closed = True

    def _frame(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        opcode, masked, length = buffer[0] & 0x0F, buffer[1] & 0x80, buffer[1] & 0x7F
        position = 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if len(buffer) < position + size:
                return None
            length = int.from_bytes(buffer[position:position + size], "big")
            position += size
        if not masked:  # a client's frames are masked (RFC 6455 5.1): a protocol error
            self._send(b"\x88\x02\x03\xea")  # close 1002
            self.closed = True
            return None
        if len(buffer) < position + 4 + length:
            return None
        mask = buffer[position:position + 4]
        position += 4
        payload = bytes(b ^ mask[i & 3] for i, b in enumerate(buffer[position:position + length]))
        del buffer[:position + length]
        return opcode, payload

    @staticmethod
    def frame(payload: bytes, opcode: int = 0x2) -> bytes:
        """One unmasked final frame (the server's)."""
        length = len(payload)
        if length < 126:
            head = bytes([0x80 | opcode, length])
        elif length < 1 << 16:
            head = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
        return head + payload


class SocketChardev(FdChardev):
    """``socket``: unix ``path=`` or tcp ``host=,port=``; a server (one client at a
    time, ``wait=on`` blocks until the first connects) or a client (``reconnect=N``:
    retry every N seconds when the connection fails or drops); ``telnet=on``: each
    connection speaks telnet (:data:`TELNET_INIT`, :class:`TelnetFilter`)."""

    driver = "socket"
    keeps_backlog = True

    def __init__(self, chardev_id: str, *, path: str | None = None, host: str = "",
                 port: str | None = None, server: bool = False, wait: bool = True,
                 reconnect: int = 0, nodelay: bool = False, telnet: bool = False,
                 websocket: bool = False,
                 info: Callable[[str], None] | None = None) -> None:
        super().__init__(chardev_id)
        self.telnet = telnet
        self.websocket = websocket
        self._ws: WebSocketServer | None = None
        self._telnet = TelnetFilter(lambda: self._event(ChardevEvent.BREAK))
        self.path = path
        self.hostname = host
        self.port = port
        self.server = server
        self.reconnect = reconnect
        self.nodelay = nodelay
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._peer = ""
        self._closing = False
        if path is None and port is None:
            raise ChardevError("Unable to parse FD number ")
        if server:
            self._listen()
            if wait:
                if info is not None:
                    info(f"QEMU waiting for connection on: {self.filename}")
                conn, _ = self._listener.accept()  # type: ignore[union-attr]
                self._connected(conn)
        else:
            try:
                self._connected(self._connect())
            except ChardevError:
                if reconnect <= 0:
                    raise

    # -- addresses ----------------------------------------------------------------------
    def _tcp_addresses(self, passive: bool) -> list[tuple]:  # type: ignore[type-arg]
        host = self.hostname or (None if passive else "localhost")
        try:
            return socket.getaddrinfo(host, self.port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                      0, socket.AI_PASSIVE if passive else 0)
        except socket.gaierror as exc:
            raise ChardevError(f"address resolution failed for {self.hostname}:{self.port}: "
                               f"{exc.strerror}") from None

    def _listen(self) -> None:
        if self.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                os.unlink(self.path)  # QEMU replaces a stale socket file
            except OSError:
                pass
            try:
                sock.bind(self.path)
            except OSError as exc:
                sock.close()
                raise ChardevError(f"Failed to bind socket to {self.path}: "
                                   f"{exc.strerror}") from None
        else:
            infos = self._tcp_addresses(passive=True)
            # Prefer IPv4 for an empty host (QEMU's 'tcp::PORT' listens on 0.0.0.0).
            infos.sort(key=lambda info: info[0] != socket.AF_INET)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                sock.close()
                raise ChardevError(f"Failed to bind socket: {exc.strerror}") from None
        sock.listen(1)
        sock.setblocking(True)
        self._listener = sock

    def _connect(self) -> socket.socket:
        if self.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: object = self.path
            try:
                sock.connect(self.path)
                return sock
            except OSError as exc:
                sock.close()
                raise ChardevError(f"Failed to connect to '{target}': "
                                   f"{exc.strerror}") from None
        last = "Connection refused"
        for family, kind, proto, _, address in self._tcp_addresses(passive=False):
            sock = socket.socket(family, kind, proto)
            sock.settimeout(5)
            try:
                sock.connect(address)
                return sock
            except OSError as exc:
                last = exc.strerror or str(exc)
                sock.close()
        raise ChardevError(f"Failed to connect to '{self.hostname}:{self.port}': {last}")

    @property
    def filename(self) -> str:
        if self.path is not None:
            base = f"unix:{self.path}"
        else:
            scheme = "websocket" if self.websocket else "telnet" if self.telnet else "tcp"
            base = f"{scheme}:{self.hostname}:{self.port}"
        if self.server:
            base += ",server=on"
        if self._conn is None:
            return f"disconnected:{base}"
        return f"{base} <-> {self._peer}" if self._peer else base

    # -- connection state ---------------------------------------------------------------
    def _connected(self, conn: socket.socket) -> None:
        if self.telnet:  # (before any output: the connection is new and blocking)
            self._telnet.reset()
            try:
                conn.sendall(TELNET_INIT)
            except OSError:
                pass  # (gone already: the reader sees the hang-up)
        conn.setblocking(False)
        if self.path is None and self.nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            peer = conn.getpeername()
            self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        except OSError:
            self._peer = ""
        with self._lock:
            self._conn = conn
            self._in_fd = conn.fileno()
            if self.websocket:  # output waits (in the backlog) for the handshake
                self._ws = WebSocketServer(self._send_raw)
            else:
                self._out_fd = self._in_fd
        if self.host is not None:
            self._watch_input()
            if not self.websocket:
                self._event(ChardevEvent.OPENED)
                self._flush_backlog()

    def _send_raw(self, data: bytes) -> None:
        """Protocol bytes (the websocket handshake, pong, close) to the client."""
        conn = self._conn
        if conn is None:
            return
        try:
            conn.setblocking(True)
            conn.sendall(data)
        except OSError:
            pass  # (the reader sees the hang-up)
        finally:
            try:
                conn.setblocking(False)
            except OSError:
                pass

    def write(self, data: bytes) -> int:
        if self._ws is None or not self._ws.open:
            return super().write(data)
        if not data:
            return 0
        frame = WebSocketServer.frame(data)
        with self._lock:  # whole frames only: a slow client gets them later
            if len(self._outbuf) + len(frame) > OUTPUT_LIMIT and self._outbuf:
                return 0
            super().write(frame)
        return len(data)

    def start(self) -> None:
        if self._conn is not None and self.websocket:
            self._watch_input()
        elif self._conn is not None:
            self._watch_input()
            self._event(ChardevEvent.OPENED)
            self._flush_backlog()
        elif self.server:
            self._watch_listener()
        elif self.reconnect > 0:
            self._schedule_reconnect()

    def _watch_listener(self) -> None:
        if self._listener is not None and self.host is not None:
            self.host.watch_fd(self._listener.fileno(), self._accept)

    def _accept(self) -> None:
        """I/O thread: a client is waiting on the listener."""
        assert self._listener is not None and self.host is not None
        try:
            self._listener.setblocking(False)
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        self.host.unwatch_fd(self._listener.fileno())  # one client at a time, as QEMU
        self._connected(conn)

    def _deliver(self, data: bytes) -> None:
        ws = self._ws
        if ws is not None:
            was_open = ws.open
            data = ws.receive(data)
            if ws.open and not was_open:  # the handshake is done: the client is here
                with self._lock:
                    self._out_fd = self._in_fd
                self._event(ChardevEvent.OPENED)
                self._flush_backlog()
            if ws.closed:
                super()._deliver(data)
                self._hangup()
                return
        super()._deliver(self._telnet.filter(data) if self.telnet else data)

    def _schedule_reconnect(self) -> None:
        if self.host is not None and not self._closing:
            self.host.call_later(self.reconnect, self._try_reconnect)

    def _try_reconnect(self) -> None:
        if self._closing or self._conn is not None:
            return
        try:
            conn = self._connect()
        except ChardevError:
            self._schedule_reconnect()
            return
        self._connected(conn)

    def _hangup(self) -> None:
        """The client went away (EOF, reset, broken pipe): the VM goes on; a server
        listens again, a client with reconnect= retries."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            self._ws = None
            self._peer = ""
            self._generation += 1
        conn.detach()  # the descriptor is closed by _close_fds (on the I/O thread)
        self._close_fds()
        self._event(ChardevEvent.CLOSED)
        if self.server:
            self._watch_listener()
        elif self.reconnect > 0:
            self._schedule_reconnect()

    def close(self) -> None:
        self._closing = True
        super().close()
        if self._conn is not None:
            self._conn.detach()
            self._conn = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            if self.path is not None:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass


class MuxChardev(Chardev):
    """``mux=on``: up to four frontends share one backend (QEMU's char-mux). Output
    from every frontend goes to the backend; input goes to the frontend with the focus,
    which ``C-a c`` moves on. ``C-a h`` help, ``C-a x`` exit, ``C-a s`` sync disks,
    ``C-a t`` timestamps, ``C-a b`` break, ``C-a C-a`` a literal C-a."""

    driver = "mux"

    def __init__(self, chardev_id: str, backend: Chardev, *,
                 on_quit: Callable[[], None] | None = None,
                 on_sync: Callable[[], None] | None = None) -> None:
        super().__init__(chardev_id)
        self.backend = backend
        self.frontends: list[Frontend] = []
        self.focus = -1
        self.on_quit = on_quit
        self.on_sync = on_sync
        self._got_escape = False
        self._timestamps = False
        self._timestamps_start = 0.0
        self._line_start = True
        backend.set_frontend(self)

    def set_frontend(self, frontend: Frontend) -> None:
        if len(self.frontends) >= MAX_MUX:
            raise ChardevError(f"Device '{self.id}' is in use")
        self.frontends.append(frontend)
        self.focus = len(self.frontends) - 1  # the last frontend attached has the focus

    def attach(self, host: IoHost) -> None:
        self.host = host
        self.backend.attach(host)

    @property
    def connected(self) -> bool:
        return self.backend.connected

    # -- output -----------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        if not self._timestamps:
            return self.backend.write(data)
        out = bytearray()
        for byte in data:
            if self._line_start:
                elapsed = int((time.monotonic() - self._timestamps_start) * 1000)
                secs = elapsed // 1000
                out += (f"[{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}."
                        f"{elapsed % 1000:03d}] ").encode()
                self._line_start = False
            out.append(byte)
            if byte == 0x0A:
                self._line_start = True
        self.backend.write(bytes(out))
        return len(data)

    def add_write_watch(self, callback: Callable[[], None]) -> None:
        self.backend.add_write_watch(callback)

    def can_receive(self) -> int:
        """The focused frontend's room, but at least one byte: escapes are always read
        (C-a x must work); what a full frontend cannot take is dropped, as a UART
        overrun would."""
        return max(1, self._focused_room())

    def _focused_room(self) -> int:
        if 0 <= self.focus < len(self.frontends):
            can_receive = getattr(self.frontends[self.focus], "can_receive", None)
            if can_receive is not None:
                return can_receive()
        return 4096

    def accept_input(self) -> None:
        self.backend.accept_input()

    def close(self) -> None:
        self.backend.close()

    # -- the backend's frontend (loop thread) ----------------------------------------
    def receive(self, data: bytes) -> None:
        out = bytearray()
        for byte in data:
            if self._got_escape:
                self._got_escape = False
                if byte == ESCAPE:
                    out.append(byte)
                else:
                    self._flush(out)
                    self._escape(byte)
            elif byte == ESCAPE:
                self._got_escape = True
            else:
                out.append(byte)
        self._flush(out)

    def _flush(self, out: bytearray) -> None:
        if out and 0 <= self.focus < len(self.frontends):
            data = bytes(out[:max(0, self._focused_room())])
            if data:
                self.frontends[self.focus].receive(data)
        out.clear()

    def _escape(self, key: int) -> None:
        char = chr(key)
        if char in "h?":
            self.backend.write(MUX_HELP.encode())
        elif char == "x":
            self.backend.write(b"QEMU: Terminated\n\r")
            if self.on_quit is not None:
                self.on_quit()
        elif char == "s":
            if self.on_sync is not None:
                self.on_sync()
        elif char == "b":
            if 0 <= self.focus < len(self.frontends):
                self.frontends[self.focus].event(ChardevEvent.BREAK)
        elif char == "c" and self.frontends:
            self.frontends[self.focus].event(ChardevEvent.MUX_OUT)
            self.focus = (self.focus + 1) % len(self.frontends)
            self.frontends[self.focus].event(ChardevEvent.MUX_IN)
        elif char == "t":
            self._timestamps = not self._timestamps
            self._timestamps_start = time.monotonic()
            self._line_start = True

    def event(self, event: ChardevEvent) -> None:
        for index, frontend in enumerate(self.frontends):
            frontend.event(event)
            if event is ChardevEvent.OPENED:
                frontend.event(ChardevEvent.MUX_IN if index == self.focus
                               else ChardevEvent.MUX_OUT)


# -- option parsing -------------------------------------------------------------------------
BACKENDS = ("null", "file", "pipe", "stdio", "pty", "socket", "tcp", "unix")
# QEMU's other drivers: named in errors as unsupported rather than unknown.
_UNSUPPORTED = ("serial", "tty", "parallel", "parport", "udp", "ringbuf", "memory",
                "msmouse", "wctablet", "braille", "testdev", "spicevmc", "spiceport",
                "qemu-vdagent", "vc", "dbus", "websocket")
_COMMON_KEYS = ("id", "mux", "logfile", "logappend")
_KEYS = {
    "null": (),
    "file": ("path", "append", "in"),
    "pipe": ("path",),
    "stdio": ("signal",),
    "pty": ("path",),
    "socket": ("path", "host", "port", "server", "wait", "reconnect", "nodelay", "telnet",
               "websocket", "to", "ipv4", "ipv6", "abstract", "tight", "fd", "tls-creds",
               "tls-authz", "websocket"),
}


def parse_bool(key: str, value: str) -> bool:
    """QEMU's boolean property values."""
    if value in ("on", "yes", "true", "y", ""):
        return True
    if value in ("off", "no", "false", "n"):
        return False
    raise ChardevError(f"Parameter '{key}' expects 'on' or 'off'")


class ChardevSpec:
    """A parsed ``-chardev`` (driver, id, properties)."""

    def __init__(self, driver: str, chardev_id: str | None, props: dict[str, str]) -> None:
        self.driver = driver
        self.id = chardev_id
        self.props = props

    def flag(self, key: str, default: bool) -> bool:
        value = self.props.get(key)
        return default if value is None else parse_bool(key, value)


def parse_chardev(driver: str | None, pairs: list[tuple[str, str]]) -> ChardevSpec:
    """``-chardev BACKEND,id=ID,...`` from its parsed list."""
    props = dict(pairs)
    if not driver:
        raise ChardevError(f"chardev: \"{props.get('id', '')}\" missing backend")
    if driver in ("tcp", "unix"):
        driver = "socket"
    if driver not in _KEYS:
        if driver in _UNSUPPORTED:
            raise ChardevError(f"char driver '{driver}' is not supported by llvmtcg")
        raise ChardevError(f"'{driver}' is not a valid char driver name")
    chardev_id = props.pop("id", None)
    if not chardev_id:
        raise ChardevError("chardev: no id specified")
    for key in props:
        if key not in _KEYS[driver] and key not in _COMMON_KEYS:
            raise ChardevError(f"Invalid parameter '{key}'")
    return ChardevSpec(driver, chardev_id, props)


def parse_shorthand(text: str, label: str) -> ChardevSpec:
    """A ``-serial``/``-monitor``/``-qmp`` value: ``stdio``, ``mon:stdio`` (muxed),
    ``null``, ``none``, ``vc``, ``file:PATH``, ``pipe:PATH``, ``pty``,
    ``tcp:HOST:PORT[,server=on,wait=off]``, ``telnet:HOST:PORT[,…]``,
    ``unix:PATH[,server…]``. (``websocket=on`` only with -chardev socket.)"""
    mux = False
    if text.startswith("mon:"):
        text, mux = text[4:], True
    props: dict[str, str] = {"mux": "on"} if mux else {}
    kind, _, rest = text.partition(":")
    if text in ("null", "none", "vc") or kind == "vc":
        # "vc" is QEMU's graphical console; with no display it shows nothing.
        return ChardevSpec("null", label, props)
    if text == "stdio":
        if mux:
            props["signal"] = "off"
        return ChardevSpec("stdio", label, props)
    if text == "pty":
        return ChardevSpec("pty", label, props)
    if kind == "file" and rest:
        return ChardevSpec("file", label, {**props, "path": rest})
    if kind == "pipe" and rest:
        return ChardevSpec("pipe", label, {**props, "path": rest})
    if kind in ("tcp", "telnet", "unix") and rest:
        from launcher.system.options import split_list
        parts = split_list(rest)
        if kind == "telnet":
            props["telnet"] = "on"
        if kind in ("tcp", "telnet"):
            host, sep, port = parts[0].rpartition(":")
            if not sep:
                raise ChardevError(f"Failed to parse socket address '{parts[0]}'")
            props.update(host=host.strip("[]"), port=port)
        else:
            props["path"] = parts[0]
        for part in parts[1:]:
            key, _, value = part.partition("=")
            props[key] = value if "=" in part else "on"
            if key not in _KEYS["socket"]:
                raise ChardevError(f"Invalid parameter '{key}'")
        return ChardevSpec("socket", label, props)
    if kind in _UNSUPPORTED or kind in ("tcp", "unix", "file", "pipe"):
        raise ChardevError(f"char driver '{kind}' is not supported by llvmtcg"
                           if kind in _UNSUPPORTED else f"'{text}' is not a valid char driver")
    raise ChardevError(f"'{text}' is not a valid char driver")  # the whole text, as QEMU


def open_chardev(spec: ChardevSpec, *, announce: Callable[[str], None] | None = None,
                 info: Callable[[str], None] | None = None) -> Chardev:
    """Open the backend ``spec`` describes (without mux=on: see :class:`MuxChardev`).
    ``announce`` prints the pty name (stdout in QEMU); ``info`` the wait message."""
    props = spec.props
    chardev_id = spec.id or ""
    driver = spec.driver
    if driver == "null":
        return NullChardev(chardev_id)
    if driver == "file":
        path = props.get("path")
        if not path:
            raise ChardevError("chardev: file: no filename given")
        return FileChardev(chardev_id, path, spec.flag("append", False))
    if driver == "pipe":
        path = props.get("path")
        if not path:
            raise ChardevError("chardev: pipe: no filename given")
        return PipeChardev(chardev_id, path)
    if driver == "stdio":
        return StdioChardev(chardev_id, signal=spec.flag("signal", True))
    if driver == "pty":
        return PtyChardev(chardev_id, announce or (lambda text: sys.stdout.write(text)))
    reconnect_text = props.get("reconnect", "0")
    try:
        reconnect = int(reconnect_text)
    except ValueError:
        raise ChardevError(f"Parameter 'reconnect' expects a number, not "
                           f"'{reconnect_text}'") from None
    websocket = spec.flag("websocket", False)
    telnet = spec.flag("telnet", False)
    if websocket and (not spec.flag("server", False) or props.get("path") is not None):
        raise ChardevError("WebSocket client is not implemented" if not spec.flag(
            "server", False) else "'websocket' option is only valid for TCP sockets")
    path = props.get("path")
    port = props.get("port")
    if path is None and port is not None and not port.isdigit():
        host = props.get("host", "")
        raise ChardevError(f"address resolution failed for {host}:{port}: "
                           "Servname not supported for ai_socktype")
    if path is None and port is not None and int(port) > 65535:
        raise ChardevError(f"Port '{port}' out of range")
    server = spec.flag("server", False)
    return SocketChardev(chardev_id, path=path, host=props.get("host", ""), port=port,
                         server=server, wait=spec.flag("wait", True),
                         reconnect=reconnect if not server else 0,
                         nodelay=spec.flag("nodelay", False), telnet=telnet,
                         websocket=websocket, info=info)

