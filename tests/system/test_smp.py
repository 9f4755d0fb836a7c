"""``-smp N`` on ``-M virt``: harts run round-robin on one thread, wake from WFI on a
CLINT software interrupt (IPI), see code another hart rewrote, and OpenSBI reports them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from machines import riscv64_virt as virt
from machines.cpu import HartGroup
from machines.machine import MachineOptions
from tests.machines.support import IMAGES, REPO, needs_images

GUEST = Path(__file__).resolve().parents[1] / "guest" / "system"
needs_cross_gcc = pytest.mark.skipif(shutil.which("riscv64-linux-gnu-gcc") is None,
                                     reason="needs the riscv64 cross compiler")


def launch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "launcher.system_riscv64", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, env=env,
                          timeout=timeout)


@needs_cross_gcc
@pytest.mark.parametrize("harts", [2, 4])
def test_harts_wake_on_ipis_and_see_code_other_harts_wrote(tmp_path: Path,
                                                           harts: int) -> None:
    elf = tmp_path / "smp_ipi.elf"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-march=rv64gc", "-mabi=lp64d",
                    "-static", "-Wl,--build-id=none", "-Wl,-N", "-Wl,-Ttext=0x80000000",
                    "-Wl,--no-warn-rwx-segments", f"-DNHARTS={harts}", "-o", str(elf),
                    str(GUEST / "smp_ipi.S")], check=True)
    result = launch("-M", "virt", "-smp", str(harts), "-nographic", "-bios", "none",
                    "-kernel", str(elf))
    expected = "".join(f"hart {h}: 7\n" for h in range(1, harts)) + "all harts\n"
    assert result.stdout.decode().replace("\r\n", "\n") == expected, result.stderr
    assert result.returncode == 0


@needs_images
@pytest.mark.slow  # ~40 s: both harts translate OpenSBI's code
def test_opensbi_reports_two_harts() -> None:
    """OpenSBI's banner (printed by the hart that won its boot lottery) lists both
    harts in its domain."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.system_riscv64", "-M", "virt", "-m", "256M",
         "-smp", "2", "-nographic", "-bios", str(IMAGES / "fw_jump.bin"),
         "-kernel", str(IMAGES / "u-boot-qemu-riscv64_smode" / "u-boot.bin")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = b""
    try:
        import selectors
        import time
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while b"MEDELEG         : 0x000000000000b109" not in out and time.monotonic() < deadline:
            if selector.select(timeout=1):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
    finally:
        proc.kill()
        proc.wait()
    text = out.decode(errors="replace")
    assert "Platform HART Count       : 2" in text, text
    assert "Domain0 HARTs             : 0*,1*" in text, text
    assert "Boot HART MEDELEG         : 0x000000000000b109" in text, text


def test_virt_wires_every_hart(tmp_path: Path) -> None:
    machine = virt.build(MachineOptions(bios="none", smp=3))
    try:
        assert machine.num_harts == 3 and len(machine.hart_lines) == 3
        cpu = machine.create_cpu()
        assert isinstance(cpu, HartGroup) and len(cpu.harts) == 3
        from tests.machines.support import phys_write
        phys_write(machine.memory, virt.CLINT_BASE + 4 * 2, 4, 1)  # msip of hart 2
        assert machine.hart_lines[2].levels.get(virt.IrqBit.MSIP) is True
        assert not machine.hart_lines[1].levels.get(virt.IrqBit.MSIP)
        # PLIC context 2h + 1 is hart h's S-mode external interrupt
        phys_write(machine.memory, virt.PLIC_BASE + 4 * virt.UART0_IRQ, 4, 1)  # priority
        phys_write(machine.memory, virt.PLIC_BASE + 0x2000 + 0x80 * 5, 4, 1 << virt.UART0_IRQ)
        phys_write(machine.memory, virt.UART0_BASE + 1, 1, 1)  # IER: received data
        machine.serial_input.push(b"x")
        assert machine.hart_lines[2].levels.get(virt.IrqBit.SEIP) is True
        assert not machine.hart_lines[0].levels.get(virt.IrqBit.SEIP)
    finally:
        machine.close()


# QEMU 7.2's smp_parse messages.
SMP_ERRORS = [
    ("4,maxcpus=2", "Invalid CPU topology: maxcpus must be equal to or greater than smp: "
                    "sockets (1) * cores (2) * threads (1) == maxcpus (2) < smp_cpus (4)"),
    ("4,cores=3", "Invalid CPU topology: product of the hierarchy must match maxcpus: "
                  "sockets (1) * cores (3) * threads (1) != maxcpus (4)"),
    ("600", "Invalid SMP CPUs 600. The max CPUs supported by machine 'virt' is 512"),
    ("dies=2", "dies not supported by this machine's CPU topology"),
]


@pytest.mark.parametrize("smp,message", SMP_ERRORS)
def test_smp_errors(smp: str, message: str) -> None:
    from tests.launcher.test_system_riscv64 import PROG, run
    status, _, err = run("-M", "virt", "-bios", "none", "-display", "none", "-smp", smp)
    assert (status, err) == (1, f"{PROG}: {message}\n")


def test_smp_topologies_give_the_hart_count(tmp_path: Path) -> None:
    from devices.fdt import DeviceTree
    from tests.launcher.test_system_riscv64 import run
    for smp, harts in (("2", 2), ("cores=2,threads=2", 4), ("sockets=1,cores=3", 3),
                       ("2,maxcpus=2", 2)):
        dtb = tmp_path / "virt.dtb"
        status, _, err = run("-M", f"virt,dumpdtb={dtb}", "-bios", "none", "-smp", smp)
        assert status == 0, err
        tree = DeviceTree.from_dtb(dtb.read_bytes())
        assert [tree.has_node(f"/cpus/cpu@{h}") for h in range(harts + 1)] == \
            [True] * harts + [False]


def test_virt_refuses_a_hart_count_it_cannot_wire() -> None:
    from machines.machine import MachineError
    for smp in (0, 513):
        with pytest.raises(MachineError, match=f"Invalid SMP CPUs {smp}"):
            virt.build(MachineOptions(bios="none", smp=smp))


@needs_cross_gcc
def test_a_store_by_another_hart_makes_sc_fail(tmp_path: Path) -> None:
    """Hart 1's plain store of the value memory already holds, between hart 0's LR and
    SC, makes the SC fail (reservation-set semantics); a retry succeeds."""
    elf = tmp_path / "smp_lrsc.elf"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-march=rv64gc", "-mabi=lp64d",
                    "-static", "-Wl,--build-id=none", "-Wl,-N", "-Wl,-Ttext=0x80000000",
                    "-Wl,--no-warn-rwx-segments", "-o", str(elf),
                    str(GUEST / "smp_lrsc.S")], check=True)
    result = launch("-M", "virt", "-smp", "2", "-nographic", "-bios", "none",
                    "-kernel", str(elf))
    assert result.stdout.decode().replace("\r\n", "\n") == (
        "sc after another hart's store: 1\nretried lr/sc: 0\n"), result.stderr
    assert result.returncode == 0


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None, reason="needs QEMU")
@pytest.mark.parametrize("smp", ["4,sockets=2", "cpus=2,cores=1", "sockets=2,cores=2,threads=2"])
def test_sockets_are_laid_out_as_qemus(tmp_path: Path, smp: str) -> None:
    """QEMU 7.2's RISC-V virt makes a socket of each NUMA node: without -numa, harts of
    several -smp sockets are one cpu-map cluster behind one CLINT and one PLIC."""
    from tests.launcher.test_system_riscv64 import run
    from tests.machines.support import qemu_dumpdtb, tree_as_dict
    from tests.machines.test_virt import NOT_EMULATED, without
    dtb = tmp_path / "virt.dtb"
    status, _, err = run("-M", f"virt,dumpdtb={dtb}", "-bios", "none", "-smp", smp)
    assert status == 0, err
    ours = tree_as_dict(dtb.read_bytes())
    qemu = tree_as_dict(qemu_dumpdtb(tmp_path, "virt", "-bios", "none", "-smp", smp))
    assert without(qemu, NOT_EMULATED) == ours
    assert "/cpus/cpu-map/cluster0" in ours and "/cpus/cpu-map/cluster1" not in ours
