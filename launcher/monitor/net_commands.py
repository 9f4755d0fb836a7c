"""The human monitor's network commands, as QEMU 7.2 prints them: ``info network``,
``hostfwd_add``, ``hostfwd_remove`` and ``set_link``. Each takes the HMP engine
(``commands.vm.network`` is the run's launcher.net.backends.NetBackends, or None) and
the argument text, and returns what the monitor prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from launcher.net.options import parse_hostfwd
from launcher.net.user import NetdevError, UserNetdev

if TYPE_CHECKING:
    from launcher.monitor.hmp import HmpCommands


def _users(commands: HmpCommands) -> list[UserNetdev]:
    network = getattr(commands.vm, "network", None)
    return list(network.users) if network is not None else []


def _lookup(commands: HmpCommands, netdev_id: str | None) -> UserNetdev | str:
    """QEMU's slirp_lookup: the user network named (or the first), or the message."""
    users = _users(commands)
    if netdev_id is None:
        return users[0] if users else "user mode network stack not in use\n"
    for user in users:
        if user.id == netdev_id:
            return user
    network = getattr(commands.vm, "network", None)
    if network is not None and netdev_id in network.netdevs:
        return f"invalid netdev id '{netdev_id}'\n"
    return f"unrecognized netdev id '{netdev_id}'\n"


def hostfwd_add(commands: HmpCommands, args: str) -> str:
    words = args.split()
    if not 1 <= len(words) <= 2:
        return "hostfwd_add: [netdev_id] [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport\n"
    netdev_id, rule = (words[0], words[1]) if len(words) == 2 else (None, words[0])
    user = _lookup(commands, netdev_id)
    if isinstance(user, str):
        return user
    try:
        user.add_forward(parse_hostfwd(rule))
    except NetdevError as exc:
        return f"{exc}\n"
    return ""


def hostfwd_remove(commands: HmpCommands, args: str) -> str:
    words = args.split()
    if not 1 <= len(words) <= 2:
        return "hostfwd_remove: [netdev_id] [tcp|udp]:[hostaddr]:hostport\n"
    netdev_id, rule = (words[0], words[1]) if len(words) == 2 else (None, words[0])
    user = _lookup(commands, netdev_id)
    if isinstance(user, str):
        return user
    try:  # the host side of a rule: parse it with a dummy guest side
        parsed = parse_hostfwd(rule + "-:1")
    except NetdevError:
        return "invalid format\n"
    if user.remove_forward(parsed.udp, parsed.host_addr, parsed.host_port):
        return f"host forwarding rule for {rule} removed\n"
    return f"host forwarding rule for {rule} not found\n"


def info_network(commands: HmpCommands, _: str) -> str:
    network = getattr(commands.vm, "network", None)
    if network is None:
        return ""
    return "".join(f"{backend.info()}\n" for backend in [*network.users, *network.sockets])


def set_link(commands: HmpCommands, args: str) -> str:
    """``set_link NETDEV on|off`` (a -netdev id; its NIC follows)."""
    words = args.split()
    if len(words) != 2 or words[1] not in ("on", "off"):
        return "set_link: name on|off\n"
    network = getattr(commands.vm, "network", None)
    backend = network.netdevs.get(words[0]) if network is not None else None
    if backend is not None and hasattr(backend, "set_link"):
        backend.set_link(words[1] == "on")
        return ""
    return f"Error: Device '{words[0]}' not found\n"
