"""Translation blocks: lookup, region translation, chaining, jump cache, invalidation.

A translation miss translates the block at the missed pc and, ahead of time, the
blocks its direct exits reach (bounded), and compiles them as one LLVM module. Direct
exits are linked by writing the target's entry address into the exit slot (a module
global the block tail-calls through); every link is recorded on the target so
invalidation can undo it. Code of invalidated blocks is released only at a safe point
(no native frame running), once every block of its module is gone.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.block import Block
from llvmtcg.ir.lower_llvm import Lowering, slot_symbol
from llvmtcg.log import Log
from llvmtcg.runtime.codecache import BlockMeta, CodeCache
from llvmtcg.runtime.jit import CompiledModule, JitEngine
from llvmtcg.runtime.softmmu import page_floor


class Frontend(Protocol):
    """What the runtime needs from a guest ISA."""

    def translate(self, pc: int, fetch: Callable[[int, int], bytes]) -> Block:
        """IR for the block at pc; ``fetch(addr, size)`` reads guest code bytes and
        raises GuestFault when they are not executable."""
        ...


@dataclass(eq=False)
class TranslationBlock:
    pc: int
    name: str
    ranges: list[tuple[int, int]]
    module: CompiledModule
    entry: int
    slots: dict[int, int]  # exit slot n -> native address of the slot
    direct_targets: dict[int, int]  # exit slot n -> destination guest pc
    n_insns: int = 0
    linked: dict[int, TranslationBlock] = field(default_factory=dict)  # outgoing links
    incoming: set[tuple[TranslationBlock, int]] = field(default_factory=set)
    valid: bool = True

    def pages(self) -> set[int]:
        return {p for start, end in self.ranges
                for p in range(page_floor(start), end, abi.PAGE_SIZE)}

    def overlaps(self, start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in self.ranges)


def _write_pointer(address: int, value: int) -> None:
    ctypes.c_uint64.from_address(address).value = value


class TbCache:
    """All translations of one guest address space.

    Args:
        frontend: the guest ISA translator.
        lowering: IR -> LLVM IR for this CPU layout and helper set.
        jit: the LLVM engine.
        fetch: reads guest code (the softmmu's fetch).
        max_region_blocks: how many blocks one translation miss may compile together.
        code_cache: where compiled regions persist across runs (None: no disk cache).
    """

    def __init__(self, frontend: Frontend, lowering: Lowering, jit: JitEngine,
                 fetch: Callable[[int, int], bytes], log: Log | None = None,
                 max_region_blocks: int = 8, code_cache: CodeCache | None = None) -> None:
        self.frontend = frontend
        self.lowering = lowering
        self.jit = jit
        self.fetch = fetch
        self.log = log or Log()
        self.max_region_blocks = max_region_blocks
        self.code_cache = code_cache
        self.by_pc: dict[int, TranslationBlock] = {}
        self.by_slot: dict[int, tuple[TranslationBlock, int]] = {}
        self.by_page: dict[int, set[TranslationBlock]] = {}
        self.pending_release: list[CompiledModule] = []
        self.new_code_page: list[Callable[[int], None]] = []  # a page gets its first block
        self.code_page_freed: list[Callable[[int], None]] = []  # a page's last block went
        n = 1 << abi.JMP_CACHE_BITS
        self.jmp_cache = (ctypes.c_uint64 * (2 * n))()
        self.jmp_cache_address = ctypes.addressof(self.jmp_cache)
        self.jmp_cache_flush()
        self._names: dict[str, int] = {}
        self._accessors: set[str] = set()
        self._accessor_modules: list[CompiledModule] = []
        self.stats = {"translated": 0, "links": 0, "unlinks": 0, "invalidated": 0,
                      "released_modules": 0, "insns_translated": 0}

    # -- lookup and translation ------------------------------------------------------------
    def lookup(self, pc: int) -> TranslationBlock | None:
        return self.by_pc.get(pc)

    def get(self, pc: int) -> TranslationBlock:
        """The block at pc, translating a region if needed (GuestFault if pc cannot be
        fetched)."""
        tb = self.by_pc.get(pc)
        return tb if tb is not None else self.translate_region(pc)

    def _unique_name(self, block: Block) -> str:
        # Blocks retranslated after invalidation get a new symbol name.
        count = self._names.get(block.name, 0)
        self._names[block.name] = count + 1
        return block.name if count == 0 else f"{block.name}.{count}"

    def translate_region(self, pc: int) -> TranslationBlock:
        tbs = self._load_cached(pc) if self.code_cache is not None else None
        if tbs is None:
            tbs = self._translate_and_compile(pc)
        for tb in tbs:
            for n, dest in tb.direct_targets.items():
                target = self.by_pc.get(dest)
                if target is not None:
                    self.link(tb, n, target)
        return tbs[0]

    def _load_cached(self, pc: int) -> list[TranslationBlock] | None:
        region = self.code_cache.lookup(pc, self.fetch)
        if region is None:
            return None
        self._compile_accessors(set(region.accessors))
        exports = [e for meta in region.blocks for e in self._symbols(meta)]
        names = [meta.name for meta in region.blocks]
        module = self.jit.load_object(region.object, exports, names)
        # Blocks of the region translated meanwhile by other misses keep their code.
        fresh = [m for m in region.blocks if m.pc == pc or m.pc not in self.by_pc]
        return self._install(fresh, module)

    def _translate_and_compile(self, pc: int) -> list[TranslationBlock]:
        blocks = [self.frontend.translate(pc, self.fetch)]  # errors here are the guest's
        seen = {pc}
        queue = list(blocks[0].direct_targets())
        while queue and len(blocks) < self.max_region_blocks:
            target = queue.pop(0)
            if target in seen or target in self.by_pc:
                continue
            seen.add(target)
            try:
                block = self.frontend.translate(target, self.fetch)
            except Exception:  # noqa: BLE001 - speculative: the guest may never go there
                continue
            blocks.append(block)
            queue.extend(block.direct_targets())
        for block in blocks:
            block.name = self._unique_name(block)
            if self.log.enabled("op"):
                self.log.write(f"OP:\n{block}")
        metas = tuple(self._meta(b) for b in blocks)
        text = self.lowering.lower_module(blocks, self.jit.triple)
        accessors = set(self.lowering.accessors_used)
        self._compile_accessors(accessors)
        exports = [e for meta in metas for e in self._symbols(meta)]
        module = self.jit.compile(text, exports, [m.name for m in metas])
        if self.code_cache is not None and module.object is not None:
            self.code_cache.store(metas, accessors, module.object, self.fetch)
        module.object = None
        return self._install(metas, module)

    @staticmethod
    def _meta(block: Block) -> BlockMeta:
        slots = tuple(sorted({op.args[0] for op in block.ops if op.name == "goto_tb"}))
        targets = tuple((op.args[0], op.args[1]) for op in block.ops if op.name == "goto_tb")
        return BlockMeta(block.pc, block.name, tuple(block.guest_ranges), slots, targets,
                         block.n_insns)

    @staticmethod
    def _symbols(meta: BlockMeta) -> list[str]:
        return [meta.name] + [slot_symbol(meta.name, n) for n in meta.slots]

    def _install(self, metas: Iterable[BlockMeta], module: CompiledModule
                 ) -> list[TranslationBlock]:
        tbs = []
        for m in metas:
            slots = {n: module.addresses[slot_symbol(m.name, n)] for n in m.slots}
            tb = TranslationBlock(m.pc, m.name, [tuple(r) for r in m.ranges], module,
                                  module.addresses[m.name], slots, dict(m.targets), m.n_insns)
            self._insert(tb)
            tbs.append(tb)
        module.live_blocks = len(tbs)
        if not tbs:
            self.pending_release.append(module)
        return tbs

    def _compile_accessors(self, names: set[str]) -> None:
        """Compile the out-of-line memory accessors a module needs, once each."""
        missing = sorted(names - self._accessors)
        if not missing:
            return
        module = self.jit.compile(self.lowering.accessor_module(missing, self.jit.triple),
                                  missing, missing)
        self.jit.add_imports(module.addresses)
        self._accessors.update(missing)
        self._accessor_modules.append(module)

    def _insert(self, tb: TranslationBlock) -> None:
        old = self.by_pc.get(tb.pc)
        if old is not None:
            self.invalidate(old)
        self.by_pc[tb.pc] = tb
        for n, slot in tb.slots.items():
            self.by_slot[slot] = (tb, n)
        for page in tb.pages():
            holders = self.by_page.setdefault(page, set())
            if not holders:
                for hook in self.new_code_page:
                    hook(page)
            holders.add(tb)
        self.stats["translated"] += 1
        self.stats["insns_translated"] += tb.n_insns

    # -- chaining --------------------------------------------------------------------------
    def slot_owner(self, slot_address: int) -> tuple[TranslationBlock, int] | None:
        return self.by_slot.get(slot_address)

    def link(self, src: TranslationBlock, n: int, dst: TranslationBlock) -> None:
        """Patch src's exit n to tail-jump into dst."""
        if not (src.valid and dst.valid) or src.direct_targets.get(n) != dst.pc:
            return
        old = src.linked.get(n)
        if old is dst:
            return
        if old is not None:
            old.incoming.discard((src, n))
        _write_pointer(src.slots[n], dst.entry)
        src.linked[n] = dst
        dst.incoming.add((src, n))
        self.stats["links"] += 1

    def _unlink_exit(self, src: TranslationBlock, n: int) -> None:
        _write_pointer(src.slots[n], 0)
        src.linked.pop(n, None)
        self.stats["unlinks"] += 1

    # -- jump cache ------------------------------------------------------------------------
    def jmp_cache_set(self, tb: TranslationBlock) -> None:
        i = abi.jmp_cache_index(tb.pc) * 2
        self.jmp_cache[i] = tb.pc
        self.jmp_cache[i + 1] = tb.entry

    def jmp_cache_flush(self) -> None:
        for i in range(0, len(self.jmp_cache), 2):
            self.jmp_cache[i] = abi.JMP_CACHE_INVALID_PC
            self.jmp_cache[i + 1] = 0

    # -- invalidation ----------------------------------------------------------------------
    def invalidate(self, tb: TranslationBlock) -> None:
        """Unlink tb everywhere and retire it; its code is released later."""
        if not tb.valid:
            return
        tb.valid = False
        for src, n in list(tb.incoming):
            self._unlink_exit(src, n)
        tb.incoming.clear()
        for n, dst in list(tb.linked.items()):
            dst.incoming.discard((tb, n))
        tb.linked.clear()
        if self.by_pc.get(tb.pc) is tb:
            del self.by_pc[tb.pc]
        for slot in tb.slots.values():
            self.by_slot.pop(slot, None)
        for page in tb.pages():
            holders = self.by_page.get(page)
            if holders is not None:
                holders.discard(tb)
                if not holders:
                    del self.by_page[page]
                    for hook in self.code_page_freed:
                        hook(page)
        i = abi.jmp_cache_index(tb.pc) * 2
        if self.jmp_cache[i] == tb.pc and self.jmp_cache[i + 1] == tb.entry:
            self.jmp_cache[i] = abi.JMP_CACHE_INVALID_PC
            self.jmp_cache[i + 1] = 0
        self.stats["invalidated"] += 1
        tb.module.live_blocks -= 1
        if tb.module.live_blocks == 0:
            self.pending_release.append(tb.module)

    def page_has_code(self, page: int) -> bool:
        return page in self.by_page

    def invalidate_range(self, start: int, end: int) -> int:
        """Invalidate every block translated from guest bytes in [start, end)."""
        victims: set[TranslationBlock] = set()
        for page in range(page_floor(start), end, abi.PAGE_SIZE):
            for tb in self.by_page.get(page, ()):
                if tb.overlaps(start, end):
                    victims.add(tb)
        for tb in victims:
            self.invalidate(tb)
        return len(victims)

    def flush(self) -> None:
        """Invalidate every block (QEMU's tb_flush)."""
        for tb in list(self.by_pc.values()):
            self.invalidate(tb)
        self.jmp_cache_flush()

    def release_pending(self) -> int:
        """Free the code of fully invalidated modules. Only call with no native frame
        of this cache running (the run loop does, between native calls)."""
        released = len(self.pending_release)
        for module in self.pending_release:
            module.release()
        self.pending_release.clear()
        self.stats["released_modules"] += released
        return released

    def blocks(self) -> Iterable[TranslationBlock]:
        return self.by_pc.values()
