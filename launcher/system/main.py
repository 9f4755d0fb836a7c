"""``llvmtcg-system-<target>``: QEMU's command line in, a machine run (or a listing) out.

Flow: parse the options; answer ``help`` requests; check every value (each problem is
one line in QEMU's wording and exit status 1); open the chardevs; build the
machine; ``-machine ...,dumpdtb=FILE`` writes its device tree and exits 0; otherwise
create the CPU and run the main loop until the guest powers off (its status), a
``C-a x``, or a signal.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from launcher.monitor.consoles import ConsoleError, ConsoleOptions, Consoles, open_consoles
from launcher.system.options import (
    HELP_WORDS,
    OptionError,
    Options,
    parse_args,
    parse_list,
    parse_ram_size,
    split_list,
)

if TYPE_CHECKING:  # the machine modules are imported only when a machine is built
    from launcher.net.backends import NetBackends
    from launcher.net.options import NetPlan
    from llvmtcg.log import Log
    from machines.loop import MachineLoop
    from machines.machine import (
        BlockdevOptions,
        DeviceOptions,
        DriveOptions,
        Machine,
        MachineOptions,
    )
    from machines.numa import NumaConfig
    from machines.registry import MachineType
    from machines.riscv_cpu import RiscvCpuConfig

VERSION = "0.1.0"
QEMU_VERSION = "7.2"

# -d items: the runtime's (llvmtcg.log) and the devices' guest_errors.
DEVICE_LOG_ITEMS = {"guest_errors": "log when the guest OS does something invalid (eg "
                                    "accessing a non-existent register)"}
_QEMU_DISPLAYS = ("gtk", "sdl", "curses", "egl-headless", "spice-app", "dbus", "cocoa",
                  "vnc", "default")
_KNOWN_FORMATS = ("qcow", "vmdk", "vdi", "vhdx", "vpc", "qed", "parallels",
                  "dmg", "cloop", "bochs", "luks", "vvfat", "file", "host_device")
_DRIVE_INTERFACES = ("ide", "scsi", "sd", "mtd", "floppy", "pflash", "virtio", "none", "xen")
_DRIVE_KEYS = ("file", "format", "if", "id", "readonly", "read-only", "unit", "index",
               "snapshot", "cache")
_FORMAT_KEYS = {"raw": ("offset", "size", "discard"),  # -drive keys the format node takes
                "qcow2": ("lazy-refcounts", "l2-cache-size", "refcount-cache-size",
                          "discard")}
_SMP_KEYS = ("cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus")
_MACHINE_PROPS = {  # property: (type, description) as -machine TYPE,help prints them
    "append": ("string", "Linux kernel command line"),
    "dtb": ("string", "Linux kernel device tree file"),
    "dumpdtb": ("string", "Dump current dtb to a file and quit"),
    "firmware": ("string", "Firmware image"),
    "initrd": ("string", "Linux initial ramdisk file"),
    "kernel": ("string", "Linux kernel image file"),
}


class Exit(Exception):
    """End the launcher with ``status`` after printing ``message`` (if any)."""

    def __init__(self, status: int, message: str | None = None,
                 option: str | None = None, *, bare: bool = False,
                 more: tuple[str, ...] = ()) -> None:
        super().__init__(message or "")
        self.status = status
        self.message = message
        self.option = option
        self.bare = bare  # print the message as it is, without the program name
        self.more = more  # further errors, each printed as the message is


def _fail(message: str, option: str | None = None) -> Exit:
    return Exit(1, message, option)


@dataclass(frozen=True, slots=True)
class Target:
    """What differs between llvmtcg-system-* programs."""

    name: str  # "riscv64"
    prog: str  # "llvmtcg-system-riscv64"


def main(target: Target, argv: list[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the launcher; returns the exit status (tests call this directly)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = sys.argv[1:] if argv is None else argv
    return run_reporting_errors(target, lambda: _main(target, args, out, err), err)


def run_reporting_errors(target: Target, run: Callable[[], int], err: TextIO) -> int:
    """``run()``, with its Exit and option errors written as QEMU writes them
    (``prog: option: message``) and turned into the exit status."""
    try:
        return run()
    except Exit as exit_:
        if exit_.message:
            prefix = "" if exit_.bare else f"{target.prog}: " + (
                f"{exit_.option}: " if exit_.option else "")
            err.write(prefix + exit_.message + "\n")
            for message in exit_.more:
                err.write(prefix + message + "\n")
        return exit_.status
    except OptionError as exc:
        prefix = f"{target.prog}: " + (f"{exc.option}: " if exc.option else "")
        err.write(prefix + str(exc) + "\n")
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the run (a socket server waiting)
        err.write(f"{target.prog}: terminating on signal {int(signal.SIGINT)}\n")
        return 0


def _main(target: Target, args: list[str], out: TextIO, err: TextIO) -> int:
    options = parse_args(args)
    if options.show_help:
        out.write(usage(target))
        return 0
    if options.show_version:
        out.write(f"{target.prog} version {VERSION} (QEMU {QEMU_VERSION} command line)\n")
        return 0
    listing = _help_request(target, options)
    if listing is not None:
        out.write(listing)
        return 0

    from machines.machine import MachineError
    from machines.registry import find_machine

    machine_type = find_machine(target.name, options.machine)
    if machine_type is None:
        raise _fail("unsupported machine type\nUse -machine help to list supported machines")
    build = machine_type.builder()
    def warn(text: str) -> None:
        err.write(f"{target.prog}: warning: {text}\n")

    plan = _check(target, options, machine_type.name, warn, machine_type.max_cpus)
    plan.numa = _check_numa(options, plan, machine_type,
                            lambda text: err.write(f"{target.prog}: {text}\n"))
    plan.gdb = options.gdb[-1] if options.gdb else None

    guest_error = None
    log_stream: TextIO | None = None
    cpu_log = None
    if plan.log_items:
        from llvmtcg.log import Log
        log_stream = _open_log(options.log_file) if options.log_file else err
        if "guest_errors" in plan.log_items:
            guest_error = _line_writer(log_stream)
        cpu_log = Log(plan.log_items - DEVICE_LOG_ITEMS.keys(), log_stream)

    consoles = _open_consoles(target, options, err)
    network = None
    try:
        network = _open_network(plan, warn)
        machine_options = _machine_options(plan, consoles, guest_error, cpu_log,
                                           _block_warning(warn), network)
        try:
            machine = build(machine_options)
        except MachineError as exc:
            raise _fail(str(exc), exc.option) from None
        if network is not None:
            for text in network.unconnected_warnings():
                warn(text)
        try:
            return _start(target, machine, plan, consoles, options, err, network)
        finally:
            machine.close()
    finally:
        if network is not None:
            network.close()
        consoles.close()
        if log_stream is not None and log_stream is not err:
            log_stream.close()


def _line_writer(stream: TextIO) -> Callable[[str], None]:
    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()
    return write


# -- help ----------------------------------------------------------------------------------
def usage(target: Target) -> str:
    return (f"usage: {target.prog} [options]\n"
            f"QEMU {QEMU_VERSION}-compatible full-system emulator (llvmtcg {VERSION}).\n\n"
            "  -M/-machine TYPE[,dumpdtb=FILE]   machine (-M help lists them)\n"
            "  -m SIZE[M|G]                      RAM size\n"
            "  -smp N[,cores=N,threads=N]        number of harts (virt: up to 512)\n"
            "  -cpu MODEL[,ext=on|off]           CPU model (-cpu help)\n"
            "  -accel tcg                        accelerator\n"
            "  -bios FILE|default|none           firmware\n"
            "  -kernel FILE  -initrd FILE  -append CMDLINE  -dtb FILE\n"
            "  -nographic  -display none  -serial stdio|mon:stdio|null|file:PATH\n"
            "  -drive file=FILE,format=raw|qcow2,if=none|virtio,id=ID[,readonly=on]\n"
            "         [,snapshot=on][,cache=writeback|writethrough|none|unsafe]\n"
            "  -blockdev driver=qcow2,node-name=N,file.driver=file,file.filename=FILE\n"
            "  -snapshot                         writes go to temporary overlays\n"
            "  -loadvm NAME                      start from an internal VM snapshot (savevm)\n"
            "  -device virtio-blk-device,drive=ID  -device virtio-rng-device  (-device help)\n"
            "  -netdev user,id=ID[,net=ADDR/MASK][,hostfwd=tcp::HOSTPORT-:GUESTPORT]\n"
            "  -device virtio-net-device,netdev=ID[,mac=MAC]  -nic user,...  -net nic -net user\n"
            "  -chardev BACKEND,id=ID,...  -monitor DEV  -qmp DEV  -mon chardev=ID,mode=M\n"
            "  -S  -no-shutdown                  (docs/managing.md)\n"
            "  -no-reboot  -d ITEMS  -D LOGFILE  -version\n"
            "  -gdb tcp::PORT|unix:PATH  -s (= -gdb tcp::1234)\n"
            "When using -nographic, press 'ctrl-a h' to get some help.\n")


def _help_request(target: Target, options: Options) -> str | None:
    """The listing a ``help`` value asks for, or None."""
    from machines.registry import find_machine, help_text

    if options.machine in HELP_WORDS:
        return help_text(target.name)
    if options.machine_help:
        machine_type = find_machine(target.name, options.machine)
        if machine_type is None:
            raise _fail("unsupported machine type\n"
                        "Use -machine help to list supported machines")
        lines = [_prop_line(name, kind, text) for name, (kind, text) in _MACHINE_PROPS.items()]
        return f"{machine_type.name}-machine options:\n" + "".join(sorted(lines))
    if options.cpu is not None and split_list(options.cpu)[0] in HELP_WORDS:
        from machines.riscv_cpu import CPU_MODELS
        return "".join(f"{model}\n" for model in CPU_MODELS)
    for text in options.accel:
        if parse_list(text, f"-accel {text}", "accel").implied in HELP_WORDS:
            return "Accelerators supported in QEMU binary:\ntcg\n"
    if options.display is not None and split_list(options.display)[0] in HELP_WORDS:
        return "Available display backend types:\nnone\n"
    if options.log_items is not None and "help" in options.log_items.split(","):
        return _log_usage()
    from machines.virtio_devices import BY_NAME, device_list_text
    for text in options.devices:
        parts = split_list(text)
        if parts[0] in HELP_WORDS:
            return device_list_text()
        if any(p in HELP_WORDS or p.split("=", 1)[0] in HELP_WORDS for p in parts[1:]):
            device = BY_NAME.get(parts[0])
            if device is None:
                raise _fail(f"'{parts[0]}' is not a valid device model name",
                            f"-device {text}")
            return device.help_text()
    return None


def _prop_line(name: str, kind: str, description: str) -> str:
    return f"  {name}=<{kind}>".ljust(24) + f" - {description}\n"


def _log_items() -> dict[str, str]:
    from llvmtcg.log import LOG_ITEMS
    return {**LOG_ITEMS, **DEVICE_LOG_ITEMS}


def _log_usage() -> str:
    lines = ["Log items (comma separated):"]
    lines += [f"{name:<15} {text}" for name, text in _log_items().items()]
    return "\n".join(lines) + "\n"


# -- checking values -----------------------------------------------------------------------
@dataclass(slots=True)
class _Plan:
    """The command line, checked."""

    ram_size: int | None
    cpu: RiscvCpuConfig
    dumpdtb: str | None
    bios: str | None
    kernel: str | None
    initrd: str | None
    append: str | None
    dtb: str | None
    drives: list[DriveOptions]
    blockdevs: list[BlockdevOptions]
    devices: list[DeviceOptions]
    log_items: set[str]
    no_reboot: bool
    smp: int = 1
    gdb: str | None = None  # -gdb DEV / -s
    net: NetPlan | None = None  # -netdev/-nic/-net
    numa: NumaConfig | None = None  # -numa (and the -object backends it names)


def _check(target: Target, options: Options, machine_name: str,
           warn: Callable[[str], None], max_cpus: int = 1) -> _Plan:
    from machines.machine import DeviceOptions
    from machines.riscv_cpu import CpuOptionError, RiscvCpuConfig

    props = dict(options.machine_props)
    for name, _ in options.machine_props:
        if name not in _MACHINE_PROPS and name != "accel" and name != "type":
            raise _fail(f"Property '{machine_name}-machine.{name}' not found")
    if props.get("accel", "tcg") != "tcg":
        raise _fail(f"invalid accelerator {props['accel']}", options.machine_text)
    kernel = props.get("kernel", options.kernel)
    initrd = props.get("initrd", options.initrd)
    append = props.get("append", options.append)
    if kernel is None:
        if append is not None:
            raise _fail("-append only allowed with -kernel option")
        if initrd is not None:
            raise _fail("-initrd only allowed with -kernel option")

    ram_size = None
    if options.memory is not None:
        parsed = parse_list(options.memory, f"-m {options.memory}", "size")
        for key, _ in parsed.pairs:
            raise _fail(f"Parameter 'memory.{key}' is not supported by llvmtcg"
                        if key in ("slots", "maxmem") else f"Invalid parameter '{key}'",
                        f"-m {options.memory}")
        try:
            ram_size = parse_ram_size(parsed.implied or "") or None
        except ValueError:
            raise _fail("Parameter 'size' expects a non-negative number below 2^64",
                        f"-m {options.memory}") from None

    smp = 1
    if options.smp is not None:
        smp = _check_smp(options.smp, machine_name, max_cpus)

    cpu_parts = split_list(options.cpu) if options.cpu is not None else ["rv64"]
    cpu_options = []
    for part in cpu_parts[1:]:
        if "=" not in part:
            raise _fail(f"Expected key=value format, found {part}.")
        key, value = part.split("=", 1)
        cpu_options.append((key, value))
    try:
        cpu = RiscvCpuConfig.parse(cpu_parts[0], cpu_options)
    except CpuOptionError as exc:
        raise _fail(str(exc)) from None
    for text in cpu.warnings:
        warn(text)

    for text in options.accel:
        parsed = parse_list(text, f"-accel {text}", "accel")
        if parsed.implied != "tcg":
            raise _fail(f"invalid accelerator {parsed.implied}", f"-accel {text}")
        for key, _ in parsed.pairs:
            raise _fail(f"Property 'tcg-accel.{key}' not found", f"-accel {text}")

    if options.display is not None:
        parsed = parse_list(options.display, f"-display {options.display}", "type")
        if parsed.implied in _QEMU_DISPLAYS:
            raise _fail(f"Display '{parsed.implied}' is not available.")
        if parsed.implied != "none":
            raise _fail(f"Parameter 'type' does not accept value '{parsed.implied}'",
                        f"-display {options.display}")

    log_items: set[str] = set()
    if options.log_items is not None:
        log_items = {i for i in options.log_items.split(",") if i}
        unknown = log_items - _log_items().keys()
        if unknown:
            raise Exit(1, _log_usage().rstrip("\n"), bare=True)

    drives = [_check_drive(text, options.snapshot) for text in options.drives]
    blockdevs = [_check_blockdev(text) for text in options.blockdevs]
    seen: set[str] = set()
    for drive in drives:
        if drive.id is not None:
            if drive.id in seen:
                raise _fail(f"Duplicate ID '{drive.id}' for drive", drive.spec)
            seen.add(drive.id)
    devices = []
    for text in options.devices:
        parts = split_list(text)
        driver, pairs, device_id = parts[0], [], None
        for part in parts[1:]:
            if "=" not in part:
                raise _fail(f"Expected '=' after parameter '{part}'", f"-device {text}")
            key, value = part.split("=", 1)
            if key == "id":
                device_id = value
            else:
                pairs.append((key, value))
        devices.append(DeviceOptions(driver, tuple(pairs), device_id, f"-device {text}"))

    net = _check_network(options) if options.networks else None
    bios = props.get("firmware", options.bios)
    return _Plan(ram_size, cpu, props.get("dumpdtb"), bios, kernel, initrd, append,
                 props.get("dtb", options.dtb), drives, blockdevs, devices, log_items,
                 options.no_reboot, smp, net=net)


def _check_numa(options: Options, plan: _Plan, machine_type: MachineType,
                report: Callable[[str], None]) -> NumaConfig | None:
    """-object and -numa; ``report`` writes a line after the program name (QEMU's
    warnings here carry the option text, or "warning:" alone)."""
    from launcher.system.numa import check_numa, check_objects
    try:
        backends = check_objects(options.objects)
        if options.numa and not machine_type.numa:
            raise OptionError("NUMA is not supported by this machine-type",
                              f"-numa {options.numa[0]}")
        return check_numa(options.numa, backends, plan.smp,
                          plan.ram_size or machine_type.default_ram_size, report)
    except OptionError as exc:
        raise _fail(str(exc), exc.option) from None


def _check_network(options: Options) -> NetPlan:
    from launcher.net.options import NetOptions
    from launcher.net.user import NetdevError
    reader = NetOptions()
    for kind, text in options.networks:
        try:
            getattr(reader, kind)(text)
        except NetdevError as exc:
            raise _fail(str(exc), exc.option) from None
    return reader.plan


def _open_network(plan: _Plan, warn: Callable[[str], None]) -> NetBackends | None:
    """The -netdev backends (host ports are bound now), and a virtio-net-device per
    -nic / -net nic after the -device ones (as if=virtio drives are)."""
    if plan.net is None:
        return None
    from launcher.net.backends import NetBackends
    from launcher.net.slirp import SlirpUnavailable
    from launcher.net.user import NetdevError
    from machines.machine import DeviceOptions
    try:
        network = NetBackends(plan.net, warn)
    except SlirpUnavailable as exc:
        raise _fail(str(exc)) from None
    except NetdevError as exc:
        # QEMU reports some failures as several errors, each after the option (a
        # guestfwd chardev that cannot open: the chardev's error, then the rule's).
        first, *more = str(exc).split("\n")
        raise Exit(1, first, exc.option, more=tuple(more)) from None
    for netdev, mac, spec in network.nics:
        props = (("netdev", netdev),) if netdev is not None else ()
        props += (("mac", mac),) if mac is not None else ()
        plan.devices.append(DeviceOptions("virtio-net-device", props, spec=spec))
    return network


def _check_smp(text: str, machine_name: str, max_cpus: int) -> int:
    """-smp as QEMU 7.2's smp_parse reads it (cores preferred over sockets for
    omitted values); the number of harts."""
    parsed = parse_list(text, f"-smp {text}", "cpus")
    given: dict[str, int] = {}
    raw = {"cpus": parsed.implied} if parsed.implied is not None else {}
    for key, value in parsed.pairs:
        if key not in _SMP_KEYS:
            raise _fail(f"Parameter 'smp.{key}' is unexpected")
        raw[key] = value
    for key, value in raw.items():
        try:
            given[key] = int(value)
        except ValueError:
            raise _fail(f"Parameter 'smp.{key}' expects integer") from None
    for key in ("dies", "clusters"):
        if given.get(key, 1) > 1:
            raise _fail(f"{key} not supported by this machine's CPU topology")
    cpus, maxcpus = given.get("cpus", 0), given.get("maxcpus", 0)
    sockets, cores, threads = (given.get(k, 0) for k in ("sockets", "cores", "threads"))
    if cpus == 0 and maxcpus == 0:
        sockets, cores, threads = sockets or 1, cores or 1, threads or 1
    else:
        maxcpus = maxcpus or cpus
        if cores == 0:
            sockets, threads = sockets or 1, threads or 1
            cores = maxcpus // (sockets * threads) or 1
        elif sockets == 0:
            threads = threads or 1
            sockets = maxcpus // (cores * threads) or 1
        if threads == 0:
            threads = maxcpus // (sockets * cores) or 1
    maxcpus = maxcpus or sockets * cores * threads
    cpus = cpus or maxcpus
    topology = f"sockets ({sockets}) * cores ({cores}) * threads ({threads})"
    if sockets * cores * threads != maxcpus:
        raise _fail("Invalid CPU topology: product of the hierarchy must match maxcpus: "
                    f"{topology} != maxcpus ({maxcpus})")
    if maxcpus < cpus:
        raise _fail("Invalid CPU topology: maxcpus must be equal to or greater than smp: "
                    f"{topology} == maxcpus ({maxcpus}) < smp_cpus ({cpus})")
    if maxcpus > max_cpus:
        raise _fail(f"Invalid SMP CPUs {maxcpus}. The max CPUs supported by machine "
                    f"'{machine_name}' is {max_cpus}")
    # sockets > 1 lays the harts out as one socket, as QEMU 7.2's RISC-V boards do: their
    # sockets are NUMA nodes (riscv_socket_count), one CLINT/PLIC group and cpu-map
    # cluster each, and without -numa there is one (the same device tree; with -numa:
    # launcher/system/numa.py, machines/numa.py).
    return cpus


def _check_drive(text: str, snapshot_all: bool) -> DriveOptions:
    from machines.machine import DriveOptions
    from machines.virtio_devices import CACHE_MODES
    option = f"-drive {text}"
    parsed = parse_list(text, option, None)
    values = dict(parsed.pairs)
    fmt = values.get("format")
    block_options = []
    for key, value in parsed.pairs:
        if key in _DRIVE_KEYS:
            continue
        if "." not in key and key not in _FORMAT_KEYS.get(fmt or "raw", ()):
            raise _fail(f"Block format '{fmt or 'raw'}' does not support the option '{key}'",
                        option)
        block_options.append((key, value))  # for the block layer (file.locking=off)
    path = values.get("file")
    if not path:
        raise _fail('A block device must be specified for "file"', option)
    if fmt in _KNOWN_FORMATS:
        raise _fail(f"Block format '{fmt}' is not supported (only raw and qcow2 are)", option)
    if fmt is not None and fmt not in ("raw", "qcow2"):
        raise _fail(f"Unknown driver '{fmt}'", option)
    interface = values.get("if", "ide")
    if interface not in _DRIVE_INTERFACES:
        raise _fail(f"unsupported bus type '{interface}'", option)
    flags = {}
    for key, name in (("readonly", "read-only"), ("read-only", "read-only"),
                      ("snapshot", "snapshot")):
        if key in values:
            from machines.riscv_cpu import CpuOptionError, parse_bool
            try:
                flags[name] = parse_bool(name, values[key])
            except CpuOptionError as exc:
                raise _fail(str(exc), option) from None
    cache = values.get("cache", "writeback")
    if cache not in CACHE_MODES:
        raise _fail("invalid cache option", option)
    unit = values.get("unit", values.get("index"))
    try:
        unit_number = int(unit) if unit is not None else None
    except ValueError:
        raise _fail(f"Parameter 'unit' expects a number, not '{unit}'", option) from None
    return DriveOptions(path, interface, fmt, values.get("id"), flags.get("read-only", False),
                        unit_number, option, snapshot=flags.get("snapshot", snapshot_all),
                        cache=cache, block_options=tuple(block_options))


def _check_blockdev(text: str) -> BlockdevOptions:
    """-blockdev in JSON (``{...}``) or dotted keys (``driver=qcow2,file.filename=…``)."""
    import json

    from blockdev.graph import unflatten
    from machines.machine import BlockdevOptions
    option = f"-blockdev {text}"
    if text.lstrip().startswith("{"):
        try:
            tree = json.loads(text)
        except json.JSONDecodeError as exc:
            what = "premature EOI" if exc.pos >= len(text.rstrip()) else exc.msg
            raise _fail(f"JSON parse error, {what}", option) from None
        if not isinstance(tree, dict):
            raise _fail("JSON parse error, expected an object", option)
        return BlockdevOptions(unflatten(tree), option)
    pairs: dict[str, str] = {}
    for part in split_list(text):
        if "=" not in part:
            raise _fail(f"Expected '=' after parameter '{part}'", option)
        key, value = part.split("=", 1)
        if not key:
            raise _fail("Invalid parameter ''", option)
        pairs[key] = value
    try:
        return BlockdevOptions(unflatten(pairs), option)
    except OSError as exc:
        raise _fail(str(exc), option) from None


def _open_log(path: str) -> TextIO:
    try:
        return open(path, "w")  # noqa: SIM115 - closed by _main
    except OSError as exc:
        raise _fail(f"Error opening logfile {path}: {exc.strerror}") from None


# -- character devices and monitors ------------------------------------------------------
def _open_consoles(target: Target, options: Options, err: TextIO) -> Consoles:
    def info(option: str, text: str) -> None:
        err.write(f"{target.prog}: {option}: info: {text}\n")
        err.flush()

    def announce(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    console_options = ConsoleOptions(
        chardevs=options.chardevs, serials=options.serial, monitors=options.monitors,
        mons=options.mons, qmps=options.qmps, nographic=options.nographic)
    try:
        return open_consoles(console_options, info=info, announce=announce)
    except ConsoleError as exc:
        raise _fail(str(exc), exc.option) from None


def _block_warning(warn: Callable[[str], None]) -> Callable[[str], None]:
    """The block layer's warnings ("WARNING: …", qemu-img's style) as QEMU's system
    emulator prints them (``prog: warning: …``)."""
    def block_warn(message: str) -> None:
        warn(message.removeprefix("WARNING: "))
    return block_warn


def _machine_options(plan: _Plan, consoles: Consoles,
                     guest_error: Callable[[str], None] | None,
                     cpu_log: Log | None, warn: Callable[[str], None],
                     network: NetBackends | None = None) -> MachineOptions:
    from machines import machine
    serial = consoles.serial
    return machine.MachineOptions(
        ram_size=plan.ram_size, cpu=plan.cpu, smp=plan.smp, numa=plan.numa,
        default_bios=machine.DEFAULT_BIOS,
        bios=plan.bios, kernel=plan.kernel, initrd=plan.initrd, append=plan.append,
        dtb=plan.dtb, drives=tuple(plan.drives), blockdevs=tuple(plan.blockdevs),
        devices=tuple(plan.devices),
        netdevs=dict(network.netdevs) if network is not None else {},
        serial_out=serial.write if serial is not None else None,
        serial_watch=serial.add_write_watch if serial is not None else None,
        guest_error=guest_error, warn=warn, log=cpu_log)


# -- running -------------------------------------------------------------------------------
def _start(target: Target, machine: Machine, plan: _Plan, consoles: Consoles,
           options: Options, err: TextIO, network: NetBackends | None = None) -> int:
    from machines.cpu import SystemCpuUnavailable

    if plan.dumpdtb is not None:
        try:
            with open(plan.dumpdtb, "wb") as f:
                f.write(machine.dtb())
        except OSError:
            raise _fail(f"Failed dumping dtb to {plan.dumpdtb}") from None
        err.write(f"{target.prog}: info: dtb dumped to {plan.dumpdtb}. Exiting.\n")
        return 0
    try:
        cpu = machine.create_cpu()
    except SystemCpuUnavailable as exc:
        raise _fail(str(exc)) from None
    debugged = _gdbstub(cpu, plan)
    loop = machine.make_loop(debugged, no_reboot=plan.no_reboot)
    loop.no_shutdown = options.no_shutdown
    if options.start_paused:
        from machines.loop import RunState
        loop.state = RunState.PRELAUNCH
    consoles.quit = lambda: loop.request_shutdown(0, "host-qmp-quit")
    if network is not None:
        network.start(loop)
    from launcher.monitor.consoles import SerialPort
    from launcher.monitor.vm import MachineTypeInfo, RiscvHarts, Vm
    from machines.registry import machine_types
    vm = Vm(loop, machine, target.name, f"llvmtcg {VERSION}", dict(consoles.chardevs),
            [MachineTypeInfo(t.name, t.default, _RAM_IDS.get(t.name, "ram"),
                             numa_mem_supported=t.numa)
             for t in machine_types(target.name)], network=network,
            gdbserver=lambda device: _gdbserver(debugged, device),
            cpus=RiscvHarts([hart.translated for hart in debugged.harts]))
    debugged.monitor_command = _gdb_monitor(vm)
    consoles.start(loop, vm, SerialPort(machine.serial_input, machine.serial_break))
    debugged.attach(loop)
    if options.loadvm is not None:
        _loadvm(machine, options.loadvm)
    try:
        with _Signals(target, loop, consoles, err):
            return loop.run(reset=options.loadvm is None)
    finally:
        _write_counters(debugged, loop, network)


STATS_ENV = "LLVMTCG_STATS"


def _write_counters(debugged, loop: MachineLoop,  # debugged: machines.gdb.GdbHart
                    network: NetBackends | None = None) -> None:
    """Append the run's counters as one JSON line to ``$LLVMTCG_STATS`` (as llvmtcg-user
    does; bench/boot reads them): per hart the runtime's (translation, exits by reason,
    lookups) and the privileged model's (CSR helper calls, traps, interrupts, TLB fills,
    page walks), the loop's rounds/sleeps/kicks and the process's CPU seconds. Best
    effort: a counter that cannot be written is skipped."""
    path = os.environ.get(STATS_ENV)
    if not path:
        return
    import json
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    record: dict[str, object] = {
        "pid": os.getpid(), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "loop": dict(loop.stats),
        "harts": [hart.translated.counters() for hart in debugged.harts]}
    if network is not None:  # (poll rounds, frames each way: bench/io's network runs)
        record["net"] = {user.id: dict(user.stats) for user in network.users}
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
    except (OSError, TypeError, ValueError):
        pass


def _loadvm(machine: Machine, name: str) -> None:
    """-loadvm: the machine reset, then snapshot ``name`` loaded (QEMU exits with the
    error when it cannot be)."""
    from machines.snapshots import SnapshotError, load_vm
    machine.reset()
    try:
        load_vm(machine, name)
    except SnapshotError as exc:
        raise _fail(str(exc)) from None


def _gdbstub(cpu, plan: _Plan):  # -> machines.gdb.GdbHart
    """The harts under a gdbstub (machines/gdb.py), listening on -gdb DEV / -s if
    given (the monitor's ``gdbserver`` can start it later). -S alone: the loop starts
    in "prelaunch" (the monitor's cont)."""
    from llvmtcg.gdbstub import GdbAddressError, listen
    from machines.gdb import GdbHart

    listener = None
    if plan.gdb is not None and plan.gdb != "none":
        try:
            listener = listen(plan.gdb)
        except GdbAddressError as exc:
            raise _fail(str(exc), f"-gdb {plan.gdb}") from None
    return GdbHart(cpu, listener)


def _gdbserver(debugged, device: str) -> str:  # debugged: machines.gdb.GdbHart
    """HMP ``gdbserver DEVICE``: listen there instead (``none``: stop), in QEMU's words."""
    from llvmtcg.gdbstub import GdbAddressError, listen
    if device == "none":
        debugged.serve(None)
        return "Disabled gdbserver\n"
    try:
        listener = listen(device)
    except GdbAddressError:
        return f"Could not open gdbserver on device '{device}'\n"
    debugged.serve(listener)
    return f"Waiting for gdb connection on device '{device}'\n"


def _gdb_monitor(vm) -> Callable[[str], str]:  # vm: launcher.monitor.vm.Vm
    """gdb's ``monitor CMD`` (qRcmd): a human monitor of its own, as QEMU gives the
    gdbstub, whose lines end in CR LF as its monitor_puts writes them."""
    from launcher.monitor.hmp import HmpCommands
    commands = HmpCommands(vm)

    def run(line: str) -> str:
        return commands.execute(line).replace("\n", "\r\n")
    return run


_RAM_IDS = {"virt": "riscv_virt_board.ram", "spike": "riscv.spike.ram"}  # QEMU's RAM names


class _Signals:
    """SIGINT/SIGTERM/SIGHUP end the emulator (status 0, as QEMU) with the terminal
    restored. Python runs handlers on the main thread only between bytecodes, so the
    C-level handler's wake-up byte is watched by the loop's I/O thread, which stops
    the CPU so the handler gets to run."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, target: Target, loop: MachineLoop, consoles: Consoles | None,
                 err: TextIO) -> None:
        self.target = target
        self.loop = loop
        self.consoles = consoles
        self.err = err
        self._previous: dict[int, object] = {}
        self._wakeup_fd = -1
        self._pipe: tuple[int, int] | None = None

    def _handler(self, signum: int, frame: object) -> None:
        if self.consoles is not None:
            self.consoles.restore_terminal()
        self.err.write(f"{self.target.prog}: terminating on signal {signum}\n")
        self.loop.request_shutdown(0, "host-signal")

    def __enter__(self) -> _Signals:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._pipe = (read_fd, write_fd)
        self._wakeup_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

        def drain() -> None:
            try:
                while os.read(read_fd, 64):
                    pass
            except BlockingIOError:
                pass
            self.loop.kick()

        self.loop.watch_fd(read_fd, drain)
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._wakeup_fd)
        if self._pipe is not None:
            self.loop.unwatch_fd(self._pipe[0])
            for fd in self._pipe:
                os.close(fd)
