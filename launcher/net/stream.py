"""``-netdev socket,listen=…|connect=…``: Ethernet frames over a TCP stream, so two
VMs on one host share a link (QEMU's net/socket.c stream mode: each frame is a 4-byte
big-endian length, then the frame).

The listening side accepts one peer at a time (another connection is closed at once)
and accepts again when it leaves; the connecting side connects at start, and if the
other side is not there its frames go nowhere, as in QEMU. Reading happens on the
machine loop's I/O thread, which posts each complete frame to the loop's thread, where
the NIC receives it; frames for a stopped VM wait until it runs.
"""

from __future__ import annotations

import socket
import struct
import threading

from launcher.net.user import Loop, NetdevError, NetdevPeer

MAX_FRAME = 69632  # QEMU's NET_BUFSIZE (4096 + 65536): a longer length is a broken stream
_LENGTH = struct.Struct(">I")


class SocketNetdev(NetdevPeer):
    """One end of a socket link: ``listen`` or ``connect`` is (host, port)."""

    kind = "socket"

    def __init__(self, netdev_id: str, *, listen: tuple[str, int] | None = None,
                 connect: tuple[str, int] | None = None) -> None:
        super().__init__(netdev_id)
        self._lock = threading.Lock()  # _conn: sent to on the loop thread, read on the I/O one
        self._conn: socket.socket | None = None
        self._pending = b""
        self._listener: socket.socket | None = None
        self.address = listen or connect
        if listen is not None:
            self._listener = self._listen(*listen)
        elif connect is not None:
            self._conn = self._connect(*connect)

    @staticmethod
    def _listen(host: str, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host or "0.0.0.0", port))
            listener.listen(1)
        except OSError as exc:
            listener.close()
            raise NetdevError(f"can't bind ip={host or '0.0.0.0'} to socket: "
                              f"{exc.strerror}") from None
        return listener

    @staticmethod
    def _connect(host: str, port: int) -> socket.socket | None:
        try:
            return socket.create_connection((host or "127.0.0.1", port), timeout=5)
        except OSError:
            return None  # QEMU's connect is asynchronous: no peer, no error

    # -- the peer -----------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """A frame from the guest, to the other end (dropped when there is none)."""
        if not self.link_up:
            return
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            try:
                conn.sendall(_LENGTH.pack(len(frame)) + frame)
            except OSError:
                pass  # the reader sees the end and drops the connection

    # -- the loop -------------------------------------------------------------------------

    def start(self, loop: Loop) -> None:
        self._attach(loop)
        if self._listener is not None:
            loop.watch_fd(self._listener.fileno(), self._accept)
        if self._conn is not None:
            self._watch(self._conn)

    def _watch(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        assert self._loop is not None
        self._loop.watch_fd(conn.fileno(), lambda: self._readable(conn))

    def _accept(self) -> None:  # I/O thread
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with self._lock:
            if self._conn is not None:
                conn.close()  # one peer at a time
                return
            self._conn = conn
            self._pending = b""
        self._watch(conn)

    def _readable(self, conn: socket.socket) -> None:  # I/O thread
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        self._pending += data
        while len(self._pending) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._pending)
            if length > MAX_FRAME:
                self._drop(conn)
                return
            if len(self._pending) < _LENGTH.size + length:
                break
            frame = self._pending[_LENGTH.size:_LENGTH.size + length]
            self._pending = self._pending[_LENGTH.size + length:]
            assert self._loop is not None
            self._loop.post(lambda frame=frame: self._to_guest(frame))

    def _drop(self, conn: socket.socket) -> None:
        if self._loop is not None:
            self._loop.unwatch_fd(conn.fileno())
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    # -- end ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        for sock in (conn, self._listener):
            if sock is not None:
                if self._loop is not None:
                    self._loop.unwatch_fd(sock.fileno())
                sock.close()
        self._listener = None

    def info(self) -> str:
        host, port = self.address or ("", 0)
        return f"{self.id}: index=0,type=socket,tcp={host}:{port}"
