"""The devices ``-device`` can plug into a virtio-mmio slot, with their properties.

One table drives both ``-device help`` / ``-device NAME,help`` (QEMU's listing format)
and building the device. Only the properties llvmtcg implements are listed; QEMU's
others are refused by name rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devices.virtio import RawFileBackend, VirtioBlk, VirtioDevice, VirtioRng

if TYPE_CHECKING:
    from machines.machine import DeviceOptions, DriveOptions


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
    backend: RawFileBackend


Factory = Callable[[Mapping[str, str], Mapping[str, Drive]], VirtioDevice]


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


def _build_blk(props: Mapping[str, str], drives: Mapping[str, Drive]) -> VirtioDevice:
    drive_id = props.get("drive")
    if drive_id is None:
        raise DeviceOptionError("drive property not set")
    drive = drives.get(drive_id)
    if drive is None:
        raise DeviceOptionError(f"Property 'virtio-blk-device.drive' can't find value "
                                f"'{drive_id}'")
    serial = props.get("serial", "")
    if not serial.isascii():
        raise DeviceOptionError("Property 'virtio-blk-device.serial' must be ASCII")
    return VirtioBlk(drive.backend, serial=serial)


def _build_rng(props: Mapping[str, str], drives: Mapping[str, Drive]) -> VirtioDevice:
    return VirtioRng()


VIRTIO_DEVICES: tuple[PluggableDevice, ...] = (
    PluggableDevice(
        "virtio-blk-device", "Storage", "virtio-bus",
        (DeviceProperty("drive", "str",
                        "Node name or ID of a block device to use as a backend"),
         DeviceProperty("serial", "str")),
        _build_blk),
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


def open_drives(drives: Sequence[DriveOptions]) -> dict[str, Drive]:
    """Open the ``if=none`` drives (those -device can use) by id."""
    opened: dict[str, Drive] = {}
    for drive in drives:
        if drive.interface != "none" or drive.id is None:
            continue
        try:
            backend = RawFileBackend(drive.file, read_only=drive.read_only)
        except OSError as exc:
            for other in opened.values():
                other.backend.close()
            raise DeviceOptionError(f"Could not open '{drive.file}': {exc.strerror}",
                                    drive.spec) from None
        opened[drive.id] = Drive(drive.id, backend)
    return opened


def build_virtio_devices(devices: Sequence[DeviceOptions], drives: Mapping[str, Drive], *,
                         slots: int) -> dict[int, VirtioDevice]:
    """The -device virtio devices, by plug order (0 = first -device). A drive serves
    one device."""
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
            built[len(built)] = device.build(props, drives)
        except DeviceOptionError as exc:
            raise DeviceOptionError(str(exc), options.spec) from None
        if drive_id is not None:
            used.add(drive_id)
    return built
