"""Copy-and-patch stencils: extraction, emission of whole blocks, persistence."""

from __future__ import annotations

import ctypes
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import capstone
import pytest

from llvmtcg.runtime.native.arena import ArenaFull, CodeArena
from llvmtcg.runtime.native.emit import Assembler, EmitError
from llvmtcg.runtime.native.stencils import (
    LIBRARY_FILE,
    PROOF_STENCILS,
    HoleKind,
    Operand,
    OperandKind,
    StencilError,
    StencilLibrary,
    StencilSpec,
    build_library,
    library_path,
    load_library,
    read_library,
    specs_digest,
)

ROOT = Path(__file__).resolve().parents[2]
BLOCK_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)
N_FIELDS = 16
PC = 8 * (N_FIELDS - 1)  # the last field plays the guest pc
ZERO = 8 * (N_FIELDS - 2)  # and this one stays 0
DISASM = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
MASK = (1 << 64) - 1


def f(i: int) -> int:
    """Offset of CPU-state field i."""
    return 8 * i


@pytest.fixture(scope="module")
def library() -> StencilLibrary:
    return build_library()


@pytest.fixture
def arena() -> Iterator[CodeArena]:
    with CodeArena(1 << 20, 1 << 16) as arena:
        yield arena


def run(arena: CodeArena, address: int, state: ctypes.Array) -> int:
    return BLOCK_FN(address)(ctypes.addressof(state), None)


def instructions(code: bytes) -> list[str]:
    return [i.mnemonic for i in DISASM.disasm(code, 0)]


def test_stencils_fall_through_without_a_jump(library: StencilLibrary) -> None:
    for name in ("mov_i64", "movi_i64", "movi_u31", "add_i64", "addi_i64", "subi_i64"):
        stencil = library[name]
        assert stencil.falls_through
        assert "jmp" not in instructions(stencil.code), name  # the jump to next is gone
    assert not library["exit"].falls_through and not library["goto"].falls_through
    assert instructions(library["exit"].code)[-1] == "ret"


def test_add_is_three_host_instructions(library: StencilLibrary) -> None:
    assert instructions(library["add_i64"].code) == ["mov", "add", "mov"]
    assert {h.kind for h in library["add_i64"].holes} == {HoleKind.ABS32}


def test_conditional_exit_is_one_inverted_branch(library: StencilLibrary) -> None:
    """LLVM's 'je next; jmp target' becomes 'jne target', falling through to next."""
    stencil = library["brcond_ne_i64"]
    assert instructions(stencil.code)[-1] == "jne"
    (jump,) = [h for h in stencil.holes if h.kind is HoleKind.REL32]
    assert jump.offset == len(stencil.code) - 4 and jump.addend == -4


def test_64_bit_immediates_get_a_64_bit_hole(library: StencilLibrary) -> None:
    kinds = {library["movi_i64"].operands[h.operand].name: h.kind
             for h in library["movi_i64"].holes}
    assert kinds == {"d": HoleKind.ABS32, "imm64": HoleKind.ABS64}


def test_block_with_a_loop_runs(library: StencilLibrary, arena: CodeArena) -> None:
    asm = Assembler()
    asm.emit(library["entry"])
    asm.emit(library["movi_u31"], f(1), 0)
    asm.emit(library["movi_u31"], f(2), 10)
    asm.emit(library["movi_i64"], f(3), 0x123456789)
    loop = asm.label()
    asm.bind(loop)
    asm.emit(library["add_i64"], f(1), f(1), f(3))
    asm.emit(library["subi_i64"], f(2), f(2), 1)
    asm.emit(library["brcond_ne_i64"], f(2), ZERO, loop)
    asm.emit(library["exit"], PC, 0xDEADBEEF, 5)
    address = asm.finish(arena)
    state = (ctypes.c_uint64 * N_FIELDS)()
    assert run(arena, address, state) == 5
    assert state[1] == 10 * 0x123456789 and state[2] == 0 and state[PC // 8] == 0xDEADBEEF
    assert asm.address_of(loop, address) > address


@pytest.mark.parametrize("taken", [False, True])
def test_conditional_exit(library: StencilLibrary, arena: CodeArena, taken: bool) -> None:
    asm = Assembler()
    asm.emit(library["entry"])
    side_exit = asm.label()
    asm.emit(library["brcond_ne_i64"], f(0), f(1), side_exit)
    asm.emit(library["addi_i64"], f(2), f(2), 1)
    asm.emit(library["exit"], PC, 0x1000, 1)
    asm.bind(side_exit)
    asm.emit(library["exit"], PC, 0x2000, 2)
    state = (ctypes.c_uint64 * N_FIELDS)(7, 7 + taken)
    assert run(arena, asm.finish(arena), state) == (2 if taken else 1)
    assert state[PC // 8] == (0x2000 if taken else 0x1000)
    assert state[2] == (0 if taken else 1)


def test_random_straight_line_blocks_match_a_model(library: StencilLibrary,
                                                   arena: CodeArena) -> None:
    rng = random.Random(7)
    for _ in range(40):
        model = [rng.getrandbits(64) for _ in range(8)]
        state = (ctypes.c_uint64 * N_FIELDS)(*model)
        asm = Assembler()
        asm.emit(library["entry"])
        for _ in range(rng.randint(1, 30)):
            d, a, b = (rng.randrange(8) for _ in range(3))
            imm = rng.choice([0, 1, 0x7FFFFFFF, rng.randrange(1 << 31)])
            imm64 = rng.choice([MASK, 1 << 63, rng.getrandbits(64)])
            match rng.randrange(6):
                case 0:
                    asm.emit(library["add_i64"], f(d), f(a), f(b))
                    model[d] = (model[a] + model[b]) & MASK
                case 1:
                    asm.emit(library["addi_i64"], f(d), f(a), imm)
                    model[d] = (model[a] + imm) & MASK
                case 2:
                    asm.emit(library["subi_i64"], f(d), f(a), imm)
                    model[d] = (model[a] - imm) & MASK
                case 3:
                    asm.emit(library["movi_i64"], f(d), imm64)
                    model[d] = imm64
                case 4:
                    asm.emit(library["movi_u31"], f(d), imm)
                    model[d] = imm
                case 5:
                    asm.emit(library["mov_i64"], f(d), f(a))
                    model[d] = model[a]
        asm.emit(library["exit"], PC, 0, 3)
        assert run(arena, asm.finish(arena), state) == 3
        assert list(state)[:8] == model


def test_jump_to_another_block(library: StencilLibrary, arena: CodeArena) -> None:
    """A jump to an absolute arena address (how chained blocks would link)."""
    target = Assembler()
    target.emit(library["entry"])
    body = target.label()
    target.bind(body)
    target.emit(library["addi_i64"], f(0), f(0), 100)
    target.emit(library["exit"], PC, 0xB, 9)
    target_address = target.finish(arena)
    source = Assembler()
    source.emit(library["entry"])
    source.emit(library["addi_i64"], f(0), f(0), 1)
    source.emit(library["goto"], target.address_of(body, target_address))
    state = (ctypes.c_uint64 * N_FIELDS)()
    assert run(arena, source.finish(arena), state) == 9
    assert state[0] == 101 and state[PC // 8] == 0xB


def test_emission_errors(library: StencilLibrary, arena: CodeArena) -> None:
    asm = Assembler()
    with pytest.raises(EmitError, match="operand imm=2147483648"):
        asm.emit(library["movi_u31"], f(0), 1 << 31)
    with pytest.raises(EmitError, match="operand d=-8"):
        asm.emit(library["movi_u31"], -8, 0)
    assert asm.code == bytearray()  # a refused stencil leaves nothing behind
    with pytest.raises(EmitError, match=r"takes \(d: u31, a: u31, b: u31\), got \(0, 8\)"):
        asm.emit(library["add_i64"], f(0), f(1))
    asm.emit(library["entry"])
    asm.emit(library["addi_i64"], f(0), f(0), 1)
    with pytest.raises(EmitError, match="continues past the end"):
        asm.finish(arena)
    asm.emit(library["goto"], asm.label())
    with pytest.raises(EmitError, match="never bound"):
        asm.finish(arena)
    far = Assembler()
    far.emit(library["goto"], arena.code_start + (4 << 30))
    with pytest.raises(EmitError, match="rel32 reach"):
        far.finish(arena)


def test_full_arena_then_reset(library: StencilLibrary) -> None:
    with CodeArena(4096, 4096) as arena:
        def block() -> int:
            asm = Assembler()
            asm.emit(library["entry"])
            for _ in range(20):
                asm.emit(library["addi_i64"], f(0), f(0), 1)
            asm.emit(library["exit"], PC, 0, 4)
            return asm.finish(arena)

        addresses = []
        with pytest.raises(ArenaFull):
            while True:
                addresses.append(block())
        assert len(addresses) >= 2
        arena.reset()  # the flush
        address = block()
        assert address == addresses[0]
        state = (ctypes.c_uint64 * N_FIELDS)()
        assert run(arena, address, state) == 4 and state[0] == 20


def test_specs_that_cannot_be_stencils_are_refused() -> None:
    undeclared = StencilSpec("calls_puts", (), """
  %r = call i32 @puts(ptr null)
  {continue}""")
    with pytest.raises(StencilError, match="LLVM rejected"):
        build_library([undeclared])
    constant_pool = StencilSpec("fscale", (Operand("d", OperandKind.U31),), """
  %p = getelementptr i8, ptr %cpu, i64 {d}
  %x = load double, ptr %p
  %y = fmul double %x, 1.1
  store double %y, ptr %p
  {continue}""")
    with pytest.raises(StencilError, match="may refer only to their holes"):
        build_library([constant_pool])
    with pytest.raises(StencilError, match="two stencils are named"):
        build_library([PROOF_STENCILS[1], PROOF_STENCILS[1]])
    clash = StencilSpec("clash", (Operand("d", OperandKind.I64),), "  ret i64 {d}")
    with pytest.raises(StencilError, match="operand 'd' is i64 here and u31 elsewhere"):
        build_library([PROOF_STENCILS[1], clash])
    with pytest.raises(StencilError, match="not an operand"):
        build_library([StencilSpec("typo", (), "  ret i64 {x}")])


def test_library_is_stored_and_read_back(tmp_path: Path, library: StencilLibrary) -> None:
    built = load_library(tmp_path, "fp-one")
    assert built.built and library_path(tmp_path, "fp-one").is_file()
    again = load_library(tmp_path, "fp-one")
    assert not again.built
    assert again.stencils == built.stencils == library.stencils
    other = load_library(tmp_path, "fp-two")  # another translator: its own library
    assert other.built and library_path(tmp_path, "fp-two").is_file()
    digest = specs_digest(PROOF_STENCILS)
    assert read_library(library_path(tmp_path, "fp-one"), "fp-two", digest) is None
    assert read_library(library_path(tmp_path, "fp-one"), "fp-one", "other specs") is None
    changed = load_library(tmp_path, "fp-one", PROOF_STENCILS[:3])  # specs changed
    assert changed.built and set(changed.stencils) == {s.name for s in PROOF_STENCILS[:3]}


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_corrupt_library_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    load_library(tmp_path, "fp")
    path = library_path(tmp_path, "fp")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[:len(data) - 40]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"LLVMTCGS" + bytes(200))
    path.write_bytes(bytes(data))
    rebuilt = load_library(tmp_path, "fp")
    assert rebuilt.built
    assert read_library(path, "fp", rebuilt.digest) is not None  # rewritten intact


def test_cache_file_name_is_not_a_code_cache_entry() -> None:
    from llvmtcg.runtime.codecache import _entry_key
    assert _entry_key(LIBRARY_FILE) is None


def test_stored_library_emits_and_runs_without_llvmlite(tmp_path: Path) -> None:
    load_library(tmp_path, "fp")
    script = f"""
import ctypes, sys
from pathlib import Path
from llvmtcg.runtime.native.arena import CodeArena
from llvmtcg.runtime.native.emit import Assembler
from llvmtcg.runtime.native.stencils import load_library
library = load_library(Path({str(tmp_path)!r}), "fp")
state = (ctypes.c_uint64 * 4)(5, 6)
with CodeArena(1 << 20, 1 << 16) as arena:
    asm = Assembler()
    asm.emit(library["entry"])
    asm.emit(library["add_i64"], 16, 0, 8)
    asm.emit(library["exit"], 24, 0x42, 3)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)(
        asm.finish(arena))
    print(library.built, fn(ctypes.addressof(state), None), list(state))
print(sorted(m for m in sys.modules if m.split(".")[0] == "llvmlite"))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False 3 [5, 6, 11, 66]", "[]"]


def test_stencils_of_one_shape_share_emitter_code(arena: CodeArena) -> None:
    """Emitters are generated per shape; each keeps its own bytes and constants."""
    def immediate_op(name: str, op: str) -> StencilSpec:
        return StencilSpec(name, (Operand("d", OperandKind.U31), Operand("a", OperandKind.U31),
                                  Operand("imm", OperandKind.U31)), f"""
  %pa = getelementptr i8, ptr %cpu, i64 {{a}}
  %pd = getelementptr i8, ptr %cpu, i64 {{d}}
  %x = load i64, ptr %pa
  %r = {op} i64 %x, {{imm}}
  store i64 %r, ptr %pd
  {{continue}}""")

    library = build_library([PROOF_STENCILS[0], PROOF_STENCILS[-1],
                             immediate_op("andi_i64", "and"), immediate_op("xori_i64", "xor"),
                             immediate_op("ori_i64", "or")])
    ops = [library[n] for n in ("andi_i64", "xori_i64", "ori_i64")]
    assert ops[0].emit.__code__ is ops[1].emit.__code__ is ops[2].emit.__code__
    assert len({op.code for op in ops}) == 3
    asm = Assembler()
    asm.emit(library["entry"])
    for i, op in enumerate(ops):
        asm.emit(op, f(1 + i), f(0), 0x0FF0)
    asm.emit(library["exit"], PC, 0, 0)
    state = (ctypes.c_uint64 * N_FIELDS)(0x1234)
    run(arena, asm.finish(arena), state)
    assert list(state)[1:4] == [0x1234 & 0xFF0, 0x1234 ^ 0xFF0, 0x1234 | 0xFF0]
