"""libslirp (the user-mode TCP/IP stack QEMU uses) through ctypes.

Only the C interface is wrapped here; :mod:`launcher.net.user` drives it from the
machine loop. libslirp is not thread-safe: every method of :class:`Slirp` must be
called on one thread, and its callbacks (``send_packet``, timers) run on that thread,
inside the call that caused them.

The library is Debian's ``libslirp0`` (``libslirp.so.0``, API of libslirp 4.7:
``SlirpConfig`` version 4, ``timer_new_opaque``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

SLIRP_POLL_IN = 1 << 0
SLIRP_POLL_OUT = 1 << 1
SLIRP_POLL_PRI = 1 << 2
SLIRP_POLL_ERR = 1 << 3
SLIRP_POLL_HUP = 1 << 4

SLIRP_CONFIG_VERSION = 4
NO_TIMEOUT = 0xFFFFFFFF  # slirp_pollfds_fill's "infinite" (UINT32_MAX ms)


class SlirpUnavailable(OSError):
    """libslirp cannot be loaded (the message names the package to install)."""


class _InAddr(ctypes.Structure):
    _fields_ = [("s_addr", ctypes.c_uint32)]


class _In6Addr(ctypes.Structure):
    _fields_ = [("s6_addr32", ctypes.c_uint32 * 4)]  # 4-byte aligned, as the C union


_SendPacket = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_size_t,
                               ctypes.c_void_p)
_GuestError = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
_ClockGetNs = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
_TimerNew = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_void_p)
_TimerFree = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_TimerMod = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
_FdCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
_Notify = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_InitCompleted = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_TimerNewOpaque = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                   ctypes.c_void_p)
_AddPoll = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_GetREvents = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
# SlirpWriteCb: a guestfwd's data from the guest (returns how much was taken).
_WriteCb = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_void_p)


class _SlirpCb(ctypes.Structure):
    _fields_ = [
        ("send_packet", _SendPacket),
        ("guest_error", _GuestError),
        ("clock_get_ns", _ClockGetNs),
        ("timer_new", _TimerNew),
        ("timer_free", _TimerFree),
        ("timer_mod", _TimerMod),
        ("register_poll_fd", _FdCallback),
        ("unregister_poll_fd", _FdCallback),
        ("notify", _Notify),
        ("init_completed", _InitCompleted),
        ("timer_new_opaque", _TimerNewOpaque),
    ]


class _SlirpConfig(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("restricted", ctypes.c_int),
        ("in_enabled", ctypes.c_bool),
        ("vnetwork", _InAddr),
        ("vnetmask", _InAddr),
        ("vhost", _InAddr),
        ("in6_enabled", ctypes.c_bool),
        ("vprefix_addr6", _In6Addr),
        ("vprefix_len", ctypes.c_uint8),
        ("vhost6", _In6Addr),
        ("vhostname", ctypes.c_char_p),
        ("tftp_server_name", ctypes.c_char_p),
        ("tftp_path", ctypes.c_char_p),
        ("bootfile", ctypes.c_char_p),
        ("vdhcp_start", _InAddr),
        ("vnameserver", _InAddr),
        ("vnameserver6", _In6Addr),
        ("vdnssearch", ctypes.POINTER(ctypes.c_char_p)),
        ("vdomainname", ctypes.c_char_p),
        ("if_mtu", ctypes.c_size_t),
        ("if_mru", ctypes.c_size_t),
        ("disable_host_loopback", ctypes.c_bool),
        ("enable_emu", ctypes.c_bool),
        ("outbound_addr", ctypes.c_void_p),
        ("outbound_addr6", ctypes.c_void_p),
        ("disable_dns", ctypes.c_bool),
        ("disable_dhcp", ctypes.c_bool),
    ]


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libslirp, loaded once (SlirpUnavailable when it is not installed)."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("slirp") or "libslirp.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        try:
            lib = ctypes.CDLL("libslirp.so.0")
        except OSError:
            raise SlirpUnavailable(
                "user-mode networking needs libslirp (install Debian's libslirp0 "
                "package: apt-get install libslirp0)") from None
    lib.slirp_new.restype = ctypes.c_void_p
    lib.slirp_new.argtypes = [ctypes.POINTER(_SlirpConfig), ctypes.POINTER(_SlirpCb),
                              ctypes.c_void_p]
    lib.slirp_cleanup.argtypes = [ctypes.c_void_p]
    lib.slirp_input.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.slirp_pollfds_fill.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                                       _AddPoll, ctypes.c_void_p]
    lib.slirp_pollfds_poll.argtypes = [ctypes.c_void_p, ctypes.c_int, _GetREvents,
                                       ctypes.c_void_p]
    lib.slirp_handle_timer.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.slirp_add_hostfwd.argtypes = [ctypes.c_void_p, ctypes.c_int, _InAddr, ctypes.c_int,
                                      _InAddr, ctypes.c_int]
    lib.slirp_remove_hostfwd.argtypes = [ctypes.c_void_p, ctypes.c_int, _InAddr,
                                         ctypes.c_int]
    lib.slirp_add_exec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(_InAddr),
                                   ctypes.c_int]
    lib.slirp_add_guestfwd.argtypes = [ctypes.c_void_p, _WriteCb, ctypes.c_void_p,
                                       ctypes.POINTER(_InAddr), ctypes.c_int]
    lib.slirp_remove_guestfwd.argtypes = [ctypes.c_void_p, _InAddr, ctypes.c_int]
    lib.slirp_socket_can_recv.restype = ctypes.c_size_t
    lib.slirp_socket_can_recv.argtypes = [ctypes.c_void_p, _InAddr, ctypes.c_int]
    lib.slirp_socket_recv.restype = None
    lib.slirp_socket_recv.argtypes = [ctypes.c_void_p, _InAddr, ctypes.c_int,
                                      ctypes.c_char_p, ctypes.c_int]
    lib.slirp_connection_info.restype = ctypes.c_void_p
    lib.slirp_connection_info.argtypes = [ctypes.c_void_p]
    lib.slirp_version_string.restype = ctypes.c_char_p
    _lib = lib
    return lib


def _libc_free(pointer: int) -> None:
    free = ctypes.CDLL(None).free
    free.argtypes = [ctypes.c_void_p]
    free(pointer)


def _in_addr(address: str) -> _InAddr:
    """A dotted IPv4 address as struct in_addr (network byte order in memory)."""
    return _InAddr(int.from_bytes(socket.inet_aton(address), sys.byteorder))


def _in6_addr(address: str) -> _In6Addr:
    raw = socket.inet_pton(socket.AF_INET6, address)
    words = (ctypes.c_uint32 * 4)(*(int.from_bytes(raw[i:i + 4], sys.byteorder)
                                    for i in range(0, 16, 4)))
    return _In6Addr(words)


@dataclass(frozen=True, slots=True)
class SlirpConfig:
    """What ``-netdev user`` configures (QEMU's defaults)."""

    network: str = "10.0.2.0"
    netmask: str = "255.255.255.0"
    host: str = "10.0.2.2"
    dhcp_start: str = "10.0.2.15"
    dns: str = "10.0.2.3"
    restricted: bool = False
    ipv4: bool = True
    ipv6: bool = True
    ipv6_prefix: str = "fec0::"
    ipv6_prefix_len: int = 64
    ipv6_host: str = "fec0::2"
    ipv6_dns: str = "fec0::3"
    hostname: str | None = None
    domainname: str | None = None
    dnssearch: tuple[str, ...] = ()
    tftp: str | None = None
    tftp_server_name: str | None = None
    bootfile: str | None = None


@dataclass(frozen=True, slots=True)
class PollEntry:
    fd: int
    events: int  # SLIRP_POLL_* bits


def _text(value: str | None) -> bytes | None:
    return value.encode() if value is not None else None


class Slirp:
    """One libslirp instance.

    ``send_packet(frame)`` receives the frames slirp sends to the guest;
    ``timer_mod(timer_id, cb_opaque, expire_ms)`` is asked to call
    :meth:`handle_timer` (timer_id, cb_opaque) once ``clock_ns()`` reaches
    ``expire_ms`` milliseconds (``expire_ms`` None: the timer is cancelled);
    ``notify()`` asks for a poll round soon.
    """

    def __init__(self, config: SlirpConfig, send_packet: Callable[[bytes], None],
                 clock_ns: Callable[[], int],
                 timer_mod: Callable[[int, int, int | None], None],
                 notify: Callable[[], None],
                 guest_error: Callable[[str], None] | None = None) -> None:
        lib = library()
        self._lib = lib
        self._send_packet = send_packet
        self._clock_ns = clock_ns
        self._timer_mod_cb = timer_mod
        self._notify = notify
        self._guest_error = guest_error
        self._timers: dict[int, tuple[int, int]] = {}  # handle -> (timer id, cb_opaque)
        self._next_timer = 1
        self._strings: list[object] = []  # C strings the config points to, kept alive
        self._write_cbs: list[object] = []  # guestfwd callbacks libslirp holds
        self._callbacks = _SlirpCb(
            send_packet=_SendPacket(self._on_send_packet),
            guest_error=_GuestError(self._on_guest_error),
            clock_get_ns=_ClockGetNs(lambda _opaque: self._clock_ns()),
            timer_new=_TimerNew(lambda cb, cb_opaque, opaque: None),  # timer_new_opaque is used
            timer_free=_TimerFree(self._on_timer_free),
            timer_mod=_TimerMod(self._on_timer_mod),
            register_poll_fd=_FdCallback(lambda fd, opaque: None),
            unregister_poll_fd=_FdCallback(lambda fd, opaque: None),
            notify=_Notify(lambda opaque: self._notify()),
            init_completed=_InitCompleted(lambda slirp, opaque: None),
            timer_new_opaque=_TimerNewOpaque(self._on_timer_new),
        )
        self._config = self._c_config(config)
        handle = lib.slirp_new(ctypes.byref(self._config), ctypes.byref(self._callbacks), None)
        if not handle:
            raise OSError("libslirp could not create the network")
        self._handle: int | None = handle

    def _c_config(self, config: SlirpConfig) -> _SlirpConfig:
        c = _SlirpConfig()
        c.version = SLIRP_CONFIG_VERSION
        c.restricted = int(config.restricted)
        c.in_enabled = config.ipv4
        c.vnetwork = _in_addr(config.network)
        c.vnetmask = _in_addr(config.netmask)
        c.vhost = _in_addr(config.host)
        c.in6_enabled = config.ipv6
        c.vprefix_addr6 = _in6_addr(config.ipv6_prefix)
        c.vprefix_len = config.ipv6_prefix_len
        c.vhost6 = _in6_addr(config.ipv6_host)
        c.vhostname = _text(config.hostname)
        c.tftp_server_name = _text(config.tftp_server_name)
        c.tftp_path = _text(config.tftp)
        c.bootfile = _text(config.bootfile)
        c.vdhcp_start = _in_addr(config.dhcp_start)
        c.vnameserver = _in_addr(config.dns)
        c.vnameserver6 = _in6_addr(config.ipv6_dns)
        if config.dnssearch:
            search = (ctypes.c_char_p * (len(config.dnssearch) + 1))(
                *(s.encode() for s in config.dnssearch), None)
            self._strings.append(search)
            c.vdnssearch = ctypes.cast(search, ctypes.POINTER(ctypes.c_char_p))
        c.vdomainname = _text(config.domainname)
        return c

    # -- callbacks from libslirp (exceptions must not cross into C) ------------------------

    def _on_send_packet(self, buf: int, length: int, _opaque: int) -> int:
        try:
            self._send_packet(ctypes.string_at(buf, length))
        except Exception:  # noqa: BLE001 - reported, never raised into libslirp
            import traceback
            traceback.print_exc()
        return length

    def _on_guest_error(self, message: bytes, _opaque: int) -> None:
        if self._guest_error is not None:
            self._guest_error(message.decode(errors="replace"))

    def _on_timer_new(self, timer_id: int, cb_opaque: int | None, _opaque: int) -> int:
        handle = self._next_timer
        self._next_timer += 1
        self._timers[handle] = (timer_id, cb_opaque or 0)
        return handle

    def _on_timer_free(self, timer: int | None, _opaque: int) -> None:
        if timer is not None and self._timers.pop(timer, None) is not None:
            self._timer_mod_cb(timer, 0, None)

    def _on_timer_mod(self, timer: int | None, expire_ms: int, _opaque: int) -> None:
        if timer is not None and timer in self._timers:
            self._timer_mod_cb(timer, 0, expire_ms)

    # -- the interface --------------------------------------------------------------------

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise ValueError("slirp instance is closed")
        return self._handle

    def input(self, frame: bytes) -> None:
        """A frame from the guest."""
        self._lib.slirp_input(self.handle, frame, len(frame))

    def pollfds_fill(self, timeout_ms: int = NO_TIMEOUT) -> tuple[list[PollEntry], int]:
        """The sockets slirp wants watched and the time (ms) after which it must be
        polled even if none is ready (NO_TIMEOUT: none)."""
        entries: list[PollEntry] = []

        def add(fd: int, events: int, _opaque: int) -> int:
            entries.append(PollEntry(fd, events))
            return len(entries) - 1

        timeout = ctypes.c_uint32(timeout_ms)
        self._lib.slirp_pollfds_fill(self.handle, ctypes.byref(timeout), _AddPoll(add), None)
        return entries, timeout.value

    def pollfds_poll(self, revents: list[int], error: bool = False) -> None:
        """Reports the readiness (SLIRP_POLL_* per entry of the last fill) and lets slirp
        do its socket I/O and TCP timers."""
        def get(index: int, _opaque: int) -> int:
            return revents[index] if 0 <= index < len(revents) else 0

        self._lib.slirp_pollfds_poll(self.handle, int(error), _GetREvents(get), None)

    def handle_timer(self, timer: int) -> None:
        """Timer ``timer`` (a handle given to ``timer_mod``) expired."""
        entry = self._timers.get(timer)
        if entry is not None:
            self._lib.slirp_handle_timer(self.handle, entry[0], entry[1])

    def add_hostfwd(self, udp: bool, host_addr: str, host_port: int, guest_addr: str,
                    guest_port: int) -> bool:
        """A forwarded host port (``guest_addr`` 0.0.0.0: the first DHCP address);
        False when the host socket cannot be opened."""
        return self._lib.slirp_add_hostfwd(self.handle, int(udp), _in_addr(host_addr),
                                           host_port, _in_addr(guest_addr),
                                           guest_port) >= 0

    def remove_hostfwd(self, udp: bool, host_addr: str, host_port: int) -> bool:
        return self._lib.slirp_remove_hostfwd(self.handle, int(udp), _in_addr(host_addr),
                                              host_port) >= 0

    def add_exec(self, command: str, guest_addr: str, guest_port: int) -> str | None:
        """A guest forwarding rule (``guestfwd=…-cmd:COMMAND``, QEMU's smbd): each
        connection the guest opens to ``guest_addr``:``guest_port`` (0.0.0.0: the
        network's .4 address) runs ``command`` with the connection as its stdin and
        stdout. The address used, or None when it is outside the network, the host's
        or the DNS server's, or already forwarded."""
        address = _in_addr(guest_addr)
        if self._lib.slirp_add_exec(self.handle, command.encode(), ctypes.byref(address),
                                    guest_port) < 0:
            return None
        return socket.inet_ntoa(address.s_addr.to_bytes(4, sys.byteorder))

    def add_guestfwd(self, write: Callable[[bytes], None], guest_addr: str,
                     guest_port: int) -> str | None:
        """A guest forwarding rule served here (``guestfwd=…-CHARDEV``): the data the
        guest sends on its connection to ``guest_addr``:``guest_port`` goes to
        ``write``; :meth:`socket_recv` sends data back. The address used, or None
        (as :meth:`add_exec`)."""
        def on_write(buf: int, length: int, _opaque: int) -> int:
            try:
                write(ctypes.string_at(buf, length))
            except Exception:  # noqa: BLE001 - reported, never raised into libslirp
                import traceback
                traceback.print_exc()
            return length

        callback = _WriteCb(on_write)
        address = _in_addr(guest_addr)
        if self._lib.slirp_add_guestfwd(self.handle, callback, None, ctypes.byref(address),
                                        guest_port) < 0:
            return None
        self._write_cbs.append(callback)
        return socket.inet_ntoa(address.s_addr.to_bytes(4, sys.byteorder))

    def socket_can_recv(self, guest_addr: str, guest_port: int) -> int:
        """How many bytes the guest's connection to a guestfwd rule takes now (0 while
        it has none)."""
        return self._lib.slirp_socket_can_recv(self.handle, _in_addr(guest_addr), guest_port)

    def socket_recv(self, guest_addr: str, guest_port: int, data: bytes) -> None:
        """Data for the guest's connection to a guestfwd rule."""
        self._lib.slirp_socket_recv(self.handle, _in_addr(guest_addr), guest_port, data,
                                    len(data))

    def connection_info(self) -> str:
        pointer = self._lib.slirp_connection_info(self.handle)
        if not pointer:
            return ""
        text = ctypes.string_at(pointer).decode(errors="replace")
        _libc_free(pointer)  # g_malloc'd, and g_free is free() since GLib 2.46
        return text

    def close(self) -> None:
        if self._handle is not None:
            self._lib.slirp_cleanup(self._handle)
            self._handle = None

    @staticmethod
    def version() -> str:
        return library().slirp_version_string().decode()
