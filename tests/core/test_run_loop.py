"""The run loop's state machine, without guest code: exit values decoded, actions decided;
then the interrupt hook on a running CPU."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from llvmtcg.ir import I64, Builder, ExitReason
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.runtime.exits import (
    EXCP_HELPER_ERROR,
    EXCP_MEM_FAULT,
    Access,
    CpuExit,
    FaultKind,
    MemFault,
)
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.run_loop import (
    ENTER,
    FILL_JUMP_CACHE,
    HALT,
    HOT,
    INSTALL_READY,
    LOOKUP,
    PROMOTE,
    RAISE_PENDING,
    REQUESTED,
    SYSCALL,
    TAKE_INTERRUPT,
    Chain,
    DeliverException,
    GuestException,
    LinkAndEnter,
    ReturnExit,
    decide,
    decode_exit,
)
from tests.core.support import CODE, PC, HandFrontend, R, c64, halt_at, make_cpu

PC_NOW = 0x4000


@dataclass(frozen=True)
class Conditions:
    """What decide() reads, as plain values."""

    pc: int = PC_NOW
    pending_error: BaseException | None = None
    stop_requested: bool = False
    regions_ready: bool = False
    delivers_exceptions: bool = False


def no_slots(address: int):
    return None


def no_exception() -> GuestException:
    raise AssertionError("decode_exit asked for an exception on a non-EXCEPTION exit")


SOURCE = object()  # stands for the TranslationBlock whose slot was unlinked


# -- decoding ------------------------------------------------------------------------------

@pytest.mark.parametrize(("reason", "exit_"), [
    (ExitReason.LOOKUP, LOOKUP), (ExitReason.REQUESTED, REQUESTED), (ExitReason.HOT, HOT),
    (ExitReason.SYSCALL, SYSCALL), (ExitReason.HALT, HALT)])
def test_argumentless_exits_decode_to_one_prebuilt_value_each(reason, exit_) -> None:
    decoded = decode_exit(int(reason), no_slots, no_exception)
    assert decoded is exit_ and decoded.reason is reason
    assert decode_exit(int(reason), no_slots, no_exception) is decoded  # no allocation


def test_chain_exit_carries_the_owner_of_its_slot() -> None:
    slot_address = 0x7F00_1238  # 8-byte aligned: the low 3 bits hold the reason
    owners = {slot_address: (SOURCE, 1)}
    exit_ = decode_exit(slot_address | ExitReason.CHAIN, owners.get, no_exception)
    assert exit_ == Chain(SOURCE, 1)
    # A slot of a block invalidated since: nothing to link.
    assert decode_exit(0x5550 | ExitReason.CHAIN, owners.get, no_exception) == Chain(None, 0)


def test_exception_exit_takes_the_exception_from_the_state() -> None:
    fault = MemFault(0x1234, Access.WRITE, FaultKind.PROTECTION)
    taken = []

    def take() -> GuestException:
        taken.append(True)
        return GuestException(EXCP_MEM_FAULT, fault)

    assert decode_exit(int(ExitReason.EXCEPTION), no_slots, take) == \
        GuestException(EXCP_MEM_FAULT, fault)
    assert taken == [True]


def test_an_unknown_exit_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown exit value 0x7"):
        decode_exit(7, no_slots, no_exception)


# -- deciding ------------------------------------------------------------------------------

def test_translation_misses_enter_the_code_at_pc() -> None:
    now = Conditions()
    assert decide(LOOKUP, now) is FILL_JUMP_CACHE
    assert decide(Chain(SOURCE, 1), now) == LinkAndEnter(SOURCE, 1)
    assert decide(Chain(None, 0), now) is ENTER
    assert decide(HOT, now) is PROMOTE


def test_syscall_halt_and_exceptions_return_to_the_caller() -> None:
    now = Conditions()
    assert decide(SYSCALL, now) == ReturnExit(CpuExit(ExitReason.SYSCALL, PC_NOW))
    assert decide(HALT, now) == ReturnExit(CpuExit(ExitReason.HALT, PC_NOW))
    fault = MemFault(0x10, Access.READ, FaultKind.UNMAPPED)
    assert decide(GuestException(EXCP_MEM_FAULT, fault), now) == \
        ReturnExit(CpuExit(ExitReason.EXCEPTION, PC_NOW, EXCP_MEM_FAULT, fault))
    assert decide(GuestException(3), now) == \
        ReturnExit(CpuExit(ExitReason.EXCEPTION, PC_NOW, 3, None))


def test_system_mode_delivers_guest_exceptions_and_returns_only_halt() -> None:
    now = Conditions(delivers_exceptions=True)
    fault = MemFault(0x10, Access.FETCH, FaultKind.PAGE_FAULT)
    exc = GuestException(EXCP_MEM_FAULT, fault)
    assert decide(exc, now) == DeliverException(exc)
    assert decide(GuestException(2), now) == DeliverException(GuestException(2))
    assert decide(HALT, now) == ReturnExit(CpuExit(ExitReason.HALT, PC_NOW))
    # A helper's Python error is still the host's.
    assert decide(GuestException(EXCP_HELPER_ERROR),
                  Conditions(delivers_exceptions=True, pending_error=KeyError())) \
        is RAISE_PENDING


def test_a_pending_python_error_wins_over_any_return() -> None:
    now = Conditions(pending_error=KeyError("from a helper"), stop_requested=True,
                     regions_ready=True)
    for exit_ in (REQUESTED, SYSCALL, HALT, GuestException(EXCP_HELPER_ERROR)):
        assert decide(exit_, now) is RAISE_PENDING
    # Exits that stay in the loop reach the exit request (and so the error) next.
    assert decide(LOOKUP, now) is FILL_JUMP_CACHE


def test_an_exit_request_stops_then_installs_regions_then_takes_interrupts() -> None:
    assert decide(REQUESTED, Conditions(stop_requested=True, regions_ready=True)) == \
        ReturnExit(CpuExit(ExitReason.REQUESTED, PC_NOW))
    assert decide(REQUESTED, Conditions(regions_ready=True)) is INSTALL_READY
    assert decide(REQUESTED, Conditions()) is TAKE_INTERRUPT


def test_decide_rejects_what_is_not_an_exit() -> None:
    with pytest.raises(TypeError, match="not a native exit"):
        decide(ENTER, Conditions())


# -- on a running CPU ----------------------------------------------------------------------

def test_an_exit_request_lets_the_architecture_take_an_interrupt() -> None:
    """An endless chained loop; an 'interrupt' raised from another thread moves pc to a
    handler (as exec_interrupt does), which halts."""
    handler = CODE + 0x100
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        b.goto_tb(0, CODE)

    @fe.define(handler)
    def _(b: Builder) -> None:
        b.insn_start(handler)
        b.mov(R[1], PC)  # (pc is the handler's own here)
        halt_at(b, handler + 4)

    cpu = make_cpu(fe)
    raised = threading.Event()
    taken: list[int] = []

    def exec_interrupt(state) -> bool:
        if not raised.is_set():
            return False
        raised.clear()
        taken.append(state.pc)
        state.pc = handler
        return True

    cpu.loop.exec_interrupt = exec_interrupt
    cpu.pc = CODE

    def interrupt() -> None:
        raised.set()
        cpu.state.request_exit()

    timer = threading.Timer(0.1, interrupt)
    timer.start()
    exit_ = cpu.run()
    timer.join()
    assert exit_ == CpuExit(ExitReason.HALT, handler + 4)
    assert taken == [CODE] and cpu.state.get("r", 0) > 100
    assert cpu.state.get("r", 1) == handler
    assert cpu.stats.exits["REQUESTED"] == 1


def test_syscall_and_halt_exits_return_at_once_unless_an_error_is_pending() -> None:
    """Syscall and halt exits leave run() without going through decide() (the common
    way out): the same values, counted; a helper's pending error still comes first."""
    fe = HandFrontend()

    def fails(cpu, value: int) -> int:
        raise KeyError(f"helper saw {value}")

    helpers = HelperRegistry()
    helpers.register(HelperDecl("fails", I64, (I64,), HelperFlag.TAKES_CPU), fails)

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.mov(PC, c64(CODE + 4))
        b.exit_tb(ExitReason.SYSCALL)

    @fe.define(CODE + 4)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 4)
        halt_at(b, CODE + 8)

    @fe.define(CODE + 0x100)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 0x100)
        b.call("fails", [R[1]], [c64(7)])  # (not MAY_RAISE: the block goes on)
        b.mov(PC, c64(CODE + 0x104))
        b.exit_tb(ExitReason.SYSCALL)

    cpu = make_cpu(fe, helpers)
    cpu.pc = CODE
    assert cpu.run() == CpuExit(ExitReason.SYSCALL, CODE + 4)
    assert cpu.run() == CpuExit(ExitReason.HALT, CODE + 8)
    cpu.pc = CODE + 4
    assert cpu.run() == CpuExit(ExitReason.HALT, CODE + 8)
    assert cpu.stats.exits == {"SYSCALL": 1, "HALT": 2}
    cpu.pc = CODE + 0x100
    with pytest.raises(KeyError, match="helper saw 7"):
        cpu.run()
    assert cpu.pc == CODE + 0x104 and cpu.pending_error is None
    cpu.pc = CODE
    assert cpu.run() == CpuExit(ExitReason.SYSCALL, CODE + 4)


def test_tenure_survivors_freezes_after_a_full_collection():
    """tenure_survivors: the survivors of a full collection are frozen (later full
    collections do not scan them), cycles made afterwards are still collected, the
    young generation's threshold is raised, and installing it twice installs one
    callback. In a child process: it is process-wide."""
    import subprocess
    import sys

    code = """if True:
        import gc, weakref
        from llvmtcg.runtime.run_loop import tenure_survivors
        tenure_survivors(); tenure_survivors()
        n = sum(cb.__name__ == "_freeze_after_full" for cb in gc.callbacks)
        kept = [[i] for i in range(1000)]
        gc.collect()
        frozen = gc.get_freeze_count()
        class Node: pass
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        gc.collect(1)
        print(n, frozen >= 1000, alive() is None, len(kept), gc.get_threshold()[0])
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split() == ["1", "True", "True", "1000", "20000"]
