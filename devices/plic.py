"""The SiFive PLIC as QEMU 7.2's virt machine has it (hw/intc/sifive_plic.c).

Register map (32-bit registers, 32-bit accesses only):

    0x000004 + 4*n          priority of source n (1 <= n < num_sources)
    0x001000 + 4*w          pending bits, sources 32w..32w+31 (read-only)
    0x002000 + 0x80*c + 4*w enable bits of context c
    0x200000 + 0x1000*c     priority threshold of context c
    0x200004 + 0x1000*c     claim (read) / complete (write) of context c

Contexts follow QEMU's hart config "MS" per hart: context 2h is hart h's M mode
(MEIP), 2h+1 its S mode (SEIP). virt has 96 sources (0..95; source 0 means "none", and
the device tree says riscv,ndev = 96) and 3 priority bits; a priority or threshold
write keeps its low 3 bits (QEMU treats them as WARL).

A context's output is raised while some source is pending, enabled for it, not claimed
and of priority above its threshold. Claim returns the highest-priority such source
(lowest number on a tie), or 0, clears its pending bit and marks it claimed; complete
of a source number below num_sources clears its claimed mark (any context, enabled or
not, as QEMU).

Sources are level lines behind the PLIC spec's level gateway: a raise latches the
pending bit, and lowering the line does not clear it (as QEMU 7.2.x); while a source is
claimed its line makes no new request, and completing it pends it again if the line is
still high. QEMU instead latches every raise, even of a claimed source, so a device
that re-drives its line during the handler (its UART does on every register access)
earns a spurious claim after the complete; the gateway gives the same deliveries
without those. One more departure: an enable write updates the outputs at once, where
QEMU 7.2 leaves them until the next PLIC event.
"""

from __future__ import annotations

from collections.abc import Sequence

from devices.base import (
    AccessRules,
    GuestErrorLog,
    IrqLine,
    StateError,
    StateValue,
    load_fields,
    save_fields,
)
from devices.fdt import DeviceTree, node_name, reg

VIRT_NUM_SOURCES = 96
VIRT_NUM_PRIORITIES = 7
VIRT_APERTURE = 0x600000  # VIRT_PLIC_SIZE(VIRT_CPUS_MAX * 2)

PRIORITY_BASE = 0x4  # QEMU virt's: the register of source n is at 4 * n
PENDING_BASE = 0x1000
ENABLE_BASE = 0x2000
ENABLE_STRIDE = 0x80
CONTEXT_BASE = 0x200000
CONTEXT_STRIDE = 0x1000

IRQ_M_EXT, IRQ_S_EXT = 11, 9  # mip bits, for the device tree

_RULES = AccessRules(min_size=4, max_size=4)


class Plic:
    name = "plic"
    state_version = 1
    _STATE_FIELDS = ("priority", "threshold", "pending", "claimed", "_levels")

    def __init__(self, contexts: Sequence[IrqLine], *,
                 num_sources: int = VIRT_NUM_SOURCES,
                 num_priorities: int = VIRT_NUM_PRIORITIES,
                 size: int = VIRT_APERTURE, log: GuestErrorLog | None = None) -> None:
        if not contexts:
            raise ValueError("a PLIC needs at least one context")
        if CONTEXT_BASE + len(contexts) * CONTEXT_STRIDE > size:
            raise ValueError(f"{len(contexts)} contexts do not fit a {size:#x}-byte PLIC")
        self.size = size
        self.num_sources = num_sources
        self.num_priorities = num_priorities
        self._outputs = list(contexts)
        self._log = log
        self._words = (num_sources + 31) // 32
        self._levels = [False] * num_sources
        self.reset()

    def reset(self) -> None:
        self.priority = [0] * self.num_sources
        self.threshold = [0] * len(self._outputs)
        self.pending = [0] * self._words
        self.claimed = [0] * self._words
        self.enable = [[0] * self._words for _ in self._outputs]
        self._output_levels: list[bool | None] = [None] * len(self._outputs)
        self._update()

    def save_state(self) -> dict[str, StateValue]:
        state = save_fields(self, self._STATE_FIELDS)
        state["enable"] = [list(words) for words in self.enable]
        return state

    def load_state(self, saved: dict[str, StateValue]) -> None:
        """Registers, gateways and input levels as saved; every context's output is
        driven again (the hart lines then match the restored state)."""
        enable = saved.get("enable")
        if (not isinstance(enable, list) or len(enable) != len(self._outputs)
                or any(not isinstance(w, list) or len(w) != self._words for w in enable)):
            raise StateError("plic: saved enable bits do not fit this PLIC")
        load_fields(self, self._STATE_FIELDS, saved)
        self.enable = [list(words) for words in enable]
        self._output_levels = [None] * len(self._outputs)
        self._update()

    def source_line(self, source: int) -> IrqLine:
        """The interrupt line a device drives for ``source`` (1 <= source < num_sources)."""
        if not 1 <= source < self.num_sources:
            raise ValueError(f"PLIC source {source} out of range 1..{self.num_sources - 1}")

        def line(level: bool) -> None:
            self._levels[source] = bool(level)
            if level and not self._bit(self.claimed, source):
                self._set_bit(self.pending, source, True)
                self._update()

        return line

    def claimable(self, context: int) -> int:
        """The source a claim by ``context`` would return now (0 for none)."""
        best, best_priority = 0, self.threshold[context]
        enable = self.enable[context]
        for word in range(self._words):
            candidates = self.pending[word] & ~self.claimed[word] & enable[word]
            while candidates:
                bit = (candidates & -candidates).bit_length() - 1
                candidates &= candidates - 1
                source = 32 * word + bit
                if source < self.num_sources and self.priority[source] > best_priority:
                    best, best_priority = source, self.priority[source]
        return best

    # --- registers ------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if _RULES.allows(offset, size, self.size):
            if PRIORITY_BASE <= offset < self.num_sources * 4:
                return self.priority[offset // 4]
            if PENDING_BASE <= offset < PENDING_BASE + self.num_sources // 8:
                return self.pending[(offset - PENDING_BASE) // 4]
            context, word = self._enable_slot(offset)
            if context is not None and word is not None:
                return self.enable[context][word]
            context, register = self._context_slot(offset)
            if context is not None:
                if register == 0:
                    return self.threshold[context]
                if register == 4:
                    return self._claim(context)
        self._bad("read", offset, size)
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if _RULES.allows(offset, size, self.size):
            value &= 0xFFFF_FFFF
            if PRIORITY_BASE <= offset < self.num_sources * 4:
                legal = self._legal_priority(value)
                if legal is not None:
                    self.priority[offset // 4] = legal
                    self._update()
                return
            context, word = self._enable_slot(offset)
            if context is not None and word is not None:
                self.enable[context][word] = value
                self._update()  # QEMU 7.2 waits for the next event; hardware does not
                return
            context, register = self._context_slot(offset)
            if context is not None and register == 0:
                legal = self._legal_priority(value)
                if legal is not None:
                    self.threshold[context] = legal
                    self._update()
                return
            if context is not None and register == 4:
                self._complete(value)
                return
        self._bad("write", offset, size)

    # --- internals ------------------------------------------------------------------

    def _claim(self, context: int) -> int:
        source = self.claimable(context)
        if source:
            self._set_bit(self.pending, source, False)
            self._set_bit(self.claimed, source, True)
        self._update()
        return source

    def _complete(self, source: int) -> None:
        if source >= self.num_sources:
            return  # QEMU ignores it silently
        self._set_bit(self.claimed, source, False)
        if self._levels[source]:
            self._set_bit(self.pending, source, True)
        self._update()

    def _legal_priority(self, value: int) -> int | None:
        limit = self.num_priorities + 1
        if limit & (limit - 1) == 0:
            return value % limit  # whole priority bits: write-any, read-legal
        return value if value <= self.num_priorities else None

    def _enable_slot(self, offset: int) -> tuple[int | None, int | None]:
        if not ENABLE_BASE <= offset < ENABLE_BASE + len(self._outputs) * ENABLE_STRIDE:
            return None, None
        context, within = divmod(offset - ENABLE_BASE, ENABLE_STRIDE)
        word = within // 4
        return context, (word if word < self._words else None)

    def _context_slot(self, offset: int) -> tuple[int | None, int]:
        if not CONTEXT_BASE <= offset < CONTEXT_BASE + len(self._outputs) * CONTEXT_STRIDE:
            return None, -1
        context, register = divmod(offset - CONTEXT_BASE, CONTEXT_STRIDE)
        return context, register

    @staticmethod
    def _bit(words: list[int], source: int) -> bool:
        return bool(words[source // 32] >> (source % 32) & 1)

    @staticmethod
    def _set_bit(words: list[int], source: int, value: bool) -> None:
        word, bit = divmod(source, 32)
        if value:
            words[word] |= 1 << bit
        else:
            words[word] &= ~(1 << bit)

    def _update(self) -> None:
        for context, output in enumerate(self._outputs):
            level = self.claimable(context) != 0
            if level != self._output_levels[context]:
                self._output_levels[context] = level
                output(level)

    def _bad(self, kind: str, offset: int, size: int) -> None:
        if self._log is not None:
            self._log(f"{self.name}: invalid {kind} of {size} bytes at {offset:#x}")


def add_fdt_node(tree: DeviceTree, base: int, cpu_intc_phandles: Sequence[int], *,
                 num_sources: int = VIRT_NUM_SOURCES, reg_size: int = VIRT_APERTURE,
                 parent: str = "/soc") -> int:
    """QEMU virt's ``plic@…`` node (M and S external interrupt of every hart);
    returns the PLIC's phandle, which devices use as interrupt-parent."""
    node = tree.node(f"{parent}/{node_name('plic', base)}")
    node.prop_u32("#interrupt-cells", 1)
    node.prop_u32("#address-cells", 0)
    node.prop_strings("compatible", "sifive,plic-1.0.0", "riscv,plic0")
    node.prop_empty("interrupt-controller")
    cells: list[int] = []
    for intc in cpu_intc_phandles:
        cells += [intc, IRQ_M_EXT, intc, IRQ_S_EXT]
    node.prop_u32("interrupts-extended", *cells)
    reg(node, base, reg_size)
    node.prop_u32("riscv,ndev", num_sources)
    return node.phandle()
