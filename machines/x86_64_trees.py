"""``info mtree`` and ``info qtree`` for the x86-64 ``microvm`` machine, in QEMU 7.2's
formats (memory/mtree.c ``mtree_info``, softmmu/qdev-monitor.c ``qdev_print``).

Under KVM the interrupt controllers and the PIT are the kernel's (the in-kernel irqchip),
but QEMU still lists their regions, because its KVM device models register them; they are
listed here the same way. What llvmtcg's microvm does not have (fw_cfg, kvmvapic,
kvmclock, the ACPI GED) is not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.bus import BusEntry


@dataclass(frozen=True, slots=True)
class TreeRegion:
    """One line of ``info mtree``: [base, end] inclusive, as QEMU prints it."""

    base: int
    end: int
    kind: str  # "ram" or "i/o"
    name: str
    priority: int = 0

    def line(self, depth: int) -> str:
        return (f"{'  ' * depth}{self.base:016x}-{self.end:016x} (prio {self.priority}, "
                f"{self.kind}): {self.name}")


# The in-kernel irqchip's regions, as QEMU's KVM PIC/PIT/IOAPIC/APIC models map them.
IN_KERNEL_MMIO = (TreeRegion(0xFEC00000, 0xFEC00FFF, "i/o", "ioapic"),
                  TreeRegion(0xFEE00000, 0xFEEFFFFF, "i/o", "kvm-apic-msi", 4096))
IN_KERNEL_PORTS = (TreeRegion(0x20, 0x21, "i/o", "pic"), TreeRegion(0x40, 0x43, "i/o", "pit"),
                   TreeRegion(0xA0, 0xA1, "i/o", "pic"), TreeRegion(0x4D0, 0x4D0, "i/o", "elcr"),
                   TreeRegion(0x4D1, 0x4D1, "i/o", "elcr"))


@dataclass(frozen=True, slots=True)
class MicrovmLayout:
    """What the trees are printed from: the RAM split, the firmware and the two buses."""

    ram_size: int
    lowmem_limit: int
    highmem_base: int
    bios_size: int  # 0: no -bios
    isa_bios_size: int  # the firmware's tail aliased below 1 MiB
    isa_bios_end: int
    mmio: list[BusEntry]
    ports: list[BusEntry]


def _ordered(regions: list[TreeRegion]) -> list[TreeRegion]:
    # QEMU prints subregions by address, a higher priority first at the same address.
    return sorted(regions, key=lambda r: (r.base, -r.priority))


def mtree(layout: MicrovmLayout) -> str:
    below_4g = min(layout.ram_size, layout.lowmem_limit)
    memory = [TreeRegion(0, below_4g - 1, "ram",
                         f"alias ram-below-4g @microvm.ram {0:016x}-{below_4g - 1:016x}")]
    if layout.ram_size > below_4g:
        above = layout.ram_size - below_4g
        memory.append(TreeRegion(
            layout.highmem_base, layout.highmem_base + above - 1, "ram",
            f"alias ram-above-4g @microvm.ram {below_4g:016x}-{layout.ram_size - 1:016x}"))
    if layout.bios_size:
        isa_base = layout.isa_bios_end - layout.isa_bios_size
        offset = layout.bios_size - layout.isa_bios_size
        memory.append(TreeRegion(
            isa_base, layout.isa_bios_end - 1, "ram",
            f"alias isa-bios @pc.bios {offset:016x}-{offset + layout.isa_bios_size - 1:016x}",
            1))
        memory.append(TreeRegion(layout.highmem_base - layout.bios_size,
                                 layout.highmem_base - 1, "ram", "pc.bios"))
    memory += [TreeRegion(e.base, e.end - 1, "i/o", e.name) for e in layout.mmio]
    memory += IN_KERNEL_MMIO
    ports = [TreeRegion(e.base, e.end - 1, "i/o", e.name) for e in layout.ports]
    ports += IN_KERNEL_PORTS
    lines = ["address-space: cpu-memory-0", "address-space: memory",
             TreeRegion(0, (1 << 64) - 1, "i/o", "system").line(1),
             *(r.line(2) for r in _ordered(memory)),
             "", "address-space: I/O",
             TreeRegion(0, 0xFFFF, "i/o", "io").line(1),
             *(r.line(2) for r in _ordered(ports)),
             "", "memory-region: microvm.ram",
             TreeRegion(0, layout.ram_size - 1, "ram", "microvm.ram").line(1)]
    if layout.bios_size:
        lines += ["", "memory-region: pc.bios",
                  TreeRegion(layout.highmem_base - layout.bios_size, layout.highmem_base - 1,
                             "ram", "pc.bios").line(1)]
    return "\n".join(lines) + "\n\n"


def _prop(name: str, value: int) -> str:
    return f"{name} = {value} ({value:#x})"


def qtree(layout: MicrovmLayout, virtio_children: list[str | None],
          debug_exits: list[tuple[int, int]], serial_port: int, serial_irq: int) -> str:
    """``virtio_children``: the device type plugged into each transport (by slot), None
    for an empty one; ``debug_exits``: (iobase, iosize) of each isa-debug-exit."""
    out = ["bus: main-system-bus", "  type System"]
    # QEMU lists the children of a bus newest first.
    virtio = [e for e in layout.mmio if e.name == "virtio-mmio"]
    for slot in reversed(range(len(virtio))):
        entry = virtio[slot]
        out += ['  dev: virtio-mmio, id ""', '    gpio-out "sysbus-irq" 1',
                "    format_transport_address = true", "    force-legacy = true",
                "    ioeventfd = true", f"    mmio {entry.base:016x}/{entry.size:016x}",
                f"    bus: virtio-mmio-bus.{slot}", "      type virtio-mmio-bus"]
        child = virtio_children[slot] if slot < len(virtio_children) else None
        if child is not None:
            out.append(f'      dev: {child}, id ""')
    ioapic = IN_KERNEL_MMIO[0]
    out += ['  dev: ioapic, id ""', '    gpio-in "" 24', "    " + _prop("version", 0x20),
            f"    mmio {ioapic.base:016x}/{ioapic.end - ioapic.base + 1:016x}",
            '  dev: isabus-bridge, id ""', "    bus: isa.0", "      type ISA"]
    for iobase, iosize in reversed(debug_exits):
        out += ['      dev: isa-debug-exit, id ""', "        " + _prop("iobase", iobase),
                "        " + _prop("iosize", iosize)]
    out += ['      dev: isa-serial, id ""', "        " + _prop("index", 0),
            "        " + _prop("iobase", serial_port), "        " + _prop("irq", serial_irq),
            '      dev: isa-pit, id ""', '        gpio-in "" 1', '        gpio-out "" 1',
            "        " + _prop("iobase", 0x40)]
    for iobase, elcr, mask, master in ((0xA0, 0x4D1, 0xDE, "false"),
                                       (0x20, 0x4D0, 0xF8, "true")):
        out += ['      dev: isa-i8259, id ""', '        gpio-in "" 8', '        gpio-out "" 1',
                "        " + _prop("iobase", iobase), "        " + _prop("elcr_addr", elcr),
                "        " + _prop("elcr_mask", mask), f"        master = {master}"]
    return "\n".join(out) + "\n"
