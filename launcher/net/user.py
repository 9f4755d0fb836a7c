"""``-netdev user``: libslirp driven by the machine loop.

Everything that touches slirp (frames from the guest, socket I/O, TCP and IPv6 timers)
runs on the loop's thread, as the devices it delivers frames to do. The loop's I/O
thread only waits: slirp's sockets are registered one-shot in an epoll set whose fd
the I/O thread watches. When one becomes ready the I/O thread takes the events (which
disarms them, so it does not wake again) and posts a poll round; the round reads
every socket's readiness with a zero-timeout poll(), lets slirp act, and re-arms the
set with the sockets slirp wants next. slirp's own deadline (the TCP fast and slow
timers while connections exist, 2 ms or ~500 ms) and its timers are host-time
``call_later`` wake-ups. Nothing is polled while nothing happens.
"""

from __future__ import annotations

import os
import pwd
import select
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from launcher.chardev import Chardev
from launcher.net.slirp import (
    NO_TIMEOUT,
    SLIRP_POLL_ERR,
    SLIRP_POLL_HUP,
    SLIRP_POLL_IN,
    SLIRP_POLL_OUT,
    SLIRP_POLL_PRI,
    PollEntry,
    Slirp,
    SlirpConfig,
)

HELD_FRAMES = 1024
# Poll rounds one _poll_round runs back to back while slirp's sockets are ready: a
# bound on the time the guest waits meanwhile (each round moves at most a socket
# buffer's worth per connection).
INLINE_ROUNDS = 8


class Loop(Protocol):
    """What a backend needs from machines.loop.MachineLoop."""

    listeners: list[Callable[[str, dict[str, object] | None], None]]

    @property
    def running(self) -> bool: ...

    def post(self, work: Callable[[], None]) -> None: ...

    def watch_fd(self, fd: int, on_readable: Callable[[], None]) -> None: ...

    def unwatch_fd(self, fd: int) -> None: ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None: ...


class NetdevError(ValueError):
    """A -netdev that cannot be set up, with QEMU's message; ``option`` is the option's
    text when QEMU prefixes it."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class NetdevPeer:
    """The guest side every backend shares: the peer (a NIC or a hub port) frames go
    to, the link state (``set_link``), and frames held while the VM is stopped (QEMU's
    NICs cannot receive then; bounded, TCP retransmits what is dropped) until RESUME."""

    def __init__(self, netdev_id: str) -> None:
        self.id = netdev_id
        self.link_up = True
        self._receive: Callable[[bytes], None] | None = None
        self._receive_batch: Callable[[Sequence[bytes]], None] | None = None
        self._peer_link: Callable[[bool], None] | None = None
        self._held: deque[bytes] = deque(maxlen=HELD_FRAMES)
        self._loop: Loop | None = None
        # Inside a backend's round (_collect): frames for the guest gather here and go
        # to the peer together at its end (one used-buffer notification for a burst).
        self._collecting = False
        self._outbox: list[bytes] = []

    @property
    def connected(self) -> bool:
        return self._receive is not None

    def connect(self, receive: Callable[[bytes], None],
                set_link: Callable[[bool], None] | None = None, *,
                receive_batch: Callable[[Sequence[bytes]], None] | None = None) -> None:
        """Frames for the guest go to ``receive`` (on the loop's thread), or the frames
        of one round together to ``receive_batch`` when the peer has it; ``set_link``
        follows this backend's link state."""
        self._receive = receive
        self._receive_batch = receive_batch
        self._peer_link = set_link

    def set_link(self, up: bool) -> None:
        """QEMU's ``set_link NETDEV on|off``: while down, frames are dropped both ways
        and the NIC sees its link down."""
        self.link_up = up
        if self._peer_link is not None:
            self._peer_link(up)

    def _attach(self, loop: Loop) -> None:
        self._loop = loop
        loop.listeners.append(self._on_event)

    def _to_guest(self, frame: bytes) -> bool:
        """Hand ``frame`` to the peer, or hold it while the VM is stopped; False if it
        was dropped (link down, no peer). On the loop's thread."""
        if not self.link_up or self._receive is None:
            return False
        if self._collecting:
            self._outbox.append(frame)
            return True
        if self._loop is not None and not self._loop.running:
            self._held.append(frame)
            return True
        self._receive(frame)
        return True

    def _collect(self, work: Callable[[], object]) -> None:
        """Run ``work`` (a call into the backend's network stack, which may produce
        frames for the guest) and then hand the peer every frame it produced, in
        order. On the loop's thread; nested calls deliver at the outermost end."""
        if self._collecting:
            work()
            return
        self._collecting = True
        try:
            work()
        finally:
            self._collecting = False
            frames, self._outbox = self._outbox, []
            if frames:
                self._deliver(frames)

    def _deliver(self, frames: list[bytes]) -> None:
        receive = self._receive
        if receive is None or not self.link_up:
            return  # (unplugged or switched off meanwhile: dropped, as at the source)
        if self._loop is not None and not self._loop.running:
            self._held.extend(frames)
        elif self._receive_batch is not None:
            self._receive_batch(frames)
        else:
            for frame in frames:
                receive(frame)

    def _on_event(self, event: str, _data: dict[str, object] | None) -> None:
        if event == "RESUME":
            while self._held and self._receive is not None:
                self._receive(self._held.popleft())


@dataclass(frozen=True, slots=True)
class HostForward:
    """One ``hostfwd=`` rule."""

    udp: bool
    host_addr: str  # "0.0.0.0": every host address
    host_port: int
    guest_addr: str  # "0.0.0.0": the guest's DHCP address
    guest_port: int
    text: str  # as given, for messages


@dataclass(frozen=True, slots=True)
class GuestForward:
    """One ``guestfwd=`` rule: the guest's TCP connections to ``server``:``port`` run
    ``command`` (stdin and stdout on the connection), or are served by the chardev
    ``chardev`` describes (-serial's syntax: ``tcp:HOST:PORT``, ``unix:PATH``, …)."""

    server: str  # "0.0.0.0": the network's .4 address
    port: int
    text: str  # as given, for messages
    command: str | None = None
    chardev: str | None = None


# Debian's samba installs smbd here (QEMU's CONFIG_SMBD_COMMAND).
SMBD_COMMAND = "/usr/sbin/smbd"

# QEMU's smb.conf for smb=DIR (net/slirp.c slirp_smb): a share named "qemu" on the
# exported directory, guests mapped to the user running the emulator.
_SMB_CONF = """[global]
private dir={dir}
interfaces=127.0.0.1
bind interfaces only=yes
pid directory={dir}
lock directory={dir}
state directory={dir}
cache directory={dir}
ncalrpc dir={dir}/ncalrpc
log file={dir}/log.smbd
smb passwd file={dir}/smbpasswd
security = user
map to guest = Bad User
load printers = no
printing = bsd
disable spoolss = yes
usershare max shares = 0
[qemu]
path={export}
read only=no
guest ok=yes
force user={user}
"""


class _GuestfwdFrontend:
    """The chardev end of a ``guestfwd=…-CHARDEV`` rule: what the chardev reads goes
    to the guest's connection, as much as its TCP window takes (QEMU's
    guestfwd_can_read / guestfwd_read). The chardev asks ``can_receive`` on the I/O
    thread, where slirp must not be called: it gets the room slirp reported on the
    loop's thread after the last poll round or delivery."""

    def __init__(self, netdev: UserNetdev, server: str, port: int) -> None:
        self.netdev = netdev
        self.server = server
        self.port = port
        self.room = 0

    def refresh(self) -> None:
        """Loop thread: what the guest's connection takes now."""
        self.room = self.netdev.slirp.socket_can_recv(self.server, self.port)

    def can_receive(self) -> int:
        return self.room

    def receive(self, data: bytes) -> None:
        self.netdev._collect(
            lambda: self.netdev.slirp.socket_recv(self.server, self.port, data))
        self.refresh()
        self.netdev._request_poll()

    def event(self, event: object) -> None:
        pass


_TO_POLL = {SLIRP_POLL_IN: select.POLLIN, SLIRP_POLL_OUT: select.POLLOUT,
            SLIRP_POLL_PRI: select.POLLPRI}
_FROM_POLL = {select.POLLIN: SLIRP_POLL_IN, select.POLLOUT: SLIRP_POLL_OUT,
              select.POLLPRI: SLIRP_POLL_PRI, select.POLLERR: SLIRP_POLL_ERR,
              select.POLLHUP: SLIRP_POLL_HUP}


def _poll_mask(events: int) -> int:
    return sum(mask for bit, mask in _TO_POLL.items() if events & bit)


def _slirp_revents(revents: int) -> int:
    return sum(bit for mask, bit in _FROM_POLL.items() if revents & mask)


class UserNetdev(NetdevPeer):
    """A user-mode network (``-netdev user,id=ID,...``): slirp's virtual router, DHCP
    and DNS servers, and ``hostfwd`` ports, in front of one peer (a NIC or a hub).

    Created with the command line (host ports are bound then, so a port in use is a
    start-up error as in QEMU); :meth:`start` hands it to the running loop.
    """

    kind = "user"

    def __init__(self, netdev_id: str, config: SlirpConfig,
                 forwards: tuple[HostForward, ...] = (),
                 guest_error: Callable[[str], None] | None = None, *,
                 guest_forwards: tuple[GuestForward, ...] = (),
                 smb: str | None = None, smb_server: str = "0.0.0.0") -> None:
        super().__init__(netdev_id)
        self.config = config
        self._epoll: select.epoll | None = None
        self._armed: dict[int, int] = {}  # fd -> epoll mask registered
        self._entries: list[PollEntry] = []  # the last pollfds_fill's, in its order
        self._poll_posted = False
        self._timer_due: float | None = None  # host monotonic time of the poll wake-up
        self._slirp_timers: dict[int, int] = {}  # slirp timer -> generation
        self._early_timers: dict[int, int] = {}  # timers set before start: handle -> ms
        self.stats = {"rounds": 0, "posted": 0, "frames_in": 0, "frames_out": 0}
        self.slirp = Slirp(config, self._to_guest, time.monotonic_ns, self._timer_mod,
                           self._request_poll, guest_error)
        self.forwards: list[HostForward] = []
        self.chardevs: list[Chardev] = []  # the guestfwd chardevs, started with the loop
        self._guestfwd_frontends: list[_GuestfwdFrontend] = []
        self.smb_dir: str | None = None
        try:
            # QEMU sets the rules up from a list it builds by prepending: the guest
            # forwarding rules, last first, then the host ones, last first.
            for guest_forward in reversed(guest_forwards):
                self._add_guest_forward(guest_forward)
            for forward in reversed(forwards):
                self.add_forward(forward)
            self.forwards.reverse()
            if smb is not None:
                self._start_smb(smb, smb_server)
        except NetdevError:
            self.close()
            raise

    # -- the peer -----------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """A frame from the guest (on the loop's thread)."""
        if not self.link_up:
            return
        self.stats["frames_in"] += 1
        self._collect(lambda: self._input(frame))

    def _input(self, frame: bytes) -> None:
        self.slirp.input(frame)
        # Then a poll round here and now: the frame may have opened a socket, or (an
        # ACK) made room in a connection's buffer for what its host socket holds. Run
        # inline rather than posted, it costs the guest no exit, and what it reads
        # reaches the NIC with the frames the input produced.
        if self._epoll is not None:
            self._poll_round()

    def _to_guest(self, frame: bytes) -> bool:
        if not super()._to_guest(frame):
            return False
        self.stats["frames_out"] += 1
        return True

    # -- host forwarding (also the monitor's hostfwd_add/hostfwd_remove) ------------------

    def add_forward(self, forward: HostForward) -> None:
        if not self.slirp.add_hostfwd(forward.udp, forward.host_addr, forward.host_port,
                                      forward.guest_addr, forward.guest_port):
            raise NetdevError(f"Could not set up host forwarding rule '{forward.text}'")
        self.forwards.append(forward)
        self._request_poll()

    def remove_forward(self, udp: bool, host_addr: str, host_port: int) -> bool:
        if not self.slirp.remove_hostfwd(udp, host_addr, host_port):
            return False
        self.forwards = [f for f in self.forwards
                         if (f.udp, f.host_addr, f.host_port) != (udp, host_addr, host_port)]
        return True

    # -- guest forwarding and smb -------------------------------------------------------

    def _add_guest_forward(self, forward: GuestForward) -> None:
        conflict = NetdevError(f"Conflicting/invalid host:port in guest forwarding rule "
                               f"'{forward.text}'")
        if forward.command is not None:
            if self.slirp.add_exec(forward.command, forward.server, forward.port) is None:
                raise conflict
            return
        from launcher.chardev import ChardevError, open_chardev, parse_shorthand
        label = f"guestfwd.tcp.{forward.port}"
        try:
            chardev = open_chardev(parse_shorthand(forward.chardev or "", label))
        except (ChardevError, OSError) as exc:
            raise NetdevError(f"{exc}\nCould not open guest forwarding device "
                              f"'{label}'") from None
        server = self.slirp.add_guestfwd(chardev.write, forward.server, forward.port)
        if server is None:
            chardev.close()
            raise conflict
        frontend = _GuestfwdFrontend(self, server, forward.port)
        chardev.set_frontend(frontend)
        self.chardevs.append(chardev)
        self._guestfwd_frontends.append(frontend)

    def _start_smb(self, export: str, server: str) -> None:
        """QEMU's smb=DIR: smbd (from Debian's samba) serves ``export`` as the share
        "qemu" on ``server`` (ports 139 and 445), started for each connection."""
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            raise NetdevError("Failed to retrieve user name") from None
        if not os.path.exists(SMBD_COMMAND):
            raise NetdevError(f"Could not find '{SMBD_COMMAND}', please install it")
        if not os.access(export, os.R_OK | os.X_OK):
            try:
                os.stat(export)
                reason = os.strerror(13)  # it exists: access is what is refused
            except OSError as exc:
                reason = exc.strerror or str(exc)
            raise NetdevError(f"Error accessing shared directory '{export}': {reason}")
        self.smb_dir = tempfile.mkdtemp(prefix="qemu-smb.")
        conf = os.path.join(self.smb_dir, "smb.conf")
        with open(conf, "w") as file:
            file.write(_SMB_CONF.format(dir=self.smb_dir, export=export, user=user))
        command = f"{SMBD_COMMAND} -l {self.smb_dir} -s {conf}"
        if (self.slirp.add_exec(command, server, 139) is None
                or self.slirp.add_exec(command, server, 445) is None):
            raise NetdevError("Conflicting/invalid smbserver address")

    # -- the loop -------------------------------------------------------------------------

    def start(self, loop: Loop) -> None:
        """Drive slirp from ``loop`` (called on the loop's thread once it runs)."""
        self._attach(loop)
        for chardev in self.chardevs:
            chardev.attach(loop)  # type: ignore[arg-type]  # the loop is its IoHost
        self._epoll = select.epoll()
        loop.watch_fd(self._epoll.fileno(), self._on_ready)
        for handle, expire_ms in self._early_timers.items():
            self._timer_mod(handle, 0, expire_ms)
        self._early_timers.clear()
        self._poll_round()

    def _request_poll(self) -> None:
        """A poll round soon (on the loop's thread), once however often it is asked."""
        if self._loop is None or self._poll_posted:
            return
        self._poll_posted = True
        self.stats["posted"] += 1
        self._loop.post(self._poll_round)

    def _on_ready(self) -> None:
        """I/O thread: some socket is ready. Taking the one-shot events disarms them
        until the poll round re-arms, so this does not fire again meanwhile."""
        epoll = self._epoll
        if epoll is None:
            return
        try:
            epoll.poll(0)
        except (OSError, ValueError):
            return  # closed under us at exit
        self._request_poll()

    def _poll_round(self) -> None:
        self._poll_posted = False
        if self._epoll is None:
            return
        # The sockets of the last fill (the one that armed the epoll set), as QEMU's
        # main loop fills before it waits and polls after: slirp asks only for the
        # revents of sockets it listed then (a socket opened since has no index yet,
        # one closed since is not asked for).
        revents = self._readiness(self._entries)
        for _ in range(INLINE_ROUNDS):
            self.stats["rounds"] += 1
            self._collect(lambda ready=revents: self.slirp.pollfds_poll(ready))
            self._entries, timeout_ms = self.slirp.pollfds_fill()
            # A socket ready already (in a bulk transfer: the host's, once slirp's
            # buffer has room again) is served by another round now. Arming it would
            # wake the I/O thread at once, only for it to take the GIL and post the
            # round that a kick and a CPU exit later does the same.
            revents = self._readiness(self._entries)
            if not any(revents):
                break
        self._arm(self._entries)
        for frontend in self._guestfwd_frontends:
            frontend.refresh()  # the guest's window may have opened
        for chardev in self.chardevs:
            chardev.accept_input()
        if timeout_ms != NO_TIMEOUT:
            self._wake_after(timeout_ms / 1000)

    @staticmethod
    def _readiness(entries: list[PollEntry]) -> list[int]:
        """The SLIRP_POLL_* revents of ``entries`` now (a zero-timeout poll)."""
        if not entries:
            return []
        poller = select.poll()
        for entry in entries:
            poller.register(entry.fd, _poll_mask(entry.events))
        ready = dict(poller.poll(0))
        return [_slirp_revents(ready.get(e.fd, 0)) for e in entries]

    def _arm(self, entries: list) -> None:
        epoll = self._epoll
        assert epoll is not None
        wanted: dict[int, int] = {}
        for entry in entries:
            wanted[entry.fd] = wanted.get(entry.fd, 0) | _poll_mask(entry.events)
        for fd in set(self._armed) - set(wanted):
            try:
                epoll.unregister(fd)
            except OSError:
                pass  # closed by slirp: the kernel dropped it already
        for fd, mask in wanted.items():
            mask |= select.EPOLLONESHOT
            try:
                epoll.modify(fd, mask)
            except FileNotFoundError:
                try:
                    epoll.register(fd, mask)
                except OSError:
                    continue
            except OSError:
                continue
        self._armed = wanted

    def _wake_after(self, delay_s: float) -> None:
        """A poll round after ``delay_s`` (slirp's TCP timers), unless one is due sooner."""
        assert self._loop is not None
        due = time.monotonic() + delay_s
        if self._timer_due is not None and self._timer_due <= due:
            return
        self._timer_due = due

        def fire() -> None:
            if self._timer_due == due:
                self._timer_due = None
                self._request_poll()

        self._loop.call_later(delay_s, fire)

    def _timer_mod(self, handle: int, _unused: int, expire_ms: int | None) -> None:
        """slirp armed (or with None cancelled) one of its timers."""
        generation = self._slirp_timers.get(handle, 0) + 1
        self._slirp_timers[handle] = generation
        if expire_ms is None:
            self._early_timers.pop(handle, None)
            return
        loop = self._loop
        if loop is None:
            self._early_timers[handle] = expire_ms
            return
        delay = max(0.0, expire_ms / 1000 - time.monotonic_ns() / 1e9)

        def expired() -> None:  # I/O thread
            def run() -> None:  # loop thread
                if self._slirp_timers.get(handle) == generation and self._epoll is not None:
                    self._collect(lambda: self.slirp.handle_timer(handle))
                    self._request_poll()
            loop.post(run)

        loop.call_later(delay, expired)

    # -- end ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._epoll is not None:
            if self._loop is not None:
                self._loop.unwatch_fd(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None
        for chardev in self.chardevs:
            chardev.close()
        self.chardevs.clear()
        self.slirp.close()
        if self.smb_dir is not None:
            shutil.rmtree(self.smb_dir, ignore_errors=True)
            self.smb_dir = None

    def info(self) -> str:
        """QEMU's ``info network`` line for this backend."""
        return (f"{self.id}: index=0,type=user,net={self.config.network},"
                f"restrict={'on' if self.config.restricted else 'off'}")
