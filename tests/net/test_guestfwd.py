"""-netdev user's guestfwd= (a command, or a chardev, serving the guest's TCP
connections to an address of the virtual network) and smb=, through libslirp and the
machine loop; the guest is a TCP client written with crafted frames."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import pytest

from launcher.net.options import parse_guestfwd, user_options
from launcher.net.slirp import SlirpConfig, SlirpUnavailable, library
from launcher.net.user import SMBD_COMMAND, NetdevError, UserNetdev
from machines.cpu import Idle
from machines.loop import MachineClock, MachineLoop
from tests.machines.support import ScriptedCpu
from tests.net import frames

try:
    library()
except SlirpUnavailable:
    pytest.skip("libslirp0 is not installed", allow_module_level=True)

GUEST_IP = "10.0.2.15"
WATCHDOG_S = 30


class TcpGuest:
    """A guest on the loop's thread that answers ARP, connects to ``server``:``port``,
    sends ``request`` and collects what comes back until ``expected`` bytes did."""

    def __init__(self, netdev: UserNetdev, server: str, port: int, request: bytes,
                 expected: int, done: Callable[[], None]) -> None:
        self.netdev = netdev
        self.server, self.port = server, port
        self.request, self.expected, self.done = request, expected, done
        self.router_mac = b"\xff" * 6
        self.seq, self.ack = 1000, 0
        self.received = b""
        self.connected = False

    def _send(self, flags: int, payload: bytes = b"") -> None:
        packet = frames.ipv4_tcp(GUEST_IP, self.server, 40000, self.port, self.seq,
                                 self.ack, flags, payload)
        # Advanced before sending: slirp may answer from inside send().
        self.seq += len(payload) + (1 if flags & frames.TCP_SYN else 0)
        self.netdev.send(frames.ether(self.router_mac, frames.GUEST_MAC, frames.ETH_IP,
                                      packet))

    def start(self) -> None:
        self.netdev.send(frames.arp_request(GUEST_IP, "10.0.2.2"))
        self._send(frames.TCP_SYN)

    def receive(self, frame: bytes) -> None:
        kind = int.from_bytes(frame[12:14], "big")
        if kind == frames.ETH_ARP:
            op, mac, sender_ip, target_ip = frames.parse_arp(frame)
            if op == 1 and target_ip == GUEST_IP:
                reply = frames.arp_request(GUEST_IP, sender_ip)
                reply = mac + reply[6:20] + b"\x00\x02" + reply[22:32] + mac + reply[38:]
                self.netdev.send(reply)
            elif op == 2:
                self.router_mac = mac
            return
        tcp = frames.parse_tcp(frame)
        if tcp is None or tcp[2] != self.port:
            return
        self.router_mac = frame[6:12]
        _, _, _, _, seq, _, flags, payload = tcp
        if flags & frames.TCP_SYN and flags & frames.TCP_ACK and not self.connected:
            self.connected = True
            self.ack = seq + 1
            self._send(frames.TCP_ACK | frames.TCP_PSH, self.request)
            return
        if payload and seq == self.ack:
            self.received += payload
            self.ack += len(payload)
            self._send(frames.TCP_ACK)
            if len(self.received) >= self.expected:
                self.done()


def exchange(netdev: UserNetdev, server: str, port: int, request: bytes,
             expected: int) -> bytes:
    """Runs a machine loop until the guest got ``expected`` bytes (or 30 s passed)."""
    def idle(cpu: ScriptedCpu) -> Idle:
        cpu.position -= 1  # stay idle: every round is caused by an event
        return Idle()

    loop = MachineLoop(ScriptedCpu([idle]), MachineClock(), lambda: None)
    guest = TcpGuest(netdev, server, port, request, expected,
                     lambda: loop.request_shutdown(0))
    netdev.connect(guest.receive)
    loop.post(lambda: netdev.start(loop))
    loop.post(guest.start)
    watchdog = threading.Timer(WATCHDOG_S, lambda: loop.request_shutdown(1))
    watchdog.start()
    try:
        status = loop.run()
    finally:
        watchdog.cancel()
        netdev.close()
    assert status == 0, f"the guest got {guest.received!r} only"
    return guest.received


def test_a_command_serves_each_connection() -> None:
    rule = parse_guestfwd("tcp:10.0.2.100:1234-cmd:sh -c 'read line; echo \"got $line\"'")
    netdev = UserNetdev("n0", SlirpConfig(), guest_forwards=(rule,))
    assert exchange(netdev, "10.0.2.100", 1234, b"hello guestfwd\n", 19) == \
        b"got hello guestfwd\n"


def test_a_command_on_the_default_server_address() -> None:
    # No address: libslirp takes the network's .4 (here 10.0.3.4 with net=10.0.3.0/24).
    spec = user_options("n0", [("net", "10.0.3.0/24"), ("guestfwd", "::7-cmd:cat")],
                        "-netdev user,id=n0,net=10.0.3.0/24,guestfwd=::7-cmd:cat")
    netdev = UserNetdev("n0", spec.config, guest_forwards=spec.guest_forwards)
    global GUEST_IP
    saved, GUEST_IP = GUEST_IP, "10.0.3.15"
    try:
        assert exchange(netdev, "10.0.3.4", 7, b"echo", 4) == b"echo"
    finally:
        GUEST_IP = saved


def test_a_chardev_serves_the_connection() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    served: list[bytes] = []
    finished = threading.Event()

    def server() -> None:
        listener.settimeout(30)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            served.append(conn.recv(100))
            conn.sendall(b"reply from the host")
            finished.wait(30)  # the connection stays up while the guest reads

    thread = threading.Thread(target=server)
    thread.start()
    try:
        rule = parse_guestfwd(f"tcp:10.0.2.100:4321-tcp:127.0.0.1:{port}")
        netdev = UserNetdev("n0", SlirpConfig(), guest_forwards=(rule,))
        assert exchange(netdev, "10.0.2.100", 4321, b"request", 19) == b"reply from the host"
    finally:
        finished.set()
        listener.close()
        thread.join()
    assert served == [b"request"]


@pytest.mark.parametrize(("rule", "message"), [
    ("udp:10.0.2.100:1-cmd:cat", "Invalid guest forwarding rule 'udp:10.0.2.100:1-cmd:cat'"),
    ("tcp:10.0.2.100:0-cmd:cat", "Invalid guest forwarding rule 'tcp:10.0.2.100:0-cmd:cat'"),
    ("tcp:10.0.2.100:1x-cmd:cat", "Invalid guest forwarding rule 'tcp:10.0.2.100:1x-cmd:cat'"),
    ("tcp:10.0.2.100:1234", "Invalid guest forwarding rule 'tcp:10.0.2.100:1234'"),
    ("tcp:10.0.2:x:1-cmd:cat", "Invalid guest forwarding rule 'tcp:10.0.2:x:1-cmd:cat'"),
])
def test_bad_rules_are_refused_as_qemu_does(rule: str, message: str) -> None:
    with pytest.raises(NetdevError) as error:
        parse_guestfwd(rule)
    assert str(error.value) == message


@pytest.mark.parametrize("server", ["1.2.3.4", "10.0.2.2", "10.0.2.3"])
def test_addresses_outside_the_network_or_taken_conflict(server: str) -> None:
    text = f"tcp:{server}:80-cmd:cat"
    with pytest.raises(NetdevError) as error:
        UserNetdev("n0", SlirpConfig(), guest_forwards=(parse_guestfwd(text),))
    assert str(error.value) == (f"Conflicting/invalid host:port in guest forwarding rule "
                                f"'{text}'")


def test_a_chardev_that_cannot_open() -> None:
    with pytest.raises(NetdevError) as error:
        UserNetdev("n0", SlirpConfig(),
                   guest_forwards=(parse_guestfwd("tcp:10.0.2.100:80-nosuchdev:x"),))
    assert str(error.value).endswith("\nCould not open guest forwarding device "
                                     "'guestfwd.tcp.80'")


@pytest.mark.skipif(os.path.exists(SMBD_COMMAND), reason="smbd is installed")
def test_smb_without_smbd_fails_as_qemu() -> None:
    spec = user_options("n0", [("smb", "/tmp")], "-netdev user,id=n0,smb=/tmp")
    with pytest.raises(NetdevError) as error:
        UserNetdev("n0", spec.config, smb=spec.smb, smb_server=spec.smb_server)
    assert str(error.value) == "Could not find '/usr/sbin/smbd', please install it"


def smb2_negotiate() -> bytes:
    """An SMB2 NEGOTIATE request ([MS-SMB2] 2.2.3) offering dialects 2.0.2 and 2.1, in a
    NetBIOS session message (RFC 1002 4.3.1: type 0, 24-bit length)."""
    header = (b"\xfeSMB" + (64).to_bytes(2, "little") + bytes(2) + bytes(4)
              + (0).to_bytes(2, "little")  # command: NEGOTIATE
              + (1).to_bytes(2, "little") + bytes(4 + 4 + 8 + 4 + 4 + 8 + 16))
    body = ((36).to_bytes(2, "little") + (2).to_bytes(2, "little")  # 2 dialects
            + (1).to_bytes(2, "little") + bytes(2) + bytes(4) + b"llvmtcg-smb-test" + bytes(8)
            + (0x0202).to_bytes(2, "little") + (0x0210).to_bytes(2, "little"))
    message = header + body
    return b"\x00" + len(message).to_bytes(3, "big") + message


@pytest.mark.skipif(not os.path.exists(SMBD_COMMAND),
                    reason="smbd is not installed (Debian package samba)")
@pytest.mark.parametrize("port", [445, 139])
def test_smb_share_is_served_by_smbd(tmp_path: object, port: int) -> None:
    """smb=DIR: a connection to 10.0.2.4:445 (or 139) reaches a real smbd started with
    QEMU's configuration, which answers an SMB2 NEGOTIATE with one of the dialects."""
    spec = user_options("n0", [("smb", str(tmp_path))], f"-netdev user,id=n0,smb={tmp_path}")
    netdev = UserNetdev("n0", spec.config, smb=spec.smb, smb_server=spec.smb_server)
    smb_dir = netdev.smb_dir
    assert smb_dir is not None
    with open(os.path.join(smb_dir, "smb.conf")) as conf:
        assert f"path={tmp_path}" in conf.read()
    reply = exchange(netdev, "10.0.2.4", port, smb2_negotiate(), 4 + 64 + 6)
    assert reply[0] == 0  # a NetBIOS session message
    assert reply[4:8] == b"\xfeSMB"
    assert int.from_bytes(reply[4 + 12:4 + 14], "little") == 0  # NEGOTIATE
    assert int.from_bytes(reply[4 + 8:4 + 12], "little") == 0  # STATUS_SUCCESS
    assert int.from_bytes(reply[4 + 64 + 4:4 + 64 + 6], "little") in (0x0202, 0x0210)
