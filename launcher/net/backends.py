"""The network backends of one run: opened from a NetPlan, started with the loop,
closed at exit; and QEMU's hub for the legacy ``-net`` options."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from launcher.net.options import NetPlan, check_nic_model
from launcher.net.stream import SocketNetdev
from launcher.net.user import Loop, NetdevError, UserNetdev


class HubPort:
    """One port of a hub: what its client sends goes to every other port."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self._receive: Callable[[bytes], None] | None = None

    @property
    def connected(self) -> bool:
        return self._receive is not None

    def connect(self, receive: Callable[[bytes], None],
                set_link: Callable[[bool], None] | None = None, *,
                receive_batch: Callable[[Sequence[bytes]], None] | None = None) -> None:
        self._receive = receive  # (a hub passes frames on one at a time)

    def send(self, frame: bytes) -> None:
        for port in self.hub.ports:
            if port is not self and port._receive is not None:
                port._receive(frame)


class Hub:
    """QEMU's net hub (``-net``'s implicit hub 0)."""

    def __init__(self, hub_id: int) -> None:
        self.id = hub_id
        self.ports: list[HubPort] = []

    def port(self) -> HubPort:
        port = HubPort(self, f"hub{self.id}port{len(self.ports)}")
        self.ports.append(port)
        return port


class NetBackends:
    """The backends by netdev id (``netdevs``, what -device netdev= refers to), and
    the NICs to plug as (netdev id, mac, option text)."""

    def __init__(self, plan: NetPlan, warn: Callable[[str], None]) -> None:
        self.users: list[UserNetdev] = []
        self.sockets: list[SocketNetdev] = []
        self.netdevs: dict[str, UserNetdev | SocketNetdev | HubPort] = {}
        self.nics: list[tuple[str | None, str | None, str]] = []  # netdev, mac, option
        self.hubs: dict[int, Hub] = {}
        try:
            for spec in plan.netdevs:
                backend: UserNetdev | SocketNetdev
                try:
                    if spec.kind == "socket":
                        backend = SocketNetdev(spec.id, listen=spec.listen,
                                               connect=spec.connect)
                        self.sockets.append(backend)
                    else:
                        backend = UserNetdev(spec.id, spec.config, spec.forwards,
                                             guest_forwards=spec.guest_forwards,
                                             smb=spec.smb, smb_server=spec.smb_server)
                        self.users.append(backend)
                except NetdevError as exc:
                    raise NetdevError(str(exc), spec.spec) from None
                if spec.hub is None:
                    self.netdevs[spec.id] = backend
                else:
                    port = self._hub(spec.hub).port()
                    port.connect(backend.send)
                    backend.connect(port.send)
            for nic in plan.nics:
                if not check_nic_model(nic, warn):
                    continue
                netdev = nic.netdev
                if nic.hub is not None:
                    port = self._hub(nic.hub).port()
                    self.netdevs[port.name] = port
                    netdev = port.name
                self.nics.append((netdev, nic.mac, nic.spec))
        except BaseException:
            self.close()
            raise

    def _hub(self, hub_id: int) -> Hub:
        if hub_id not in self.hubs:
            self.hubs[hub_id] = Hub(hub_id)
        return self.hubs[hub_id]

    def unconnected_warnings(self) -> list[str]:
        """QEMU's warnings for backends no NIC uses (after the machine is built)."""
        warnings = []
        for hub in self.hubs.values():
            if not any(p.name in self.netdevs and p.connected for p in hub.ports):
                warnings.append(f"hub {hub.id} with no nics")
        for netdev_id, backend in self.netdevs.items():
            if not isinstance(backend, HubPort) and not backend.connected:
                warnings.append(f"netdev {netdev_id} has no peer")
        return warnings

    def start(self, loop: Loop) -> None:
        """Hand the backends to the loop (posted: they start once it runs)."""
        for backend in [*self.users, *self.sockets]:
            loop.post(lambda backend=backend: backend.start(loop))

    def user(self, netdev_id: str) -> UserNetdev | None:
        return next((u for u in self.users if u.id == netdev_id), None)

    def close(self) -> None:
        for backend in [*self.users, *self.sockets]:
            backend.close()
        self.users.clear()
        self.sockets.clear()
