"""``-netdev``, ``-nic`` and ``-net`` as QEMU 7.2 reads them, with its messages.

``-netdev user,id=ID,...`` is a backend a ``-device virtio-net-device,netdev=ID``
plugs into. ``-nic user,...`` is the shorthand for both (the NIC takes a virtio-mmio
slot; QEMU's virt would put its default NIC, virtio-net-pci, on PCI, which llvmtcg's
virt lacks). The legacy ``-net nic`` / ``-net user`` put NICs and backends on hub 0,
which forwards every frame to all its other ports.

``user`` (libslirp) and ``socket`` with ``listen=``/``connect=`` (a TCP link between
two VMs) are implemented; the other backend types QEMU knows are refused by name.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from launcher.net.slirp import SlirpConfig
from launcher.net.user import GuestForward, HostForward, NetdevError

_QEMU_TYPES = ("stream", "dgram", "tap", "bridge", "vde", "l2tpv3",
               "vhost-user", "vhost-vdpa", "hubport", "netmap", "vmnet-host",
               "vmnet-shared", "vmnet-bridged")
_USER_KEYS = ("ipv4", "ipv6", "net", "host", "restrict", "restricted", "hostname",
              "dhcpstart", "dns", "dnssearch", "domainname", "ipv6-prefix",
              "ipv6-prefixlen", "ipv6-host", "ipv6-dns", "tftp", "tftp-server-name",
              "bootfile", "hostfwd", "guestfwd", "smb", "smbserver", "ipv6-net")
_NIC_MODELS = ("virtio-net-device", "virtio")  # what a -nic/-net nic model may be here
_TRUE = ("on", "yes", "true", "y")
_FALSE = ("off", "no", "false", "n")


@dataclass(frozen=True, slots=True)
class NetdevSpec:
    """One backend, checked: a user-mode network (``config``, ``forwards``) or, with
    kind "socket", one end of a TCP link (``listen`` or ``connect``)."""

    id: str
    config: SlirpConfig
    forwards: tuple[HostForward, ...]
    spec: str  # the option, for messages
    hub: int | None = None  # legacy -net user: the hub it is on
    kind: str = "user"
    listen: tuple[str, int] | None = None
    connect: tuple[str, int] | None = None
    guest_forwards: tuple[GuestForward, ...] = ()
    smb: str | None = None  # smb=DIR: the directory smbd exports
    smb_server: str = "0.0.0.0"  # smbserver=; 0.0.0.0: the network's .4 address


@dataclass(frozen=True, slots=True)
class NicSpec:
    """A NIC from -nic or -net nic: a virtio-net-device on ``netdev`` (None: a hub
    port or nothing). ``model`` None means unspecified."""

    netdev: str | None
    mac: str | None
    model: str | None
    spec: str
    hub: int | None = None


@dataclass(slots=True)
class NetPlan:
    """Every network option, checked."""

    netdevs: list[NetdevSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)


def _fail(message: str, option: str) -> NetdevError:
    return NetdevError(message, option)


def _pairs(text: str, option: str, implied: str) -> tuple[str | None, list[tuple[str, str]]]:
    from launcher.system.options import parse_list
    parsed = parse_list(text, option, implied)
    return parsed.implied, list(parsed.pairs)


def _bool(name: str, value: str, option: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _fail(f"Parameter '{name}' expects 'on' or 'off'", option)


def _aton(text: str) -> int | None:
    """inet_aton's reading of ``text`` (it takes ``1.2.3`` and hex too), as an int."""
    try:
        return struct.unpack("!I", socket.inet_aton(text))[0]
    except OSError:
        return None


def _ntoa(value: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", value & 0xFFFFFFFF))


def _strtoi(text: str) -> int | None:
    """qemu_strtoi with base 0: decimal, 0x hex or 0 octal, the whole string."""
    body = text.strip().lstrip("+-")
    sign = -1 if text.strip().startswith("-") else 1
    try:
        if body.lower().startswith("0x"):
            return sign * int(body[2:], 16)
        if body.startswith("0") and len(body) > 1:
            return sign * int(body[1:], 8)
        return sign * int(body, 10)
    except ValueError:
        return None


def parse_hostfwd(rule: str) -> HostForward:
    """``[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`` (QEMU's slirp_hostfwd)."""
    def invalid(reason: str) -> NetdevError:
        return NetdevError(f"Invalid host forwarding rule '{rule}' ({reason})")

    protocol, sep, rest = rule.partition(":")
    if not sep:
        raise invalid("No : separators")
    if protocol in ("tcp", ""):
        udp = False
    elif protocol == "udp":
        udp = True
    else:
        raise invalid("Bad protocol name")
    host_text, sep, rest = rest.partition(":")
    if not sep:
        raise invalid("Missing : separator")
    host_addr = 0
    if host_text:
        parsed = _aton(host_text)
        if parsed is None:
            raise invalid("Bad host address")
        host_addr = parsed
    port_text, sep, rest = rest.partition("-")
    if not sep:
        raise invalid("Bad host port separator")
    host_port = _strtoi(port_text)
    if host_port is None or not 0 <= host_port <= 65535:
        raise invalid("Bad host port")
    guest_text, sep, rest = rest.partition(":")
    if not sep:
        raise invalid("Missing guest address")
    guest_addr = 0
    if guest_text:
        parsed = _aton(guest_text)
        if parsed is None:
            raise invalid("Bad guest address")
        guest_addr = parsed
    guest_port = _strtoi(rest)
    if guest_port is None or not 1 <= guest_port <= 65535:
        raise invalid("Bad guest port")
    return HostForward(udp, _ntoa(host_addr), host_port, _ntoa(guest_addr), guest_port, rule)


def parse_guestfwd(rule: str) -> GuestForward:
    """``[tcp]:[server]:port-cmd:COMMAND`` or ``[tcp]:[server]:port-CHARDEV`` (QEMU's
    slirp_guestfwd: the chardev in -serial's syntax)."""
    invalid = NetdevError(f"Invalid guest forwarding rule '{rule}'")
    protocol, sep, rest = rule.partition(":")
    if not sep or protocol not in ("tcp", ""):
        raise invalid
    server_text, sep, rest = rest.partition(":")
    if not sep:
        raise invalid
    server = 0
    if server_text:
        parsed = _aton(server_text)
        if parsed is None:
            raise invalid
        server = parsed
    port_text, sep, target = rest.partition("-")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise invalid  # strtol base 10, the whole text
    if target.startswith("cmd:"):
        return GuestForward(_ntoa(server), int(port_text), rule, command=target[4:])
    return GuestForward(_ntoa(server), int(port_text), rule, chardev=target)


def _network(text: str, option: str) -> tuple[int, int]:
    """``net=ADDR[/MASK]``: (network, netmask) as net_slirp_init reads them."""
    addr_text, slash, mask_text = text.partition("/")
    net = _aton(addr_text)
    if net is None:
        raise _fail("Failed to parse netmask", option)
    if not slash:
        if not net & 0x80000000:
            mask = 0xFF000000  # class A
        elif net & 0xFFF00000 == 0xAC100000:
            mask = 0xFFF00000  # 172.16.0.0/12
        elif net & 0xC0000000 == 0x80000000:
            mask = 0xFFFF0000  # class B
        elif net & 0xFFFF0000 == 0xC0A80000:
            mask = 0xFFFF0000  # 192.168.0.0/16
        elif net & 0xE0000000 == 0xC0000000:
            mask = 0xFFFFFF00  # class C
        else:
            mask = 0xFFFFFFF0
    elif mask_text.isdigit():
        shift = int(mask_text)
        if not 4 <= shift <= 32:
            raise _fail("Invalid netmask provided (must be in range 4-32)", option)
        mask = (0xFFFFFFFF << (32 - shift)) & 0xFFFFFFFF
    else:
        parsed = _aton(mask_text)
        if parsed is None:
            raise _fail("Failed to parse netmask", option)
        mask = parsed
    return net & mask, mask


def user_options(netdev_id: str, pairs: list[tuple[str, str]], option: str,
                 hub: int | None = None) -> NetdevSpec:
    """The options of a user network (after ``type`` and ``id``)."""
    values: dict[str, str] = {}
    forwards: list[HostForward] = []
    guest_forwards: list[GuestForward] = []
    dnssearch: list[str] = []
    for key, value in pairs:
        if key not in _USER_KEYS:
            raise _fail(f"Invalid parameter '{key}'", option)
        if key == "hostfwd":
            try:
                forwards.append(parse_hostfwd(value))
            except NetdevError as exc:
                raise _fail(str(exc), option) from None
        elif key == "dnssearch":
            dnssearch.append(value)
        elif key == "guestfwd":
            try:
                guest_forwards.append(parse_guestfwd(value))
            except NetdevError as exc:
                raise _fail(str(exc), option) from None
        else:
            values[key] = value
    ipv4 = _bool("ipv4", values["ipv4"], option) if "ipv4" in values else True
    ipv6 = _bool("ipv6", values["ipv6"], option) if "ipv6" in values else True
    if not ipv4 and not ipv6:
        raise _fail("IPv4 and IPv6 disabled", option)
    restricted = any(_bool(k, values[k], option) for k in ("restrict", "restricted")
                     if k in values)
    net, mask = 0x0A000200, 0xFFFFFF00
    if "net" in values:
        net, mask = _network(values["net"], option)
    host = net | (0x0202 & ~mask)
    dhcp = net | (0x020F & ~mask)
    dns = net | (0x0203 & ~mask)
    if "host" in values:
        host = _parsed(values["host"], "Failed to parse host", option)
    if host & mask != net:
        raise _fail("Host doesn't belong to network", option)
    if "dns" in values:
        dns = _parsed(values["dns"], "Failed to parse DNS", option)
    if restricted and dns & mask != net:
        raise _fail("DNS doesn't belong to network", option)
    if dns == host:
        raise _fail("DNS must be different from host", option)
    if "dhcpstart" in values:
        dhcp = _parsed(values["dhcpstart"], "Failed to parse DHCP start address", option)
    if dhcp & mask != net:
        raise _fail("DHCP doesn't belong to network", option)
    if dhcp in (host, dns):
        raise _fail("DNS must be different from host and DNS", option)
    v6 = _ipv6_options(values, option)
    smb_server = "0.0.0.0"
    if "smbserver" in values:
        smb_server = _ntoa(_parsed(values["smbserver"], "Failed to parse SMB address",
                                   option))
    config = SlirpConfig(
        network=_ntoa(net), netmask=_ntoa(mask), host=_ntoa(host), dhcp_start=_ntoa(dhcp),
        dns=_ntoa(dns), restricted=restricted, ipv4=ipv4, ipv6=ipv6,
        hostname=values.get("hostname"), domainname=values.get("domainname"),
        dnssearch=tuple(dnssearch), tftp=values.get("tftp"),
        tftp_server_name=values.get("tftp-server-name"), bootfile=values.get("bootfile"),
        **v6)
    return NetdevSpec(netdev_id, config, tuple(forwards), option, hub,
                      guest_forwards=tuple(guest_forwards), smb=values.get("smb"),
                      smb_server=smb_server)


def socket_options(netdev_id: str, pairs: list[tuple[str, str]], option: str) -> NetdevSpec:
    """``listen=[HOST]:PORT`` or ``connect=HOST:PORT`` (QEMU's stream socket)."""
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in ("listen", "connect", "mcast", "udp", "localaddr", "fd"):
            raise _fail(f"Invalid parameter '{key}'", option)
        values[key] = value
    modes = [k for k in ("listen", "connect", "mcast", "udp", "fd") if k in values]
    if "fd" in values and len(modes) == 1:
        raise _fail("Parameter 'fd' is not supported by llvmtcg's socket network", option)
    if len(modes) != 1:
        raise _fail("exactly one of listen=, connect=, mcast= or udp= is required", option)
    mode = modes[0]
    if mode in ("mcast", "udp"):
        raise _fail(f"Parameter '{mode}' is not supported by llvmtcg's socket network "
                    "(listen= and connect= are)", option)
    text = values[mode]
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise _fail(f"host address '{text}' doesn't contain ':' separating host from port",
                    option)
    port = _strtoi(port_text)
    if port is None or not 0 <= port <= 65535:
        raise _fail(f"port number '{port_text}' is invalid", option)
    if host and _aton(host) is None:
        try:
            host = socket.gethostbyname(host)
        except OSError:
            raise _fail(f"unknown host '{host}'", option) from None
    address = (host, port)
    return NetdevSpec(netdev_id, SlirpConfig(), (), option, kind="socket",
                      listen=address if mode == "listen" else None,
                      connect=address if mode == "connect" else None)


def _parsed(text: str, message: str, option: str) -> int:
    value = _aton(text)
    if value is None:
        raise _fail(message, option)
    return value


def _ipv6_options(values: dict[str, str], option: str) -> dict[str, object]:
    prefix = values.get("ipv6-prefix", values.get("ipv6-net", "fec0::"))
    prefix_len = 64
    if "/" in prefix:
        prefix, _, length = prefix.partition("/")
        values.setdefault("ipv6-prefixlen", length)
    if "ipv6-prefixlen" in values:
        parsed = _strtoi(values["ipv6-prefixlen"])
        if parsed is None or not 0 <= parsed <= 126:
            raise _fail("Invalid IPv6 prefix provided (prefix len must be in range 0-126)",
                        option)
        prefix_len = parsed
    result: dict[str, object] = {"ipv6_prefix_len": prefix_len}
    for key, name, default_suffix in (("ipv6-prefix", "ipv6_prefix", 0),
                                      ("ipv6-host", "ipv6_host", 2),
                                      ("ipv6-dns", "ipv6_dns", 3)):
        text = prefix if key == "ipv6-prefix" else values.get(key)
        if text is None:
            base = int(ipaddress.IPv6Address(prefix))
            text = str(ipaddress.IPv6Address(base + default_suffix))
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise _fail(f"Failed to parse {key.replace('-', ' ')}", option) from None
        result[name] = text
    return result


class NetOptions:
    """Reads -netdev, -nic and -net in command-line order into a NetPlan."""

    def __init__(self) -> None:
        self.plan = NetPlan()
        self._ids: set[str] = set()
        self._anonymous = 0  # QEMU names unnamed netdevs #net0, #net1, ...

    def _new_id(self) -> str:
        name = f"#net{self._anonymous}"
        self._anonymous += 1
        return name

    def _add(self, spec: NetdevSpec, option: str) -> None:
        if spec.id in self._ids:
            raise _fail(f"Duplicate ID '{spec.id}' for netdev", option)
        self._ids.add(spec.id)
        self.plan.netdevs.append(spec)

    def netdev(self, text: str) -> None:
        option = f"-netdev {text}"
        kind, pairs = _pairs(text, option, "type")
        netdev_id = None
        rest = []
        for key, value in pairs:
            if key == "id":
                netdev_id = value
            else:
                rest.append((key, value))
        self._check_type(kind, option)
        if netdev_id is None:
            raise _fail("Parameter 'id' is missing", option)
        self._add(self._backend(kind, netdev_id, rest, option), option)

    @staticmethod
    def _check_type(kind: str | None, option: str) -> None:
        if kind is None:
            raise _fail("Parameter 'type' is missing", option)
        if kind in _QEMU_TYPES:
            raise _fail(f"network backend '{kind}' is not supported by llvmtcg (only "
                        "'user' and 'socket' are)", option)
        if kind not in ("user", "socket"):
            raise _fail(f"Parameter 'type' does not accept value '{kind}'", option)

    def nic(self, text: str) -> None:
        option = f"-nic {text}"
        kind, pairs = _pairs(text, option, "type")
        if kind == "none":
            return
        mac = model = None
        rest = []
        for key, value in pairs:
            if key == "mac":
                from devices.virtio.net import parse_mac
                if parse_mac(value) is None:
                    raise _fail("invalid syntax for ethernet address", option)
                mac = value
            elif key == "model":
                model = value
            elif key != "id":
                rest.append((key, value))
        self._check_type(kind or "user", option)
        netdev_id = self._new_id()
        self._add(self._backend(kind or "user", netdev_id, rest, option), option)
        self.plan.nics.append(NicSpec(netdev_id, mac, model, option))

    def net(self, text: str) -> None:
        option = f"-net {text}"
        kind, pairs = _pairs(text, option, "type")
        if kind == "none":
            return
        values = dict(pairs)
        if kind == "nic":
            for key in values:
                if key not in ("netdev", "macaddr", "model", "name", "id", "addr",
                               "vectors"):
                    raise _fail(f"Invalid parameter '{key}'", option)
            mac = values.get("macaddr")
            if mac is not None:
                from devices.virtio.net import parse_mac
                if parse_mac(mac) is None:
                    raise _fail("invalid syntax for ethernet address", option)
            netdev = values.get("netdev")
            self.plan.nics.append(NicSpec(netdev, mac, values.get("model"), option,
                                          None if netdev else 0))
            return
        self._check_type(kind, option)
        netdev_id = values.get("id") or values.get("name") or self._new_id()
        rest = [(k, v) for k, v in pairs if k not in ("id", "name")]
        self._add(self._backend(kind, netdev_id, rest, option, hub=0), option)

    @staticmethod
    def _backend(kind: str | None, netdev_id: str, pairs: list[tuple[str, str]], option: str,
                 hub: int | None = None) -> NetdevSpec:
        if kind == "socket":
            spec = socket_options(netdev_id, pairs, option)
            return NetdevSpec(spec.id, spec.config, (), option, hub, "socket", spec.listen,
                              spec.connect)
        return user_options(netdev_id, pairs, option, hub)


def check_nic_model(nic: NicSpec, warn: Callable[[str], None]) -> bool:
    """Whether the NIC can be created here (virtio-net-device); otherwise QEMU's
    warning for a NIC the machine does not create."""
    if nic.model is None or nic.model in _NIC_MODELS:
        return True
    warn(f"requested NIC (anonymous, model {nic.model}) was not created (not supported "
         "by this machine?)")
    return False
