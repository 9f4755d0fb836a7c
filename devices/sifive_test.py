"""SiFive's test finisher as QEMU 7.2 has it (hw/misc/sifive_test.c): the guest's
power-off and reboot switch (Linux drives it through the syscon-poweroff and
syscon-reboot nodes).

A 16- or 32-bit write to offset 0 whose low 16 bits are

    0x5555  pass: power off, exit status 0
    0x3333  fail: exit status = the upper 16 bits of the value
    0x7777  reset the machine

calls ``on_poweroff(status)`` or ``on_reset()``; the machine decides what that means
(QEMU exits with that status, or resets). Other writes are ignored; reads return 0.
"""

from __future__ import annotations

from collections.abc import Callable

from devices.base import AccessRules, GuestErrorLog
from devices.fdt import DeviceTree, node_name, reg

FINISHER_FAIL = 0x3333
FINISHER_PASS = 0x5555
FINISHER_RESET = 0x7777

_RULES = AccessRules(min_size=2, max_size=4)


class SifiveTest:
    name = "test"
    size = 0x1000

    def __init__(self, on_poweroff: Callable[[int], None], on_reset: Callable[[], None], *,
                 log: GuestErrorLog | None = None) -> None:
        self._on_poweroff = on_poweroff
        self._on_reset = on_reset
        self._log = log

    def read(self, offset: int, size: int) -> int:
        if not _RULES.allows(offset, size, self.size):
            self._bad(f"invalid read of {size} bytes at {offset:#x}")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if not _RULES.allows(offset, size, self.size):
            self._bad(f"invalid write of {size} bytes at {offset:#x}")
            return
        value &= (1 << (8 * size)) - 1
        if offset == 0:
            status, code = value & 0xFFFF, value >> 16
            if status == FINISHER_FAIL:
                self._on_poweroff(code)
                return
            if status == FINISHER_PASS:
                self._on_poweroff(0)
                return
            if status == FINISHER_RESET:
                self._on_reset()
                return
        self._bad(f"write of {value:#x} at {offset:#x} does nothing")

    def _bad(self, message: str) -> None:
        if self._log is not None:
            self._log(f"{self.name}: {message}")


def add_fdt_node(tree: DeviceTree, base: int, *, reg_size: int = 0x1000,
                 parent: str = "/soc") -> int:
    """QEMU virt's ``test@…`` node plus the /reboot and /poweroff syscon nodes that
    point at it; returns the test node's phandle."""
    node = tree.node(f"{parent}/{node_name('test', base)}")
    node.prop_strings("compatible", "sifive,test1", "sifive,test0", "syscon")
    reg(node, base, reg_size)
    phandle = node.phandle()
    for name, compatible, value in (("reboot", "syscon-reboot", FINISHER_RESET),
                                    ("poweroff", "syscon-poweroff", FINISHER_PASS)):
        syscon = tree.node(f"/{name}")
        syscon.prop_str("compatible", compatible)
        syscon.prop_u32("regmap", phandle)
        syscon.prop_u32("offset", 0)
        syscon.prop_u32("value", value)
    return phandle
