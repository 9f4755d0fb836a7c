"""A reader of ELF64 little-endian x86-64 relocatable objects (what LLVM emits).

Section headers, the symbol table and ``SHT_RELA`` relocations, read with ``struct``
straight from the bytes. pyelftools reads the same, but an object of 8 functions takes
it ~1 ms against ~25 µs here (measured by ``bench/native``), and this runs once per
cached object at start-up. Every offset and size is checked against the file, so a
truncated or corrupt object raises :class:`ElfError`, never an ``IndexError``.
"""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass

_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_THIRD = operator.itemgetter(2)

ET_REL = 1
EM_X86_64 = 62
SHN_UNDEF = 0
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF
SHN_LORESERVE = 0xFF00

SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOTE = 7
SHT_NOBITS = 8
SHT_REL = 9
SHT_INIT_ARRAY = 14
SHT_FINI_ARRAY = 15
SHT_PREINIT_ARRAY = 16
SHT_GROUP = 17
SHT_X86_64_UNWIND = 0x70000001

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_TLS = 0x400

STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4
STT_TLS = 6


class ElfError(ValueError):
    """The bytes are not a well-formed ELF64 x86-64 relocatable object."""


# Section and Symbol are not frozen: a frozen dataclass's __init__ sets each field with
# object.__setattr__ (5x slower), and every symbol of every cached object is built at
# start-up. Treat them as values all the same.
@dataclass(slots=True)
class Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int  # in the file (meaningless for SHT_NOBITS)
    size: int
    link: int
    info: int
    align: int
    entsize: int


@dataclass(slots=True)
class Symbol:
    name: str
    value: int
    size: int
    bind: int
    type: int
    shndx: int  # a section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON


class ElfObject:
    """One parsed object.

    The loader's inner loops read plain tuples: ``raw_symbols[i]`` is the symbol
    table entry ``(name offset, info, other, shndx, value, size)`` (names are decoded
    on demand by :meth:`symbol_name`; most are never needed), and ``relocations(i)``
    lists the RELA entries of section ``i`` as ``(offset, type, symbol index,
    addend)``. :attr:`symbols` gives the same table as :class:`Symbol` records.
    """

    __slots__ = ("data", "sections", "raw_symbols", "_strings", "_symbols", "_rela",
                 "_decoded")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.sections = _read_sections(self.data)
        self.raw_symbols: list[tuple[int, int, int, int, int, int]] = []
        self._strings = b""
        self._symbols: list[Symbol] | None = None
        self._rela: dict[int, list[Section]] = {}
        self._decoded: dict[int, list[tuple[int, int, int, int]]] = {}
        symtabs = [s for s in self.sections if s.type == SHT_SYMTAB]
        if len(symtabs) > 1:
            raise ElfError("more than one symbol table")
        if symtabs:
            self._read_symbols(symtabs[0])
        for section in self.sections:
            if section.type == SHT_RELA:
                if not symtabs or section.link != symtabs[0].index:
                    raise ElfError(f"relocation section {section.name} has no symbol table")
                if not 0 < section.info < len(self.sections):
                    raise ElfError(f"relocation section {section.name} targets section "
                                   f"{section.info}, which does not exist")
                if section.entsize != _RELA.size or section.size % _RELA.size:
                    raise ElfError(f"relocation section {section.name} has a bad entry size")
                self._rela.setdefault(section.info, []).append(section)
            elif section.type == SHT_REL:
                raise ElfError(f"REL relocations ({section.name}) are not used on x86-64")

    @property
    def symbols(self) -> list[Symbol]:
        if self._symbols is None:
            self._symbols = [
                Symbol(self.symbol_name(i), value, size, info >> 4, info & 0xF, shndx)
                for i, (_name, info, _other, shndx, value, size)
                in enumerate(self.raw_symbols)]
        return self._symbols

    def symbol_name(self, index: int) -> str:
        return _string(self._strings, self.raw_symbols[index][0])

    def section_bytes(self, section: Section) -> bytes:
        """The contents of a section (zeros for SHT_NOBITS)."""
        if section.type == SHT_NOBITS:
            return bytes(section.size)
        return self.data[section.offset:section.offset + section.size]

    def relocations(self, index: int) -> list[tuple[int, int, int, int]]:
        """``(offset, type, symbol index, addend)`` of every RELA entry for section
        ``index`` (decoded once)."""
        found = self._decoded.get(index)
        if found is None:
            found = []
            n_symbols = len(self.raw_symbols)
            for rela in self._rela.get(index, ()):
                found += [(offset, info & 0xFFFFFFFF, info >> 32, addend)
                          for offset, info, addend in _RELA.iter_unpack(
                              self.data[rela.offset:rela.offset + rela.size])]
            if found and max(map(_THIRD, found)) >= n_symbols:
                raise ElfError(f"a relocation for section {index} names a symbol beyond "
                               f"the {n_symbols} of the symbol table")
            self._decoded[index] = found
        return found

    def _read_symbols(self, symtab: Section) -> None:
        if symtab.entsize != _SYMBOL.size or symtab.size % _SYMBOL.size:
            raise ElfError("symbol table has a bad entry size")
        if not 0 < symtab.link < len(self.sections):
            raise ElfError("symbol table has no string table")
        self._strings = self.section_bytes(self.sections[symtab.link])
        raw = list(_SYMBOL.iter_unpack(self.section_bytes(symtab)))
        n_sections = len(self.sections)
        for _name, _info, _other, shndx, _value, _size in raw:
            if shndx >= n_sections and (shndx < SHN_LORESERVE or shndx == SHN_XINDEX):
                if shndx == SHN_XINDEX:
                    raise ElfError("extended section indices (SHN_XINDEX) are not supported")
                raise ElfError(f"a symbol names section {shndx}, which does not exist")
        self.raw_symbols = raw


def parse(data: bytes) -> ElfObject:
    """Parse an ELF64 x86-64 relocatable object.

    Raises:
        ElfError: anything else, or a malformed one.
    """
    return ElfObject(data)


def _read_sections(data: bytes) -> list[Section]:
    if len(data) < _HEADER.size:
        raise ElfError("too short for an ELF header")
    (ident, e_type, machine, _version, _entry, _phoff, shoff, _flags, _ehsize, _phentsize,
     _phnum, shentsize, shnum, shstrndx) = _HEADER.unpack_from(data)
    if ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if ident[4] != 2 or ident[5] != 1:
        raise ElfError("not a 64-bit little-endian ELF file")
    if e_type != ET_REL:
        raise ElfError(f"ELF type {e_type} is not a relocatable object (ET_REL)")
    if machine != EM_X86_64:
        raise ElfError(f"ELF machine {machine} is not x86-64")
    if shoff == 0:
        return []
    if shentsize != _SECTION.size:
        raise ElfError(f"section header size {shentsize}, expected {_SECTION.size}")
    if shoff + _SECTION.size > len(data):
        raise ElfError("section headers lie outside the file")
    if shnum == 0 or shstrndx == SHN_XINDEX:  # extended numbering: the counts are in [0]
        first = _SECTION.unpack_from(data, shoff)
        shnum = shnum or first[5]
        if shstrndx == SHN_XINDEX:
            shstrndx = first[6]
    if shoff + shnum * _SECTION.size > len(data):
        raise ElfError("section headers lie outside the file")
    raw = [_SECTION.unpack_from(data, shoff + i * _SECTION.size) for i in range(shnum)]
    for i, (_name, sh_type, _f, _a, offset, size, *_rest) in enumerate(raw):
        if sh_type != SHT_NOBITS and offset + size > len(data):
            raise ElfError(f"section {i} lies outside the file")
    if not 0 < shstrndx < shnum:
        raise ElfError("no section name table")
    names_hdr = raw[shstrndx]
    names = data[names_hdr[4]:names_hdr[4] + names_hdr[5]]
    return [Section(i, _string(names, name), sh_type, flags, offset, size, link, info,
                    max(align, 1), entsize)
            for i, (name, sh_type, flags, _addr, offset, size, link, info, align, entsize)
            in enumerate(raw)]


def _string(table: bytes, offset: int) -> str:
    try:
        return table[offset:table.index(b"\0", offset)].decode()
    except ValueError as exc:  # no terminator, or not UTF-8
        if offset == 0 and not table:
            return ""
        raise ElfError(f"bad string at offset {offset} of a {len(table)}-byte string "
                       f"table") from exc
