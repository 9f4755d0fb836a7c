"""-numa on the virt board: each NUMA node is a socket with its own CLINT and PLIC, as
QEMU 7.2's RISC-V virt builds it; the device tree (numa-node-id, memory per node,
cpu-map clusters, distance-map) and every error message compared with QEMU's."""

from __future__ import annotations

from pathlib import Path

import pytest

from machines import riscv64_virt as virt
from machines.cpu import IrqBit
from machines.machine import Machine, MachineError, MachineOptions
from machines.numa import NumaConfig, NumaNode
from tests.launcher.test_system_riscv64 import PROG, qemu, run
from tests.machines.support import needs_qemu, phys_write, qemu_dumpdtb, tree_as_dict
from tests.machines.test_virt import NOT_EMULATED, without

NUMA_LAYOUTS = [
    # two nodes of two harts, mem=, a distance
    ("-smp", "4", "-m", "256M", "-numa", "node,nodeid=0,cpus=0-1,mem=128M",
     "-numa", "node,nodeid=1,cpus=2-3,mem=128M", "-numa", "dist,src=0,dst=1,val=20"),
    # memdev= backends, harts split by QEMU's default (no cpus=)
    ("-smp", "2", "-object", "memory-backend-ram,id=m0,size=64M",
     "-object", "memory-backend-ram,id=m1,size=96M", "-m", "160M",
     "-numa", "node,memdev=m0", "-numa", "node,memdev=m1"),
    # one node (numa-node-id everywhere, one socket)
    ("-smp", "2", "-numa", "node,mem=128M"),
    # asymmetric distances, unequal sockets, nodes declared out of order
    ("-smp", "3", "-numa", "node,nodeid=1,cpus=1-2,mem=64M",
     "-numa", "node,nodeid=0,cpus=0,mem=64M",
     "-numa", "dist,src=0,dst=1,val=15", "-numa", "dist,src=1,dst=0,val=25"),
]


@needs_qemu
@pytest.mark.parametrize("args", NUMA_LAYOUTS)
def test_device_tree_matches_qemus(tmp_path: Path, args: tuple[str, ...]) -> None:
    ours_file = tmp_path / "ours.dtb"
    status, _, err = run("-M", f"virt,dumpdtb={ours_file}", "-bios", "none", *args)
    assert status == 0, err
    ours = tree_as_dict(ours_file.read_bytes())
    theirs = tree_as_dict(qemu_dumpdtb(tmp_path, "virt", "-bios", "none", *args))
    assert without(theirs, NOT_EMULATED) == ours
    assert any("numa-node-id" in props for props in ours.values())


NUMA_ERRORS = [
    ["-smp", "2", "-m", "256M", "-numa", "node,cpus=0,mem=64M", "-numa", "node,cpus=1,mem=64M"],
    ["-smp", "2", "-numa", "node,cpus=0", "-numa", "node,cpus=1"],
    ["-smp", "2", "-numa", "node,cpus=0,memdev=m0", "-numa", "node,cpus=1,memdev=m1"],
    ["-smp", "2", "-numa", "node,nodeid=0,cpus=0,mem=64M", "-numa", "node,nodeid=0,cpus=1,mem=64M"],
    ["-smp", "2", "-numa", "node,cpus=0,mem=64M,memdev=x"],
    ["-smp", "2", "-numa", "node,cpus=0-2,mem=128M"],
    ["-smp", "2", "-numa", "node,cpus=0,mem=64M", "-numa", "node,cpus=1,mem=64M",
     "-numa", "dist,src=0,dst=1,val=5"],
    ["-smp", "2", "-numa", "node,cpus=0,mem=64M", "-numa", "node,cpus=1,mem=64M",
     "-numa", "dist,src=0,dst=2,val=20"],
    ["-smp", "2", "-numa", "node,cpus=0,mem=64M", "-numa", "node,cpus=1,mem=64M",
     "-numa", "dist,src=0,dst=0,val=20"],
    ["-smp", "4", "-numa", "node,cpus=0-1,mem=64M", "-numa", "node,cpus=2,mem=64M"],
    ["-smp", "2", "-numa", "foo"],
    ["-smp", "2", "-numa", "node,foo=1"],
    ["-smp", "4", "-numa", "node,cpus=0,cpus=2,mem=64M", "-numa", "node,cpus=1,cpus=3,mem=64M"],
    ["-smp", "2", "-numa", "node,cpus=0-1,mem=64M", "-numa", "node,mem=64M"],
    ["-smp", "3", "-m", "192M", "-numa", "node,cpus=0,mem=64M", "-numa", "node,cpus=1,mem=64M",
     "-numa", "node,cpus=2,mem=64M", "-numa", "dist,src=0,dst=1,val=20"],
    ["-smp", "2", "-numa", "node,cpus=0,mem=64M", "-numa", "node,cpus=1,mem=64M",
     "-numa", "dist,src=0,dst=1,val=20", "-numa", "dist,src=1,dst=0,val=30",
     "-numa", "node,cpus=1,mem=0"],
]


@needs_qemu
@pytest.mark.parametrize("argv", NUMA_ERRORS)
def test_errors_and_warnings_say_what_qemu_says(argv: list[str]) -> None:
    """Every line (the deprecation and partial-mapping warnings included) as QEMU's,
    and the exit status 1."""
    status, _, err = run("-M", "virt", "-bios", "none", *argv)
    qemu_status, _, qemu_err = qemu("-M", "virt", "-bios", "none", *argv, "-display", "none",
                                    "-S")
    qemu_lines = [line for line in qemu_err.splitlines()
                  if not line.startswith("qemu: module")]
    assert (status, qemu_status) == (1, 1)
    assert err.replace(PROG, "qemu-system-riscv64").splitlines() == qemu_lines


def test_spike_refuses_numa() -> None:
    status, _, err = run("-M", "spike", "-bios", "none", "-numa", "node")
    assert status == 1
    assert err == f"{PROG}: -numa node: NUMA is not supported by this machine-type\n"


@pytest.fixture
def machines() -> list[Machine]:
    built: list[Machine] = []
    yield built
    for machine in built:
        machine.close()


def _two_sockets(machines: list[Machine]) -> Machine:
    numa = NumaConfig((NumaNode(0, (0, 1), 64 << 20), NumaNode(1, (2, 3), 64 << 20)))
    machine = virt.build(MachineOptions(ram_size=128 << 20, bios="none", smp=4, numa=numa,
                                        rng_seed=lambda n: bytes(n)))
    machines.append(machine)
    return machine


def test_each_socket_has_its_clint(machines: list[Machine]) -> None:
    """The second socket's CLINT (0x2010000) drives harts 2 and 3, by their index in
    the socket: its MSIP 1 is hart 3's, its mtimecmp 0 hart 2's."""
    machine = _two_sockets(machines)
    lines = machine.hart_lines
    clint1 = virt.CLINT_BASE + virt.CLINT_SIZE
    phys_write(machine.memory, clint1 + 4, 4, 1)  # msip[1] of socket 1
    assert [lines[h].levels.get(IrqBit.MSIP, False) for h in range(4)] == \
        [False, False, False, True]
    phys_write(machine.memory, clint1 + 0x4000, 8, (1 << 64) - 1)  # mtimecmp[0]: never
    phys_write(machine.memory, virt.CLINT_BASE + 0x4000 + 8, 8, (1 << 64) - 1)  # hart 1's
    assert [lines[h].levels.get(IrqBit.MTIP, False) for h in (1, 2)] == [False, False]
    phys_write(machine.memory, clint1 + 0x4000, 8, 0)  # due now: MTIP of hart 2 only
    assert [lines[h].levels.get(IrqBit.MTIP, False) for h in (1, 2)] == [False, True]


def test_virtio_interrupts_go_to_the_second_sockets_plic(machines: list[Machine]) -> None:
    """QEMU's virt wires the UART and RTC to socket 0's PLIC and virtio-mmio to socket
    1's: a virtio slot's line reaches hart 2's S-mode external interrupt through the
    PLIC at PLIC_BASE + PLIC_SIZE."""
    machine = _two_sockets(machines)
    plic1 = virt.PLIC_BASE + virt.PLIC_SIZE
    source = virt.VIRTIO_IRQ + 7  # the last slot: virtio_mmio@10008000
    phys_write(machine.memory, plic1 + 4 * source, 4, 1)  # priority 1
    s_context = 1  # context 1: hart 2 (socket-local hart 0), S-mode
    phys_write(machine.memory, plic1 + 0x2000 + 0x80 * s_context, 4, 1 << source)
    device = next(region.handler for region in machine.memory.regions()
                  if region.base == virt.VIRTIO_BASE + 7 * virt.VIRTIO_STRIDE)
    device.irq(True)
    assert machine.hart_lines[2].levels.get(IrqBit.SEIP) is True
    assert not machine.hart_lines[0].levels.get(IrqBit.SEIP, False)


def test_a_node_with_a_gap_in_its_harts_is_refused() -> None:
    numa = NumaConfig((NumaNode(0, (0, 2), 64 << 20), NumaNode(1, (1,), 64 << 20)))
    with pytest.raises(MachineError, match="discontinuous hartids in socket0"):
        virt.build(MachineOptions(ram_size=128 << 20, bios="none", smp=3, numa=numa))
