"""The host ABI between generated code and the runtime, declared once.

Native code and Python meet at a few functions: the entry trampoline Python calls to run
guest code (``llvmtcg_enter``), and the callbacks generated code calls into Python (the
softmmu slow paths, the soft-float helper; Python helpers are declared by their
:class:`HelperDecl` and take the same path). Each is one :class:`HostFunction` row in
:data:`HOST_FUNCTIONS`; every other form is generated from the row:

- the LLVM ``declare`` the lowering emits (:func:`declaration`) and its call sites
  (:func:`call`);
- the ctypes prototype of the Python side (:func:`ctypes_prototype`);
- the native thunk in front of each Python callback (:func:`thunk_ir`), and the
  ``preserve_all`` wrapper around one (:func:`preserve_all_wrapper_ir`);
- the entry trampoline (:func:`trampoline_ir`).

The MXCSR save and load (``stmxcsr``/``ldmxcsr`` inline asm) is spelled once, in
:func:`save_mxcsr` and :func:`load_mxcsr`. The trampoline swaps the host's MXCSR for the
guest's around guest code; thunks do the reverse around Python callbacks, so Python
float code rounds as Python expects and its flags stay out of the guest's (see
``ir/host_fp.py`` and docs/ARCHITECTURE.md, Floating point).

This module is pure Python: it produces text and ctypes types, and never calls LLVM.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass, replace

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_fp
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag


class Role(enum.Enum):
    CALLBACK = "callback"  # native code calls Python, through a thunk
    WRAPPER = "wrapper"  # another calling convention around a callback's thunk
    ENTRY = "entry"  # Python calls native code
    NATIVE = "native"  # generated code calls native code of the runtime (no Python)


@dataclass(frozen=True, slots=True)
class HostFunction:
    """One function crossing the native/Python boundary.

    ``params`` are LLVM types of the parameters after the CPU pointer (which comes
    first when ``takes_cpu``); ``result`` is an LLVM type or ``void``. ``conv`` is an
    LLVM calling convention keyword (``""``: the C convention). A WRAPPER row names the
    callback it wraps in ``wraps``.
    """

    symbol: str
    result: str
    params: tuple[str, ...]
    takes_cpu: bool = True
    conv: str = ""
    role: Role = Role.CALLBACK
    wraps: str | None = None

    @property
    def llvm_params(self) -> tuple[str, ...]:
        """Every parameter type, the CPU pointer included."""
        return ("ptr", *self.params) if self.takes_cpu else self.params

    @property
    def thunk(self) -> str:
        """The symbol of the native thunk that stands for this function in generated
        code (the runtime imports it under :attr:`symbol`)."""
        return f"{self.symbol}.thunk"

    @classmethod
    def for_helper(cls, decl: HelperDecl) -> HostFunction:
        """The row of a Python helper (its thunk and prototype come from it)."""
        return cls(decl.symbol, str(decl.ret) if decl.ret else "void",
                   tuple(str(t) for t in decl.args),
                   takes_cpu=bool(decl.flags & HelperFlag.TAKES_CPU))


SLOW_LOAD = HostFunction(abi.SLOW_LOAD, "i64", ("i64", "i32"))  # (addr, oi) -> status
SLOW_STORE = HostFunction(abi.SLOW_STORE, "i64", ("i64", "i64", "i32"))  # (addr, value, oi)
SLOW_PROBE = HostFunction(abi.SLOW_PROBE, "i64", ("i64", "i32"))  # (addr, oi) -> status
SOFTFLOAT = HostFunction(host_fp.SOFTFLOAT, "i64", ("i32", "i64", "i64", "i64"))  # info, a, b, c
# The same behind LLVM's preserve_all convention: hot regions call it and keep float
# values in vector registers around it (every register survives the call).
SOFTFLOAT_PRESERVE_ALL = replace(SOFTFLOAT, symbol=host_fp.SOFTFLOAT_PRESERVE_ALL,
                                 conv="preserve_allcc", role=Role.WRAPPER,
                                 wraps=host_fp.SOFTFLOAT)
# Python -> native: run the block chain at fn (cpu, mem) with the guest's MXCSR loaded.
ENTER = HostFunction("llvmtcg_enter", "i64", ("ptr", "ptr", "ptr"), takes_cpu=False,
                     role=Role.ENTRY)

# Native -> native: the probe of the lookup table of translated code
# (runtime/lookup_table.py), defined in the entry glue; (pc, flags) -> entry or null.
# preserve_all: a hot region calling it need not save callee-saved registers on entry
# (fib: 2.5 -> 3.0 s CPU with the C convention), and nothing around the call.
TB_LOOKUP = HostFunction("llvmtcg_tb_lookup", "ptr", ("i64", "i64"), conv="preserve_allcc",
                         role=Role.NATIVE)

HOST_FUNCTIONS: dict[str, HostFunction] = {
    f.symbol: f for f in (SLOW_LOAD, SLOW_STORE, SLOW_PROBE, SOFTFLOAT, SOFTFLOAT_PRESERVE_ALL,
                          ENTER)}
CALLBACKS = tuple(f for f in HOST_FUNCTIONS.values() if f.role is Role.CALLBACK)
# What generated code may call: blocks and regions declare all of them, memory
# accessors only the softmmu's slow paths.
BLOCK_IMPORTS = tuple(f for f in HOST_FUNCTIONS.values() if f.role is not Role.ENTRY)
ACCESSOR_IMPORTS = (SLOW_LOAD, SLOW_STORE, SLOW_PROBE)


# -- LLVM forms --------------------------------------------------------------------------------

def _conv(fn: HostFunction) -> str:
    return f"{fn.conv} " if fn.conv else ""


def declaration(fn: HostFunction, attrs: str = "nounwind") -> str:
    """The LLVM ``declare`` of ``fn`` as generated code imports it (``attrs``: function
    attributes, e.g. a helper's effects)."""
    return f"declare {_conv(fn)}{fn.result} @{fn.symbol}({', '.join(fn.llvm_params)}) {attrs}"


def declarations(functions: tuple[HostFunction, ...] = BLOCK_IMPORTS) -> list[str]:
    return [declaration(fn) for fn in functions]


def call(fn: HostFunction, args: list[str], attrs: str = "") -> str:
    """An LLVM ``call`` of ``fn`` (without the result name): ``args`` are the values of
    :attr:`HostFunction.params`, in order; the CPU pointer ``%cpu`` is added."""
    if len(args) != len(fn.params):
        raise ValueError(f"{fn.symbol} takes {len(fn.params)} arguments, not {len(args)}")
    typed = [*(["ptr %cpu"] if fn.takes_cpu else []),
             *(f"{t} {a}" for t, a in zip(fn.params, args, strict=True))]
    return f"call {_conv(fn)}{fn.result} @{fn.symbol}({', '.join(typed)}){attrs}"


def _mxcsr_asm(instruction: str, constraint: str, ptr: str, attrs: str) -> str:
    return (f'call void asm sideeffect "{instruction} $0", "{constraint},~{{memory}}"'
            f"(ptr elementtype(i32) {ptr}){attrs}")


def save_mxcsr(ptr: str, attrs: str = "") -> str:
    """``stmxcsr``: store the live MXCSR to the i32 at ``ptr``."""
    return _mxcsr_asm("stmxcsr", "=*m", ptr, attrs)


def load_mxcsr(ptr: str, attrs: str = "") -> str:
    """``ldmxcsr``: load MXCSR from the i32 at ``ptr``."""
    return _mxcsr_asm("ldmxcsr", "*m", ptr, attrs)


def trampoline_ir(fp_env: int, host_fp_env: int) -> str:
    """``llvmtcg_enter(fn, cpu, mem)``: one entry for every block (a single ctypes
    prototype; the GIL is released while guest code runs). It saves the host's MXCSR in
    ``cpu.host_fp_env`` (offset ``host_fp_env``), loads the guest's from ``cpu.fp_env``
    (``fp_env``), calls ``fn`` and stores MXCSR back, so guest float ops round in the
    guest's dynamic mode and their flags come back in ``cpu.fp_env``."""
    return "\n".join([
        f"define i64 @{ENTER.symbol}(ptr %fn, ptr %cpu, ptr %mem) {{",
        f"  %host = getelementptr i8, ptr %cpu, i64 {host_fp_env}",
        f"  %env = getelementptr i8, ptr %cpu, i64 {fp_env}",
        f"  {save_mxcsr('%host')}", f"  {load_mxcsr('%env')}",
        "  %r = call i64 %fn(ptr %cpu, ptr %mem)",
        f"  {save_mxcsr('%env')}", f"  {load_mxcsr('%host')}",
        "  ret i64 %r", "}"])


def thunk_ir(fn: HostFunction, target: str, fp_env: int, host_fp_env: int) -> str:
    """``<symbol>.thunk``: calls the Python callback imported as ``target`` (a symbol,
    not an address, so the text is the same in every process and its object can be
    cached) with the host's MXCSR loaded. The guest's MXCSR goes to ``cpu.fp_env`` and
    is loaded back from there on return (a callback may change it: fcsr writes,
    soft-float flags). Functions
    without the CPU pointer keep the guest's MXCSR on the thunk's stack and run Python
    with the default environment (every exception masked, round to nearest)."""
    args = ", ".join(f"{t} %a{i}" for i, t in enumerate(fn.llvm_params))
    lines = [f'declare {fn.result} @"{target}"({", ".join(fn.llvm_params)})',
             f'define {fn.result} @"{fn.thunk}"({args}) {{']
    if fn.takes_cpu:
        lines += [f"  %env = getelementptr i8, ptr %a0, i64 {fp_env}",
                  f"  %host = getelementptr i8, ptr %a0, i64 {host_fp_env}"]
    else:
        lines += ["  %env = alloca i32, align 4", "  %host = alloca i32, align 4",
                  f"  store i32 {host_fp.MXCSR_MASK_ALL}, ptr %host, align 4"]
    call_ = f'call {fn.result} @"{target}"({args})'
    void = fn.result == "void"
    lines += [f"  {save_mxcsr('%env')}", f"  {load_mxcsr('%host')}",
              f"  {call_}" if void else f"  %r = {call_}",
              f"  {load_mxcsr('%env')}",
              "  ret void" if void else f"  ret {fn.result} %r", "}"]
    return "\n".join(lines)


def preserve_all_wrapper_ir(fn: HostFunction) -> str:
    """``<symbol>.thunk`` of a WRAPPER row: the thunk of the function it wraps, called
    behind ``fn``'s calling convention (the wrapper saves whatever the C call may
    clobber)."""
    inner = HOST_FUNCTIONS[fn.wraps]
    args = ", ".join(f"{t} %a{i}" for i, t in enumerate(fn.llvm_params))
    return (f'define {_conv(fn)}{fn.result} @"{fn.thunk}"({args}) nounwind {{\n'
            f'  %r = call {inner.result} @"{inner.thunk}"({args})\n'
            f"  ret {fn.result} %r\n}}")


# -- ctypes form -------------------------------------------------------------------------------

_CTYPES = {"i32": ctypes.c_uint32, "i64": ctypes.c_uint64, "ptr": ctypes.c_void_p, "void": None}


def ctypes_prototype(fn: HostFunction) -> type:
    """The ctypes function type of ``fn`` (the CPU pointer, when taken, first)."""
    try:
        return ctypes.CFUNCTYPE(_CTYPES[fn.result], *(_CTYPES[t] for t in fn.llvm_params))
    except KeyError as e:
        raise ValueError(f"{fn.symbol}: no ctypes type for LLVM type {e.args[0]}") from None
