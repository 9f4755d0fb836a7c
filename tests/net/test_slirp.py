"""libslirp through launcher.net: DHCP and ARP answered from crafted frames, and a
forwarded UDP port carried both ways through the machine loop's I/O thread."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from launcher.net.slirp import Slirp, SlirpConfig, SlirpUnavailable, library
from launcher.net.user import HostForward, NetdevError, UserNetdev
from machines.cpu import Idle
from machines.loop import MachineClock, MachineLoop
from tests.machines.support import ScriptedCpu
from tests.net import frames

try:
    library()
except SlirpUnavailable:
    pytest.skip("libslirp0 is not installed", allow_module_level=True)


def new_slirp(config: SlirpConfig | None = None) -> tuple[Slirp, list[bytes]]:
    sent: list[bytes] = []
    slirp = Slirp(config or SlirpConfig(), sent.append, time.monotonic_ns, lambda *args: None,
                  lambda: None)
    return slirp, sent


def test_dhcp_discover_gets_an_offer_of_10_0_2_15() -> None:
    slirp, sent = new_slirp()
    try:
        slirp.input(frames.dhcp_discover(0x1234))
        offers = [u for u in map(frames.parse_udp, sent) if u and u[2] == 67]
        assert offers, sent
        src, _dst, _sport, dport, payload = offers[0]
        assert src == "10.0.2.2" and dport == 68
        xid, yiaddr, options = frames.parse_dhcp(payload)
        assert (xid, yiaddr) == (0x1234, "10.0.2.15")
        assert options[53] == bytes([frames.DHCP_OFFER])
        assert socket.inet_ntoa(options[3]) == "10.0.2.2"  # router
        assert socket.inet_ntoa(options[6]) == "10.0.2.3"  # DNS
        assert socket.inet_ntoa(options[1]) == "255.255.255.0"
    finally:
        slirp.close()


def test_dhcp_follows_net_and_dhcpstart() -> None:
    config = SlirpConfig(network="192.168.76.0", host="192.168.76.2",
                         dhcp_start="192.168.76.9", dns="192.168.76.3")
    slirp, sent = new_slirp(config)
    try:
        slirp.input(frames.dhcp_discover(7))
        (offer,) = [u for u in map(frames.parse_udp, sent) if u]
        assert frames.parse_dhcp(offer[4])[1] == "192.168.76.9"
        assert offer[0] == "192.168.76.2"
    finally:
        slirp.close()


def test_arp_for_the_gateway_and_the_dns_server() -> None:
    slirp, sent = new_slirp()
    try:
        for target in ("10.0.2.2", "10.0.2.3"):
            sent.clear()
            slirp.input(frames.arp_request("10.0.2.15", target))
            (reply,) = sent
            op, sender_mac, sender_ip, target_ip = frames.parse_arp(reply)
            assert (op, sender_ip, target_ip) == (2, target, "10.0.2.15")
            assert reply[:6] == frames.GUEST_MAC and sender_mac[:2] == b"\x52\x55"
        sent.clear()
        slirp.input(frames.arp_request("10.0.2.15", "10.0.2.99"))  # nobody there
        assert sent == []
    finally:
        slirp.close()


def test_a_port_in_use_cannot_be_forwarded() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rule = f"tcp:127.0.0.1:{port}-:22"
        with pytest.raises(NetdevError, match=f"Could not set up host forwarding rule "
                                              f"'{rule}'"):
            UserNetdev("n0", SlirpConfig(),
                       (HostForward(False, "127.0.0.1", port, "0.0.0.0", 22, rule),))


class PythonGuest:
    """A "guest" on the loop's thread: answers ARP for 10.0.2.15 and echoes UDP
    datagrams to port 7 back upper-cased."""

    def __init__(self) -> None:
        self.netdev: UserNetdev | None = None
        self.router_mac = b""

    def receive(self, frame: bytes) -> None:
        assert self.netdev is not None
        kind = int.from_bytes(frame[12:14], "big")
        if kind == frames.ETH_ARP:
            op, mac, sender_ip, target_ip = frames.parse_arp(frame)
            if op == 1 and target_ip == "10.0.2.15":
                reply = frames.arp_request("10.0.2.15", sender_ip)
                reply = mac + reply[6:20] + b"\x00\x02" + reply[22:32] + mac + reply[38:]
                self.netdev.send(reply)
            return
        udp = frames.parse_udp(frame)
        if udp is not None and udp[3] == 7:
            src, dst, sport, dport, payload = udp
            packet = frames.ipv4_udp(dst, src, dport, sport, payload.upper())
            self.netdev.send(frames.ether(frame[6:12], frames.GUEST_MAC, frames.ETH_IP,
                                          packet))


def test_a_forwarded_udp_port_through_the_machine_loop() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    rule = f"udp:127.0.0.1:{port}-:7"
    guest = PythonGuest()
    netdev = UserNetdev("n0", SlirpConfig(),
                        (HostForward(True, "127.0.0.1", port, "0.0.0.0", 7, rule),))
    guest.netdev = netdev
    netdev.connect(guest.receive)

    def idle(cpu: ScriptedCpu) -> Idle:
        cpu.position -= 1  # stay idle: every round is caused by an event
        return Idle()

    cpu = ScriptedCpu([idle])
    loop = MachineLoop(cpu, MachineClock(), lambda: None)
    loop.post(lambda: netdev.start(loop))
    # The guest makes itself known first (slirp learns its MAC from the ARP request).
    loop.post(lambda: netdev.send(frames.arp_request("10.0.2.15", "10.0.2.2")))
    replies: list[bytes] = []

    def host_side() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(20)
            try:
                for word in (b"hello", b"again"):
                    client.sendto(word, ("127.0.0.1", port))
                    replies.append(client.recvfrom(100)[0])
            finally:
                loop.request_shutdown(0)

    thread = threading.Thread(target=host_side)
    thread.start()
    try:
        assert loop.run() == 0
    finally:
        thread.join()
        netdev.close()
    assert replies == [b"HELLO", b"AGAIN"]
    # Event-driven: a handful of poll rounds, not a busy loop.
    assert netdev.stats["rounds"] < 50, netdev.stats
    assert cpu.runs < 100


def test_frames_wait_while_the_vm_is_stopped_and_the_link_follows_set_link() -> None:
    received: list[bytes] = []
    links: list[bool] = []
    netdev = UserNetdev("n0", SlirpConfig())
    netdev.connect(received.append, links.append)
    cpu = ScriptedCpu([lambda c: Idle()])
    loop = MachineLoop(cpu, MachineClock(), lambda: None, start_paused=True)
    seen: dict[str, int] = {}

    def while_stopped() -> None:
        netdev.send(frames.arp_request("10.0.2.15", "10.0.2.2"))
        seen["stopped"] = len(received)
        loop.resume()

    def after_resume() -> None:
        seen["running"] = len(received)
        netdev.set_link(False)
        netdev.send(frames.arp_request("10.0.2.15", "10.0.2.2"))  # dropped: link down
        seen["link down"] = len(received)
        loop.request_shutdown(0)

    loop.post(lambda: netdev.start(loop))
    loop.post(while_stopped)
    loop.post(after_resume)
    try:
        assert loop.run() == 0
    finally:
        netdev.close()
    assert seen == {"stopped": 0, "running": 1, "link down": 1}
    assert frames.parse_arp(received[0])[0] == 2
    assert links == [False]


def test_frames_from_one_slirp_call_reach_the_nic_together_in_order() -> None:
    """What one call into slirp produces (an ACK's burst of segments, a socket read)
    goes to the NIC's receive_batch once the call returns, so that slirp is never
    re-entered from its own output callback and the NIC notifies once per burst."""
    netdev = UserNetdev("n0", SlirpConfig())
    batches: list[list[bytes]] = []
    single: list[bytes] = []
    netdev.connect(single.append, receive_batch=lambda fs: batches.append(list(fs)))
    try:
        def burst() -> None:
            for target in ("10.0.2.2", "10.0.2.3"):
                netdev.slirp.input(frames.arp_request("10.0.2.15", target))
            assert batches == []  # (nothing delivered inside the call)
        netdev._collect(burst)
        ((first, second),) = batches
        assert [frames.parse_arp(f)[2] for f in (first, second)] == ["10.0.2.2", "10.0.2.3"]
        assert single == []
        netdev.send(frames.arp_request("10.0.2.15", "10.0.2.2"))  # a guest frame: one call
        assert len(batches) == 2 and len(batches[1]) == 1
        assert netdev.stats["frames_out"] == 3
    finally:
        netdev.close()
