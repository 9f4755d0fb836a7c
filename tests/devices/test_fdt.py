"""The device-tree builder, and the device nodes against the tree QEMU 7.2 generates for
``-M virt -m 256M`` (../shared/images/riscv64/qemu-virt-256M.dtb)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devices import aclint, goldfish_rtc, htif, plic, sifive_test, uart16550
from devices.fdt import DeviceTree, FdtError

REPO = Path(__file__).resolve().parents[2]
QEMU_VIRT_DTB = REPO.parent / "shared" / "images" / "riscv64" / "qemu-virt-256M.dtb"
needs_qemu_dtb = pytest.mark.skipif(
    not QEMU_VIRT_DTB.is_file(),
    reason=f"QEMU's virt device tree not found at {QEMU_VIRT_DTB} (../shared/images)")
DTC = shutil.which("dtc")
needs_dtc = pytest.mark.skipif(DTC is None, reason="dtc not installed (make setup)")


def test_property_kinds_round_trip() -> None:
    tree = DeviceTree()
    node = tree.node("/soc/dev@1000")  # parents are created
    node.prop_u32("cells", 1, 0xFFFF_FFFF)
    node.prop_u64("reg", 0x1_0000_1000, 0x100)
    node.prop_str("compatible", "vendor,dev")
    node.prop_strings("names", "a", "bc")
    node.prop_empty("flag")
    node.prop_bytes("blob", b"\x01\x02\x03")
    node.prop_u32("cells", 7)  # replaces, keeping its place
    back = DeviceTree.from_dtb(tree.to_dtb()).get_node("/soc/dev@1000")
    assert back.properties() == {
        "cells": b"\0\0\0\x07",
        "reg": bytes.fromhex("00000001 00001000 00000000 00000100"),
        "compatible": b"vendor,dev\0",
        "names": b"a\0bc\0",
        "flag": b"",
        "blob": b"\x01\x02\x03",
    }
    assert back.u32s("reg") == [1, 0x1000, 0, 0x100]
    assert back.strings("names") == ["a", "bc"] and back.string("compatible") == "vendor,dev"
    assert tree.has_node("/soc") and not tree.has_node("/nope")
    assert list(tree.paths()) == ["/", "/soc", "/soc/dev@1000"]


def test_phandles_are_allocated_once_and_continue_after_a_parsed_tree() -> None:
    tree = DeviceTree()
    a, b = tree.node("/a"), tree.node("/b")
    assert (a.phandle(), b.phandle(), a.phandle()) == (1, 2, 1)
    assert tree.find_phandle(2) == "/b" and tree.find_phandle(9) is None
    back = DeviceTree.from_dtb(tree.to_dtb())
    assert back.node("/c").phandle() == 3


def test_bad_input_is_a_clear_error() -> None:
    tree = DeviceTree()
    node = tree.node("/x")
    for bad in (lambda: node.prop_u32("v", 1 << 32), lambda: node.prop_u32("v", -1),
                lambda: node.prop_u64("v", 1 << 64), lambda: node.prop_str("s", ""),
                lambda: node.prop_str("s", "caf\u00e9"), lambda: tree.node("relative"),
                lambda: tree.get_node("/missing"), lambda: node.raw("missing"),
                lambda: DeviceTree.from_dtb(b"not a device tree blob at all")):
        with pytest.raises(FdtError):
            bad()
    node.prop_u32("two", 1, 2)
    with pytest.raises(FdtError):
        node.u32("two")


@needs_dtc
def test_dtc_reads_our_blob(tmp_path: Path) -> None:
    tree = DeviceTree()
    root = tree.node("/")
    root.prop_u32("#address-cells", 2)
    root.prop_u32("#size-cells", 2)
    build_virt_devices(tree)
    blob = tmp_path / "virt.dtb"
    blob.write_bytes(tree.to_dtb())
    result = subprocess.run([DTC, "-I", "dtb", "-O", "dts", str(blob)],
                            capture_output=True, text=True, check=True)
    assert 'compatible = "sifive,plic-1.0.0\\0riscv,plic0";' in result.stdout
    assert "serial@10000000 {" in result.stdout


def build_virt_devices(tree: DeviceTree) -> None:
    """The device nodes of QEMU's virt with one hart, the way a machine will add them."""
    tree.node("/cpus/cpu@0").phandle()
    intc_node = tree.node("/cpus/cpu@0/interrupt-controller")
    intc_node.prop_u32("#interrupt-cells", 1)
    intc = intc_node.phandle()
    soc = tree.node("/soc")
    soc.prop_u32("#address-cells", 2)
    soc.prop_u32("#size-cells", 2)
    plic_phandle = plic.add_fdt_node(tree, 0xC000000, [intc])
    aclint.add_fdt_node(tree, 0x2000000, [intc])
    sifive_test.add_fdt_node(tree, 0x100000)
    uart16550.add_fdt_node(tree, 0x10000000, 10, plic_phandle)
    goldfish_rtc.add_fdt_node(tree, 0x101000, 11, plic_phandle)


def resolved(tree: DeviceTree, path: str) -> dict[str, object]:
    """A node's properties with phandle references replaced by the paths they name."""
    node = tree.get_node(path)
    out: dict[str, object] = {}
    for name, raw in node.properties().items():
        if name == "phandle":
            out[name] = "(own)"
        elif name in ("interrupt-parent", "regmap"):
            out[name] = tree.find_phandle(node.u32(name))
        elif name == "interrupts-extended":
            cells, specifiers = node.u32s(name), []
            while cells:
                target = tree.find_phandle(cells[0])
                assert target is not None
                count = tree.get_node(target).u32("#interrupt-cells")
                specifiers.append((target, cells[1:1 + count]))
                cells = cells[1 + count:]
            out[name] = specifiers
        else:
            out[name] = raw
    return out


@needs_qemu_dtb
@pytest.mark.parametrize("path", [
    "/soc/serial@10000000", "/soc/plic@c000000", "/soc/clint@2000000",
    "/soc/test@100000", "/soc/rtc@101000", "/poweroff", "/reboot"])
def test_device_nodes_match_qemu_virt(path: str) -> None:
    qemu = DeviceTree.from_dtb(QEMU_VIRT_DTB.read_bytes())
    ours = DeviceTree()
    build_virt_devices(ours)
    ours = DeviceTree.from_dtb(ours.to_dtb())
    assert resolved(ours, path) == resolved(qemu, path)


def test_htif_node_as_qemu_spike() -> None:
    tree = DeviceTree()
    htif.add_fdt_node(tree)
    assert tree.get_node("/htif").properties() == {
        "compatible": b"ucb,htif0\0",
        "reg": bytes.fromhex("00000000 01000000 00000000 00001000")}
    symbols = DeviceTree()
    htif.add_fdt_node(symbols, None)  # mailboxes at ELF symbols: no reg
    assert symbols.get_node("/htif").properties() == {"compatible": b"ucb,htif0\0"}
