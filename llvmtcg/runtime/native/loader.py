"""A relocating loader of x86-64 ELF relocatable objects into a :class:`CodeArena`.

It does what LLJIT's linker does for the objects LLVM emits for us, without LLVM: lay
out the allocated sections, resolve symbols (defined ones, and undefined ones from an
import table), apply relocations, and hand back the addresses of the global symbols.

- Executable and read-only sections (``.text*``, ``.ltext*``, ``.rodata*``,
  ``.lrodata*``), the GOT and call stubs go to the arena's code zone (r-x); writable
  ones (``.data*``, ``.ldata*``, ``.bss*``, ``.lbss*``, common symbols) to its data zone
  (rw-, never executable). Each object takes one chunk of each zone. ``.eh_frame``,
  notes and non-allocated sections are ignored, with their relocations (there is no
  unwinder to register with: native code here never throws).
- Relocations: ``R_X86_64_64, PC32, PLT32, 32, 32S, PC64, GOTPCREL, GOTPCRELX,
  REX_GOTPCRELX, GOTPC32, GOTOFF64, GOT64, GOTPCREL64, GOTPC64`` (the small, medium and
  large code models, static or PIC). GOT relocations get entries in a small
  per-object GOT, written before the code can run; they are not relaxed.
  A ``PLT32`` call to an import beyond rel32 reach goes through a 16-byte stub
  (``jmp *0(%rip); .quad target``) at the end of the object's code chunk (room for
  one is reserved per imported call target; calls in reach go direct).
- Anything else — another relocation type, a value that does not fit its field (e.g.
  32-bit absolute addresses of a non-PIC small or medium code model object, which
  need the code below 2 GiB), an undefined
  symbol missing from the imports, TLS, constructors, a malformed file — raises
  :class:`LoaderError` naming it, before anything is written to the arena.

Everything is written to the arena only once complete (one copy per chunk), so no
partially relocated code is ever executable.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from llvmtcg.runtime.native import elfobj
from llvmtcg.runtime.native.arena import CodeArena
from llvmtcg.runtime.native.elfobj import ElfError, ElfObject, Section

R_X86_64_NONE = 0
R_X86_64_64 = 1
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4
R_X86_64_GOTPCREL = 9
R_X86_64_32 = 10
R_X86_64_32S = 11
R_X86_64_PC64 = 24
R_X86_64_GOTOFF64 = 25
R_X86_64_GOTPC32 = 26
R_X86_64_GOT64 = 27
R_X86_64_GOTPCREL64 = 28
R_X86_64_GOTPC64 = 29
R_X86_64_GOTPCRELX = 41
R_X86_64_REX_GOTPCRELX = 42

RELOCATION_NAMES = {
    R_X86_64_NONE: "R_X86_64_NONE", R_X86_64_64: "R_X86_64_64",
    R_X86_64_PC32: "R_X86_64_PC32", R_X86_64_PLT32: "R_X86_64_PLT32",
    R_X86_64_GOTPCREL: "R_X86_64_GOTPCREL", R_X86_64_32: "R_X86_64_32",
    R_X86_64_32S: "R_X86_64_32S", R_X86_64_PC64: "R_X86_64_PC64",
    R_X86_64_GOTOFF64: "R_X86_64_GOTOFF64", R_X86_64_GOTPC32: "R_X86_64_GOTPC32",
    R_X86_64_GOT64: "R_X86_64_GOT64", R_X86_64_GOTPCREL64: "R_X86_64_GOTPCREL64",
    R_X86_64_GOTPC64: "R_X86_64_GOTPC64", R_X86_64_GOTPCRELX: "R_X86_64_GOTPCRELX",
    R_X86_64_REX_GOTPCRELX: "R_X86_64_REX_GOTPCRELX",
}
_GOT_ENTRY = (R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX,
              R_X86_64_GOT64, R_X86_64_GOTPCREL64)
_GOT_BASE = (*_GOT_ENTRY, R_X86_64_GOTOFF64, R_X86_64_GOTPC32, R_X86_64_GOTPC64)
_NEEDS_SCAN = frozenset((*_GOT_BASE, R_X86_64_PLT32))
_GOT_SYMBOL = "_GLOBAL_OFFSET_TABLE_"

_OFFSET, _TYPE, _SYMBOL = (operator.itemgetter(i) for i in range(3))
_S32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_MASK64 = (1 << 64) - 1
_STUB = bytes.fromhex("ff2500000000")  # jmp *0(%rip), then the 8-byte target
_STUB_SIZE = 16
_SKIPPED_TYPES = (elfobj.SHT_X86_64_UNWIND, elfobj.SHT_NOTE, elfobj.SHT_GROUP)
_CONSTRUCTOR_TYPES = (elfobj.SHT_INIT_ARRAY, elfobj.SHT_FINI_ARRAY,
                      elfobj.SHT_PREINIT_ARRAY)


class LoaderError(Exception):
    """The object cannot be loaded: names the symbol, section or relocation why."""


@dataclass(frozen=True, slots=True)
class LoadedObject:
    """Where an object landed. Its code stays until the arena is reset."""

    symbols: dict[str, int]  # defined global and weak symbols -> addresses
    sizes: dict[str, int]  # the same symbols -> st_size (for perf maps, disassembly)
    code: tuple[int, int]  # (address, size) of its chunk in the code zone
    data: tuple[int, int]  # (address, size) of its chunk in the data zone
    arena_generation: int = field(default=0)


@dataclass(slots=True)
class _Chunk:
    """One object's part of a zone while it is being laid out and relocated."""

    size: int = 0
    align: int = 16
    address: int = 0
    image: bytearray = field(default_factory=bytearray)

    def place(self, size: int, align: int) -> int:
        if align & (align - 1):
            raise LoaderError(f"alignment {align} is not a power of two")
        offset = (self.size + align - 1) & ~(align - 1)
        self.size = offset + size
        self.align = max(self.align, align)
        return offset


def load_object(arena: CodeArena, obj: bytes | ElfObject,
                imports: Mapping[str, int] | None = None) -> LoadedObject:
    """Load one relocatable object into ``arena`` and return its global symbols.

    Args:
        arena: where code and data go.
        obj: the object's bytes (or an already parsed :class:`ElfObject`).
        imports: addresses of the symbols the object leaves undefined (helpers,
            callbacks, other loaded objects' symbols).

    Raises:
        LoaderError: see the module documentation; nothing was written to the arena.
        ArenaFull: the arena has no room; the caller flushes and retries.
    """
    try:
        elf = obj if isinstance(obj, ElfObject) else elfobj.parse(obj)
        return _Load(arena, elf, imports or {}).run()
    except ElfError as exc:
        raise LoaderError(f"bad object file: {exc}") from exc


class _Load:
    def __init__(self, arena: CodeArena, elf: ElfObject, imports: Mapping[str, int]) -> None:
        self.arena = arena
        self.elf = elf
        self.imports = imports
        self.code = _Chunk()
        self.data = _Chunk()
        self.placement: dict[int, tuple[_Chunk, int]] = {}  # section index -> (chunk, offset)

    def run(self) -> LoadedObject:
        elf = self.elf
        raw_symbols = elf.raw_symbols
        loaded = [s for s in elf.sections if self._is_loaded(s)]
        for section in loaded:
            chunk = self.data if section.flags & elfobj.SHF_WRITE else self.code
            self.placement[section.index] = (chunk, chunk.place(section.size, section.align))
        commons = {i: self.data.place(size, max(value, 1))
                   for i, (_n, _i, _o, shndx, value, size) in enumerate(raw_symbols)
                   if shndx == elfobj.SHN_COMMON}
        got_slots, stub_slots = self._scan_relocations(loaded)
        got_offset = self.code.place(8 * len(got_slots), 8) if got_slots is not None else 0
        stub_offset = self.code.place(_STUB_SIZE * len(stub_slots), 16)

        # Room first: an ArenaFull leaves nothing half-written.
        for chunk, alloc in ((self.code, self.arena.alloc_code),
                             (self.data, self.arena.alloc_data)):
            if chunk.size:
                chunk.address = alloc(chunk.size, chunk.align)
                chunk.image = bytearray(chunk.size)
        got = self.code.address + got_offset
        addresses = self._resolve_symbols(commons, got)

        for section in loaded:
            if section.type != elfobj.SHT_NOBITS:
                chunk, offset = self.placement[section.index]
                chunk.image[offset:offset + section.size] = elf.section_bytes(section)
        got_index: dict[int, int] = {}
        for n, symbol in enumerate(got_slots or ()):
            if addresses[symbol] < 0:
                raise LoaderError(f"GOT entry for {self._describe(symbol)}, in a section "
                                  f"that is not loaded")
            got_index[symbol] = got + 8 * n
            _U64.pack_into(self.code.image, got_offset + 8 * n, addresses[symbol] & _MASK64)
        stubs: dict[int, int] = {}
        for n, symbol in enumerate(stub_slots):
            offset = stub_offset + _STUB_SIZE * n
            self.code.image[offset:offset + 6] = _STUB
            _U64.pack_into(self.code.image, offset + 6, addresses[symbol] & _MASK64)
            stubs[symbol] = self.code.address + offset
        for section in loaded:
            self._relocate(section, addresses, got, got_index, stubs)

        for chunk in (self.code, self.data):
            if chunk.size:
                self.arena.write(chunk.address, chunk.image)
        symbols, sizes = {}, {}
        for i, (_name, info, _other, shndx, _value, size) in enumerate(raw_symbols):
            if (info >> 4 in (elfobj.STB_GLOBAL, elfobj.STB_WEAK)
                    and shndx != elfobj.SHN_UNDEF and addresses[i] >= 0):
                name = elf.symbol_name(i)
                symbols[name] = addresses[i]
                sizes[name] = size
        return LoadedObject(symbols, sizes, (self.code.address, self.code.size),
                            (self.data.address, self.data.size), self.arena.generation)

    @staticmethod
    def _is_loaded(section: Section) -> bool:
        if not section.flags & elfobj.SHF_ALLOC or section.type in _SKIPPED_TYPES:
            return False
        if section.flags & elfobj.SHF_TLS:
            raise LoaderError(f"thread-local section {section.name} is not supported")
        if section.type in _CONSTRUCTOR_TYPES:
            if section.size:
                raise LoaderError(f"{section.name}: static constructors/destructors are not "
                                  f"supported")
            return False
        if section.type not in (elfobj.SHT_PROGBITS, elfobj.SHT_NOBITS):
            raise LoaderError(f"section {section.name} has unsupported type "
                              f"{section.type:#x}")
        if section.flags & elfobj.SHF_WRITE and section.flags & elfobj.SHF_EXECINSTR:
            raise LoaderError(f"section {section.name} is writable and executable")
        return True

    def _scan_relocations(self, loaded: list[Section]) -> tuple[list[int] | None, list[int]]:
        """Symbols that need GOT entries (None: no GOT at all) and the imports PLT32
        calls may need a stub for."""
        got: dict[int, None] | None = None
        stubs: dict[int, None] = {}
        raw_symbols = self.elf.raw_symbols
        for section in loaded:
            relocations = self.elf.relocations(section.index)
            if not _NEEDS_SCAN.intersection([r[1] for r in relocations]):
                continue  # the usual case: the large code model's R_X86_64_64 only
            for _offset, rtype, symbol, _addend in relocations:
                if rtype in _GOT_BASE:
                    got = {} if got is None else got
                    if rtype in _GOT_ENTRY:
                        got[symbol] = None
                elif rtype == R_X86_64_PLT32 and raw_symbols[symbol][3] in (
                        elfobj.SHN_UNDEF, elfobj.SHN_ABS):
                    stubs[symbol] = None
        return (None if got is None else list(got)), list(stubs)

    def _resolve_symbols(self, commons: dict[int, int], got: int) -> list[int]:
        """Every symbol's address; -1 for those in sections that are not loaded (an
        error only if something is relocated against them)."""
        section_base = {index: chunk.address + offset
                        for index, (chunk, offset) in self.placement.items()}
        addresses = []
        for i, (_name, info, _other, shndx, value, _size) in enumerate(self.elf.raw_symbols):
            base = section_base.get(shndx)
            if base is not None:
                address = base + value
            elif shndx == elfobj.SHN_UNDEF:
                address = self._import(i, info >> 4, got)
            elif shndx == elfobj.SHN_ABS:
                address = value
            elif shndx == elfobj.SHN_COMMON:
                address = self.data.address + commons[i]
            elif shndx >= elfobj.SHN_LORESERVE:
                raise LoaderError(f"symbol {self._describe(i)} has unsupported section "
                                  f"index {shndx:#x}")
            else:
                address = -1
            addresses.append(address)
        return addresses

    def _import(self, index: int, bind: int, got: int) -> int:
        name = self.elf.symbol_name(index)
        if index == 0 or not name:
            return 0
        address = self.imports.get(name)
        if address is not None:
            return address
        if name == _GOT_SYMBOL:
            return got
        if bind == elfobj.STB_WEAK:
            return 0  # an undefined weak symbol is null
        raise LoaderError(f"undefined symbol {name!r} (not in the imports)")

    def _describe(self, index: int) -> str:
        _name, info, _other, shndx, _value, _size = self.elf.raw_symbols[index]
        sections = self.elf.sections
        if info & 0xF == elfobj.STT_SECTION and 0 < shndx < len(sections):
            return f"section {sections[shndx].name}"
        return repr(self.elf.symbol_name(index) or "<null symbol>")

    def _relocate(self, section: Section, addresses: list[int], got: int,
                  got_index: dict[int, int], stubs: dict[int, int]) -> None:
        chunk, base = self.placement[section.index]
        image = chunk.image
        place_base = chunk.address + base
        limit = section.size
        relocations = self.elf.relocations(section.index)
        if not relocations:
            return
        if (all(t == R_X86_64_64 for t in map(_TYPE, relocations))
                and max(map(_OFFSET, relocations)) + 8 <= limit
                and min(map(addresses.__getitem__, map(_SYMBOL, relocations))) >= 0):
            # The large code model's only kind (every object the JIT caches): one
            # statement per relocation.
            pack = _U64.pack_into
            for offset, _type, symbol, addend in relocations:
                pack(image, base + offset, (addresses[symbol] + addend) & _MASK64)
            return
        for offset, rtype, symbol, addend in relocations:
            s = addresses[symbol]
            if s < 0:
                raise LoaderError(f"{section.name}+{offset:#x}: relocation against "
                                  f"{self._describe(symbol)} in a section that is not "
                                  f"loaded")
            p = place_base + offset
            if rtype == R_X86_64_64:
                size, value, packer = 8, (s + addend) & _MASK64, _U64
            elif rtype == R_X86_64_PLT32 or rtype == R_X86_64_PC32:
                size, value, packer = 4, s + addend - p, _S32
                if (not -0x80000000 <= value <= 0x7FFFFFFF and rtype == R_X86_64_PLT32
                        and symbol in stubs):  # a call: through a stub (never data)
                    value = stubs[symbol] + addend - p
            elif rtype in (R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX):
                size, value, packer = 4, got_index[symbol] + addend - p, _S32
            elif rtype == R_X86_64_32S:
                size, value, packer = 4, s + addend, _S32
            elif rtype == R_X86_64_32:
                size, value, packer = 4, s + addend, _U32
            elif rtype == R_X86_64_PC64:
                size, value, packer = 8, (s + addend - p) & _MASK64, _U64
            elif rtype == R_X86_64_GOTOFF64:
                size, value, packer = 8, (s + addend - got) & _MASK64, _U64
            elif rtype == R_X86_64_GOTPC32:
                size, value, packer = 4, got + addend - p, _S32
            elif rtype == R_X86_64_GOT64:
                size, value, packer = 8, (got_index[symbol] - got + addend) & _MASK64, _U64
            elif rtype == R_X86_64_GOTPCREL64:
                size, value, packer = 8, (got_index[symbol] + addend - p) & _MASK64, _U64
            elif rtype == R_X86_64_GOTPC64:
                size, value, packer = 8, (got + addend - p) & _MASK64, _U64
            elif rtype == R_X86_64_NONE:
                continue
            else:
                raise LoaderError(f"{section.name}+{offset:#x}: unsupported relocation type "
                                  f"{rtype} against {self._describe(symbol)}")
            if offset + size > limit:
                raise LoaderError(f"{section.name}+{offset:#x}: relocation outside the "
                                  f"section")
            try:
                packer.pack_into(image, base + offset, value)
            except struct.error:
                raise LoaderError(
                    f"{section.name}+{offset:#x}: {RELOCATION_NAMES[rtype]} against "
                    f"{self._describe(symbol)} does not fit ({value:#x}): 32-bit "
                    f"absolute addresses (small or medium code model without PIC) need "
                    f"the code below 2 GiB; compile with the large code model or PIC"
                    ) from None
