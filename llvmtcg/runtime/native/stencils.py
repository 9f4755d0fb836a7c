"""Copy-and-patch stencils: machine code compiled once by LLVM, with holes for operands.

A *stencil* is a small LLVM function for one IR operation and operand shape. Its
operands are *holes*: references to external symbols (``@"hole.<name>"``) that are never
defined; the relocations LLVM leaves for them mark exactly where each operand's value
goes. Compiling a guest block is then copying stencil bytes and writing operand values
into the holes (:mod:`llvmtcg.runtime.native.emit`) — no LLVM at run time.

Conventions (checked when the library is built):

- Stencils use LLVM's GHC calling convention (``ghccc``): ``i64 (ptr %cpu, ptr %mem)``
  with ``%cpu`` pinned in r13 and ``%mem`` in rbp from stencil to stencil; the i64
  result (the exit value) comes back in rax. ``ghccc`` has no callee-saved registers,
  so the C-convention ``entry`` stencil, which starts every block, saves the C
  callee-saved ones, moves the arguments over and *calls* the body: a block is entered
  from the run loop as ``i64 fn(ptr cpu, ptr mem)``, like LLVM-compiled blocks.
- A stencil continues with ``musttail call ghccc @"hole.next"``: a jump to "the next
  stencil", which is the following bytes; the final ``jmp`` is dropped when it is
  the last instruction, so stencils fall through into each other. LLVM lays a
  conditional exit out as ``jcc next; jmp target``; that pair is rewritten as
  ``j!cc target`` (fall through to next). Any other reference to ``next`` is resolved
  when the library is built (it is the end of the stencil).
- Operand kinds: ``U31`` values in [0, 2**31) (CPU-state field offsets, small
  immediates) are declared ``code_model "small"`` and become 32-bit immediates and
  displacements (R_X86_64_32 / 32S — LLVM picks per instruction, and a value below
  2**31 reads the same either way); ``I64`` values are ``code_model "large"`` and
  become a ``movabs`` immediate (R_X86_64_64); ``LABEL`` operands are jump targets
  (``musttail`` to a ``ghccc`` function: R_X86_64_PLT32, a rel32 field).
- Stencils are compiled with the medium code model (which honours per-global code
  models; code references stay rel32) and static relocations, for the host CPU. They
  may refer to nothing but their holes (no constant pools, jump tables or calls to
  other functions yet).

The built library is stored per translator fingerprint (``<cache>/<fingerprint>/
xstencils.bin``: JSON metadata, the code bytes, a SHA-256 trailer) and read back in a
few milliseconds without importing llvmlite; a missing, corrupt or out-of-date file is
rebuilt. The fingerprint the caller passes must cover LLVM's version and the host CPU
(``codecache.fingerprint`` does): the code is compiled for this host.
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llvmtcg.runtime.cachefile import replace_file
from llvmtcg.runtime.native import elfobj

FORMAT_VERSION = 1
LIBRARY_FILE = "xstencils.bin"  # not a code-cache entry name (those start with a hex pc)
_MAGIC = b"LLVMTCGS"
_HEADER = struct.Struct("<8sI")  # magic, metadata length
HOLE_PREFIX = "hole."
STENCIL_PREFIX = "stencil."
NEXT = "next"

_R_X86_64_64 = 1
_R_X86_64_PC32 = 2
_R_X86_64_PLT32 = 4
_R_X86_64_32 = 10
_R_X86_64_32S = 11
_JMP_REL32 = 0xE9
_JCC_REL32 = 0x0F  # 0F 80+cc rel32
_S32 = struct.Struct("<i")
_MASK64 = (1 << 64) - 1
U31_LIMIT = 1 << 31


class StencilError(Exception):
    """A stencil could not be built, or LLVM compiled it into a shape the emitter cannot
    patch (names the stencil and the reason)."""


class OperandKind(enum.Enum):
    U31 = "u31"  # [0, 2**31): CPU-state offsets, small immediates
    I64 = "i64"  # any 64-bit value (taken modulo 2**64)
    LABEL = "label"  # a jump target: a Label of the same block, or an arena address


class HoleKind(enum.Enum):
    ABS32 = "abs32"  # a 4-byte immediate or displacement
    ABS64 = "abs64"  # an 8-byte immediate
    REL32 = "rel32"  # a 4-byte displacement from the end of the field to a target


@dataclass(frozen=True, slots=True)
class Operand:
    name: str
    kind: OperandKind


@dataclass(frozen=True, slots=True)
class StencilSpec:
    """The source of one stencil.

    ``body`` is LLVM IR for the function body, with ``%cpu`` and ``%mem`` as arguments,
    ``{<operand>}`` for an operand's value (an i64 constant expression for U31/I64, a
    ``ghccc`` function for LABEL) and ``{continue}`` for the tail call to the next
    stencil. ``c_entry`` marks the block-entry adapter (C calling convention; its body
    calls ``{next}``).
    """

    name: str
    operands: tuple[Operand, ...]
    body: str
    c_entry: bool = False


@dataclass(frozen=True, slots=True)
class Hole:
    offset: int  # of the field in the stencil's code
    operand: int  # index into Stencil.operands
    kind: HoleKind
    addend: int  # added to the operand's value (for REL32: including the -4 to the end)


@dataclass(frozen=True, slots=True)
class Stencil:
    """One stencil's machine code and holes; the emitter copies ``code`` and patches
    ``holes``. ``falls_through``: execution continues at the byte after ``code``."""

    name: str
    operands: tuple[Operand, ...]
    code: bytes
    holes: tuple[Hole, ...]
    falls_through: bool
    # Derived once (see _compile_emitter): ``emit(assembler, *operands)`` appends the
    # stencil to an emit.Assembler with its holes filled.
    emit: Callable[..., None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "emit", _compile_emitter(self))


class EmitError(Exception):
    """A block cannot be emitted as asked (operand out of range, unbound label, a block
    that would run off its end); names the stencil and operand."""


def _compile_emitter(stencil: Stencil) -> Callable[..., None]:
    """The function that appends ``stencil`` to an ``emit.Assembler``: one range check
    of the U31 operands, one ``struct`` pack of the whole stencil (its code bytes as
    ``Ns`` fields, holes as ``I``/``Q``, rel32 jump fields as 0) onto
    ``assembler.code``, the jump fields recorded in ``assembler.jumps`` for
    ``finish``. About 3x faster than a ``pack_into`` per hole behind a generic loop.

    The generated source names only parameters and constants held in the function's
    globals (never a value read from the library file, like the methods ``dataclasses``
    generates), so stencils of the same shape share one compiled code object.
    """
    params = [f"o{i}" for i in range(len(stencil.operands))]
    body, env = emitter_body(stencil)
    source = "\n".join([f"def emit({', '.join(['asm', *params])}):", *body])
    code = _EMITTER_CODE.get(source)
    if code is None:
        namespace: dict[str, object] = {}
        exec(source, env, namespace)  # noqa: S102 - generated from trusted parts
        code = _EMITTER_CODE[source] = namespace["emit"].__code__  # type: ignore[union-attr]
    return types.FunctionType(code, env, "emit")


def emitter_body(stencil: Stencil) -> tuple[list[str], dict[str, object]]:
    """The statements (indented one level) that append ``stencil`` to ``asm`` with its
    operands in the local variables ``o0``, ``o1``, ... (see :func:`_compile_emitter`;
    the baseline tier puts them after its own operand extraction), and the globals they
    name."""
    params = [f"o{i}" for i in range(len(stencil.operands))]
    fmt, args, checks, jumps = ["<"], [], [], []
    env: dict[str, object] = {"_LIMIT": U31_LIMIT, "_MASK": _MASK64,
                              "_error": _range_error, "_stencil": stencil,
                              "_falls": stencil.falls_through}
    position = 0
    for n, hole in enumerate(sorted(stencil.holes, key=lambda h: h.offset)):
        if hole.offset < position:
            raise StencilError(f"stencil {stencil.name}: holes overlap")
        if hole.offset > position:
            fmt.append(f"{hole.offset - position}s")
            args.append(f"_s{n}")
            env[f"_s{n}"] = stencil.code[position:hole.offset]
        kind = stencil.operands[hole.operand].kind
        value = f"o{hole.operand}"
        env[f"_a{n}"], env[f"_at{n}"] = hole.addend, hole.offset
        if hole.addend and kind is not OperandKind.LABEL:
            value = f"({value} + _a{n})"
        if kind is OperandKind.LABEL:
            fmt.append("i")
            args.append("0")
            jumps.append(f"    asm.jumps.append((base + _at{n}, o{hole.operand}, _a{n}))")
        elif kind is OperandKind.I64:
            fmt.append("Q")
            args.append(f"{value} & _MASK")
        else:
            fmt.append("Q" if hole.kind is HoleKind.ABS64 else "I")
            args.append(value)
            if f"0 <= {value} < _LIMIT" not in checks:
                checks.append(f"0 <= {value} < _LIMIT")
        position = hole.offset + (8 if hole.kind is HoleKind.ABS64 else 4)
    if position > len(stencil.code):
        raise StencilError(f"stencil {stencil.name}: a hole lies outside its code")
    if position < len(stencil.code):
        fmt.append(f"{len(stencil.code) - position}s")
        args.append("_tail")
        env["_tail"] = stencil.code[position:]
    env["_pack"] = struct.Struct("".join(fmt)).pack
    lines = []
    if checks:
        lines += [f"    if not ({' and '.join(checks)}):",
                  f"        _error(_stencil, ({''.join(p + ', ' for p in params)}))"]
    lines.append("    code = asm.code")
    if jumps:
        lines.append("    base = len(code)")
    if args:
        lines.append(f"    code += _pack({', '.join(args)})")
    lines += jumps
    lines.append("    asm.falls_through = _falls")
    return lines, env


# Emitter code objects by generated source: stencils of one shape (operand order, hole
# kinds, segments) share one, and only their constants differ. Compiling costs ~0.2 ms;
# a library has far fewer shapes than stencils.
_EMITTER_CODE: dict[str, types.CodeType] = {}


def _range_error(stencil: Stencil, operands: tuple[int, ...]) -> None:
    for hole in stencil.holes:
        operand = stencil.operands[hole.operand]
        value = operands[hole.operand]
        if operand.kind is OperandKind.U31 and not 0 <= value + hole.addend < U31_LIMIT:
            raise EmitError(f"stencil {stencil.name}: operand {operand.name}={value!r} is "
                            f"outside [0, 2**31) ({operand.kind.value})")
    raise AssertionError("no operand out of range")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class StencilLibrary:
    """Stencils by name. ``digest`` identifies the specs they were built from;
    ``built`` says whether LLVM compiled them in this process (False: read from the
    cache file)."""

    stencils: Mapping[str, Stencil]
    digest: str
    built: bool = field(default=False, compare=False)

    def __getitem__(self, name: str) -> Stencil:
        return self.stencils[name]

    def __contains__(self, name: str) -> bool:
        return name in self.stencils


# -- the stencils this proof of the pipeline needs ---------------------------------------

_U = OperandKind.U31
_CONTINUE = "{continue}"


def _field(name: str, operand: str) -> str:
    """IR: %<name> = pointer to the CPU-state field at the offset in ``operand``."""
    return f"%{name} = getelementptr i8, ptr %cpu, i64 {{{operand}}}"


PROOF_STENCILS: tuple[StencilSpec, ...] = (
    StencilSpec("entry", (), """
  %r = call ghccc i64 {next}(ptr %cpu, ptr %mem)
  ret i64 %r""", c_entry=True),
    StencilSpec("mov_i64", (Operand("d", _U), Operand("a", _U)), f"""
  {_field("pa", "a")}
  {_field("pd", "d")}
  %a = load i64, ptr %pa
  store i64 %a, ptr %pd
  {_CONTINUE}"""),
    StencilSpec("movi_i64", (Operand("d", _U), Operand("imm64", OperandKind.I64)), f"""
  {_field("pd", "d")}
  store i64 {{imm64}}, ptr %pd
  {_CONTINUE}"""),
    StencilSpec("movi_u31", (Operand("d", _U), Operand("imm", _U)), f"""
  {_field("pd", "d")}
  store i64 {{imm}}, ptr %pd
  {_CONTINUE}"""),
    StencilSpec("add_i64", (Operand("d", _U), Operand("a", _U), Operand("b", _U)), f"""
  {_field("pa", "a")}
  {_field("pb", "b")}
  {_field("pd", "d")}
  %a = load i64, ptr %pa
  %b = load i64, ptr %pb
  %r = add i64 %a, %b
  store i64 %r, ptr %pd
  {_CONTINUE}"""),
    StencilSpec("addi_i64", (Operand("d", _U), Operand("a", _U), Operand("imm", _U)), f"""
  {_field("pa", "a")}
  {_field("pd", "d")}
  %a = load i64, ptr %pa
  %r = add i64 %a, {{imm}}
  store i64 %r, ptr %pd
  {_CONTINUE}"""),
    StencilSpec("subi_i64", (Operand("d", _U), Operand("a", _U), Operand("imm", _U)), f"""
  {_field("pa", "a")}
  {_field("pd", "d")}
  %a = load i64, ptr %pa
  %r = sub i64 %a, {{imm}}
  store i64 %r, ptr %pd
  {_CONTINUE}"""),
    StencilSpec("brcond_ne_i64", (Operand("a", _U), Operand("b", _U),
                                  Operand("target", OperandKind.LABEL)), f"""
  {_field("pa", "a")}
  {_field("pb", "b")}
  %a = load i64, ptr %pa
  %b = load i64, ptr %pb
  %c = icmp ne i64 %a, %b
  br i1 %c, label %taken, label %not_taken
taken:
  %t = musttail call ghccc i64 {{target}}(ptr %cpu, ptr %mem)
  ret i64 %t
not_taken:
  {_CONTINUE}"""),
    StencilSpec("goto", (Operand("target", OperandKind.LABEL),), """
  %t = musttail call ghccc i64 {target}(ptr %cpu, ptr %mem)
  ret i64 %t"""),
    StencilSpec("exit", (Operand("pc", _U), Operand("pc_value", OperandKind.I64),
                         Operand("code", _U)), f"""
  {_field("ppc", "pc")}
  store i64 {{pc_value}}, ptr %ppc
  ret i64 {{code}}"""),
)


# -- building (needs llvmlite) ------------------------------------------------------------

def module_ir(specs: Iterable[StencilSpec]) -> str:
    """The LLVM IR module that compiles ``specs``: one ``ghccc`` function each (the
    entry adapter in the C convention) and one external declaration per hole.

    Raises:
        StencilError: two specs share a name, or use one operand name with two kinds.
    """
    kinds: dict[str, OperandKind] = {NEXT: OperandKind.LABEL}
    functions, seen = [], set()
    for spec in specs:
        if spec.name in seen:
            raise StencilError(f"two stencils are named {spec.name!r}")
        seen.add(spec.name)
        values = {NEXT: f'@"{HOLE_PREFIX}{NEXT}"'}
        for operand in spec.operands:
            if kinds.setdefault(operand.name, operand.kind) is not operand.kind:
                raise StencilError(f"stencil {spec.name}: operand {operand.name!r} is "
                                   f"{operand.kind.value} here and "
                                   f"{kinds[operand.name].value} elsewhere")
            symbol = f'@"{HOLE_PREFIX}{operand.name}"'
            values[operand.name] = (symbol if operand.kind is OperandKind.LABEL
                                    else f"ptrtoint (ptr {symbol} to i64)")
        values["continue"] = (f'%next = musttail call ghccc i64 {values[NEXT]}'
                              f'(ptr %cpu, ptr %mem)\n  ret i64 %next')
        try:
            body = spec.body.format(**values)
        except (KeyError, IndexError) as exc:
            raise StencilError(f"stencil {spec.name}: the body names {exc}, which is not "
                               f"an operand") from None
        cc = "" if spec.c_entry else "ghccc "
        functions.append(f'define {cc}i64 @"{STENCIL_PREFIX}{spec.name}"'
                         f'(ptr %cpu, ptr %mem) nounwind {{{body}\n}}\n')
    declarations = []
    for name, kind in sorted(kinds.items()):
        symbol = f'@"{HOLE_PREFIX}{name}"'
        if kind is OperandKind.LABEL:
            declarations.append(f"declare ghccc i64 {symbol}(ptr, ptr)")
        else:
            model = "small" if kind is OperandKind.U31 else "large"
            declarations.append(f'{symbol} = external dso_local global i8, align 1, '
                                f'code_model "{model}"')
    return "\n".join(declarations) + "\n\n" + "\n".join(functions)


def specs_digest(specs: Iterable[StencilSpec]) -> str:
    """Identifies a set of specs (and this module's format): a stored library built
    from other specs is rebuilt."""
    h = hashlib.sha256(f"stencils v{FORMAT_VERSION}\n".encode())
    h.update(module_ir(specs).encode())
    return h.hexdigest()[:32]


def compile_stencils(specs: Iterable[StencilSpec]) -> bytes:
    """The object code of :func:`module_ir` for the host CPU (imports llvmlite)."""
    import llvmlite.binding as llvm  # only building needs LLVM

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    try:
        module = llvm.parse_assembly(module_ir(specs))
        module.verify()
        target = llvm.Target.from_default_triple()
        machine = target.create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
            opt=2, reloc="static", codemodel="medium")
        return machine.emit_object(module)
    except RuntimeError as exc:
        raise StencilError(f"LLVM rejected the stencil module: {exc}") from exc


def build_library(specs: Iterable[StencilSpec] = PROOF_STENCILS) -> StencilLibrary:
    """Compile ``specs`` and extract their stencils.

    Raises:
        StencilError: LLVM failed, or produced code the emitter cannot patch.
    """
    specs = tuple(specs)
    obj = compile_stencils(specs)
    stencils = extract_stencils(obj, specs)
    return StencilLibrary(stencils, specs_digest(specs), built=True)


def extract_stencils(obj: bytes, specs: Iterable[StencilSpec]) -> dict[str, Stencil]:
    """Cut each spec's function out of ``obj`` and turn its relocations into holes."""
    try:
        elf = elfobj.parse(obj)
    except elfobj.ElfError as exc:
        raise StencilError(f"bad stencil object: {exc}") from exc
    functions = {}
    for i, symbol in enumerate(elf.symbols):
        if symbol.type == elfobj.STT_FUNC and symbol.name.startswith(STENCIL_PREFIX):
            functions[symbol.name[len(STENCIL_PREFIX):]] = (i, symbol)
    stencils = {}
    for spec in specs:
        if spec.name not in functions:
            raise StencilError(f"stencil {spec.name}: no function in the object")
        stencils[spec.name] = _extract(elf, spec, functions[spec.name][1])
    return stencils


def _extract(elf: elfobj.ElfObject, spec: StencilSpec, function: elfobj.Symbol) -> Stencil:
    section = elf.sections[function.shndx]
    start, end = function.value, function.value + function.size
    code = bytearray(elf.section_bytes(section)[start:end])
    operand_index = {operand.name: i for i, operand in enumerate(spec.operands)}
    holes: list[Hole] = []
    next_refs: list[tuple[int, int]] = []  # (offset, addend) of rel32 fields to "next"
    for offset, rtype, symbol_index, addend in elf.relocations(section.index):
        if not start <= offset < end:
            continue
        offset -= start
        name = elf.symbols[symbol_index].name
        if not name.startswith(HOLE_PREFIX):
            raise StencilError(f"stencil {spec.name} refers to {name or 'a section'} at "
                               f"+{offset:#x}: stencils may refer only to their holes "
                               f"(no constant pools, jump tables or calls)")
        name = name[len(HOLE_PREFIX):]
        if name == NEXT:
            if rtype not in (_R_X86_64_PLT32, _R_X86_64_PC32):
                raise StencilError(f"stencil {spec.name}: 'next' is not a jump target")
            next_refs.append((offset, addend))
            continue
        if name not in operand_index:
            raise StencilError(f"stencil {spec.name} uses hole {name!r}, not one of its "
                               f"operands")
        index = operand_index[name]
        holes.append(Hole(offset, index, _hole_kind(spec, name, spec.operands[index].kind,
                                                    rtype), addend))
    falls_through = bool(next_refs)
    n = len(code)
    if (n - 4, -4) in next_refs and code[n - 5] == _JMP_REL32:
        # Ends with "jmp next": drop it, fall through.
        next_refs.remove((n - 4, -4))
        del code[n - 5:]
    elif (n >= 11 and code[n - 5] == _JMP_REL32 and code[n - 11] == _JCC_REL32
          and 0x80 <= code[n - 10] <= 0x8F and (n - 9, -4) in next_refs
          and any(h.offset == n - 4 and h.kind is HoleKind.REL32 for h in holes)):
        # Ends with "jcc next; jmp target": becomes "j!cc target", falling through.
        taken = next(h for h in holes if h.offset == n - 4)
        holes.remove(taken)
        holes.append(Hole(n - 9, taken.operand, HoleKind.REL32, taken.addend))
        next_refs.remove((n - 9, -4))
        code[n - 10] ^= 1  # the opposite condition (cc codes come in pairs)
        del code[n - 5:]
    for offset, addend in next_refs:  # any other jump to next: the end of the stencil
        _S32.pack_into(code, offset, len(code) + addend - offset)
    if any(h.offset + (8 if h.kind is HoleKind.ABS64 else 4) > len(code) for h in holes):
        raise StencilError(f"stencil {spec.name}: a hole lies outside its code")
    return Stencil(spec.name, spec.operands, bytes(code),
                   tuple(sorted(holes, key=lambda h: h.offset)), falls_through)


def _hole_kind(spec: StencilSpec, name: str, kind: OperandKind, rtype: int) -> HoleKind:
    if kind is OperandKind.LABEL and rtype in (_R_X86_64_PLT32, _R_X86_64_PC32):
        return HoleKind.REL32
    if kind is OperandKind.I64 and rtype == _R_X86_64_64:
        return HoleKind.ABS64
    if kind is OperandKind.U31 and rtype in (_R_X86_64_32, _R_X86_64_32S):
        return HoleKind.ABS32
    if kind is OperandKind.U31 and rtype == _R_X86_64_64:
        return HoleKind.ABS64
    raise StencilError(f"stencil {spec.name}: LLVM used relocation type {rtype} for the "
                       f"{kind.value} operand {name!r}, which cannot hold it")


# -- persistence --------------------------------------------------------------------------

def library_path(cache_dir: Path, fingerprint: str) -> Path:
    return Path(cache_dir) / fingerprint / LIBRARY_FILE


def save_library(library: StencilLibrary, path: Path, fingerprint: str) -> bool:
    """Write ``library`` atomically (a temporary file renamed into place). Best effort:
    returns False if the directory is not writable."""
    stencils = list(library.stencils.values())
    meta = {
        "format": FORMAT_VERSION, "fingerprint": fingerprint, "digest": library.digest,
        "stencils": [{
            "name": s.name, "operands": [[o.name, o.kind.value] for o in s.operands],
            "size": len(s.code), "falls_through": s.falls_through,
            "holes": [[h.offset, h.operand, h.kind.value, h.addend] for h in s.holes],
        } for s in stencils],
    }
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    return replace_file(path, (_HEADER.pack(_MAGIC, len(encoded)), encoded,
                               *(s.code for s in stencils)), checksum=True)


def read_library(path: Path, fingerprint: str, digest: str) -> StencilLibrary | None:
    """The library stored at ``path`` if it is intact and was built for this
    fingerprint and these specs; None otherwise (missing, truncated, corrupt, stale)."""
    try:
        data = path.read_bytes()
        magic, meta_len = _HEADER.unpack_from(data)
        if magic != _MAGIC or len(data) < _HEADER.size + meta_len + 32:
            return None
        body, check = data[:-32], data[-32:]
        if hashlib.sha256(body).digest() != check:
            return None
        meta = json.loads(body[_HEADER.size:_HEADER.size + meta_len])
        if (meta["format"] != FORMAT_VERSION or meta["fingerprint"] != fingerprint
                or meta["digest"] != digest):
            return None
        stencils = {}
        position = _HEADER.size + meta_len
        for entry in meta["stencils"]:
            code = body[position:position + entry["size"]]
            position += entry["size"]
            operands = tuple(Operand(name, OperandKind(kind))
                             for name, kind in entry["operands"])
            holes = tuple(Hole(offset, operand, HoleKind(kind), addend)
                          for offset, operand, kind, addend in entry["holes"])
            stencils[entry["name"]] = Stencil(entry["name"], operands, code, holes,
                                              entry["falls_through"])
        if position != len(body):
            return None
        return StencilLibrary(stencils, digest)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return None


def load_library(cache_dir: Path | None, fingerprint: str,
                 specs: Iterable[StencilSpec] = PROOF_STENCILS) -> StencilLibrary:
    """The stencil library for this translator: read from the cache directory, or built
    (and stored there) when it is missing, corrupt or was built from other specs.
    With no ``cache_dir`` it is built in memory.

    Raises:
        StencilError: building failed.
    """
    specs = tuple(specs)
    digest = specs_digest(specs)
    path = library_path(cache_dir, fingerprint) if cache_dir is not None else None
    if path is not None:
        library = read_library(path, fingerprint, digest)
        if library is not None:
            return library
    library = build_library(specs)
    if path is not None:
        save_library(library, path, fingerprint)
    return library
