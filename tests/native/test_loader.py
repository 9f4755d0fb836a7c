"""The relocating ELF loader: objects LLVM emits, loaded into the arena and called."""

from __future__ import annotations

import ctypes
import os
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from llvmtcg.runtime.jit import ObjectCompiler, elf_function_sizes
from llvmtcg.runtime.native import elfobj
from llvmtcg.runtime.native.arena import ArenaFull, CodeArena
from llvmtcg.runtime.native.loader import (
    R_X86_64_64,
    R_X86_64_GOTOFF64,
    R_X86_64_GOTPC64,
    R_X86_64_PC32,
    R_X86_64_PLT32,
    R_X86_64_REX_GOTPCRELX,
    LoaderError,
    load_object,
)

ROOT = Path(__file__).resolve().parents[2]

MODULE = """
@counter = global i64 5
@zeros = global [64 x i64] zeroinitializer
@shared = common global i64 0
@table = private unnamed_addr constant [8 x i64] [i64 3, i64 1, i64 4, i64 1, i64 5,
                                                 i64 9, i64 2, i64 6]
@missing = extern_weak global i8
declare i64 @py_callback(i64)

define internal i64 @twice(i64 %x) noinline {
  %r = shl i64 %x, 1
  ret i64 %r
}
define i64 @lookup(i64 %i) {
  %m = and i64 %i, 7
  %p = getelementptr [8 x i64], ptr @table, i64 0, i64 %m
  %v = load i64, ptr %p
  ret i64 %v
}
define i64 @bump(i64 %n) {
  %c = load i64, ptr @counter
  %d = add i64 %c, %n
  store i64 %d, ptr @counter
  ret i64 %d
}
define i64 @dispatch(i64 %x) {
  switch i64 %x, label %other [ i64 0, label %a  i64 1, label %b  i64 2, label %c
                               i64 3, label %d  i64 4, label %e  i64 5, label %f ]
a: ret i64 11
b: %r1 = call i64 @bump(i64 2)
   ret i64 %r1
c: %r2 = call i64 @twice(i64 21)
   ret i64 %r2
d: %r3 = call i64 @py_callback(i64 %x)
   ret i64 %r3
e: ret i64 99
f: %r4 = call i64 @lookup(i64 %x)
   ret i64 %r4
other: ret i64 -1
}
define double @scale(double %x) {
  %y = fmul double %x, 1.25
  ret double %y
}
define i64 @zeros_sum(i64 %i) {
  %p = getelementptr [64 x i64], ptr @zeros, i64 0, i64 %i
  store i64 %i, ptr %p
  %q = getelementptr [64 x i64], ptr @zeros, i64 0, i64 63
  %v = load i64, ptr %q
  %s = add i64 %v, %i
  ret i64 %s
}
define i64 @count_shared() {
  %v = load i64, ptr @shared
  %n = add i64 %v, 1
  store i64 %n, ptr @shared
  ret i64 %n
}
define i64 @missing_address() {
  ret i64 ptrtoint (ptr @missing to i64)
}
"""

I64_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)
I64_VOID = ctypes.CFUNCTYPE(ctypes.c_int64)
F64_FN = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)
CALLBACK = I64_FN(lambda x: 1000 * x + 7)
IMPORTS = {"py_callback": ctypes.cast(CALLBACK, ctypes.c_void_p).value}

# (code model, relocation model): the project's JIT configuration first.
CONFIGS = [("large", "static"), ("small", "pic"), ("medium", "pic"), ("large", "pic")]


def compile_ir(ir: str, codemodel: str, reloc: str) -> bytes:
    if (codemodel, reloc) == ("large", "static"):
        return ObjectCompiler().compile(ir)  # exactly what hot regions are cached as
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(ir)
    module.verify()
    machine = llvm.Target.from_default_triple().create_target_machine(
        opt=2, reloc=reloc, codemodel=codemodel)
    return machine.emit_object(module)


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], bytes]:
    return {config: compile_ir(MODULE, *config) for config in CONFIGS + [("small", "static")]}


@pytest.fixture
def arena() -> Iterator[CodeArena]:
    with CodeArena(8 << 20, 1 << 20) as arena:
        yield arena


def relocation_types(obj: bytes) -> set[int]:
    elf = elfobj.parse(obj)
    return {r[1] for s in elf.sections for r in elf.relocations(s.index)}


def check_module(symbols: dict[str, int]) -> None:
    dispatch = I64_FN(symbols["dispatch"])
    assert [dispatch(i) for i in range(7)] == [11, 7, 42, 3007, 99, 9, -1]
    assert dispatch(1) == 9  # @counter is writable and kept its value
    assert [I64_FN(symbols["lookup"])(i) for i in range(8)] == [3, 1, 4, 1, 5, 9, 2, 6]
    assert F64_FN(symbols["scale"])(2.0) == 2.5
    assert I64_FN(symbols["zeros_sum"])(5) == 5  # .bss starts zeroed
    assert I64_FN(symbols["zeros_sum"])(63) == 126
    assert [I64_VOID(symbols["count_shared"])() for _ in range(3)] == [1, 2, 3]
    assert I64_VOID(symbols["missing_address"])() == 0  # undefined weak: null


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c))
def test_loaded_module_runs(config, objects, arena: CodeArena) -> None:
    obj = objects[config]
    loaded = load_object(arena, obj, IMPORTS)
    assert {"dispatch", "lookup", "bump", "scale", "zeros_sum", "counter",
            "shared"} <= set(loaded.symbols)
    assert "twice" not in loaded.symbols  # internal: not exported
    for name in ("dispatch", "lookup", "bump"):
        address = loaded.symbols[name]
        assert loaded.code[0] <= address < loaded.code[0] + loaded.code[1]
    counter = loaded.symbols["counter"]
    assert loaded.data[0] <= counter < loaded.data[0] + loaded.data[1]
    assert loaded.sizes["dispatch"] == elf_function_sizes(obj)["dispatch"]
    check_module(loaded.symbols)


def test_each_configuration_exercises_its_relocation_kinds(objects) -> None:
    assert R_X86_64_64 in relocation_types(objects["large", "static"])
    assert {R_X86_64_PLT32, R_X86_64_PC32, R_X86_64_REX_GOTPCRELX} <= relocation_types(
        objects["small", "pic"])
    assert {R_X86_64_GOTPC64, R_X86_64_GOTOFF64} <= relocation_types(objects["large", "pic"])
    for config in CONFIGS:  # the switch became a jump table: .rodata refers to code
        elf = elfobj.parse(objects[config])
        assert any(elf.sections[s.index].name.startswith((".rodata", ".lrodata"))
                   and elf.sections[elf.raw_symbols[r[2]][3]].flags & elfobj.SHF_EXECINSTR
                   for s in elf.sections for r in elf.relocations(s.index)), config


def test_two_objects_are_independent(objects, arena: CodeArena) -> None:
    first = load_object(arena, objects["large", "static"], IMPORTS)
    second = load_object(arena, objects["large", "static"], IMPORTS)
    assert I64_FN(first.symbols["bump"])(1) == 6
    assert I64_FN(first.symbols["bump"])(1) == 7
    assert I64_FN(second.symbols["bump"])(1) == 6


def test_small_code_model_absolute_addresses_are_a_clear_error(objects, arena) -> None:
    # Non-PIC small-model code addresses data with 32-bit absolute addresses, which
    # the arena (far above 2 GiB) cannot satisfy.
    with pytest.raises(LoaderError, match="R_X86_64_32S? .*does not fit"):
        load_object(arena, objects["small", "static"], IMPORTS)


def test_undefined_symbol_is_named(objects, arena: CodeArena) -> None:
    with pytest.raises(LoaderError, match="undefined symbol 'py_callback'"):
        load_object(arena, objects["large", "static"], {})


def test_unsupported_relocation_type_is_named(objects, arena: CodeArena) -> None:
    obj = bytearray(objects["large", "static"])
    elf = elfobj.parse(bytes(obj))
    rela = next(s for s in elf.sections if s.type == elfobj.SHT_RELA)
    info_at = rela.offset + 8  # r_info of the first entry; its low half is the type
    struct.pack_into("<I", obj, info_at, 23)  # R_X86_64_TPOFF32
    with pytest.raises(LoaderError, match="unsupported relocation type 23"):
        load_object(arena, bytes(obj), IMPORTS)


def test_bad_objects_raise_loader_error(arena: CodeArena) -> None:
    for data in (b"", b"\x7fELF", b"not an object at all" * 10):
        with pytest.raises(LoaderError, match="bad object file"):
            load_object(arena, data, IMPORTS)
    shared = Path("/bin/true").read_bytes()  # an executable, not a relocatable object
    with pytest.raises(LoaderError, match="not a relocatable object"):
        load_object(arena, shared, IMPORTS)


def test_mangled_objects_never_crash_the_loader(objects, arena: CodeArena) -> None:
    """Truncations and corrupted header/table bytes: LoaderError (or ArenaFull for
    absurd sizes), never another exception. Nothing is executed."""
    original = objects["large", "static"]
    elf = elfobj.parse(original)
    tables = [(s.offset, s.size) for s in elf.sections
              if s.type in (elfobj.SHT_SYMTAB, elfobj.SHT_RELA)]
    shoff = struct.unpack_from("<Q", original, 0x28)[0]
    regions = [(0, 64), (shoff, len(original) - shoff), *tables]
    rng = random.Random(1234)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(400):
        data = bytearray(original)
        if trial % 4 == 0:
            data = data[:rng.randrange(len(data))]
        else:
            start, size = rng.choice(regions)
            for _ in range(rng.randint(1, 4)):
                data[start + rng.randrange(size)] = rng.randrange(256)
        try:
            load_object(arena, bytes(data), IMPORTS)
            outcomes["loaded"] += 1
        except LoaderError:
            outcomes["refused"] += 1
        except ArenaFull:
            arena.reset()
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 0


@pytest.fixture
def far_function(arena: CodeArena) -> Iterator[int]:
    """A native ``x -> 3 * x`` mapped more than 2 GiB away from the arena."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fixed_noreplace, private_anonymous = 0x100000, 0x22
    for distance in (64 << 30, -(64 << 30), 256 << 30, -(256 << 30)):
        hint = (arena.code_start + distance) & ~0xFFF
        address = libc.mmap(hint, 4096, 3, private_anonymous | fixed_noreplace, -1, 0)
        if address == hint:
            break
    else:
        pytest.skip("no free address 64-256 GiB away from the arena")
    ctypes.memmove(address, bytes.fromhex("488d047fc3"), 5)  # lea rax, [rdi + 2*rdi]; ret
    assert libc.mprotect(address, 4096, 5) == 0  # r-x
    yield address
    libc.munmap(address, 4096)


def test_far_import_calls_go_through_a_stub(arena: CodeArena, far_function: int) -> None:
    """A PLT32 call to an import beyond rel32 reach of the arena gets a stub."""
    ir = ("declare i64 @far(i64)\n"
          "define i64 @call_far(i64 %x) {\n  %r = call i64 @far(i64 %x)\n  ret i64 %r\n}\n")
    obj = compile_ir(ir, "small", "pic")
    assert R_X86_64_PLT32 in relocation_types(obj)
    loaded = load_object(arena, obj, {"far": far_function})
    assert I64_FN(loaded.symbols["call_far"])(4) == 12
    stub = loaded.code[0] + loaded.code[1] - 16  # the object's chunk ends with the stub
    assert arena.read(stub, 14) == bytes.fromhex("ff2500000000") + struct.pack(
        "<Q", far_function)


def test_loading_needs_no_llvmlite(objects, tmp_path: Path) -> None:
    """A process that only loads cached objects never imports llvmlite."""
    path = tmp_path / "module.o"
    path.write_bytes(objects["large", "static"])
    script = f"""
import ctypes, sys
from llvmtcg.runtime.native.arena import CodeArena
from llvmtcg.runtime.native.loader import load_object
callback = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(lambda x: 1000 * x + 7)
imports = {{"py_callback": ctypes.cast(callback, ctypes.c_void_p).value}}
with CodeArena(1 << 20, 1 << 20) as arena:
    loaded = load_object(arena, open({str(path)!r}, "rb").read(), imports)
    dispatch = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(loaded.symbols["dispatch"])
    print(dispatch(3), dispatch(5))
print(sorted(m for m in sys.modules if m.split(".")[0] == "llvmlite"))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3007 9", "[]"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c))
def test_reader_agrees_with_pyelftools(config, objects) -> None:
    from io import BytesIO

    from elftools.elf.elffile import ELFFile

    obj = objects[config]
    ours = elfobj.parse(obj)
    theirs = ELFFile(BytesIO(obj))
    sections = list(theirs.iter_sections())
    assert [(s.name, s.offset, s.size, s.flags, s.link, s.info) for s in ours.sections] == [
        (s.name, h.sh_offset, h.sh_size, h.sh_flags, h.sh_link, h.sh_info)
        for s, h in ((s, s.header) for s in sections)]
    binds = {"STB_LOCAL": 0, "STB_GLOBAL": 1, "STB_WEAK": 2}
    types = {"STT_NOTYPE": 0, "STT_OBJECT": 1, "STT_FUNC": 2, "STT_SECTION": 3,
             "STT_FILE": 4}
    indices = {"SHN_UNDEF": 0, "SHN_ABS": 0xFFF1, "SHN_COMMON": 0xFFF2}
    symtab = theirs.get_section_by_name(".symtab")
    assert [(s.name, s.value, s.size, s.bind, s.type, s.shndx) for s in ours.symbols] == [
        (s.name, e.st_value, e.st_size, binds[e.st_info.bind], types[e.st_info.type],
         indices.get(e.st_shndx, e.st_shndx))
        for s, e in ((s, s.entry) for s in symtab.iter_symbols())]
    for section in sections:
        if section.header.sh_type == "SHT_RELA":
            target = section.header.sh_info
            assert ours.relocations(target) == [
                (r.entry.r_offset, r.entry.r_info_type, r.entry.r_info_sym, r.entry.r_addend)
                for r in section.iter_relocations()]
