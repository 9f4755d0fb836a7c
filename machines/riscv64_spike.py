"""QEMU 7.2's ``spike`` board (hw/riscv/spike.c): RAM, the CLINT and HTIF.

HTIF's ``tohost``/``fromhost`` mailboxes are where the loaded ELF files (firmware, then
kernel) have those symbols, as QEMU's ``htif_symbol_callback`` finds them; then the
device is an overlay inside RAM and the device tree's /htif has no ``reg``. Without
both symbols HTIF sits at 0x1000000. With ``-bios none -kernel test.elf`` a guest
``tohost`` write of ``(code << 1) | 1`` ends the emulator with exit status ``code``:
how the RISC-V ISA tests report.
"""

from __future__ import annotations

from devices import aclint, htif
from devices.fdt import DeviceTree
from llvmtcg.runtime.physmem import PhysicalAddressSpace, RegionError
from machines import boot
from machines.boot import BootError
from machines.cpu import IrqBit
from machines.loop import MachineClock, SerialInput
from machines.machine import (
    Machine,
    MachineError,
    MachineOptions,
    add_main_ram,
    check_images,
    hart_nodes,
    load_dtb_file,
    memory_node,
    read_firmware,
    set_chosen,
)

# -- memory map (spike_memmap[]) --------------------------------------------------------
MROM_BASE, MROM_SIZE = 0x1000, 0xF000
HTIF_BASE, HTIF_SIZE = htif.SPIKE_HTIF_BASE, 0x1000
CLINT_BASE, CLINT_SIZE = 0x2000000, 0x10000
DRAM_BASE = 0x80000000

DEFAULT_RAM_SIZE = 128 << 20
TIMEBASE_HZ = aclint.VIRT_TIMEBASE_HZ



class HtifSymbols:
    """htif_symbol_callback: the ``fromhost``/``tohost`` symbols of the loaded ELFs
    (each must be 8 bytes; a later file's symbol replaces an earlier one)."""

    def __init__(self) -> None:
        self.tohost: int | None = None
        self.fromhost: int | None = None

    def __call__(self, name: str, value: int, size: int) -> None:
        if name in ("tohost", "fromhost"):
            if size != 8:
                raise BootError(f"HTIF {name} must be 8 bytes")
            setattr(self, name, value)

    def layout(self) -> htif.HtifLayout | None:
        """The mailboxes at the symbols, or None unless both were found."""
        if self.tohost is None or self.fromhost is None:
            return None
        return htif.HtifLayout.at(tohost=self.tohost, fromhost=self.fromhost)


class _HtifPort:
    """The HTIF as the bus sees it: after each guest write (a getchar request, maybe),
    pending console input is offered again."""

    def __init__(self, device: htif.Htif, serial_input: SerialInput) -> None:
        self.device = device
        self.serial_input = serial_input

    def read(self, offset: int, size: int) -> int:
        return self.device.read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.device.write(offset, size, value)
        if self.serial_input.pending:
            self.serial_input.pump()


def build(options: MachineOptions) -> Machine:
    memory = PhysicalAddressSpace()
    try:
        return _build(options, memory)
    except BaseException:
        memory.close()
        raise


def _build(options: MachineOptions, memory: PhysicalAddressSpace) -> Machine:
    ram_size = options.ram_size or DEFAULT_RAM_SIZE
    if options.devices:
        device = options.devices[0]
        raise MachineError(f"No 'virtio-bus' bus found for device '{device.driver}'",
                           device.spec)
    for drive in options.drives:
        if drive.interface != "none":
            raise MachineError(f"machine type does not support if={drive.interface},bus=0,"
                               f"unit={drive.unit or 0}", drive.spec)
    clock = MachineClock()
    log = options.guest_error
    clint_holder: list[aclint.Aclint] = []
    machine = Machine("spike", memory, clock, options.cpu, reset_pc=MROM_BASE,
                      time=lambda: clint_holder[0].mtime(), timebase_hz=TIMEBASE_HZ,
                      guest_error=log, log=options.log)
    machine.rng_seed = options.rng_seed
    lines = machine.lines

    # -- the bus ---------------------------------------------------------------------------
    clint = aclint.Aclint(clock, [lines.line(IrqBit.MTIP)], [lines.line(IrqBit.MSIP)],
                          timebase_hz=TIMEBASE_HZ, log=log)
    clint_holder.append(clint)
    memory.add_mmio("riscv.aclint.swi", CLINT_BASE, aclint.MSWI_SIZE, clint)
    memory.add_mmio("riscv.aclint.mtimer", CLINT_BASE + aclint.MTIMER_BASE, aclint.MTIMER_SIZE,
                    _Shifted(clint, aclint.MTIMER_BASE))
    add_main_ram(memory, "riscv.spike.ram", DRAM_BASE, ram_size)
    memory.add_rom("riscv.spike.mrom", MROM_BASE, MROM_SIZE)
    machine.resettables.append(clint)
    machine.stateful[f"riscv.aclint@{CLINT_BASE:x}"] = clint

    # -- boot images (spike_board_init) ----------------------------------------------------
    images = machine.images
    symbols = HtifSymbols()
    try:
        firmware_end = DRAM_BASE
        if options.bios != "none":
            path, data = read_firmware(options)
            _, firmware_end, _ = boot.load_elf_or_raw(images, path, data, DRAM_BASE, ram_size,
                                                      "firmware", symbols)
        kernel_entry = 0
        initrd: tuple[int, int] | None = None
        if options.kernel:
            data = boot.read_file(options.kernel, "kernel")
            kernel_entry, _, _ = boot.load_elf_or_raw(
                images, options.kernel, data, boot.kernel_start_addr(firmware_end), ram_size,
                "kernel", symbols)
            if options.initrd:
                data = boot.read_file(options.initrd, "ramdisk")
                start = boot.initrd_start(kernel_entry, ram_size)
                if start + len(data) > DRAM_BASE + ram_size:
                    raise BootError(f"could not load ramdisk '{options.initrd}': "
                                    f"{len(data)} bytes at {start:#x} do not fit in RAM")
                images.add(options.initrd, start, data)
                initrd = (start, start + len(data))
    except BootError as exc:
        raise MachineError(str(exc)) from None

    layout = symbols.layout()
    device = htif.Htif(options.serial_out or (lambda data: None), machine.on_poweroff,
                       layout=layout, log=log)
    port = _HtifPort(device, machine.serial_input)
    machine.stateful["riscv.htif.uart"] = device
    machine.serial_input.frontend = device
    try:
        if layout is None:
            memory.add_mmio("riscv.htif.uart", HTIF_BASE, device.size, port)
        else:
            memory.add_overlay("riscv.htif.uart", layout.base, layout.size, port)
    except RegionError as exc:
        raise MachineError(f"HTIF at the ELF's tohost/fromhost: {exc}") from None

    # -- device tree and the boot ROM -------------------------------------------------------
    if options.dtb:
        tree, fdt_size = load_dtb_file(options.dtb)
    else:
        tree = _device_tree(options, ram_size, htif_reg=layout is None)
        fdt_size = boot.FDT_GENERATED_SIZE
    set_chosen(tree, bootargs=options.append, seed=None, initrd=initrd)
    machine.fdt = tree
    machine.fdt_addr = boot.fdt_address(DRAM_BASE, ram_size, fdt_size)
    images.add("fdt", machine.fdt_addr, machine.dtb(), fdt_size)
    boot.add_boot_rom(images, MROM_BASE, DRAM_BASE, machine.fdt_addr, kernel_entry)
    check_images(images, memory)
    return machine


class _Shifted:
    def __init__(self, handler: aclint.Aclint, delta: int) -> None:
        self.handler = handler
        self.delta = delta

    def read(self, offset: int, size: int) -> int:
        return self.handler.read(offset + self.delta, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.handler.write(offset + self.delta, size, value)


def _device_tree(options: MachineOptions, ram_size: int, *, htif_reg: bool) -> DeviceTree:
    """spike's create_fdt, nodes in the order QEMU's tree ends up with."""
    tree = DeviceTree()
    root = tree.node("/")
    root.prop_u32("#address-cells", 2)
    root.prop_u32("#size-cells", 2)
    root.prop_str("compatible", "ucbbar,spike-bare-dev")
    root.prop_str("model", "ucbbar,spike-bare,qemu")
    chosen = tree.node("/chosen")
    chosen.prop_str("stdout-path", "/htif")
    memory_node(tree, DRAM_BASE, ram_size)
    intc = hart_nodes(tree, options.cpu, TIMEBASE_HZ)[0]
    soc = tree.node("/soc")
    soc.prop_u32("#address-cells", 2)
    soc.prop_u32("#size-cells", 2)
    soc.prop_str("compatible", "simple-bus")
    soc.prop_empty("ranges")
    aclint.add_fdt_node(tree, CLINT_BASE, [intc])
    htif.add_fdt_node(tree, HTIF_BASE if htif_reg else None, reg_size=HTIF_SIZE)
    return tree
