"""QEMU 7.2's ``virt`` board (hw/riscv/virt.c) with one hart and the PLIC.

Not here (QEMU has them): the PCIe host (ECAM, MMIO and PIO windows), fw_cfg, the
dynamic platform bus, AIA/ACLINT-SSWI options; their device-tree nodes are omitted with
them. The two CFI flash banks are there, blank, for firmware that probes them;
``-drive if=pflash`` is refused, because QEMU then executes from flash and this flash
model cannot execute in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from devices import aclint, goldfish_rtc, pflash_cfi01, plic, sifive_test, uart16550
from devices.fdt import DeviceTree
from devices.virtio import VirtioMmio
from devices.virtio import mmio as virtio_mmio
from llvmtcg.runtime.physmem import PhysicalAddressSpace
from machines import boot, numa
from machines.boot import BootError, BootImages
from machines.cpu import IrqBit
from machines.loop import MachineClock
from machines.machine import (
    DeviceOptions,
    DmaView,
    DriveOptions,
    Machine,
    MachineError,
    MachineOptions,
    add_fdt_record,
    add_main_ram,
    check_images,
    distance_map,
    hart_nodes,
    load_dtb_file,
    memory_node,
    read_firmware,
    set_chosen,
)
from machines.riscv_cpu import pmu_event_map
from machines.virtio_devices import (
    BlockDevices,
    DeviceOptionError,
    build_virtio_devices,
    open_drives,
)

# -- memory map (virt_memmap[]) --------------------------------------------------------
MROM_BASE, MROM_SIZE = 0x1000, 0xF000
TEST_BASE, TEST_SIZE = 0x100000, 0x1000
RTC_BASE, RTC_SIZE = 0x101000, 0x1000
CLINT_BASE, CLINT_SIZE = 0x2000000, 0x10000
PLIC_BASE, PLIC_SIZE = 0xC000000, plic.VIRT_APERTURE
UART0_BASE, UART0_SIZE = 0x10000000, 0x100
VIRTIO_BASE, VIRTIO_STRIDE, VIRTIO_COUNT = 0x10001000, 0x1000, 8
FLASH_BASE, FLASH_SIZE = 0x20000000, 0x4000000  # two banks of FLASH_SIZE / 2
DRAM_BASE = 0x80000000

# -- interrupts (PLIC sources) ------------------------------------------------------------
UART0_IRQ = 10
RTC_IRQ = 11
VIRTIO_IRQ = 1  # slot i uses VIRTIO_IRQ + i

DEFAULT_RAM_SIZE = 128 << 20  # mc->default_ram_size
MAX_HARTS = 512  # VIRT_CPUS_MAX: the PLIC aperture holds 2 contexts per hart
TIMEBASE_HZ = aclint.VIRT_TIMEBASE_HZ



class _Shifted:
    """A device's registers from ``delta`` on, as their own region (QEMU maps the
    CLINT's software-interrupt and timer parts as two regions)."""

    def __init__(self, handler: aclint.Aclint, delta: int) -> None:
        self.handler = handler
        self.delta = delta

    def read(self, offset: int, size: int) -> int:
        return self.handler.read(offset + self.delta, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.handler.write(offset + self.delta, size, value)


def build(options: MachineOptions) -> Machine:
    ram_size = options.ram_size or DEFAULT_RAM_SIZE
    memory = PhysicalAddressSpace()
    clock = MachineClock()
    log = options.guest_error
    try:
        return _build(options, ram_size, memory, clock, log)
    except DeviceOptionError as exc:
        memory.close()
        raise MachineError(str(exc), exc.option) from None
    except BaseException:
        memory.close()
        raise


def _build(options: MachineOptions, ram_size: int, memory: PhysicalAddressSpace,
           clock: MachineClock, log: Callable[[str], None] | None) -> Machine:
    for drive in options.drives:
        if drive.interface == "pflash":
            # QEMU then starts from flash (unit 0) or runs an S-mode payload there
            # (unit 1): both execute in place, which this flash model cannot do.
            raise MachineError("booting from pflash is not supported yet (llvmtcg's flash "
                               "cannot execute in place)", drive.spec)
        if drive.interface not in ("none", "virtio"):
            raise MachineError(f"machine type does not support if={drive.interface},bus=0,"
                               f"unit={drive.unit or 0}", drive.spec)
    if not 1 <= options.smp <= MAX_HARTS:
        raise MachineError(f"Invalid SMP CPUs {options.smp}. The max CPUs supported by "
                           f"machine 'virt' is {MAX_HARTS}")
    drive_options, devices = _virtio_drives(options)
    block = open_drives(drive_options, options.blockdevs, warn=options.warn)
    try:
        return _build_with_drives(options, ram_size, memory, clock, log, block, devices)
    except BaseException:
        block.close()
        raise


def _virtio_drives(options: MachineOptions) -> tuple[list[DriveOptions], list[DeviceOptions]]:
    """``if=virtio`` drives get QEMU's ids (virtio0, virtio1, ...) and a
    virtio-blk-device each, plugged after the -device ones as QEMU creates them.
    (QEMU's virt puts them on PCI, which llvmtcg's virt lacks: here they take
    virtio-mmio slots.)"""
    drives, devices = [], list(options.devices)
    for index, drive in enumerate(d for d in options.drives if d.interface == "virtio"):
        drive_id = drive.id if drive.id is not None else f"virtio{drive.unit or index}"
        devices.append(DeviceOptions("virtio-blk-device", (("drive", drive_id),),
                                     spec=drive.spec))
        drives.append(replace(drive, id=drive_id))
    drives += [d for d in options.drives if d.interface == "none"]
    return drives, devices


def _build_with_drives(options: MachineOptions, ram_size: int, memory: PhysicalAddressSpace,
                       clock: MachineClock, log: Callable[[str], None] | None,
                       block: BlockDevices, devices: list[DeviceOptions]) -> Machine:
    try:
        layout = numa.sockets(options.numa, options.smp, ram_size)
    except numa.NumaError as exc:
        raise MachineError(str(exc)) from None
    clints: list[aclint.Aclint] = []
    machine = Machine("virt", memory, clock, options.cpu, reset_pc=MROM_BASE,
                      time=lambda: clints[0].mtime(), timebase_hz=TIMEBASE_HZ,
                      guest_error=log, log=options.log, num_harts=options.smp)
    machine.rng_seed = options.rng_seed
    machine.closers.append(block.close)
    machine.block = block
    harts = machine.hart_lines

    # -- the bus ---------------------------------------------------------------------------
    memory.add_rom("riscv_virt_board.mrom", MROM_BASE, MROM_SIZE)
    test = sifive_test.SifiveTest(on_poweroff=lambda status: machine.on_poweroff(status),
                                  on_reset=lambda: machine.on_reset(), log=log)
    memory.add_mmio("riscv.sifive.test", TEST_BASE, TEST_SIZE, test)

    # Each socket (a NUMA node, or the only one) has a CLINT and a PLIC for its harts,
    # the i-th at CLINT_BASE + i * CLINT_SIZE and PLIC_BASE + i * PLIC_SIZE (QEMU's
    # virt_machine_init); a hart's time CSR reads its own socket's mtime.
    # PLIC contexts as QEMU's hart config "MS": M then S external interrupt per hart.
    plics = [plic.Plic([harts[h].line(irq) for h in socket.harts
                        for irq in (IrqBit.MEIP, IrqBit.SEIP)], log=log)
             for socket in layout]
    plic_dev = plics[0]  # the UART's and the RTC's; virtio's is the second socket's
    virtio_plic = plics[1] if len(plics) > 1 else plics[0]
    rtc = goldfish_rtc.GoldfishRtc(clock, plic_dev.source_line(RTC_IRQ), log=log)
    memory.add_mmio("goldfish_rtc", RTC_BASE, rtc.size, rtc)
    for socket in layout:
        clint = aclint.Aclint(clock, [harts[h].line(IrqBit.MTIP) for h in socket.harts],
                              [harts[h].line(IrqBit.MSIP) for h in socket.harts],
                              timebase_hz=TIMEBASE_HZ, log=log)
        clints.append(clint)
        for hart in socket.harts:
            machine.hart_time[hart] = clint.mtime
        base = CLINT_BASE + socket.index * CLINT_SIZE
        memory.add_mmio("riscv.aclint.swi", base, aclint.MSWI_SIZE, clint)
        memory.add_mmio("riscv.aclint.mtimer", base + aclint.MTIMER_BASE, aclint.MTIMER_SIZE,
                        _Shifted(clint, aclint.MTIMER_BASE))
        memory.add_mmio("riscv.sifive.plic", PLIC_BASE + socket.index * PLIC_SIZE, PLIC_SIZE,
                        plics[socket.index])
    uart = uart16550.Uart16550(clock, plic_dev.source_line(UART0_IRQ),
                               options.serial_out or (lambda data: None),
                               accept_input=lambda: machine.serial_input.pump(),
                               write_watch=options.serial_watch, log=log)
    machine.serial_input.frontend = uart
    machine.serial_break = uart.receive_break
    memory.add_mmio("serial", UART0_BASE, uart.size, uart)
    dma = DmaView(memory)
    # QEMU plugs -device virtio devices into the last-created slot first.
    plugged = build_virtio_devices(devices, block.drives, slots=VIRTIO_COUNT,
                                   netdevs=options.netdevs, attached=block.attached)
    slots: list[VirtioMmio] = []
    for i in range(VIRTIO_COUNT):
        device = plugged.get(VIRTIO_COUNT - 1 - i)
        slot = VirtioMmio(virtio_plic.source_line(VIRTIO_IRQ + i), dma, device)
        memory.add_mmio("virtio-mmio", VIRTIO_BASE + i * VIRTIO_STRIDE, slot.size, slot)
        slots.append(slot)
    flash_banks = _add_flash(memory, log)
    add_main_ram(memory, "riscv_virt_board.ram", DRAM_BASE, ram_size)
    machine.resettables += [*plics, rtc, *clints, uart, *slots, *flash_banks]
    # savevm's devices, the interrupt controllers first: the others then drive their
    # lines into PLICs that already have their restored state.
    machine.stateful.update({f"riscv.sifive.plic@{PLIC_BASE + i * PLIC_SIZE:x}": p
                             for i, p in enumerate(plics)})
    machine.stateful.update({f"riscv.aclint@{CLINT_BASE + i * CLINT_SIZE:x}": c
                             for i, c in enumerate(clints)})
    machine.stateful.update({f"goldfish_rtc@{RTC_BASE:x}": rtc,
                             f"serial@{UART0_BASE:x}": uart})
    machine.stateful.update({f"virtio-mmio@{VIRTIO_BASE + i * VIRTIO_STRIDE:x}": slot
                             for i, slot in enumerate(slots)})
    machine.stateful.update({f"{bank.name}@{FLASH_BASE + unit * bank.size:x}": bank
                             for unit, bank in enumerate(flash_banks)})

    # -- boot images (virt_machine_done) ----------------------------------------------------
    images = machine.images
    start_addr = DRAM_BASE  # where the reset vector jumps: the firmware
    try:
        firmware_end = _load_firmware(images, options, ram_size)
        initrd: tuple[int, int] | None = None
        if options.kernel:
            kernel_entry = _load_kernel(images, options, boot.kernel_start_addr(firmware_end),
                                        ram_size)
            if options.initrd:
                initrd = _load_initrd(images, options.initrd, kernel_entry, ram_size)
        else:
            kernel_entry = 0  # fw_dynamic is told nothing: it has no next stage
    except BootError as exc:
        raise MachineError(str(exc)) from None

    # -- device tree (create_fdt) and the boot ROM ---------------------------------------
    if options.dtb:
        tree, fdt_size = load_dtb_file(options.dtb)
    else:
        tree = _device_tree(options, layout)
        fdt_size = boot.FDT_GENERATED_SIZE
    set_chosen(tree, bootargs=options.append, seed=options.rng_seed(32), initrd=initrd)
    machine.fdt = tree
    machine.fdt_addr = boot.fdt_address(DRAM_BASE, ram_size, fdt_size)
    images.add("fdt", machine.fdt_addr, machine.dtb(), fdt_size)
    boot.add_boot_rom(images, MROM_BASE, start_addr, machine.fdt_addr, kernel_entry)
    check_images(images, memory)
    return machine


def _add_flash(memory: PhysicalAddressSpace,
               log: Callable[[str], None] | None) -> list[pflash_cfi01.PflashCfi01]:
    """The two CFI flash banks, blank as QEMU has them without -drive if=pflash."""
    banks = []
    for unit in (0, 1):
        bank = pflash_cfi01.virt_flash_bank(unit, log=log)
        memory.add_mmio(bank.name, FLASH_BASE + unit * bank.size, bank.size, bank)
        banks.append(bank)
    return banks


def _load_firmware(images: BootImages, options: MachineOptions, ram_size: int) -> int:
    """riscv_find_and_load_firmware: the end of the firmware (DRAM base for none)."""
    if options.bios == "none":
        return DRAM_BASE
    path, data = read_firmware(options)
    _, end, _ = boot.load_elf_or_raw(images, path, data, DRAM_BASE, ram_size, "firmware")
    return end


def _load_kernel(images: BootImages, options: MachineOptions, start: int, ram_size: int) -> int:
    """riscv_load_kernel: an ELF's lowest address, or a raw image at ``start``."""
    assert options.kernel is not None
    data = boot.read_file(options.kernel, "kernel")
    low, _, _ = boot.load_elf_or_raw(images, options.kernel, data, start, ram_size, "kernel")
    return low


def _load_initrd(images: BootImages, path: str, kernel_entry: int,
                 ram_size: int) -> tuple[int, int]:
    data = boot.read_file(path, "ramdisk")
    start = boot.initrd_start(kernel_entry, ram_size)
    if start + len(data) > DRAM_BASE + ram_size:
        raise BootError(f"could not load ramdisk '{path}': {len(data)} bytes at {start:#x} "
                        f"do not fit in RAM")
    images.add(path, start, data)
    return start, start + len(data)


def _device_tree(options: MachineOptions, layout: list[numa.Socket]) -> DeviceTree:
    """create_fdt, nodes in the order QEMU's tree ends up with. With -numa, memory,
    harts, CLINTs and PLICs carry their node's numa-node-id, and -numa dist gives the
    distance-map."""
    tree = DeviceTree()
    root = tree.node("/")
    root.prop_u32("#address-cells", 2)
    root.prop_u32("#size-cells", 2)
    root.prop_str("compatible", "riscv-virtio")
    root.prop_str("model", "riscv-virtio,qemu")
    pmu = tree.node("/pmu")
    pmu.prop_u32("riscv,event-to-mhpmcounters", *pmu_event_map(options.cpu.pmu_counters))
    pmu.prop_str("compatible", "riscv,pmu")
    flash = tree.node(f"/flash@{FLASH_BASE:x}")
    flash.prop_u32("bank-width", pflash_cfi01.VIRT_BANK_WIDTH)
    half = FLASH_SIZE // 2
    flash.prop_u64("reg", FLASH_BASE, half, FLASH_BASE + half, half)
    flash.prop_str("compatible", "cfi-flash")
    tree.node("/chosen")
    tree.node("/poweroff")
    tree.node("/reboot")
    if options.numa is not None and options.numa.distances:
        distance_map(tree, options.numa)
    for socket in layout:
        memory_node(tree, DRAM_BASE + socket.mem_offset, socket.mem_size, socket.node)
    intc = hart_nodes(tree, options.cpu, TIMEBASE_HZ, options.smp,
                      [(socket.harts, socket.node) for socket in layout])
    soc = tree.node("/soc")
    soc.prop_u32("#address-cells", 2)
    soc.prop_u32("#size-cells", 2)
    soc.prop_str("compatible", "simple-bus")
    soc.prop_empty("ranges")
    # Children of /soc in QEMU's order; the device modules fill them in.
    for name, base in (("rtc", RTC_BASE), ("serial", UART0_BASE), ("test", TEST_BASE)):
        tree.node(f"/soc/{name}@{base:x}")
    for i in reversed(range(VIRTIO_COUNT)):
        tree.node(f"/soc/virtio_mmio@{VIRTIO_BASE + i * VIRTIO_STRIDE:x}")
    plic_phandles = []
    for socket in layout:
        phandle = plic.add_fdt_node(tree, PLIC_BASE + socket.index * PLIC_SIZE,
                                    [intc[h] for h in socket.harts])
        _node_id(tree.find_phandle(phandle), tree, socket.node)
        plic_phandles.append(phandle)
    for socket in layout:
        path = aclint.add_fdt_node(tree, CLINT_BASE + socket.index * CLINT_SIZE,
                                   [intc[h] for h in socket.harts])
        _node_id(path, tree, socket.node)
    plic_phandle = plic_phandles[0]
    virtio_phandle = plic_phandles[1] if len(plic_phandles) > 1 else plic_phandle
    for i in reversed(range(VIRTIO_COUNT)):
        add_fdt_record(tree, virtio_mmio.fdt_node(VIRTIO_BASE + i * VIRTIO_STRIDE,
                                                  VIRTIO_IRQ + i), {"plic": virtio_phandle})
    sifive_test.add_fdt_node(tree, TEST_BASE)
    uart_path = uart16550.add_fdt_node(tree, UART0_BASE, UART0_IRQ, plic_phandle)
    goldfish_rtc.add_fdt_node(tree, RTC_BASE, RTC_IRQ, plic_phandle)
    tree.node("/chosen").prop_str("stdout-path", uart_path)
    return tree


def _node_id(path: str | None, tree: DeviceTree, node: int | None) -> None:
    if path is not None and node is not None:
        tree.get_node(path).prop_u32("numa-node-id", node)
