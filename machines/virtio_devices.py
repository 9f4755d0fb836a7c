"""The devices ``-device`` can plug into a virtio-mmio slot, with their properties.

One table drives both ``-device help`` / ``-device NAME,help`` (QEMU's listing format)
and building the device. Only the properties llvmtcg implements are listed; QEMU's
others are refused by name rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devices.virtio import BlockBackend, VirtioBlk, VirtioDevice, VirtioNet, VirtioRng
from devices.virtio.net import NetBackend, default_mac, parse_mac

if TYPE_CHECKING:
    from machines.machine import BlockdevOptions, DeviceOptions, DriveOptions


class DeviceOptionError(ValueError):
    """A -device or -drive that cannot be used, with QEMU's message; ``option`` is the
    option's text when the message is about one (QEMU prefixes it)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True, slots=True)
class DeviceProperty:
    name: str
    type: str  # as QEMU prints it: str, bool, uint32, ...
    description: str = ""
    default: str | None = None  # JSON text QEMU prints, e.g. "true" or '"auto"'

    def help_line(self) -> str:
        """QEMU's object_property_help line."""
        line = f"  {self.name}=<{self.type}>"
        if self.description or self.default is not None:
            line = line.ljust(24) + " - " + self.description
            if self.default is not None:
                line += f" (default: {self.default})"
        return line


@dataclass(frozen=True, slots=True)
class Drive:
    """What a -drive gives a device: an opened backend."""

    id: str
    backend: BlockBackend
    write_cache: bool = True  # the cache mode's initial write-cache (WCE) state


@dataclass(slots=True)
class Backends:
    """What -device properties refer to: drives and netdevs by id; ``default_macs``
    counts the NICs given QEMU's default MAC so far (each gets the next one)."""

    drives: Mapping[str, Drive]
    netdevs: Mapping[str, NetBackend]
    default_macs: int = 0


Factory = Callable[[Mapping[str, str], Backends], VirtioDevice]


@dataclass(frozen=True, slots=True)
class PluggableDevice:
    name: str
    category: str  # QEMU's device category heading ("Storage", "Misc")
    bus: str
    properties: tuple[DeviceProperty, ...]
    build: Factory
    description: str = ""

    def info_line(self) -> str:
        """QEMU's qdev_print_devinfo line."""
        line = f'name "{self.name}", bus {self.bus}'
        if self.description:
            line += f', desc "{self.description}"'
        return line

    def help_text(self) -> str:
        if not self.properties:
            return f"There are no options for {self.name}.\n"
        lines = sorted(p.help_line() for p in self.properties)
        return f"{self.name} options:\n" + "".join(line + "\n" for line in lines)


def _build_blk(props: Mapping[str, str], backends: Backends) -> VirtioDevice:
    drive_id = props.get("drive")
    if drive_id is None:
        raise DeviceOptionError("drive property not set")
    drive = backends.drives.get(drive_id)
    if drive is None:
        raise DeviceOptionError(f"Property 'virtio-blk-device.drive' can't find value "
                                f"'{drive_id}'")
    serial = props.get("serial", "")
    if not serial.isascii():
        raise DeviceOptionError("Property 'virtio-blk-device.serial' must be ASCII")
    return VirtioBlk(drive.backend, serial=serial, write_cache=drive.write_cache)


def _build_rng(props: Mapping[str, str], backends: Backends) -> VirtioDevice:
    return VirtioRng()


def _build_net(props: Mapping[str, str], backends: Backends) -> VirtioDevice:
    text = props.get("mac")
    if text is None:
        mac = default_mac(backends.default_macs)
        backends.default_macs += 1
    else:
        parsed = parse_mac(text)
        if parsed is None:
            raise DeviceOptionError(f"Property 'virtio-net-device.mac' doesn't take value "
                                    f"'{text}'")
        mac = parsed
    host_mtu = _uint16("host_mtu", props["host_mtu"]) if "host_mtu" in props else 0
    multiqueue = _bool_property("mq", props["mq"]) if "mq" in props else False
    netdev_id = props.get("netdev")
    if netdev_id is None:
        # QEMU's NIC without a backend: frames go nowhere.
        return VirtioNet(mac, host_mtu=host_mtu, multiqueue=multiqueue)
    backend = backends.netdevs.get(netdev_id)
    if backend is None:
        raise DeviceOptionError(f"Property 'virtio-net-device.netdev' can't find value "
                                f"'{netdev_id}'")
    if backend.connected:
        raise DeviceOptionError(f"Property 'virtio-net-device.netdev' can't take value "
                                f"'{netdev_id}', it's in use")
    nic = VirtioNet(mac, backend, host_mtu=host_mtu, multiqueue=multiqueue)
    backend.connect(nic.receive, nic.set_link, receive_batch=nic.receive_batch)
    return nic


def _uint16(name: str, text: str) -> int:
    """A uint16 property as QEMU's string visitor reads it (strtoull, base 0)."""
    body = text.lstrip()
    negative = body.startswith("-")
    body = body.lstrip("+-") if body[:1] in "+-" else body
    try:
        if body[:2].lower() == "0x":
            value = int(body[2:], 16)
        elif body.startswith("0") and len(body) > 1:
            value = int(body[1:], 8)
        else:
            value = int(body, 10)
    except ValueError:
        raise DeviceOptionError(f"Parameter '{name}' expects integer") from None
    if negative and value:
        value = (1 << 64) - value  # strtoull wraps a negative number
    if value > 0xFFFF:
        raise DeviceOptionError(f"Parameter '{name}' expects uint16_t")
    return value


def _bool_property(name: str, text: str) -> bool:
    if text in ("on", "yes", "true", "y"):
        return True
    if text in ("off", "no", "false", "n"):
        return False
    raise DeviceOptionError(f"Parameter '{name}' expects 'on' or 'off'")


VIRTIO_DEVICES: tuple[PluggableDevice, ...] = (
    PluggableDevice(
        "virtio-blk-device", "Storage", "virtio-bus",
        (DeviceProperty("drive", "str",
                        "Node name or ID of a block device to use as a backend"),
         DeviceProperty("serial", "str")),
        _build_blk),
    PluggableDevice(
        "virtio-net-device", "Network", "virtio-bus",
        (DeviceProperty("mac", "str", "Ethernet 6-byte MAC Address, example: "
                        "52:54:00:12:34:56"),
         DeviceProperty("netdev", "str", "ID of a netdev to use as a backend"),
         DeviceProperty("host_mtu", "uint16", default="0"),
         DeviceProperty("mq", "bool", "on/off", default="false")),
        _build_net),
    PluggableDevice("virtio-rng-device", "Misc", "virtio-bus", (), _build_rng),
)

BY_NAME = {d.name: d for d in VIRTIO_DEVICES}

# QEMU's category order for -device help.
CATEGORIES = ("Controller/Bridge/Hub", "USB", "Storage", "Network", "Input", "Display",
              "Sound", "Misc", "CPU", "Watchdog", "Uncategorized")


def device_list_text(devices: tuple[PluggableDevice, ...] = VIRTIO_DEVICES) -> str:
    """``-device help``: devices by category, as qdev_print_devinfos prints them."""
    out: list[str] = []
    for category in CATEGORIES:
        members = sorted((d for d in devices if d.category == category), key=lambda d: d.name)
        if members:
            out.append(f"{chr(10) if out else ''}{category} devices:\n")
            out.extend(d.info_line() + "\n" for d in members)
    return "".join(out)


def check_properties(device: PluggableDevice, props: Mapping[str, str]) -> None:
    known = {p.name for p in device.properties}
    for name in props:
        if name not in known:
            raise DeviceOptionError(f"Property '{device.name}.{name}' not found")


# QEMU's -drive cache= modes (bdrv_parse_cache_mode): whether the guest sees a write
# cache, and whether flushes reach the disk. "direct" (O_DIRECT) only changes how the
# host caches the image, never what the guest sees, so none/directsync are
# writeback/writethrough here.
_CACHE_MODES = {  # mode: (write cache enabled, flushes ignored)
    "writeback": (True, False), "none": (True, False), "off": (True, False),
    "writethrough": (False, False), "directsync": (False, False),
    "unsafe": (True, True),
}
CACHE_MODES = tuple(_CACHE_MODES)


class BlockDevices:
    """The block nodes of one machine: ``drives`` by -drive id and -blockdev
    node-name, in one :class:`blockdev.graph.BlockGraph`; ``close`` closes them all."""

    def __init__(self, warn: Callable[[str], None] | None = None) -> None:
        from blockdev.graph import BlockGraph
        self.graph = BlockGraph(warn=warn)
        self.drives: dict[str, Drive] = {}
        self.attached: dict[str, str] = {}  # drive id -> QOM path of its device
        # The node names of -blockdev and QMP blockdev-add nodes: the monitor owns them,
        # so only they can be removed with blockdev-del (QEMU's monitor_bdrv_states).
        self.monitor_owned: set[str] = set()

    def close(self) -> None:
        self.graph.close_all()
        self.drives.clear()


def _unexpected_key(message: str) -> str | None:
    """The key of the block layer's "Parameter 'KEY' is unexpected", else None."""
    prefix, suffix = "Parameter '", "' is unexpected"
    if message.startswith(prefix) and message.endswith(suffix):
        return message[len(prefix):-len(suffix)]
    return None


def _block_message(exc: OSError) -> str:
    from blockdev.errors import BlockError
    if isinstance(exc, BlockError):
        return str(exc) + (f"\n{exc.hint}" if exc.hint else "")
    return f"{exc.strerror or exc}"


def open_drives(drives: Sequence[DriveOptions],
                blockdevs: Sequence[BlockdevOptions] = (), *,
                warn: Callable[[str], None] | None = None) -> BlockDevices:
    """Open the -blockdev nodes (by node-name) and the ``if=none``/``if=virtio`` drives
    (by id) on the block layer: raw or qcow2 (probed without ``format=``), read-only,
    ``snapshot=on`` (a temporary overlay; the image is never written), cache modes.
    Bad options, missing files, wrong formats and images locked by another process
    raise DeviceOptionError with QEMU's message, naming the option."""
    opened = BlockDevices(warn)
    try:
        for blockdev in blockdevs:
            _open_blockdev(opened, blockdev)
        for drive in drives:
            if drive.interface in ("none", "virtio") and drive.id is not None:
                _open_drive(opened, drive)
    except BaseException:
        opened.close()
        raise
    return opened


def _open_blockdev(opened: BlockDevices, blockdev: BlockdevOptions) -> None:
    name = blockdev.options.get("node-name")
    if not isinstance(name, str):
        raise DeviceOptionError("'node-name' must be specified for the root node",
                                blockdev.spec)
    if name in opened.drives:
        raise DeviceOptionError(f"Duplicate nodes with node-name='{name}'", blockdev.spec)
    try:
        node = opened.graph.open(blockdev.options)
    except OSError as exc:
        raise DeviceOptionError(_block_message(exc), blockdev.spec) from None
    opened.drives[name] = Drive(name, node)
    opened.monitor_owned.add(name)


def _open_drive(opened: BlockDevices, drive: DriveOptions) -> None:
    assert drive.id is not None
    if drive.id in opened.drives:
        raise DeviceOptionError(f"Duplicate ID '{drive.id}' for drive", drive.spec)
    mode = _CACHE_MODES.get(drive.cache)
    if mode is None:
        raise DeviceOptionError("invalid cache option", drive.spec)
    write_cache, no_flush = mode
    extra: dict[str, object] = dict(drive.block_options)
    if no_flush:
        extra["cache.no-flush"] = "on"
    try:
        node = opened.graph.open_image(drive.file, format=drive.format,
                                       read_only=drive.read_only, snapshot=drive.snapshot,
                                       extra=extra)
    except OSError as exc:
        key = _unexpected_key(str(exc))
        message = (_block_message(exc) if key is None else
                   f"Block format '{drive.format or 'raw'}' does not support the option "
                   f"'{key}'")
        raise DeviceOptionError(message, drive.spec) from None
    opened.drives[drive.id] = Drive(drive.id, node, write_cache)


def build_virtio_devices(devices: Sequence[DeviceOptions], drives: Mapping[str, Drive], *,
                         slots: int, netdevs: Mapping[str, NetBackend] | None = None,
                         attached: dict[str, str] | None = None) -> dict[int, VirtioDevice]:
    """The -device virtio devices, by plug order (0 = first -device). A drive serves
    one device, a netdev one NIC. ``attached`` receives each used drive's device as
    its QOM path (the monitors' ``qdev``)."""
    backends = Backends(drives, netdevs or {})
    built: dict[int, VirtioDevice] = {}
    used: set[str] = set()
    for options in devices:
        device = BY_NAME.get(options.driver)
        if device is None:
            raise DeviceOptionError(f"'{options.driver}' is not a valid device model name",
                                    options.spec)
        props = dict(options.properties)
        try:
            check_properties(device, props)
            drive_id = props.get("drive")
            if drive_id is not None and drive_id in used:
                raise DeviceOptionError(f"Property '{device.name}.drive' can't take value "
                                        f"'{drive_id}', it's in use")
            if len(built) == slots:
                raise DeviceOptionError(f"No '{device.bus}' bus found for device "
                                        f"'{device.name}'")
            built[len(built)] = device.build(props, backends)
        except DeviceOptionError as exc:
            raise DeviceOptionError(str(exc), options.spec) from None
        if drive_id is not None:
            used.add(drive_id)
            if attached is not None:
                attached[drive_id] = (f"/machine/peripheral/{options.id}" if options.id
                                      else f"/machine/peripheral-anon/device[{len(built) - 1}]")
    return built
