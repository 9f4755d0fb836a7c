"""-netdev, -nic and -net: QEMU 7.2's syntax and messages (taken from
qemu-system-riscv64 7.2), and the NICs they give the machine."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from launcher.net.options import NetOptions, parse_hostfwd
from launcher.net.slirp import SlirpUnavailable, library
from launcher.net.user import NetdevError

PROG = "llvmtcg-system-riscv64"


def run(*argv: str) -> tuple[int, str, str]:
    from launcher.system import main as system_main
    from launcher.system_riscv64 import TARGET
    out, err = io.StringIO(), io.StringIO()
    status = system_main(TARGET, list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def slirp_installed() -> bool:
    try:
        library()
    except SlirpUnavailable:
        return False
    return True


needs_slirp = pytest.mark.skipif(not slirp_installed(), reason="libslirp0 not installed")


@pytest.mark.parametrize(("args", "message"), [
    ("user,id=n0,host=10.0.3.2", "Host doesn't belong to network"),
    ("user,id=n0,hostfwd=tcp::99999-:22",
     "Invalid host forwarding rule 'tcp::99999-:22' (Bad host port)"),
    ("user,id=n0,hostfwd=foo", "Invalid host forwarding rule 'foo' (No : separators)"),
    ("user,id=n0,hostfwd=xyz::2222-:22",
     "Invalid host forwarding rule 'xyz::2222-:22' (Bad protocol name)"),
    ("user,id=n0,hostfwd=tcp::2222",
     "Invalid host forwarding rule 'tcp::2222' (Bad host port separator)"),
    ("user,id=n0,hostfwd=tcp::2222-:x",
     "Invalid host forwarding rule 'tcp::2222-:x' (Bad guest port)"),
    ("user", "Parameter 'id' is missing"),
    ("user,id=n0,bogus=1", "Invalid parameter 'bogus'"),
    ("foo,id=x", "Parameter 'type' does not accept value 'foo'"),
    ("user,id=n0,restrict=maybe", "Parameter 'restrict' expects 'on' or 'off'"),
    ("user,id=n0,dhcpstart=1.2.3.4", "DHCP doesn't belong to network"),
    ("user,id=n0,net=300.1.1.1", "Failed to parse netmask"),
    ("user,id=n0,net=10.0.2.0/33", "Invalid netmask provided (must be in range 4-32)"),
    ("user,id=n0,dhcpstart=x", "Failed to parse DHCP start address"),
    ("user,id=n0,host=x", "Failed to parse host"),
    ("user,id=n0,dns=x", "Failed to parse DNS"),
    ("user,id=n0,ipv4=off,ipv6=off", "IPv4 and IPv6 disabled"),
    ("tap,id=t",
     "network backend 'tap' is not supported by llvmtcg (only 'user' and 'socket' are)"),
    ("socket,id=s", "exactly one of listen=, connect=, mcast= or udp= is required"),
    ("socket,id=s,listen=:1234,connect=:1",
     "exactly one of listen=, connect=, mcast= or udp= is required"),
    ("socket,id=s,listen=foo", "host address 'foo' doesn't contain ':' separating host "
                               "from port"),
    # Multiqueue: QEMU's user and socket netdevs have one queue pair.
    ("user,id=n0,queues=2", "Invalid parameter 'queues'"),
    ("socket,id=s,listen=:1234,queues=2", "Invalid parameter 'queues'"),
    ("user,id=n0,guestfwd=udp:10.0.2.100:1-cmd:cat",
     "Invalid guest forwarding rule 'udp:10.0.2.100:1-cmd:cat'"),
    ("user,id=n0,guestfwd=tcp:1.2.3.4:1-cmd:cat",
     "Conflicting/invalid host:port in guest forwarding rule 'tcp:1.2.3.4:1-cmd:cat'"),
    ("user,id=n0,smbserver=foo", "Failed to parse SMB address"),
])
def test_netdev_errors(args: str, message: str) -> None:
    status, _, err = run("-M", "virt", "-netdev", args)
    assert status == 1
    assert err == f"{PROG}: -netdev {args}: {message}\n"


def test_duplicate_ids_and_devices() -> None:
    status, _, err = run("-netdev", "user,id=n0", "-netdev", "user,id=n0")
    assert (status, err) == (1, f"{PROG}: -netdev user,id=n0: Duplicate ID 'n0' for netdev\n")
    status, _, err = run("-nic", "user,mac=zz")
    assert (status, err) == (1, f"{PROG}: -nic user,mac=zz: invalid syntax for ethernet "
                                "address\n")
    status, _, err = run("-net", "nic,macaddr=zz")
    assert (status, err) == (1, f"{PROG}: -net nic,macaddr=zz: invalid syntax for ethernet "
                                "address\n")


@needs_slirp
@pytest.mark.parametrize(("device", "message"), [
    ("virtio-net-device,netdev=n1", "Property 'virtio-net-device.netdev' can't find value 'n1'"),
    ("virtio-net-device,netdev=n0,mac=zz",
     "Property 'virtio-net-device.mac' doesn't take value 'zz'"),
    ("virtio-net-device,netdev=n0,host_mtu=65536", "Parameter 'host_mtu' expects uint16_t"),
    ("virtio-net-device,netdev=n0,host_mtu=-1", "Parameter 'host_mtu' expects uint16_t"),
    ("virtio-net-device,netdev=n0,host_mtu=abc", "Parameter 'host_mtu' expects integer"),
    ("virtio-net-device,netdev=n0,mq=maybe", "Parameter 'mq' expects 'on' or 'off'"),
    # vectors= is virtio-net-pci's (MSI-X): a virtio-mmio device has no such property.
    ("virtio-net-device,netdev=n0,mq=on,vectors=6",
     "Property 'virtio-net-device.vectors' not found"),
])
def test_device_errors(tmp_path: Path, device: str, message: str) -> None:
    status, _, err = run("-M", f"virt,dumpdtb={tmp_path / 'x.dtb'}", "-netdev", "user,id=n0",
                         "-device", device)
    assert status == 1
    assert err == f"{PROG}: -device {device}: {message}\n"


@needs_slirp
def test_one_netdev_one_nic(tmp_path: Path) -> None:
    device = "virtio-net-device,netdev=n0"
    status, _, err = run("-M", f"virt,dumpdtb={tmp_path / 'x.dtb'}", "-netdev", "user,id=n0",
                         "-device", device, "-device", device)
    assert status == 1
    assert err == (f"{PROG}: -device {device}: Property 'virtio-net-device.netdev' can't "
                   "take value 'n0', it's in use\n")


@needs_slirp
def test_a_busy_host_port_is_an_error_at_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"
        status, _, err = run("-M", f"virt,dumpdtb={tmp_path / 'x.dtb'}", "-netdev", args)
    assert status == 1
    assert err == (f"{PROG}: -netdev {args}: Could not set up host forwarding rule "
                   f"'tcp:127.0.0.1:{port}-:22'\n")


@needs_slirp
def test_warnings_for_unused_backends(tmp_path: Path) -> None:
    dtb = f"virt,dumpdtb={tmp_path / 'x.dtb'}"
    assert run("-M", dtb, "-netdev", "user,id=n0")[2].startswith(
        f"{PROG}: warning: netdev n0 has no peer\n")
    assert run("-M", dtb, "-net", "user")[2].startswith(f"{PROG}: warning: hub 0 with no nics\n")
    err = run("-M", dtb, "-nic", "user,model=e1000")[2]
    assert f"{PROG}: warning: requested NIC (anonymous, model e1000) was not created" in err
    assert "netdev #net0 has no peer" in err


@needs_slirp
@pytest.mark.parametrize("network", [
    ("-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0"),
    ("-nic", "user,hostfwd=tcp:127.0.0.1:0-:22"),
    ("-net", "nic", "-net", "user"),
    ("-nic", "user,model=virtio-net-device,mac=52:54:00:00:00:07"),
])
def test_the_nic_takes_the_last_virtio_slot(tmp_path: Path, network: tuple[str, ...]) -> None:
    from devices.fdt import DeviceTree
    dtb = tmp_path / "x.dtb"
    status, _, err = run("-M", f"virt,dumpdtb={dtb}", *network)
    assert status == 0, err
    assert "warning" not in err
    DeviceTree.from_dtb(dtb.read_bytes())  # the tree is the same as without a NIC


def test_device_help_lists_virtio_net() -> None:
    status, out, _ = run("-device", "help")
    assert status == 0 and 'Network devices:\nname "virtio-net-device", bus virtio-bus\n' in out
    status, out, _ = run("-device", "virtio-net-device,help")
    assert "mac=<str>" in out and "netdev=<str>" in out


def test_hostfwd_rules() -> None:
    rule = parse_hostfwd("tcp::2222-:22")
    assert (rule.udp, rule.host_addr, rule.host_port, rule.guest_addr, rule.guest_port) == (
        False, "0.0.0.0", 2222, "0.0.0.0", 22)
    rule = parse_hostfwd("udp:127.0.0.1:0x10-10.0.2.20:53")
    assert (rule.udp, rule.host_addr, rule.host_port, rule.guest_addr, rule.guest_port) == (
        True, "127.0.0.1", 16, "10.0.2.20", 53)
    assert parse_hostfwd(":1.2.3:5-:6").host_addr == "1.2.0.3"  # inet_aton's shorthand
    with pytest.raises(NetdevError, match="Bad guest port"):
        parse_hostfwd("tcp::1-:0")


def test_user_network_addresses() -> None:
    reader = NetOptions()
    reader.netdev("user,id=a")
    reader.netdev("user,id=b,net=192.168.76.0/24,dhcpstart=192.168.76.9,restrict=on")
    reader.netdev("user,id=c,net=10.0.0.0/255.255.0.0,host=10.0.9.1,dns=10.0.9.9")
    reader.netdev("user,id=d,net=172.20.0.0")  # no mask: its class
    a, b, c, d = (spec.config for spec in reader.plan.netdevs)
    assert (a.network, a.netmask, a.host, a.dns, a.dhcp_start, a.restricted) == (
        "10.0.2.0", "255.255.255.0", "10.0.2.2", "10.0.2.3", "10.0.2.15", False)
    assert (b.host, b.dns, b.dhcp_start, b.restricted) == (
        "192.168.76.2", "192.168.76.3", "192.168.76.9", True)
    assert (c.network, c.netmask, c.host, c.dns, c.dhcp_start) == (
        "10.0.0.0", "255.255.0.0", "10.0.9.1", "10.0.9.9", "10.0.2.15")
    assert (d.network, d.netmask) == ("172.16.0.0", "255.240.0.0")
    assert a.ipv6_prefix == "fec0::" and a.ipv6_host == "fec0::2" and a.ipv6_dns == "fec0::3"


def test_socket_backends(tmp_path: Path) -> None:
    reader = NetOptions()
    reader.netdev("socket,id=s0,listen=:1234")
    reader.netdev("socket,id=s1,connect=127.0.0.1:1234")
    reader.nic("socket,connect=localhost:5")
    s0, s1, nic = reader.plan.netdevs
    assert (s0.kind, s0.listen, s0.connect) == ("socket", ("", 1234), None)
    assert (s1.kind, s1.listen, s1.connect) == ("socket", None, ("127.0.0.1", 1234))
    assert nic.connect == ("127.0.0.1", 5)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, _, err = run("-M", f"virt,dumpdtb={tmp_path / 'x.dtb'}",
                         "-netdev", f"socket,id=s,listen=127.0.0.1:{port}",
                         "-device", "virtio-net-device,netdev=s")
    assert status == 0 and "warning" not in err


@needs_slirp
def test_a_guestfwd_chardev_that_cannot_open_is_two_errors() -> None:
    args = "user,id=n0,guestfwd=tcp:10.0.2.100:1234-nosuchdev:x"
    status, _, err = run("-M", "virt", "-netdev", args)
    assert status == 1
    assert err == (f"{PROG}: -netdev {args}: 'nosuchdev:x' is not a valid char driver\n"
                   f"{PROG}: -netdev {args}: Could not open guest forwarding device "
                   "'guestfwd.tcp.1234'\n")
