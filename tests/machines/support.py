"""Shared by the machine and launcher tests: the reference images, QEMU, a scripted
stand-in for the system CPU, and guest-physical accesses as the softmmu makes them."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from llvmtcg.runtime.physmem import PhysicalAddressSpace
from machines.cpu import CpuEvent, IrqBit, Stopped

if TYPE_CHECKING:
    from qemu.qmp import QMPClient

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO.parent / "shared" / "images" / "riscv64"
QEMU = shutil.which("qemu-system-riscv64")
CROSS_GCC = shutil.which("riscv64-linux-gnu-gcc")

needs_images = pytest.mark.skipif(
    not (IMAGES / "Image").is_file(),
    reason=f"riscv64 guest images not found at {IMAGES} (../shared beside the repository)")
needs_qemu = pytest.mark.skipif(
    QEMU is None, reason="qemu-system-riscv64 not installed (scripts/setup.sh installs "
                         "Debian's qemu-system-misc)")
needs_cross_gcc = pytest.mark.skipif(
    CROSS_GCC is None, reason="riscv64-linux-gnu-gcc not installed (scripts/setup.sh)")


def image(name: str) -> str:
    return str(IMAGES / name)


def qemu_dumpdtb(tmp: Path, *args: str) -> bytes:
    """The device tree QEMU generates for ``args`` (-machine ...,dumpdtb)."""
    assert QEMU is not None
    out = tmp / "qemu.dtb"
    machine, rest = args[0], args[1:]
    subprocess.run([QEMU, "-M", f"{machine},dumpdtb={out}", "-display", "none", *rest],
                   check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def qemu_rom_words(*args: str, count: int = 22) -> list[int]:
    """The first ``count`` 32-bit words of QEMU's boot ROM at 0x1000 for ``args`` (read
    with the monitor's xp before the CPU starts)."""
    assert QEMU is not None
    result = subprocess.run(
        [QEMU, *args, "-display", "none", "-S", "-monitor", "stdio", "-serial", "null"],
        input=f"xp /{count}wx 0x1000\nquit\n", capture_output=True, text=True, timeout=60)
    words: list[int] = []
    for line in re.findall(r"0000000000001[0-9a-f]{3}:((?: 0x[0-9a-f]{8})+)", result.stdout):
        words += [int(w, 16) for w in line.split()]
    assert len(words) == count, result.stdout + result.stderr
    return words


def phys_write(memory: PhysicalAddressSpace, addr: int, size: int, value: int) -> None:
    """A guest store to a device, the way the softmmu's slow path makes it."""
    region = memory.memory.region(addr)
    assert region is not None and region.mmio is not None, hex(addr)
    region.mmio.write(addr - region.start, size, value)


def phys_read(memory: PhysicalAddressSpace, addr: int, size: int) -> int:
    region = memory.memory.region(addr)
    assert region is not None and region.mmio is not None, hex(addr)
    return region.mmio.read(addr - region.start, size)


Step = Callable[["ScriptedCpu"], CpuEvent | None]


class ScriptedCpu:
    """A SystemCpu for the loop's logic only: each run() performs script steps until
    one returns an event; when the script is used up, run() behaves like guest code
    that never stops by itself — it blocks until stop()."""

    def __init__(self, script: list[Step] | None = None) -> None:
        self.script = list(script or [])
        self.position = 0
        self.resets: list[tuple[int, int, int, int]] = []
        self.irqs: dict[IrqBit, bool] = {}
        self.runs = 0
        self.stops = 0
        self._stop = threading.Event()

    def reset(self, pc: int, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        self.resets.append((pc, a0, a1, a2))

    def set_irq(self, irq: IrqBit, level: bool) -> None:
        self.irqs[irq] = level

    def run(self) -> CpuEvent:
        self.runs += 1
        while self.position < len(self.script):
            if self._stop.is_set():
                break
            step = self.script[self.position]
            self.position += 1
            event = step(self)
            if event is not None:
                return event
        self._stop.wait()
        self._stop.clear()
        return Stopped()

    def stop(self) -> None:
        self.stops += 1
        self._stop.set()


# Properties whose cells hold phandles (or phandle + specifier lists).
_PHANDLE_PROPS = ("interrupt-parent", "regmap", "cpu")


def tree_as_dict(blob: bytes, *, ignore: tuple[str, ...] = ("rng-seed",)) -> dict[str, dict]:
    """Every node path of a device tree with its properties, phandle references resolved
    to the paths they name (so phandle numbers do not matter); ``ignore``d properties
    are left out."""
    from devices.fdt import DeviceTree
    tree = DeviceTree.from_dtb(blob)
    nodes: dict[str, dict] = {}
    for path in tree.paths():
        node = tree.get_node(path)
        props: dict[str, object] = {}
        for name, raw in node.properties().items():
            if name in ignore:
                continue
            if name == "phandle":
                props[name] = "(own)"
            elif name in _PHANDLE_PROPS:
                props[name] = tree.find_phandle(node.u32(name))
            elif name == "interrupts-extended":
                cells, specifiers = node.u32s(name), []
                while cells:
                    target = tree.find_phandle(cells[0])
                    count = tree.get_node(target).u32("#interrupt-cells") if target else 0
                    specifiers.append((target, tuple(cells[1:1 + count])))
                    cells = cells[1 + count:]
                props[name] = specifiers
            else:
                props[name] = raw
        nodes[path] = props
    return nodes


async def quit_qmp(client: QMPClient) -> None:
    """QMP ``quit``, then the client's side of the connection closed."""
    await client.execute("quit")
    try:
        await client.disconnect()
    except EOFError:  # the server closed first: it was told to quit
        pass
