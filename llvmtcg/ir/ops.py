"""The opcode table: every IR operation, its operand shape and its effects.

Semantics are defined for every input (no op can produce LLVM undefined behaviour):

* shifts and rotates use the count modulo the width;
* ``div``/``divu`` by zero give all ones, ``rem``/``remu`` by zero give the dividend,
  ``div`` of the most negative value by -1 gives the dividend and ``rem`` gives 0
  (the RISC-V rules; other guests select their own results with ``movcond``);
* ``clz``/``ctz`` take a second operand returned when the first is zero;
* ``extract``/``sextract``/``deposit`` take their position and length as constants
  checked when the op is built.

Floating point works on bit patterns: an i32 temp holds an IEEE 754 binary32, an i64
temp a binary64. The ops are IEEE 754 operations, correctly rounded in the
:class:`RoundingMode` given as their last argument (DYN: the host environment's current
mode, which the run loop loads from the guest's dynamic mode). They raise their IEEE
exceptions in the host FP environment, where the run loop collects them for the guest
(``Cpu.run``), so they are never removed or reordered (SIDE_EFFECTS). Tininess is
detected after rounding, and underflow is signalled only when the result is also
inexact. Guest-specific rules are the frontend's business:

* a NaN result is some quiet NaN (payload and sign unspecified): frontends that have
  a canonical NaN select it;
* ``fadd fsub fmul fdiv fsqrt``: as IEEE; ``fma`` (a*b+c, one rounding) also signals
  invalid for 0*inf when c is a quiet NaN (RISC-V and AArch64 agree; x86 does not);
* ``fmin``/``fmax``: IEEE 754-2019 minimumNumber/maximumNumber: -0 < +0, a NaN
  operand yields the other operand, two NaNs yield a NaN, invalid only for a
  signalling NaN operand;
* ``fsetcond``: dst (any integer type) = 1 if the :class:`FCond` holds, else 0;
* ``fclass``: dst (any integer type) = 1 << k, k the class of the operand in the order
  -inf, -normal, -subnormal, -0, +0, +subnormal, +normal, +inf, signalling NaN, quiet
  NaN; no exceptions;
* ``fcanon``: dst = the positive quiet NaN with a zero payload (0x7fc00000 /
  0x7ff8000000000000, the canonical NaN of RISC-V and AArch64) if the operand is a
  NaN, else the operand; no exceptions for any operand but a signalling NaN (which
  arithmetic results never are). Kept in the FP domain, so a chain of float ops
  stays in vector registers;
* ``fcvt``: between binary32 and binary64 (by the temps' types);
* ``itof``/``utof``: signed/unsigned integer (i32 or i64) to float;
* ``ftoi``/``ftou``: float to signed/unsigned integer of dst's width, rounded in the
  given mode; a second output (i32) receives the exceptions as :class:`FFlag` bits
  instead of the host environment: INVALID with a saturated result (the type's
  minimum or maximum by the operand's sign, 0 for a NaN) when the rounded value does
  not fit, else INEXACT if rounding changed the value. A negative value that rounds
  to 0 is 0 for ``ftou`` (inexact only).

Vector ops work on v128 temps (an AdvSIMD register: 16 bytes, lane 0 in the low bits)
as lanes of ``8 << vece`` bits; their first two arguments are ``vece`` (0..3) and
``oprsz``, the bytes operated on (16, or 8: only the low half's lanes are computed
and the high half of the result is zero, as Arm's 64-bit vector forms write it).
Like the scalar ops they are defined for every input:

* ``vadd vsub vmul vand vor vxor vandc``: lane-wise, wrapping;
* ``vsmin vsmax vumin vumax``; ``vssadd vusadd vsssub vussub``: saturating add and
  subtract (signed, unsigned);
* ``vneg vnot vabs`` (abs of the most negative value is itself);
* ``vcmp``: lanes all ones where (a cond b) holds, else zero (args: vece, oprsz, Cond);
* ``vshli vshri vsari``: shift every lane by a constant count (arg) below the lane
  width;
* ``vdup``: every lane = the low lane bits of an i64; ``vdupe``: every lane = lane
  ``index`` (arg) of the source;
* ``vmov``: a copy (oprsz 8 clears the high half);
* ``vzip1 vzip2 vuzp1 vuzp2 vtrn1 vtrn2``: Arm's permutes of two vectors;
* ``vperm``: any permute of two vectors: lane i (of oprsz) = lane ``mask[i]`` of the
  32-byte concatenation of the *whole* inputs (a's ``16 >> vece`` lanes first, then
  b's); the arg ``mask`` packs the indexes 8 bits each, lane i's in bits 8i..8i+7
  (``pack_permute``). Arm's XTN, REV, EXT and the LDn/STn (de-)interleaves;
* ``vctpop``: each lane's population count; ``vclz``: each lane's count of leading
  zero bits (the lane width for 0); ``vbitrev``: each lane's bits reversed;
* ``vshlv vshrv vsarv``: each lane of a shifted left (logically, arithmetically right)
  by the same lane of b, read as an unsigned count: a count of the lane width or more
  gives 0 (vsarv: the copies of the sign bit);
* ``vtbl``: inputs table, indices, fallback (byte lanes, vece 0): lane i = byte
  ``indices[i]`` of the whole 16-byte table if below 16, else ``fallback[i]`` (one
  step of Arm's TBL/TBX; longer tables chain steps with the indices less 16);
* ``vfadd vfsub vfmul vfdiv`` (last arg a RoundingMode) and ``vfma`` (a*b+c, one
  rounding) on binary32 (vece 2) or binary64 (vece 3) lanes: each lane as the scalar
  op gives it, the exceptions of all lanes raised in the host environment; a NaN lane
  is some quiet NaN;
* ``vftosi``: each float lane (vece 2: binary32, 3: binary64) truncated to a signed
  integer of the same width, Inexact raised; the caller makes sure every lane (of
  oprsz) fits: a lane that does not (or a NaN) gives an unspecified value;
* ``vfsqrt`` (last arg a RoundingMode): each lane's square root as ``fsqrt`` gives it;
* ``vitof vutof`` (last arg a RoundingMode, not RMM): each lane, a signed (unsigned)
  integer, converted to the float of the same width (vece 2: binary32, 3: binary64)
  as ``itof``/``utof`` convert it, Inexact raised in the host environment;
* ``vfcmp`` (last arg an FCond): lanes all ones where the float comparison of binary32
  (vece 2) or binary64 (vece 3) lanes holds, else zero, raising invalid as ``fsetcond``
  does (quiet conditions for signalling NaNs only, signalling ones for any NaN);
* ``vfanynan``: dst (i64) = 1 if some lane (of oprsz) is a NaN, else 0; no exceptions;
* ``vany``: dst (i64) = 1 if some lane (of oprsz) is not zero, else 0.

The Armv8 cryptographic extension's data operations, on whole v128 values (vece 0,
oprsz 16; ``frontends/aarch64/crypto.py`` is their reference: inputs d, n[, m] in
that order). Lowered with AES-NI, PCLMULQDQ and SHA-NI when the host has them, else
with portable IR (``ir/lower/crypto.py``):

* ``vaese vaesd`` (d, n), ``vaesmc vaesimc`` (n): Arm's AESE, AESD, AESMC, AESIMC;
* ``vsha1c vsha1p vsha1m`` (d, n, m), ``vsha1su1`` (d, n): SHA1C/P/M, SHA1SU1;
* ``vsha256h vsha256h2 vsha256su1`` (d, n, m), ``vsha256su0`` (d, n);
* ``vpmull`` (args: vece, oprsz, high): the carry-less widening product of the low
  (high: 1, the high) 64-bit halves' lanes of two vectors: vece 0, eight 8x8 -> 16-bit
  products; vece 3, one 64x64 -> 128-bit product (Arm's PMULL/PMULL2).

Two ops reach the host FP environment itself, for guest instructions that read or write
the guest's FP status and control (fflags/frm/fcsr, FPSR/FPCR) without a helper:

* ``fpenv_flags``: dst (i32) = the exceptions (FFlag bits) float ops raised in the host
  environment since they were last collected; clears them there;
* ``fpenv_round``: makes src (i32, a RoundingMode ordinal: 0 RNE, 1 RTZ, 2 RDN, 3 RUP;
  anything else RNE) the host's dynamic rounding mode, which DYN ops use.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class OpFlag(enum.Flag):
    NONE = 0
    TYPED = enum.auto()  # printed with the type suffix of its first temp (add_i64)
    TERMINATOR = enum.auto()  # control never falls through to the next op
    SIDE_EFFECTS = enum.auto()  # memory, calls, control flow: never removed
    MEMORY = enum.auto()  # guest memory access: may fault
    FLOAT = enum.auto()  # float op: printed with f32/f64 suffixes (fadd_f64, ftoi_i64_f32)
    VECTOR = enum.auto()  # v128 temps, lanes given by the args: printed without a suffix


@dataclass(frozen=True, slots=True)
class OpDef:
    name: str
    n_out: int
    n_in: int
    n_args: int  # non-temp arguments: conditions, memops, labels, helper names, ints
    flags: OpFlag = OpFlag.TYPED
    # Precomputed: testing an enum.Flag costs a Flag construction each time, and the
    # lowering asks for every op of every block.
    is_float: bool = field(init=False, default=False)
    is_terminator: bool = field(init=False, default=False)
    is_vector: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_float", bool(self.flags & OpFlag.FLOAT))
        object.__setattr__(self, "is_vector", bool(self.flags & OpFlag.VECTOR))
        object.__setattr__(self, "is_terminator", bool(self.flags & OpFlag.TERMINATOR))


def _defs(names: str, n_out: int, n_in: int, n_args: int = 0,
          flags: OpFlag = OpFlag.TYPED) -> dict[str, OpDef]:
    return {n: OpDef(n, n_out, n_in, n_args, flags) for n in names.split()}


_FX = OpFlag.SIDE_EFFECTS
_FP = OpFlag.FLOAT | OpFlag.SIDE_EFFECTS  # raise exceptions / read the rounding mode
_END = OpFlag.TERMINATOR | OpFlag.SIDE_EFFECTS
_V = OpFlag.VECTOR
_VFP = OpFlag.VECTOR | _FP

OPS: dict[str, OpDef] = {
    **_defs("mov neg not bswap16 bswap32 bswap64 ctpop", 1, 1),
    **_defs("ext8s ext8u ext16s ext16u ext32s ext32u", 1, 1),
    **_defs("add sub mul and or xor andc orc eqv nand nor", 1, 2),
    **_defs("shl shr sar rotl rotr div divu rem remu mulsh muluh clz ctz", 1, 2),
    **_defs("mulu2 muls2 mulsu2", 2, 2),
    **_defs("extract sextract", 1, 1, 2),  # args: ofs, len
    **_defs("deposit", 1, 2, 2),  # args: ofs, len
    **_defs("setcond", 1, 2, 1),  # args: cond
    **_defs("movcond", 1, 4, 1),  # inputs: c1, c2, v_true, v_false; args: cond
    # Width changes between i32 and i64 (names carry both types).
    **_defs("ext_i32_i64 extu_i32_i64 extrl_i64_i32 extrh_i64_i32", 1, 1, 0, OpFlag.NONE),
    # Control flow inside a block.
    **_defs("set_label", 0, 0, 1, _FX),
    **_defs("br", 0, 0, 1, _END),
    **_defs("brcond", 0, 2, 2, OpFlag.TYPED | _FX),  # args: cond, label
    # Guest memory: args are (memop, mmu_idx). A v128 temp moves 16 bytes as two
    # doublewords of the memop (8 bytes, unsigned), the low one at addr: one access when
    # they are on one page, else (and on every slow path) the two accesses in order.
    **_defs("qemu_ld", 1, 1, 2, OpFlag.TYPED | _FX | OpFlag.MEMORY),
    **_defs("qemu_st", 0, 2, 2, OpFlag.TYPED | _FX | OpFlag.MEMORY),
    # Atomics return the old memory value. cmpxchg inputs: addr, expected, new.
    **_defs("atomic_cmpxchg", 1, 3, 2, OpFlag.TYPED | _FX | OpFlag.MEMORY),
    # 128-bit compare-and-swap of two little-endian doublewords (the low one at addr,
    # which must be 16-byte aligned): outputs old_lo, old_hi; inputs addr, expected_lo,
    # expected_hi, new_lo, new_hi (all i64); args: memop (PAIR_MEMOP), mmu_idx. The host's
    # cmpxchg16b: AArch64's CASP and exclusive pairs.
    **_defs("atomic_cmpxchg_pair", 2, 5, 2, OpFlag.TYPED | _FX | OpFlag.MEMORY),
    # atomic_rmw args: AtomicOp, memop, mmu_idx.
    **_defs("atomic_rmw", 1, 2, 3, OpFlag.TYPED | _FX | OpFlag.MEMORY),
    # Floating point on bit patterns (semantics above); the last arg is a RoundingMode.
    **_defs("fadd fsub fmul fdiv", 1, 2, 1, _FP),
    **_defs("fsqrt", 1, 1, 1, _FP),
    **_defs("fma", 1, 3, 1, _FP),
    **_defs("fmin fmax", 1, 2, 0, _FP),
    **_defs("fsetcond", 1, 2, 1, _FP),  # args: FCond
    **_defs("fclass", 1, 1, 0, OpFlag.FLOAT),
    **_defs("fcanon", 1, 1, 0, OpFlag.FLOAT),
    **_defs("fcvt itof utof", 1, 1, 1, _FP),
    **_defs("ftoi ftou", 2, 1, 1, _FP),  # outputs: value, flags (i32)
    # Vector ops (semantics above): args start with vece, oprsz.
    **_defs("vadd vsub vmul vand vor vxor vandc vsmin vsmax vumin vumax", 1, 2, 2, _V),
    **_defs("vssadd vusadd vsssub vussub", 1, 2, 2, _V),
    **_defs("vzip1 vzip2 vuzp1 vuzp2 vtrn1 vtrn2", 1, 2, 2, _V),
    **_defs("vneg vnot vabs vmov vctpop vclz vbitrev", 1, 1, 2, _V),
    **_defs("vshlv vshrv vsarv", 1, 2, 2, _V),
    **_defs("vperm", 1, 2, 3, _V),  # args: vece, oprsz, packed lane indexes
    **_defs("vcmp", 1, 2, 3, _V),  # args: vece, oprsz, cond
    **_defs("vshli vshri vsari vdupe", 1, 1, 3, _V),  # args: vece, oprsz, count / index
    **_defs("vdup", 1, 1, 2, _V),  # input: i64
    **_defs("vtbl", 1, 3, 2, _V),  # inputs: table, indices, fallback
    **_defs("vfadd vfsub vfmul vfdiv", 1, 2, 3, _VFP),  # args: vece, oprsz, rm
    **_defs("vfma", 1, 3, 3, _VFP),
    **_defs("vitof vutof vfsqrt", 1, 1, 3, _VFP),  # args: vece, oprsz, rm
    **_defs("vfcmp", 1, 2, 3, _VFP),  # args: vece, oprsz, FCond
    **_defs("vftosi", 1, 1, 2, _VFP),
    **_defs("vfanynan vany", 1, 1, 2, _V),  # output: i64
    # The crypto extension (semantics above): args vece 0, oprsz 16.
    **_defs("vaese vaesd vsha1su1 vsha256su0", 1, 2, 2, _V),
    **_defs("vaesmc vaesimc", 1, 1, 2, _V),
    **_defs("vsha1c vsha1p vsha1m vsha256h vsha256h2 vsha256su1", 1, 3, 2, _V),
    **_defs("vpmull", 1, 2, 3, _V),  # args: vece, oprsz, high
    **_defs("fpenv_flags", 1, 0, 0, _FX),
    **_defs("fpenv_round", 0, 1, 0, _FX),
    # Host memory at a raw address (instrumentation the embedding API inserts: coverage
    # maps, counters, comparison logs in buffers it owns); never faults, never guest
    # memory. args: (size in bytes, byte offset added to the address); loads zero-extend.
    **_defs("host_ld", 1, 1, 2, OpFlag.TYPED | _FX),
    **_defs("host_st", 0, 2, 2, OpFlag.TYPED | _FX),
    # Helper call: outputs/inputs vary; args: helper name.
    "call": OpDef("call", -1, -1, 1, _FX),
    "insn_start": OpDef("insn_start", 0, 0, 1, _FX),  # args: guest pc
    # Block exits.
    "goto_tb": OpDef("goto_tb", 0, 0, 2, _END),  # args: slot n, destination pc
    "exit_tb": OpDef("exit_tb", 0, 0, 1, _END),  # args: ExitReason
    "lookup_and_goto_ptr": OpDef("lookup_and_goto_ptr", 0, 0, 0, _END),
}


def pack_permute(indexes: list[int] | tuple[int, ...]) -> int:
    """``vperm``'s mask argument: lane i's index in bits 8i..8i+7."""
    return sum(index << (8 * i) for i, index in enumerate(indexes))


def unpack_permute(mask: int, count: int) -> list[int]:
    """The ``count`` lane indexes of ``vperm``'s mask argument."""
    return [mask >> (8 * i) & 0xFF for i in range(count)]


# The i64 temps of vector ops (outputs then inputs, by position); every other is v128.
VECTOR_I64_TEMPS: dict[str, tuple[int, ...]] = {"vdup": (1,), "vfanynan": (0,), "vany": (0,)}


class ExitReason(enum.IntEnum):
    """Why native code returned to the run loop: the low 3 bits of a block's result.

    The upper bits carry a payload: for CHAIN, the address of the exit slot that was
    empty, so the run loop can patch it.
    """

    LOOKUP = 0  # look up the block at cpu.pc (indirect jump missed the jump cache)
    CHAIN = 1  # direct jump whose exit slot is not linked yet
    EXCEPTION = 2  # cpu.exception_index is set (guest exception, fault, helper error)
    REQUESTED = 3  # exit_request was set (timer, signal, stop, hook)
    HALT = 4  # the guest is idle until an event (wfi)
    SYSCALL = 5  # the guest made a system call; cpu.pc is the instruction after it
    HOT = 6  # the block at cpu.pc reached its execution threshold (tiering); resume there


EXIT_REASON_BITS = 3
