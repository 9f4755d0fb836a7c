"""The host FP environment (x86-64 MXCSR), shared by the lowering and the runtime.

Guest float ops run on host SSE instructions. While native code runs, MXCSR holds the
guest's environment: every exception masked, FTZ/DAZ off, the rounding control set to
the guest's dynamic rounding mode, and the sticky exception flags the guest code raised
since the run loop entered native code (``Cpu.run`` folds them into the guest's
accrued flags through the frontend). Rounding modes x86 cannot express (ties to away)
go to the soft-float helper, which raises its exceptions in the guest's environment.
"""

from __future__ import annotations

from llvmtcg.ir.types import FFlag, RoundingMode

MXCSR_IE = 1 << 0  # invalid
MXCSR_DE = 1 << 1  # denormal operand (not an IEEE exception: ignored)
MXCSR_ZE = 1 << 2  # divide by zero
MXCSR_OE = 1 << 3  # overflow
MXCSR_UE = 1 << 4  # underflow
MXCSR_PE = 1 << 5  # inexact ("precision")
MXCSR_FLAGS = 0x3F
MXCSR_DAZ = 1 << 6
MXCSR_MASK_ALL = 0x1F80  # bits 7..12: every exception masked
MXCSR_RC_SHIFT = 13
MXCSR_RC_MASK = 3 << MXCSR_RC_SHIFT
MXCSR_FTZ = 1 << 15

_RC = {RoundingMode.RNE: 0, RoundingMode.RDN: 1, RoundingMode.RUP: 2, RoundingMode.RTZ: 3}
_FLAG_BITS = ((FFlag.INVALID, MXCSR_IE), (FFlag.DIVBYZERO, MXCSR_ZE),
              (FFlag.OVERFLOW, MXCSR_OE), (FFlag.UNDERFLOW, MXCSR_UE),
              (FFlag.INEXACT, MXCSR_PE))


def has_rounding_control(rm: RoundingMode) -> bool:
    """Whether MXCSR can round in ``rm`` (ties-to-away and DYN cannot be loaded)."""
    return rm in _RC


def mxcsr_rounding_bits(rm: RoundingMode) -> int:
    """The MXCSR.RC field (in place) for a static rounding mode."""
    return _RC[rm] << MXCSR_RC_SHIFT


def guest_mxcsr(rm: RoundingMode) -> int:
    """MXCSR while guest code runs with dynamic rounding mode ``rm`` and no flags
    raised yet. Modes x86 lacks load as RNE; frontends route those ops elsewhere."""
    return _GUEST_MXCSR[rm]


def flags_from_mxcsr(mxcsr: int) -> int:
    """The IEEE exception flags (FFlag bits, as a plain int) set in an MXCSR value; DE
    is not one. Table-driven: the run loop calls this on every exit."""
    return _FLAGS_OF_MXCSR[mxcsr & MXCSR_FLAGS]


def mxcsr_from_flags(flags: int) -> int:
    """MXCSR flag bits for IEEE exception flags."""
    return sum(bit for flag, bit in _FLAG_BITS if flags & flag)


_GUEST_MXCSR = {rm: MXCSR_MASK_ALL | (_RC.get(rm, 0) << MXCSR_RC_SHIFT) for rm in RoundingMode}
_FLAGS_OF_MXCSR = tuple(sum(int(flag) for flag, bit in _FLAG_BITS if m & bit)
                        for m in range(MXCSR_FLAGS + 1))


# -- the soft-float helper: exact arithmetic for what x86 cannot round ---------------------

# The same with LLVM's preserve_all convention (every register, vector ones included,
# survives the call): hot regions call it, so float values stay in registers around a
# rounding-mode test that almost never takes the soft-float path.
SOFTFLOAT_PRESERVE_ALL = "llvmtcg_softfloat_pa"
SOFTFLOAT = "llvmtcg_softfloat"  # (cpu, i32 info, i64 a, i64 b, i64 c) -> i64 result bits;
# like every callback from native code it runs with the guest's MXCSR in cpu.fp_env, where
# it ORs the flags it raised; the runtime loads cpu.fp_env back into MXCSR on return.
SOFTFLOAT_OPS = ("fadd", "fsub", "fmul", "fdiv", "fsqrt", "fma", "fcvt", "itof", "utof")
_ROUNDING_CODES = tuple(RoundingMode)


def encode_softfloat(op: str, dst_bits: int, src_bits: int, rm: RoundingMode) -> int:
    """The helper's ``info`` word: which op, the result and operand widths, the mode."""
    return (SOFTFLOAT_OPS.index(op) | (dst_bits == 64) << 8 | (src_bits == 64) << 9
            | _ROUNDING_CODES.index(rm) << 12)


def decode_softfloat(info: int) -> tuple[str, int, int, RoundingMode]:
    return (SOFTFLOAT_OPS[info & 0xFF], 64 if info & 0x100 else 32,
            64 if info & 0x200 else 32, _ROUNDING_CODES[(info >> 12) & 0xF])
