"""The host ABI table: every generated form (LLVM declaration, call, thunk, ctypes
prototype, trampoline) agrees with the row it came from, and with the others."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from llvmtcg.ir import I32, I64, Builder, ExitReason, MemOp, host_abi
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.lower import Lowering
from llvmtcg.runtime import callbacks
from llvmtcg.runtime.cpu_exec import native_glue_ir
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.jit import JitEngine
from tests.core.support import CODE, LAYOUT, R

LLVM_TO_CTYPES = {"i32": ctypes.c_uint32, "i64": ctypes.c_uint64, "ptr": ctypes.c_void_p,
                  "void": None}
_SIGNATURE = re.compile(r"^(?:declare|define) (?:(\w+cc) )?(\S+) @\"?([\w.]+)\"?\((.*?)\)")


def signature(line: str) -> tuple[str, str, str, tuple[str, ...]]:
    """(calling convention, result, symbol, parameter types) of a declare or define."""
    conv, result, symbol, params = _SIGNATURE.match(line).groups()
    return (conv or "", result, symbol,
            tuple(p.split()[0] for p in params.split(", ")) if params else ())


def python_helpers() -> HelperRegistry:
    helpers = HelperRegistry()
    helpers.register(HelperDecl("twice", I64, (I64,), HelperFlag.NO_SIDE_EFFECTS),
                     lambda v: 2 * v)
    helpers.register(HelperDecl("poke", None, (I32, I64), HelperFlag.TAKES_CPU),
                     lambda cpu, a, b: None)
    return helpers


ROWS = [*host_abi.HOST_FUNCTIONS.values(),
        *(host_abi.HostFunction.for_helper(decl) for decl, _ in
          python_helpers().python_helpers().values())]


@pytest.mark.parametrize("fn", ROWS, ids=lambda fn: fn.symbol)
def test_ctypes_prototype_matches_the_llvm_declaration(fn: host_abi.HostFunction) -> None:
    conv, result, symbol, params = signature(host_abi.declaration(fn))
    assert (conv, symbol) == (fn.conv, fn.symbol)
    prototype = host_abi.ctypes_prototype(fn)
    assert prototype._restype_ is LLVM_TO_CTYPES[result]
    assert list(prototype._argtypes_) == [LLVM_TO_CTYPES[t] for t in params]


@pytest.mark.parametrize("fn", host_abi.BLOCK_IMPORTS, ids=lambda fn: fn.symbol)
def test_calls_pass_what_the_declaration_takes(fn: host_abi.HostFunction) -> None:
    args = [f"%v{i}" for i in range(len(fn.params))]
    call = host_abi.call(fn, args)
    typed = re.search(r"\((.*)\)$", call).group(1).split(", ")
    assert call.startswith(f"call {fn.conv + ' ' if fn.conv else ''}{fn.result} @{fn.symbol}(")
    assert tuple(a.split()[0] for a in typed) == fn.llvm_params
    with pytest.raises(ValueError, match="takes"):
        host_abi.call(fn, args + ["%extra"])


def test_every_thunk_defines_what_generated_code_declares() -> None:
    """Generated code declares ``symbol``; the runtime imports the thunk under that name,
    so the thunk's definition must have the declaration's signature."""
    helpers = python_helpers()
    text, symbols = native_glue_ir(LAYOUT, helpers)
    defines = {signature(line)[2]: signature(line) for line in text.splitlines()
               if line.startswith("define")}
    assert sorted(defines) == sorted(symbols)
    expected = [*host_abi.BLOCK_IMPORTS,
                *(host_abi.HostFunction.for_helper(d) for d, _ in
                  helpers.python_helpers().values())]
    for fn in expected:
        conv, result, _, params = signature(host_abi.declaration(fn))
        assert defines[fn.thunk][:2] == (conv, result) and defines[fn.thunk][3] == params
    assert defines[host_abi.ENTER.symbol][1:] == (
        host_abi.ENTER.result, host_abi.ENTER.symbol, host_abi.ENTER.params)
    # ... and LLVM accepts all of it.
    JitEngine()  # initialises LLVM
    llvm.parse_assembly(text).verify()


def test_the_lowering_declares_the_table() -> None:
    b = Builder(CODE, LAYOUT.globals())
    b.insn_start(CODE)
    b.qemu_ld(R[0], R[1], MemOp.decode(3))
    b.mov(LAYOUT.globals()["pc"], R[0])
    b.exit_tb(ExitReason.LOOKUP)
    lowering = Lowering(LAYOUT, {}, inline_memory=False)
    module = lowering.lower_module([b.finish()])
    for fn in host_abi.BLOCK_IMPORTS:
        assert host_abi.declaration(fn) in module.splitlines()
    accessors = lowering.accessor_module(sorted(lowering.accessors_used))
    for fn in host_abi.ACCESSOR_IMPORTS:
        assert host_abi.declaration(fn) in accessors.splitlines()
    assert host_abi.call(host_abi.SLOW_LOAD, ["%addr", "3"]) in accessors


def test_every_callback_has_an_implementation() -> None:
    assert set(callbacks.ADDRESSES) == {fn.symbol for fn in host_abi.CALLBACKS}
    assert all(callbacks.ADDRESSES.values())


def test_the_mxcsr_asm_is_spelled_once() -> None:
    root = Path(host_abi.__file__).resolve().parents[1]
    spelled = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if "asm sideeffect" in p.read_text())
    assert spelled == ["ir/host_abi.py"]
    assert host_abi.save_mxcsr("%p") == \
        'call void asm sideeffect "stmxcsr $0", "=*m,~{memory}"(ptr elementtype(i32) %p)'
    assert host_abi.load_mxcsr("%p", " strictfp") == \
        'call void asm sideeffect "ldmxcsr $0", "*m,~{memory}"(ptr elementtype(i32) %p) strictfp'
