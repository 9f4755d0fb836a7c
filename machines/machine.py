"""What every machine shares: its options, the built machine, and the device-tree plumbing.

A machine module (riscv64_virt.py, riscv64_spike.py) reads like a memory map: address
and IRQ constants on top, then a ``build(options)`` that adds regions to the bus, wires
interrupt lines, loads the boot images and writes the device tree. What it returns, a
:class:`Machine`, is everything the main loop needs: the physical address space, the
clock, the hart's interrupt lines, what to reset, and the CPU it creates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from devices.base import GuestMemoryError, Stateful
from devices.fdt import DeviceTree, FdtError
from devices.virtio import FdtNode, Phandle
from llvmtcg.runtime.physmem import BusError, PhysicalAddressSpace, RegionError
from machines.boot import BootError, BootImages
from machines.cpu import (
    HartGroup,
    HartLines,
    HartWiring,
    LlvmtcgHart,
    SystemCpu,
    create_system_cpu,
)
from machines.loop import MachineClock, MachineLoop, Resettable, SerialInput
from machines.numa import NumaConfig
from machines.riscv_cpu import RiscvCpuConfig

if TYPE_CHECKING:
    from devices.virtio.net import NetBackend
    from llvmtcg.log import Log
    from machines.virtio_devices import BlockDevices

# Debian's opensbi package: what "-bios default" (and no -bios) loads.
DEFAULT_BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
# Where QEMU's qemu_find_file looks for a -bios given as a bare name (Debian's build).
FIRMWARE_DIRS = ("/usr/share/qemu",)


class MachineError(Exception):
    """A machine that cannot be built as asked; the message is one line. ``option`` is
    the command-line option it is about, when there is one (QEMU prefixes it)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class Requests(Protocol):
    """Where devices send power-off and reset (the main loop)."""

    def request_shutdown(self, status: int = 0) -> None: ...

    def request_reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DriveOptions:
    """One ``-drive``."""

    file: str
    interface: str = "ide"  # QEMU's default if=; machines accept "none" and "pflash"
    format: str | None = None
    id: str | None = None
    read_only: bool = False
    unit: int | None = None
    spec: str = ""  # the option text, for messages
    snapshot: bool = False  # snapshot=on (or -snapshot): writes go to a temporary overlay
    cache: str = "writeback"  # QEMU's cache modes: writeback, writethrough, none, ...
    block_options: tuple[tuple[str, str], ...] = ()  # driver options (file.locking=off)


@dataclass(frozen=True, slots=True)
class BlockdevOptions:
    """One ``-blockdev``: a node in QEMU's -blockdev shape (nested dicts after JSON or
    dotted keys), which must have a ``node-name``."""

    options: Mapping[str, Any]
    spec: str = ""


@dataclass(frozen=True, slots=True)
class DeviceOptions:
    """One ``-device driver,prop=value,...``."""

    driver: str
    properties: tuple[tuple[str, str], ...] = ()
    id: str | None = None
    spec: str = ""


@dataclass(frozen=True, slots=True)
class MachineOptions:
    """Everything the command line says about the machine."""

    ram_size: int | None = None  # None: the machine type's default
    cpu: RiscvCpuConfig = field(default_factory=RiscvCpuConfig)
    smp: int = 1
    numa: NumaConfig | None = None  # -numa: the nodes (machines.numa), None without
    bios: str | None = None  # None or "default": the default firmware; "none": none
    default_bios: str = DEFAULT_BIOS
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    dtb: str | None = None
    drives: tuple[DriveOptions, ...] = ()
    blockdevs: tuple[BlockdevOptions, ...] = ()
    devices: tuple[DeviceOptions, ...] = ()
    # -netdev backends by id (launcher.net), for -device virtio-net-device,netdev=ID.
    netdevs: Mapping[str, NetBackend] = field(default_factory=dict)
    serial_out: Callable[[bytes], object] | None = None  # serial0's output; None: no serial
    # When serial_out returned 0 (backed up): call this callable back once it takes
    # bytes again (the chardev's add_write_watch; the UART's flow control).
    serial_watch: Callable[[Callable[[], None]], None] | None = None
    guest_error: Callable[[str], None] | None = None  # -d guest_errors
    warn: Callable[[str], None] | None = None  # warnings for the user (block layer)
    log: Log | None = None  # the CPU's -d items
    rng_seed: Callable[[int], bytes] = os.urandom  # /chosen/rng-seed bytes (tests fix it)


class DmaView:
    """devices.base.GuestRam over the physical address space: bus masters reach RAM,
    and any other address is the devices' GuestMemoryError."""

    def __init__(self, memory: PhysicalAddressSpace) -> None:
        self._memory = memory

    def read(self, addr: int, size: int) -> bytes:
        try:
            return self._memory.dma_read(addr, size)
        except BusError as exc:
            raise GuestMemoryError(str(exc)) from None

    def write(self, addr: int, data: bytes) -> None:
        try:
            self._memory.dma_write(addr, data)
        except BusError as exc:
            raise GuestMemoryError(str(exc)) from None


class Machine:
    """A built machine, ready for a CPU and the main loop.

    ``reset()`` is QEMU's system reset: devices to their reset state, the boot images
    copied into memory again (with a fresh ``rng-seed`` in the device tree), the CPU
    reset to ``reset_pc``.
    """

    def __init__(self, name: str, memory: PhysicalAddressSpace, clock: MachineClock,
                 config: RiscvCpuConfig, *, reset_pc: int, time: Callable[[], int] | None,
                 timebase_hz: int, guest_error: Callable[[str], None] | None = None,
                 log: Log | None = None, num_harts: int = 1) -> None:
        self.name = name
        self.memory = memory
        self.clock = clock
        self.config = config
        self.reset_pc = reset_pc
        self.time = time
        # A hart's own platform timer where it is not ``time`` (a socket's CLINT).
        self.hart_time: dict[int, Callable[[], int]] = {}
        self.timebase_hz = timebase_hz
        self.guest_error = guest_error
        self.log = log
        self.num_harts = num_harts
        self.hart_lines = [HartLines() for _ in range(num_harts)]
        self.lines = self.hart_lines[0]  # the boot hart's
        self.images = BootImages()
        self.serial_input = SerialInput()
        self.serial_break: Callable[[], None] | None = None  # a console's break (C-a b)
        self.resettables: list[Resettable] = []
        self.fdt: DeviceTree | None = None
        self.fdt_addr = 0
        self.rng_seed: Callable[[int], bytes] = os.urandom
        self.cpu: SystemCpu | None = None
        self.requests: Requests | None = None
        self.last_request: int | str | None = None  # what a device last asked for
        self.closers: list[Callable[[], None]] = []  # host resources (disk images)
        self.block: BlockDevices | None = None  # the drives, for the monitors
        # What savevm saves besides memory and harts (machines/vmstate.py): the devices
        # with state, by a name unique in the machine (QEMU's section "idstr").
        self.stateful: dict[str, Stateful] = {}
        self.harts: list[LlvmtcgHart] = []  # set by create_cpu

    # -- what devices ask for -------------------------------------------------------------
    def on_poweroff(self, status: int) -> None:
        self.last_request = status
        if self.requests is not None:
            self.requests.request_shutdown(status)

    def on_reset(self) -> None:
        self.last_request = "reset"
        if self.requests is not None:
            self.requests.request_reset()

    # -- the device tree ----------------------------------------------------------------
    def dtb(self) -> bytes:
        """The device tree blob as the guest gets it (with the current rng-seed)."""
        if self.fdt is None:
            raise MachineError(f"machine {self.name} has no device tree")
        return self.fdt.to_dtb()

    def _reseed(self) -> None:
        if self.fdt is not None and self.fdt.has_node("/chosen"):
            chosen = self.fdt.get_node("/chosen")
            if chosen.has("rng-seed"):
                chosen.prop_bytes("rng-seed", self.rng_seed(len(chosen.raw("rng-seed"))))

    # -- CPU and reset ------------------------------------------------------------------
    def create_cpu(self) -> SystemCpu:
        """Build the harts (machines.cpu.create_system_cpu) and connect their lines;
        several harts share their translated-code tracking and run as a HartGroup."""
        wirings = [HartWiring(hartid=hart, memory=self.memory, config=self.config,
                              clock=self.clock, time=self.hart_time.get(hart, self.time),
                              timebase_hz=self.timebase_hz, guest_error=self.guest_error,
                              log=self.log) for hart in range(self.num_harts)]
        if self.num_harts == 1:
            cpu: SystemCpu = create_system_cpu(wirings[0])
            self.harts = [cpu]  # type: ignore[list-item]
        else:
            from llvmtcg.system import SharedCode
            harts = [LlvmtcgHart(wiring) for wiring in wirings]
            SharedCode([hart.translated for hart in harts])
            cpu = HartGroup(harts, self.clock)
            self.harts = harts
        self.attach_cpu(cpu)
        return cpu

    def attach_cpu(self, cpu: SystemCpu) -> None:
        self.cpu = cpu
        harts = getattr(cpu, "harts", None)  # a HartGroup, or one under a gdbstub
        if harts is not None and len(harts) > 1:
            for lines, hart in zip(self.hart_lines, harts, strict=True):
                lines.attach(hart)
        else:
            self.lines.attach(cpu)

    def reset(self) -> None:
        for device in self.resettables:
            device.reset()
        self.images.install(self.memory)
        if self.fdt is not None:
            self._reseed()
            self.memory.load(self.fdt_addr, self.dtb())
        if self.cpu is not None:
            self.cpu.reset(self.reset_pc)

    def make_loop(self, cpu: SystemCpu, *, no_reboot: bool = False) -> MachineLoop:
        """The main loop running ``cpu`` on this machine (devices' requests go to it)."""
        self.attach_cpu(cpu)
        loop = MachineLoop(cpu, self.clock, self.reset, no_reboot=no_reboot)
        self.requests = loop
        return loop

    def close(self) -> None:
        for hart in self.harts:  # (before the memory their blocks are read back from)
            hart.save_translations()
        for close in reversed(self.closers):
            close()
        self.closers.clear()
        self.memory.close()


# -- helpers for machine modules ---------------------------------------------------------
def read_firmware(options: MachineOptions) -> tuple[str, bytes]:
    """The -bios file (path, contents): ``default`` (or none given) is the opensbi
    package's fw_dynamic; a bare name not in the current directory is also looked for
    where QEMU keeps firmware, as qemu_find_file does."""
    default = options.bios in (None, "default")
    name = options.default_bios if default else str(options.bios)
    candidates = [name]
    if "/" not in name:
        candidates += [os.path.join(d, name) for d in FIRMWARE_DIRS]
    for path in candidates:
        try:
            with open(path, "rb") as f:
                return path, f.read()
        except OSError:
            continue
    hint = (" (the default -bios comes from Debian's opensbi package: apt-get install "
            "opensbi)") if default else ""
    raise MachineError(f'Unable to load the RISC-V firmware "{name}"{hint}')


def add_main_ram(memory: PhysicalAddressSpace, name: str, base: int, size: int) -> None:
    """The machine's RAM (``-m``), or QEMU's error when it cannot have that much."""
    try:
        memory.add_ram(name, base, size)
    except (RegionError, OSError):
        raise MachineError(f"cannot set up guest memory '{name}': Cannot allocate memory") \
            from None



def check_images(images: BootImages, memory: PhysicalAddressSpace) -> None:
    """The boot images do not overlap and fit RAM/ROM (MachineError otherwise)."""
    try:
        images.check()
        images.install(memory)
    except BootError as exc:
        raise MachineError(str(exc)) from None


def add_fdt_record(tree: DeviceTree, record: FdtNode, phandles: dict[str, int]) -> None:
    """Write a devices.virtio FdtNode record into ``tree``."""
    node = tree.node(record.path)
    for name, value in record.properties:
        if value is None:
            node.prop_empty(name)
        elif isinstance(value, str):
            node.prop_str(name, value)
        elif isinstance(value, Phandle):
            node.prop_u32(name, phandles[value.label])
        else:
            node.prop_u32(name, *value)


def load_dtb_file(path: str) -> tuple[DeviceTree, int]:
    """A ``-dtb`` file and the size of the buffer QEMU would hold it in."""
    from machines.boot import loaded_fdt_size
    try:
        data = open(path, "rb").read()  # noqa: SIM115 - one read, closed by refcount
    except OSError:
        raise MachineError(f"Unable to get size of device tree file '{path}'") from None
    try:
        tree = DeviceTree.from_dtb(data)
    except FdtError:
        raise MachineError("load_device_tree: Unable to copy device tree into memory: "
                           "FDT_ERR_BADMAGIC") from None
    return tree, loaded_fdt_size(len(data))


def set_chosen(tree: DeviceTree, *, bootargs: str | None, seed: bytes | None,
               initrd: tuple[int, int] | None = None) -> None:
    """/chosen as QEMU fills it: bootargs when non-empty, rng-seed (virt; spike has
    none), the initrd span."""
    chosen = tree.node("/chosen")
    if initrd is not None:
        for name, value in (("linux,initrd-start", initrd[0]), ("linux,initrd-end", initrd[1])):
            if value >> 32:
                chosen.prop_u64(name, value)
            else:
                chosen.prop_u32(name, value)  # QEMU writes one cell
    if bootargs:
        chosen.prop_str("bootargs", bootargs)
    if seed is not None:
        chosen.prop_bytes("rng-seed", seed)


def hart_nodes(tree: DeviceTree, config: RiscvCpuConfig, timebase_hz: int,
               num_harts: int = 1,
               clusters: Sequence[tuple[range, int | None]] | None = None) -> list[int]:
    """/cpus as QEMU writes it; returns each hart's interrupt-controller phandle, by
    hart id. QEMU creates the cpu nodes from the last hart down (each new node goes
    first), so hart N-1 gets phandles 1 (cpu) and 2 (controller), hart 0 the last
    ones; the nodes read in hart order. ``clusters``: the sockets' harts and NUMA
    node (None: no numa-node-id), each a cpu-map cluster; default one cluster."""
    if clusters is None:
        clusters = [(range(num_harts), None)]
    node_of = {hart: node for harts, node in clusters for hart in harts}
    cpus = tree.node("/cpus")
    cpus.prop_u32("#address-cells", 1)
    cpus.prop_u32("#size-cells", 0)
    cpus.prop_u32("timebase-frequency", timebase_hz)
    for hart in range(num_harts):
        tree.node(f"/cpus/cpu@{hart}")  # the order the nodes read in
    cpu_phandles, intc_phandles = [0] * num_harts, [0] * num_harts
    for hart in reversed(range(num_harts)):
        cpu = tree.node(f"/cpus/cpu@{hart}")
        cpu_phandles[hart] = cpu.phandle()
        if node_of.get(hart) is not None:
            cpu.prop_u32("numa-node-id", node_of[hart])  # type: ignore[arg-type]
        cpu.prop_str("device_type", "cpu")
        cpu.prop_u32("reg", hart)
        cpu.prop_str("status", "okay")
        cpu.prop_str("compatible", "riscv")
        cpu.prop_str("riscv,isa", config.isa_string())
        cpu.prop_str("mmu-type", "riscv,sv48" if config.has_mmu else "riscv,none")
        intc = tree.node(f"/cpus/cpu@{hart}/interrupt-controller")
        intc.prop_u32("#interrupt-cells", 1)
        intc.prop_empty("interrupt-controller")
        intc.prop_str("compatible", "riscv,cpu-intc")
        intc_phandles[hart] = intc.phandle()
    for index, (harts, _) in enumerate(clusters):
        for core, hart in enumerate(harts):
            tree.node(f"/cpus/cpu-map/cluster{index}/core{core}").prop_u32(
                "cpu", cpu_phandles[hart])
    return intc_phandles


def memory_node(tree: DeviceTree, base: int, size: int, numa_node: int | None = None) -> None:
    node = tree.node(f"/memory@{base:x}")
    if numa_node is not None:
        node.prop_u32("numa-node-id", numa_node)
    node.prop_str("device_type", "memory")
    node.prop_u64("reg", base, size)


def distance_map(tree: DeviceTree, config: NumaConfig) -> None:
    """/distance-map (riscv_socket_fdt_write_distance_matrix): every (src, dst,
    distance) of the -numa dist matrix."""
    node = tree.node("/distance-map")
    cells: list[int] = []
    count = len(config.nodes)
    for src in range(count):
        for dst in range(count):
            cells += [src, dst, config.distances[(src, dst)]]
    node.prop_u32("distance-matrix", *cells)
    node.prop_str("compatible", "numa-distance-map-v1")


def drives_by_id(drives: Sequence[DriveOptions]) -> dict[str, DriveOptions]:
    return {d.id: d for d in drives if d.id is not None}
