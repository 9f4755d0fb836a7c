"""The API frontends use to emit IR for one block.

Every method checks operand types when the op is built, so a frontend bug is reported
at the instruction that caused it rather than as an LLVM verifier error later.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmtcg.ir.block import Block, Op
from llvmtcg.ir.ops import OPS, VECTOR_I64_TEMPS, ExitReason, unpack_permute
from llvmtcg.ir.types import (
    I32,
    I64,
    PAIR_MEMOP,
    V128,
    AtomicOp,
    Cond,
    FCond,
    IRType,
    Label,
    MemOp,
    RoundingMode,
    Temp,
    TempKind,
    const,
)

_I64 = I64


class IRError(Exception):
    """A malformed IR operation (wrong types, bad constant arguments, no terminator)."""


# Enum members through their class cost a slow lookup; the checks below run for every op.
_CONST = TempKind.CONST
_LOCAL = TempKind.LOCAL
_EXCEPTION = ExitReason.EXCEPTION
_CHAIN = ExitReason.CHAIN
# Ops are built as plain tuples of their four fields: a NamedTuple's own constructor is a
# Python function (a frame per op, several per guest instruction).
_new_op = tuple.__new__
# Block-local temps are values too (kind, type, name): shared by every block.
_locals: dict[tuple[int, int], Temp] = {}


def local_temp(type_: IRType, n: int) -> Temp:
    """The block-local temp a block's ``n``-th :meth:`Builder.temp` call returns for
    ``type_`` (locals are shared values, one per width and position)."""
    key = (type_.bits, n)
    t = _locals.get(key)
    if t is None:
        t = _locals[key] = Temp(_LOCAL, type_, f"tmp{n}")
    return t


def _check_field(name: str, type_: IRType, ofs: int, length: int) -> None:
    if not (0 <= ofs and 0 < length and ofs + length <= type_.bits):
        raise IRError(f"{name}: field ofs={ofs} len={length} does not fit {type_}")


class _ControlAndMemoryOps:
    """Ops with constant arguments, mixed types, control flow, memory and calls."""

    def mul2(self, kind: str, lo: Temp, hi: Temp, a: Temp, b: Temp) -> None:
        """(hi:lo) = a * b as a double-width product; kind is mulu2, muls2 or mulsu2
        (mulsu2: a signed, b unsigned)."""
        if kind not in ("mulu2", "muls2", "mulsu2"):
            raise IRError(f"unknown wide multiply {kind}")
        self._same_type(kind, (lo, hi, a, b))
        self.emit(kind, (lo, hi), (a, b))

    def extract(self, dst: Temp, src: Temp, ofs: int, length: int,
                signed: bool = False) -> None:
        """dst = bits [ofs, ofs+length) of src, zero- or sign-extended."""
        name = "sextract" if signed else "extract"
        self._same_type(name, (dst, src))
        _check_field(name, dst.type, ofs, length)
        self.emit(name, (dst,), (src,), (ofs, length))

    def deposit(self, dst: Temp, base: Temp, field: Temp, ofs: int, length: int) -> None:
        """dst = base with bits [ofs, ofs+length) replaced by the low bits of field."""
        self._same_type("deposit", (dst, base, field))
        _check_field("deposit", dst.type, ofs, length)
        self.emit("deposit", (dst,), (base, field), (ofs, length))

    def setcond(self, cond: Cond, dst: Temp, a: Temp, b: Temp) -> None:
        """dst = 1 if (a cond b) else 0."""
        self._same_type("setcond", (dst, a, b))
        self.emit("setcond", (dst,), (a, b), (cond,))

    def movcond(self, cond: Cond, dst: Temp, c1: Temp, c2: Temp,
                v_true: Temp, v_false: Temp) -> None:
        """dst = v_true if (c1 cond c2) else v_false."""
        self._same_type("movcond", (c1, c2))
        self._same_type("movcond", (dst, v_true, v_false))
        self.emit("movcond", (dst,), (c1, c2, v_true, v_false), (cond,))

    def ext_i32_i64(self, dst: Temp, src: Temp, signed: bool = True) -> None:
        if dst.type is not I64 or src.type is not I32:
            raise IRError("ext_i32_i64: needs an i64 destination and an i32 source")
        self.emit("ext_i32_i64" if signed else "extu_i32_i64", (dst,), (src,))

    def extr_i64_i32(self, dst: Temp, src: Temp, high: bool = False) -> None:
        if dst.type is not I32 or src.type is not I64:
            raise IRError("extr_i64_i32: needs an i32 destination and an i64 source")
        self.emit("extrh_i64_i32" if high else "extrl_i64_i32", (dst,), (src,))

    # -- control flow ----------------------------------------------------------------------
    # (The ops built for most guest instructions append their tuple directly, with
    # the checks ``emit`` would make that can fail for them: a call of ``emit``
    # costs about as much again as building the op.)
    def set_label(self, label: Label) -> None:
        self.block.ops.append(_new_op(Op, ("set_label", (), (), (label,))))

    def br(self, label: Label) -> None:
        self._labels_used.append(label)
        self.block.ops.append(_new_op(Op, ("br", (), (), (label,))))

    def brcond(self, cond: Cond, a: Temp, b: Temp, label: Label) -> None:
        """Branch to label if (a cond b); otherwise continue with the next op."""
        if a.type is not b.type:
            self._same_type("brcond", (a, b))
        self._labels_used.append(label)
        self.block.ops.append(_new_op(Op, ("brcond", (), (a, b), (cond, label))))

    def insn_start(self, pc: int) -> None:
        """Mark the start of a guest instruction; faults report this pc."""
        block = self.block
        block.n_insns += 1
        block.ops.append(_new_op(Op, ("insn_start", (), (), (pc,))))

    def goto_tb(self, slot: int, dest: int) -> None:
        """Jump to the block at guest pc ``dest`` through chainable exit slot ``slot``.

        Linked: a native tail jump. Not yet linked: set pc=dest and return to the run
        loop, which links the slot.
        """
        if slot not in (0, 1):
            raise IRError(f"goto_tb: slot {slot} is not 0 or 1")
        if slot in self._slots_used:
            raise IRError(f"goto_tb: slot {slot} used twice in one block")
        self._slots_used.append(slot)
        self.block.ops.append(_new_op(Op, ("goto_tb", (), (), (slot, dest))))

    def exit_tb(self, reason: ExitReason = ExitReason.LOOKUP) -> None:
        """Return to the run loop with ``reason`` (cpu.pc must already be set)."""
        if reason is _CHAIN:
            raise IRError("exit_tb: CHAIN exits are made by goto_tb")
        self.emit("exit_tb", args=(ExitReason(reason),))

    def call_returns_to(self, pc: int) -> None:
        """Hint: the block's exit is a call that normally returns to guest ``pc``.

        Hot regions then include the block at pc and take an indirect jump there (the
        return) with a branch instead of leaving the region."""
        self.block.return_pc = pc

    def lookup_and_goto_ptr(self) -> None:
        """Jump to the block at cpu.pc via the jump cache, or return to the run loop."""
        self.block.ops.append(_new_op(Op, ("lookup_and_goto_ptr", (), (), ())))

    def raise_exception(self, index: int, pc: int) -> None:
        """Set pc and exception_index, and leave with EXCEPTION."""
        self.mov(self.glob("pc"), const(I64, pc))
        self.mov(self.glob("exception_index"), const(I32, index))
        self.exit_tb(_EXCEPTION)

    # -- guest memory ----------------------------------------------------------------------
    def qemu_ld(self, dst: Temp, addr: Temp, memop: MemOp, mmu_idx: int = 0) -> None:
        """dst = guest memory at addr (extended to dst's type per memop's sign). A v128
        dst takes 16 bytes: two unsigned doublewords of memop, the low one at addr."""
        if dst.type is V128:
            self._check_v128_mem("qemu_ld", memop)
        if addr.type is not _I64 or 8 << memop.size_log2 > dst.type.bits or dst.kind is _CONST:
            self._check_mem("qemu_ld", dst, addr, memop)
            raise IRError(f"qemu_ld: cannot write to constant {dst}")
        self.block.ops.append(_new_op(Op, ("qemu_ld", (dst,), (addr,), (memop, mmu_idx))))

    def qemu_st(self, value: Temp, addr: Temp, memop: MemOp, mmu_idx: int = 0) -> None:
        """Store the low memop.size bytes of value at addr (a v128 value: all 16 bytes,
        as two doublewords of memop, the low one at addr)."""
        if value.type is V128:
            self._check_v128_mem("qemu_st", memop)
        if addr.type is not _I64 or 8 << memop.size_log2 > value.type.bits:
            self._check_mem("qemu_st", value, addr, memop)
        self.block.ops.append(_new_op(Op, ("qemu_st", (), (value, addr), (memop, mmu_idx))))

    def atomic_cmpxchg(self, old: Temp, addr: Temp, expected: Temp, new: Temp,
                       memop: MemOp, mmu_idx: int = 0) -> None:
        """Atomically: old = mem; if old == expected (at memop width): mem = new."""
        self._check_mem("atomic_cmpxchg", old, addr, memop)
        self._same_type("atomic_cmpxchg", (old, expected, new))
        self.emit("atomic_cmpxchg", (old,), (addr, expected, new), (memop.aligned(), mmu_idx))

    def atomic_cmpxchg_pair(self, old: tuple[Temp, Temp], addr: Temp,
                            expected: tuple[Temp, Temp], new: tuple[Temp, Temp],
                            mmu_idx: int = 0) -> None:
        """Atomically, on the 16 bytes at addr (16-byte aligned; pairs are (low, high)
        doublewords, the low one at addr): old = mem; if old == expected: mem = new."""
        temps = (*old, *expected, *new)
        if addr.type is not _I64 or any(t.type is not _I64 for t in temps):
            raise IRError("atomic_cmpxchg_pair: every operand must be i64")
        self.emit("atomic_cmpxchg_pair", old, (addr, *expected, *new), (PAIR_MEMOP, mmu_idx))

    def atomic_rmw(self, op: AtomicOp, old: Temp, addr: Temp, value: Temp,
                   memop: MemOp, mmu_idx: int = 0) -> None:
        """Atomically: old = mem; mem = op(old, value). Natural alignment is required."""
        self._check_mem("atomic_rmw", old, addr, memop)
        self._same_type("atomic_rmw", (old, value))
        self.emit("atomic_rmw", (old,), (addr, value), (op, memop.aligned(), mmu_idx))

    def probe_store(self, scratch: Temp, addr: Temp, memop: MemOp, mmu_idx: int = 0) -> None:
        """Fault as an atomic access of ``memop`` at ``addr`` would (alignment, an
        unmapped or read-only page) and change nothing: an atomic AND with all ones,
        ``scratch`` receiving the value. Instrumentation (:func:`is_store_probe`) does
        not report it as an access: it checks legality only (a failing RISC-V SC)."""
        self.atomic_rmw(AtomicOp.AND, scratch, addr, const(scratch.type, -1), memop, mmu_idx)

    # -- host memory (instrumentation buffers; see ir/ops.py) -----------------------------
    def host_ld(self, dst: Temp, addr: Temp, size: int, offset: int = 0) -> None:
        """dst = the ``size`` bytes at host address addr + offset, zero-extended."""
        self._check_host("host_ld", dst, addr, size)
        self.emit("host_ld", (dst,), (addr,), (size, offset))

    def host_st(self, value: Temp, addr: Temp, size: int, offset: int = 0) -> None:
        """Store the low ``size`` bytes of value at host address addr + offset."""
        self._check_host("host_st", value, addr, size)
        self.emit("host_st", (), (value, addr), (size, offset))

    @staticmethod
    def _check_host(name: str, value: Temp, addr: Temp, size: int) -> None:
        if addr.type is not _I64:
            raise IRError(f"{name}: address {addr} must be i64")
        if size not in (1, 2, 4, 8) or 8 * size > value.type.bits:
            raise IRError(f"{name}: size {size} does not fit {value.type}")

    @staticmethod
    def _check_v128_mem(name: str, memop: MemOp) -> None:
        if memop.size_log2 != 3 or memop.signed or memop.align_log2 > 3:
            raise IRError(f"{name}: a v128 access is two doublewords (an unsigned 8-byte "
                          f"memop aligned to at most 8), not {memop}")

    def _check_mem(self, name: str, value: Temp, addr: Temp, memop: MemOp) -> None:
        if addr.type is not _I64:
            raise IRError(f"{name}: address {addr} must be i64")
        if memop.bits > value.type.bits:
            raise IRError(f"{name}: {memop} does not fit {value.type}")

    # -- helpers ----------------------------------------------------------------------------
    def call(self, helper: str, outputs: Sequence[Temp], inputs: Sequence[Temp]) -> None:
        """Call a registered helper; outputs has zero or one temp."""
        if len(outputs) > 1:
            raise IRError(f"call {helper}: at most one result")
        self.emit("call", tuple(outputs), tuple(inputs), (helper,))


class _FloatOps:
    """IEEE float ops on bit patterns (i32 = binary32, i64 = binary64); semantics in
    ir/ops.py. ``rm`` is the rounding direction (RoundingMode.DYN: the dynamic mode)."""

    def _check_rm(self, name: str, rm: object) -> None:
        if not isinstance(rm, RoundingMode):
            raise IRError(f"{name}: rounding mode {rm!r} is not a RoundingMode")

    def _float_binary(self, name: str, dst: Temp, a: Temp, b: Temp, rm: RoundingMode) -> None:
        self._same_type(name, (dst, a, b))
        self._check_rm(name, rm)
        self.emit(name, (dst,), (a, b), (rm,))

    def fadd(self, dst: Temp, a: Temp, b: Temp, rm: RoundingMode) -> None:
        self._float_binary("fadd", dst, a, b, rm)

    def fsub(self, dst: Temp, a: Temp, b: Temp, rm: RoundingMode) -> None:
        self._float_binary("fsub", dst, a, b, rm)

    def fmul(self, dst: Temp, a: Temp, b: Temp, rm: RoundingMode) -> None:
        self._float_binary("fmul", dst, a, b, rm)

    def fdiv(self, dst: Temp, a: Temp, b: Temp, rm: RoundingMode) -> None:
        self._float_binary("fdiv", dst, a, b, rm)

    def fsqrt(self, dst: Temp, a: Temp, rm: RoundingMode) -> None:
        self._same_type("fsqrt", (dst, a))
        self._check_rm("fsqrt", rm)
        self.emit("fsqrt", (dst,), (a,), (rm,))

    def fma(self, dst: Temp, a: Temp, b: Temp, c: Temp, rm: RoundingMode) -> None:
        """dst = a*b + c with a single rounding (invalid for 0*inf even if c is a qNaN)."""
        self._same_type("fma", (dst, a, b, c))
        self._check_rm("fma", rm)
        self.emit("fma", (dst,), (a, b, c), (rm,))

    def fmin(self, dst: Temp, a: Temp, b: Temp) -> None:
        """IEEE 754-2019 minimumNumber (-0 < +0; a NaN operand yields the other)."""
        self._same_type("fmin", (dst, a, b))
        self.emit("fmin", (dst,), (a, b))

    def fmax(self, dst: Temp, a: Temp, b: Temp) -> None:
        """IEEE 754-2019 maximumNumber (-0 < +0; a NaN operand yields the other)."""
        self._same_type("fmax", (dst, a, b))
        self.emit("fmax", (dst,), (a, b))

    def fsetcond(self, cond: FCond, dst: Temp, a: Temp, b: Temp) -> None:
        """dst = 1 if (a cond b) else 0; dst may be i32 or i64."""
        if not isinstance(cond, FCond):
            raise IRError(f"fsetcond: condition {cond!r} is not an FCond")
        self._same_type("fsetcond", (a, b))
        self.emit("fsetcond", (dst,), (a, b), (cond,))

    def fcanon(self, dst: Temp, a: Temp) -> None:
        """dst = the canonical (positive, zero-payload) quiet NaN if a is a NaN, else a."""
        self._same_type("fcanon", (dst, a))
        self.emit("fcanon", (dst,), (a,))

    def fclass(self, dst: Temp, a: Temp) -> None:
        """dst = one-hot class mask of a (order in ir/ops.py); dst may be i32 or i64."""
        self.emit("fclass", (dst,), (a,))

    def fcvt(self, dst: Temp, src: Temp, rm: RoundingMode = RoundingMode.RNE) -> None:
        """Convert between binary32 and binary64 (the direction follows the types)."""
        if dst.type is src.type:
            raise IRError("fcvt: source and destination formats are the same")
        self._check_rm("fcvt", rm)
        self.emit("fcvt", (dst,), (src,), (rm,))

    def itof(self, dst: Temp, src: Temp, rm: RoundingMode, signed: bool = True) -> None:
        """dst (float) = the integer src (signed or unsigned, i32 or i64), rounded."""
        self._check_rm("itof", rm)
        self.emit("itof" if signed else "utof", (dst,), (src,), (rm,))

    def ftoi(self, dst: Temp, flags: Temp, src: Temp, rm: RoundingMode,
             signed: bool = True) -> None:
        """dst (integer) = src rounded in rm, saturated; flags (i32) = FFlag bits."""
        if flags.type is not I32:
            raise IRError("ftoi: the flags output must be i32")
        self._check_rm("ftoi", rm)
        self.emit("ftoi" if signed else "ftou", (dst, flags), (src,), (rm,))


    def fpenv_flags(self, dst: Temp) -> None:
        """dst (i32) = FFlag bits raised in the host FP environment since last taken;
        clears them."""
        if dst.type is not I32:
            raise IRError("fpenv_flags: the destination must be i32")
        self.emit("fpenv_flags", (dst,))

    def fpenv_round(self, src: Temp) -> None:
        """Set the host's dynamic rounding mode to RoundingMode ordinal src (i32)."""
        if src.type is not I32:
            raise IRError("fpenv_round: the mode must be i32")
        self.emit("fpenv_round", (), (src,))


_VECTOR_FP = frozenset({"vfadd", "vfsub", "vfmul", "vfdiv", "vfma", "vfsqrt", "vitof",
                        "vutof"})
_VECTOR_COUNTED = frozenset({"vshli", "vshri", "vsari"})
_VECTOR_CRYPTO = frozenset({"vaese", "vaesd", "vaesmc", "vaesimc", "vsha1c", "vsha1p",
                            "vsha1m", "vsha1su1", "vsha256h", "vsha256h2", "vsha256su0",
                            "vsha256su1"})


class _VectorOps:
    """Ops on v128 temps (lanes of ``8 << vece`` bits over ``oprsz`` bytes, 8 or 16;
    semantics in ir/ops.py)."""

    def vector(self, name: str, dst: Temp, sources: Sequence[Temp], vece: int, oprsz: int,
               *args: object) -> None:
        """dst = the vector op ``name`` of ``sources``; ``args`` after vece and oprsz
        are the op's own (a Cond for vcmp, a count for shifts, an index for vdupe, a
        RoundingMode for float ops). Every temp is v128 but vdup's source and
        vfanynan's result (i64)."""
        definition = OPS.get(name)
        if definition is None or not definition.is_vector:
            raise IRError(f"{name} is not a vector op")
        if not 0 <= vece <= 3 or oprsz not in (8, 16):
            raise IRError(f"{name}: bad lanes vece={vece} oprsz={oprsz}")
        scalars = VECTOR_I64_TEMPS.get(name, ())
        for i, t in enumerate((dst, *sources)):
            want = I64 if i in scalars else V128
            if t.type is not want:
                raise IRError(f"{name}: operand {t} is {t.type}, not {want}")
            if t.kind is _CONST and want is V128:
                raise IRError(f"{name}: no v128 constants ({t}); build one with vdup")
        esize = 8 << vece
        if name in _VECTOR_FP:
            if vece not in (2, 3):
                raise IRError(f"{name}: float lanes are 32 or 64 bits, not {esize}")
            rm = args[0] if args else None
            if not isinstance(rm, RoundingMode) or rm is RoundingMode.RMM:
                raise IRError(f"{name}: rounding mode {rm!r} (RMM is scalar-only)")
        elif name == "vcmp" and not (args and isinstance(args[0], Cond)):
            raise IRError(f"vcmp: condition {args[:1]!r} is not a Cond")
        elif name in _VECTOR_COUNTED and not (args and 0 <= args[0] < esize):
            raise IRError(f"{name}: count {args[:1]!r} not below the lane width {esize}")
        elif name == "vdupe" and not (args and 0 <= args[0] < 128 // esize):
            raise IRError(f"vdupe: lane {args[:1]!r} out of range")
        elif name == "vperm" and not (
                args and type(args[0]) is int and 0 <= args[0] < 1 << oprsz * 8 // esize * 8
                and max(unpack_permute(args[0], oprsz * 8 // esize)) < 256 // esize):
            raise IRError(f"vperm: lane indexes {args[:1]!r} out of range")
        elif name == "vtbl" and vece != 0:
            raise IRError("vtbl: the lanes are bytes (vece 0)")
        elif name in _VECTOR_CRYPTO and (vece, oprsz) != (0, 16):
            raise IRError(f"{name}: whole registers of bytes (vece 0, oprsz 16)")
        elif name == "vpmull" and (vece not in (0, 3) or oprsz != 16
                                   or not (args and args[0] in (0, 1))):
            raise IRError(f"vpmull: vece 0 or 3, oprsz 16 and a half (0, 1), not "
                          f"vece={vece} oprsz={oprsz} {args[:1]!r}")
        elif name == "vftosi" and vece not in (2, 3):
            raise IRError(f"vftosi: float lanes are 32 or 64 bits, not {esize}")
        elif name == "vfcmp" and (vece not in (2, 3) or not (args and isinstance(args[0],
                                                                               FCond))):
            raise IRError(f"vfcmp: float lanes and an FCond, not vece={vece} {args[:1]!r}")
        self.emit(name, (dst,), sources, (vece, oprsz, *args))


class Builder(_FloatOps, _ControlAndMemoryOps, _VectorOps):
    """Emits ops into a :class:`Block`.

    Args:
        pc: the guest address of the block's first instruction.
        globals_: CPU-state globals by name (from :class:`CpuLayout.globals`).
    """

    def __init__(self, pc: int, globals_: dict[str, Temp] | None = None) -> None:
        self.block = Block(pc)
        # (read only, so shared with the caller: a copy per block cost ~1 µs)
        self.globals = globals_ if globals_ is not None else {}
        self.helper_signatures: dict[str, tuple[IRType | None, tuple[IRType, ...]]] = {}
        # What finish() and goto_tb check, collected as ops are built (not searched for).
        self._labels_used: list[Label] = []
        self._slots_used: list[int] = []

    # -- temps and labels -------------------------------------------------------------
    def temp(self, type_: IRType = I64) -> Temp:
        block_locals = self.block.locals
        n = len(block_locals)
        key = (type_.bits, n)
        t = _locals.get(key)
        if t is None:
            t = _locals[key] = Temp(_LOCAL, type_, f"tmp{n}")
        block_locals.append(t)
        return t


    def const(self, type_: IRType, value: int) -> Temp:
        return const(type_, value)

    def glob(self, name: str) -> Temp:
        try:
            return self.globals[name]
        except KeyError:
            raise IRError(f"no CPU-state global named {name!r}") from None

    def label(self) -> Label:
        label = Label(self.block.n_labels)
        self.block.n_labels += 1
        return label

    # -- emission core ------------------------------------------------------------------
    def emit(self, name: str, outputs: Sequence[Temp] = (), inputs: Sequence[Temp] = (),
             args: Sequence[object] = ()) -> Op:
        definition = OPS[name]
        n_out = definition.n_out
        if n_out >= 0 and len(outputs) != n_out:
            raise IRError(f"{name}: expected {n_out} outputs, got {len(outputs)}")
        if definition.n_in >= 0 and len(inputs) != definition.n_in:
            raise IRError(f"{name}: expected {definition.n_in} inputs, got {len(inputs)}")
        for out in outputs:
            if out.kind is _CONST:
                raise IRError(f"{name}: cannot write to constant {out}")
        op = _new_op(Op, (name, tuple(outputs), tuple(inputs), tuple(args)))
        self.block.ops.append(op)
        return op

    def _same_type(self, name: str, temps: Sequence[Temp]) -> IRType:
        first = temps[0].type
        for t in temps:
            if t.type is not first:
                described = ", ".join(f"{t}:{t.type}" for t in temps)
                raise IRError(f"{name}: operand types differ: {described}")
        return first

    def _unary(self, name: str, dst: Temp, src: Temp) -> None:
        if dst.type is not src.type:
            self._same_type(name, (dst, src))
        if dst.kind is _CONST:
            raise IRError(f"{name}: cannot write to constant {dst}")
        self.block.ops.append(_new_op(Op, (name, (dst,), (src,), ())))

    def _binary(self, name: str, dst: Temp, a: Temp, b: Temp) -> None:
        type_ = dst.type
        if a.type is not type_ or b.type is not type_:
            self._same_type(name, (dst, a, b))
        if dst.kind is _CONST:
            raise IRError(f"{name}: cannot write to constant {dst}")
        self.block.ops.append(_new_op(Op, (name, (dst,), (a, b), ())))

    def finish(self) -> Block:
        """Validate and return the block: it must end with a block exit, and every label
        a branch names must be set."""
        ops = self.block.ops
        if not ops or not OPS[ops[-1].name].is_terminator:
            raise IRError(f"block {self.block.name} does not end with a block exit")
        if self._labels_used or self.block.n_labels:  # (no label, nothing to check)
            # Labels are arguments of these three ops only (ir/ops.py): the label is
            # the last argument of each.
            defined = set()
            branches = []
            for op in ops:
                name = op.name
                if name == "set_label":
                    defined.add(op.args[0])
                elif name == "brcond" or name == "br":
                    branches.append(op)
            for op in branches:
                if op.args[-1] not in defined:
                    raise IRError(f"{op}: label {op.args[-1]} is never set")
        return self.block

    # -- moves and arithmetic -----------------------------------------------------------
    def mov(self, dst: Temp, src: Temp) -> None:
        self._unary("mov", dst, src)

    def movi(self, dst: Temp, value: int) -> None:
        self.mov(dst, const(dst.type, value))

    # Generic one- and two-operand ops; semantics for every input are in ir/ops.py.
    def neg(self, dst: Temp, src: Temp) -> None:
        self._unary("neg", dst, src)

    def not_(self, dst: Temp, src: Temp) -> None:
        self._unary("not", dst, src)

    def bswap16(self, dst: Temp, src: Temp) -> None:
        self._unary("bswap16", dst, src)

    def bswap32(self, dst: Temp, src: Temp) -> None:
        self._unary("bswap32", dst, src)

    def bswap64(self, dst: Temp, src: Temp) -> None:
        self._unary("bswap64", dst, src)

    def ctpop(self, dst: Temp, src: Temp) -> None:
        self._unary("ctpop", dst, src)

    def ext8s(self, dst: Temp, src: Temp) -> None:
        self._unary("ext8s", dst, src)

    def ext8u(self, dst: Temp, src: Temp) -> None:
        self._unary("ext8u", dst, src)

    def ext16s(self, dst: Temp, src: Temp) -> None:
        self._unary("ext16s", dst, src)

    def ext16u(self, dst: Temp, src: Temp) -> None:
        self._unary("ext16u", dst, src)

    def ext32s(self, dst: Temp, src: Temp) -> None:
        self._unary("ext32s", dst, src)

    def ext32u(self, dst: Temp, src: Temp) -> None:
        self._unary("ext32u", dst, src)

    def add(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("add", dst, a, b)

    def sub(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("sub", dst, a, b)

    def mul(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("mul", dst, a, b)

    def and_(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("and", dst, a, b)

    def or_(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("or", dst, a, b)

    def xor(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("xor", dst, a, b)

    def andc(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("andc", dst, a, b)

    def orc(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("orc", dst, a, b)

    def eqv(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("eqv", dst, a, b)

    def nand(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("nand", dst, a, b)

    def nor(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("nor", dst, a, b)

    def shl(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("shl", dst, a, b)

    def shr(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("shr", dst, a, b)

    def sar(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("sar", dst, a, b)

    def rotl(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("rotl", dst, a, b)

    def rotr(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("rotr", dst, a, b)

    def div(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("div", dst, a, b)

    def divu(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("divu", dst, a, b)

    def rem(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("rem", dst, a, b)

    def remu(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("remu", dst, a, b)

    def mulsh(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("mulsh", dst, a, b)

    def muluh(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("muluh", dst, a, b)

    def clz(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("clz", dst, a, b)

    def ctz(self, dst: Temp, a: Temp, b: Temp) -> None:
        self._binary("ctz", dst, a, b)


def is_store_probe(op: Op) -> bool:
    """Whether ``op`` is :meth:`Builder.probe_store`'s legality check (no guest
    instruction's atomic has an all-ones constant operand)."""
    if op.name != "atomic_rmw" or op.args[0] is not AtomicOp.AND:
        return False
    operand = op.inputs[1]
    return operand.is_const and operand.value == operand.type.mask


__all__ = ["Builder", "IRError", "I32", "I64", "is_store_probe"]
