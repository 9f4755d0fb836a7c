"""The run loop: a state machine over what native code returns.

Native code returns only on a translation miss (an unlinked exit slot or a jump-cache
miss), an exception, a system call, halt, an exit request, or (once per block) when a
block turns hot; chained blocks and jump-cache hits stay in native code. Each return is
one step:

    i64 result --decode_exit--> NativeExit --decide--> Action --RunLoop.run--> next entry

- :func:`decode_exit` turns the block's i64 result into a typed exit (:data:`NativeExit`:
  ``Chain``, ``Lookup``, ``GuestException``, ``Requested``, ``Hot``, ``Syscall``,
  ``Halt``); argument-less exits are prebuilt singletons, so the common ones allocate
  nothing.
- :func:`decide` is the whole policy, one ``match``: which :data:`Action` comes next
  (enter the code at pc, link a slot then enter, fill the jump cache then enter, promote
  a hot block, install ready hot regions, take an interrupt, return a :class:`CpuExit`,
  raise a Python error a helper left pending). It reads the loop's conditions but
  changes nothing, so it is tested by feeding it exits.
- :meth:`RunLoop.run` carries actions out. Before entering native code it reaches a
  safe point: code of invalidated blocks is released, and if ``exit_request`` was set
  the request is handled as if native code had returned REQUESTED — which is where an
  interrupt is taken (the architecture's ``exec_interrupt``). Translating the code at pc
  happens in one place; a fault there is a ``GuestException`` like any other.
- The short path (an embedder calls run() per input, user mode per syscall): a SYSCALL
  or HALT exit with no helper error pending is returned as decide() would, without
  decoding or deciding; exits are counted by reason in a list; the guest's FP
  environment is recomputed only when the architecture's ``fp_control`` field changed.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from llvmtcg.ir import host_fp
from llvmtcg.ir.ops import EXIT_REASON_BITS, ExitReason
from llvmtcg.ir.types import FFlag, RoundingMode
from llvmtcg.log import Log
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import (
    EXCP_DEBUG,
    EXCP_HELPER_ERROR,
    EXCP_MEM_FAULT,
    EXCP_MISALIGNED,
    CpuExit,
    FaultKind,
    GuestFault,
    MemFault,
)
from llvmtcg.runtime.tbcache import CompiledCode, TbCache
from llvmtcg.runtime.tiering import Tiering

_REASON_MASK = (1 << EXIT_REASON_BITS) - 1
_MXCSR_FLAGS = host_fp.MXCSR_FLAGS


# -- the collector ----------------------------------------------------------------------------

def tenure_survivors() -> None:
    """Process-wide: after each full (generation 2) collection, freeze its survivors
    (``gc.freeze``), so later full collections scan only objects made since.

    For a process that runs one emulator for its whole life (the command-line
    launchers call it; the library never does). Translation keeps tens of thousands of
    blocks alive (a Linux boot: ~45k, ~10 tracked objects each), and CPython runs a
    full collection each time the survivors grow by a quarter, each one scanning every
    object: on a cold Linux boot 9 full collections cost 3.4 s of ~20 s of CPU. The
    price: cyclic garbage made of objects that were alive at a full collection is not
    collected (what becomes garbage later is freed by reference counting: an
    invalidated block's links, the only cycles between blocks, are undone). A fork's
    freeze/unfreeze (user mode) hands the frozen objects back to the collector, which
    is correct, only slower once.

    It also collects the young generation every 20,000 net container allocations
    instead of 700: translation allocates ops by the million and frees nearly all of
    them by reference counting, so most young collections found nothing to do (a cold
    Linux boot: 2,300 young and 19 full collections, 2.6 s of collector time, became
    44 young ones and none full, 1.2 s; boot CPU 12.9 -> 12.3 s)."""
    if _freeze_after_full not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full)
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, gen1, gen2)


YOUNG_COLLECTION_THRESHOLD = 20_000  # (CPython's default: 700)


def _freeze_after_full(phase: str, info: dict[str, int]) -> None:
    # (called when the collection is complete: its survivors are reachable)
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


# -- exits: what native code returned ------------------------------------------------------

class _Marker:
    """An exit or action without fields: a plain class, not a frozen dataclass (this
    module's eleven of them cost ~8 ms of every start as dataclasses, whose methods are
    generated with exec). Like a fieldless frozen dataclass: immutable, equal to
    another of its type, ``Name()`` as repr."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, slots=True)
class Chain:
    """A direct jump through an exit slot not linked yet: ``source``'s exit ``slot``
    should lead to the code at pc (``source`` is None if it was invalidated since)."""

    source: CompiledCode | None
    slot: int
    reason: ClassVar[ExitReason] = ExitReason.CHAIN


class Lookup(_Marker):
    """An indirect jump missed the jump cache: the code at pc."""

    __slots__ = ()
    reason: ClassVar[ExitReason] = ExitReason.LOOKUP


@dataclass(frozen=True, slots=True)
class GuestException:
    """A guest exception, a memory fault (``fault`` set) or a helper's Python error
    (index EXCP_HELPER_ERROR); pc is the instruction's."""

    index: int
    fault: MemFault | None = None
    reason: ClassVar[ExitReason] = ExitReason.EXCEPTION


class Requested(_Marker):
    """``exit_request`` was set: stop, a helper error, hot regions ready, an interrupt."""

    __slots__ = ()
    reason: ClassVar[ExitReason] = ExitReason.REQUESTED


class Hot(_Marker):
    """The block at pc reached its execution threshold."""

    __slots__ = ()
    reason: ClassVar[ExitReason] = ExitReason.HOT


class Syscall(_Marker):
    __slots__ = ()
    reason: ClassVar[ExitReason] = ExitReason.SYSCALL


class Halt(_Marker):
    __slots__ = ()
    reason: ClassVar[ExitReason] = ExitReason.HALT


NativeExit = Chain | Lookup | GuestException | Requested | Hot | Syscall | Halt
# For the exit log (Enum.name and Enum.__hash__ are slow Python code).
_NAMES = {cls: cls.reason.name for cls in (Chain, Lookup, GuestException, Requested, Hot,
                                            Syscall, Halt)}
# The exits decide() always turns into a return to run()'s caller unless a helper's
# error is pending (a syscall, halt), by ExitReason value: run() returns them undecoded.
_RETURNED: tuple[ExitReason | None, ...] = tuple(
    ExitReason(r) if r in (ExitReason.SYSCALL, ExitReason.HALT) else None
    for r in range(1 << EXIT_REASON_BITS))
_REASON_NAMES = {int(r): r.name for r in ExitReason}
_CHAIN, _EXCEPTION = int(ExitReason.CHAIN), int(ExitReason.EXCEPTION)  # (an IntEnum
# member's compare goes through the enum class: ~5x an int's)

LOOKUP = Lookup()
REQUESTED = Requested()
HOT = Hot()
SYSCALL = Syscall()
HALT = Halt()
_ARGUMENTLESS: tuple[NativeExit | None, ...] = tuple(
    {e.reason: e for e in (LOOKUP, REQUESTED, HOT, SYSCALL, HALT)}.get(r)
    for r in range(1 << EXIT_REASON_BITS))


def decode_exit(result: int,
                slot_owner: Callable[[int], tuple[CompiledCode, int] | None],
                take_exception: Callable[[], GuestException]) -> NativeExit:
    """The typed exit of a block's i64 result: the low bits are an :class:`ExitReason`,
    the upper bits a payload (the exit slot's address, for CHAIN). ``slot_owner`` maps a
    slot address to (block, slot number); ``take_exception`` reads (and clears) the
    exception native code left in the CPU state."""
    exit_ = _ARGUMENTLESS[result & _REASON_MASK]
    if exit_ is not None:
        return exit_
    reason = result & _REASON_MASK
    if reason == _CHAIN:
        owner = slot_owner(result & ~_REASON_MASK)
        return Chain(None, 0) if owner is None else Chain(owner[0], owner[1])
    if reason == _EXCEPTION:
        return take_exception()
    raise ValueError(f"native code returned an unknown exit value {result:#x}")


# -- actions: what the loop does next ------------------------------------------------------

class EnterAtPc(_Marker):
    """Enter the code at pc (translating it on a miss)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class LinkAndEnter:
    """Translate the code at pc, patch ``source``'s exit ``slot`` to it, enter it."""

    source: CompiledCode
    slot: int


class FillJumpCacheAndEnter(_Marker):
    """Translate the code at pc, put it in the jump cache, enter it."""

    __slots__ = ()


class Promote(_Marker):
    """The block at pc is hot: queue (or install) a region headed by it, then enter."""

    __slots__ = ()


class InstallReady(_Marker):
    """Install the hot regions compiled meanwhile, then look at the request again."""

    __slots__ = ()


class TakeInterrupt(_Marker):
    """Let the architecture deliver a pending interrupt (it may change pc), then enter."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class DeliverException:
    """System mode: let the architecture deliver the guest exception (it changes pc and
    the flags), then enter the code at the new pc."""

    exception: GuestException


@dataclass(frozen=True, slots=True)
class ReturnExit:
    """Return ``exit`` to the caller of run()."""

    exit: CpuExit


class RaisePending(_Marker):
    """Re-raise the Python error a helper or MMIO callback recorded."""

    __slots__ = ()


Action = (EnterAtPc | LinkAndEnter | FillJumpCacheAndEnter | Promote | InstallReady
          | TakeInterrupt | DeliverException | ReturnExit | RaisePending)

ENTER = EnterAtPc()
FILL_JUMP_CACHE = FillJumpCacheAndEnter()
PROMOTE = Promote()
INSTALL_READY = InstallReady()
TAKE_INTERRUPT = TakeInterrupt()
RAISE_PENDING = RaisePending()


class LoopConditions(Protocol):
    """What :func:`decide` looks at besides the exit."""

    @property
    def pc(self) -> int: ...
    @property
    def pending_error(self) -> BaseException | None: ...
    @property
    def stop_requested(self) -> bool: ...
    @property
    def regions_ready(self) -> bool: ...
    @property
    def delivers_exceptions(self) -> bool: ...


def decide(exit_: NativeExit, now: LoopConditions) -> Action:
    """What to do after native code returned ``exit_`` (or, for :data:`REQUESTED`, when
    ``exit_request`` is found set before entering it)."""
    match exit_:
        case Lookup():
            return FILL_JUMP_CACHE
        case Chain(source=None):
            return ENTER
        case Chain(source=source, slot=slot):
            return LinkAndEnter(source, slot)
        case Hot():
            return PROMOTE
        case Requested():
            if now.pending_error is not None:
                return RAISE_PENDING
            if now.stop_requested:
                return ReturnExit(CpuExit(ExitReason.REQUESTED, now.pc))
            if now.regions_ready:
                return INSTALL_READY
            return TAKE_INTERRUPT
        case GuestException(index=index, fault=fault):
            if now.pending_error is not None:
                return RAISE_PENDING
            if now.delivers_exceptions and index != EXCP_DEBUG:  # system mode: the guest
                return DeliverException(exit_)
            return ReturnExit(CpuExit(ExitReason.EXCEPTION, now.pc, index, fault))
        case Syscall() | Halt():
            if now.pending_error is not None:
                return RAISE_PENDING
            return ReturnExit(CpuExit(exit_.reason, now.pc))
    raise TypeError(f"not a native exit: {exit_!r}")


# -- the loop ----------------------------------------------------------------------------------

@dataclass
class ExecStats:
    native_entries: int = 0  # calls from Python into native code
    # Native exits by ExitReason value (a list: the loop counts every exit).
    exit_counts: list[int] = field(default_factory=lambda: [0] * (1 << EXIT_REASON_BITS))

    @property
    def exits(self) -> dict[str, int]:
        """Native exits by ExitReason name (the reasons that occurred)."""
        return {_REASON_NAMES[r]: n for r, n in enumerate(self.exit_counts) if n}


def _never(state: CpuState) -> bool:
    return False


class RunLoop:
    """Runs one CPU's native code and carries out what :func:`decide` says.

    Besides running, it keeps what native code leaves for it: the memory fault behind
    an EXCEPTION, a Python error raised inside a helper or MMIO callback, a stop request.

    Args:
        state: the CPU state native code runs on.
        tbs: translations (the code at pc, chaining, the jump cache).
        tiering: hot-code tiering, or None.
        enter: the entry trampoline ``enter(fn, cpu, mem) -> i64``.
        mem_base: the host address guest memory is addressed from (``%mem``).
        log: ``-d exec`` logs every exit.
        fp_rounding: the guest's dynamic rounding mode (loaded into MXCSR on entry);
            None: round to nearest.
        fp_accrue: receives the IEEE flags guest float ops raised, after every exit.
        fp_control: the state field ``fp_rounding`` depends on alone: it is asked
            again only when that field changed (None: before every entry).
        exec_interrupt: at an exit request, delivers a pending interrupt (changing pc)
            and says whether it did; user mode has none.
        do_interrupt: system mode: delivers guest exceptions to the guest (the loop
            keeps running and returns only for halt (WFI), stop and exit requests);
            None: exceptions are returned to the caller (user mode).
        jmp_cache: this CPU's jump cache (``TbCache.new_jump_cache``); None: the
            cache's first one.

    Several loops may share ``tbs`` (guest threads, each on its own host thread):
    a loop holds ``tbs.lock`` except while its native code runs.
    """

    def __init__(self, state: CpuState, tbs: TbCache, tiering: Tiering | None,
                 enter: Callable[[int, int, int], int], mem_base: int, log: Log,
                 fp_rounding: Callable[[CpuState], RoundingMode] | None = None,
                 fp_accrue: Callable[[CpuState, FFlag], None] | None = None,
                 exec_interrupt: Callable[[CpuState], bool] = _never,
                 do_interrupt: Callable[[CpuState, int, MemFault | None], None] | None = None,
                 jmp_cache: object | None = None, fp_control: str | None = None) -> None:
        self.state = state
        self.tbs = tbs
        self.tiering = tiering
        self.enter = enter
        self.mem_base = mem_base
        self.log = log
        self.fp_rounding = fp_rounding
        self.fp_accrue = fp_accrue
        self.exec_interrupt = exec_interrupt
        self.do_interrupt = do_interrupt
        self.jmp_cache = jmp_cache
        self.stats = ExecStats()
        # The guest's MXCSR for the rounding mode last seen, and the fp_control value
        # that mode was read for (None: read it again).
        self._rounding: RoundingMode | None = None
        self._guest_mxcsr = host_fp.guest_mxcsr(RoundingMode.RNE)
        self._fp_control = None if fp_control is None else state.cell(fp_control)
        self._fp_control_seen: int | None = None
        self._fp_env = state.cell("fp_env")
        self._last_return = CpuExit(ExitReason.HALT, -1)  # (run()'s last SYSCALL/HALT exit)
        self.pending_error: BaseException | None = None
        self.fault: MemFault | None = None
        self.stop_requested = False
        # Debugger breakpoints: the loop returns an EXCP_DEBUG exit before entering the
        # code at one of these pcs (blocks never run across one: TbCache.breakpoints).
        self.breakpoints: frozenset[int] = frozenset()

    # -- conditions decide() reads ------------------------------------------------------------
    @property
    def pc(self) -> int:
        return self.state.pc

    @property
    def regions_ready(self) -> bool:
        return self.tiering is not None and bool(self.tiering.ready)

    @property
    def delivers_exceptions(self) -> bool:
        return self.do_interrupt is not None

    # -- recorded by native code's callbacks ---------------------------------------------------
    def record_fault(self, fault: MemFault) -> None:
        self.fault = fault
        index = EXCP_MISALIGNED if fault.kind is FaultKind.MISALIGNED else EXCP_MEM_FAULT
        if fault.kind is FaultKind.WATCHPOINT:
            index = EXCP_DEBUG  # a debugger's watchpoint, not the guest's
        self.state.set("exception_index", index)
        self.state.set("fault_addr", fault.addr)
        self.state.set("fault_access", int(fault.access))

    def record_helper_error(self, exc: BaseException) -> None:
        if self.pending_error is None:
            self.pending_error = exc
        self.state.set("exception_index", EXCP_HELPER_ERROR)
        self.state.set("helper_status", 1)
        self.state.request_exit()

    def stop(self) -> None:
        self.stop_requested = True
        self.state.request_exit()

    def take_exception(self) -> GuestException:
        """The exception native code (or a translation) left in the CPU state; clears it."""
        state = self.state
        index = state.get_signed("exception_index")
        fault = self.fault if index in (EXCP_MEM_FAULT, EXCP_MISALIGNED, EXCP_DEBUG) else None
        self.fault = None
        state.set("helper_status", 0)
        state.set("exception_index", 0xFFFF_FFFF)
        return GuestException(index, fault)

    # -- running -------------------------------------------------------------------------------
    def run(self) -> CpuExit:
        """Run guest code from pc until an exception, syscall, halt or stop.

        Raises:
            Exception: whatever a Python helper or MMIO callback raised, re-raised here.
        """
        state, tbs, stats = self.state, self.tbs, self.stats
        exit_counts = stats.exit_counts
        slot_owner, take_exception = tbs.slot_owner, self.take_exception
        log_exec = self.log.enabled("exec")
        action: Action = ENTER
        lock = tbs.lock
        lock.acquire()
        try:
            while True:
                # Carry out the action; those that do not enter code come back to decide().
                if action is not ENTER and action is not FILL_JUMP_CACHE:
                    if type(action) is ReturnExit:  # (the most common action: first)
                        if action.exit.reason is ExitReason.REQUESTED:
                            self.stop_requested = False  # (the answer to stop())
                        return action.exit
                    match action:
                        case LinkAndEnter():
                            pass
                        case Promote():
                            if self.tiering is not None:
                                self.tiering.hot(state.pc)
                        case InstallReady():
                            self.tiering.install_ready()
                            action = decide(REQUESTED, self)
                            continue
                        case TakeInterrupt():
                            self.exec_interrupt(state)
                        case DeliverException(exception=exc):
                            self.do_interrupt(state, exc.index, exc.fault)
                        case RaisePending():
                            self._raise_pending()
                # Safe point: no native frame of ours is running. An exit request is
                # handled before the code at pc is looked up (an interrupt may move pc);
                # like QEMU, a pending link is then dropped (the slot exits again).
                if tbs.pending_release and not tbs.in_native:
                    tbs.release_pending()  # (no other thread runs native code either)
                if state.exit_requested:
                    state.clear_exit_request()
                    action = decide(REQUESTED, self)
                    continue
                breakpoints = self.breakpoints
                if breakpoints and state.pc in breakpoints:
                    return CpuExit(ExitReason.EXCEPTION, state.pc, EXCP_DEBUG)
                # The code at pc: translated here, and only here.
                try:
                    tb = tbs.get(state.pc, state.tb_flags)
                except GuestFault as fault:
                    self.record_fault(fault.fault)
                    action = decide(take_exception(), self)
                    continue
                if action is FILL_JUMP_CACHE:
                    tbs.jmp_cache_set(tb, self.jmp_cache)
                elif type(action) is LinkAndEnter:
                    tbs.link(action.source, action.slot, tb)
                stats.native_entries += 1
                # Native code runs without the lock (other threads translate meanwhile)
                # and without the GIL.
                tbs.in_native += 1
                lock.release()
                try:
                    result = self._run_native(tb)
                finally:
                    lock.acquire()
                    tbs.in_native -= 1
                reason = result & _REASON_MASK
                returned = _RETURNED[reason]
                if returned is not None and self.pending_error is None and not log_exec:
                    # The common way out, as decide() has it, without decoding.
                    exit_counts[reason] += 1
                    last = self._last_return
                    if last.reason is not returned or last.pc != state.pc:
                        last = self._last_return = CpuExit(returned, state.pc)
                    return last  # (a value: the same one again saves an allocation)
                exit_ = decode_exit(result, slot_owner, take_exception)
                exit_counts[reason] += 1
                if log_exec:
                    self.log.write(f"exit {_NAMES[type(exit_)]} pc={state.pc:#x}")
                action = decide(exit_, self)
        finally:
            if not tbs.in_native and (tbs.pending_release or tbs.lookup_table.retired):
                tbs.release_pending()
            lock.release()

    def step(self) -> CpuExit:
        """Execute exactly one guest instruction (a debugger's single step) and return
        an EXCP_DEBUG exit at the pc after it — or what stopped it: a guest exception
        (user mode; system mode delivers it, and the step ends at the trap vector), a
        syscall or halt (the instruction completed). Interrupts are not taken while
        stepping (QEMU's default SSTEP_NOIRQ), nor is a stop request answered: a
        pending exit request is kept for the next :meth:`run`.

        Raises:
            Exception: whatever a Python helper or MMIO callback raised.
        """
        state, tbs = self.state, self.tbs
        requested = False
        try:
            while True:
                if tbs.pending_release:
                    tbs.release_pending()
                if state.exit_requested:
                    state.clear_exit_request()
                    requested = True
                try:
                    tb = tbs.translate_single(state.pc, state.tb_flags)
                except GuestFault as fault:
                    self.record_fault(fault.fault)
                    exit_: NativeExit = self.take_exception()
                else:
                    # An indirect jump must come back here: empty jump cache, and a
                    # lookup table that finds nothing.
                    tbs.jmp_cache_flush()
                    table_cell = state.get("tb_table")
                    state.set("tb_table", tbs.lookup_table.empty_cell_address)
                    self.stats.native_entries += 1
                    try:
                        exit_ = decode_exit(self._run_native(tb), tbs.slot_owner,
                                            self.take_exception)
                    finally:
                        state.set("tb_table", table_cell)
                        tbs.discard_single(tb)
                if self.pending_error is not None:
                    self._raise_pending()
                match exit_:
                    case Requested() | Hot():  # left before the instruction: again
                        requested = requested or type(exit_) is Requested
                        continue
                    case GuestException(index=index, fault=fault):
                        if self.do_interrupt is None or index == EXCP_DEBUG:
                            return CpuExit(ExitReason.EXCEPTION, state.pc, index, fault)
                        self.do_interrupt(state, index, fault)
                    case Syscall() | Halt():
                        return CpuExit(exit_.reason, state.pc)
                return CpuExit(ExitReason.EXCEPTION, state.pc, EXCP_DEBUG)
        finally:
            if requested:
                state.request_exit()  # (an interrupt or host signal, taken later)
            tbs.release_pending()

    def _run_native(self, tb: CompiledCode) -> int:
        """Enter ``tb`` with the guest's FP environment; hand the flags its float ops
        raised to the guest (clearing them; the rounding control stays)."""
        state, fp_env = self.state, self._fp_env
        control = self._fp_control
        if self.fp_rounding is not None and (control is None
                                             or control.value != self._fp_control_seen):
            self._fp_control_seen = None if control is None else control.value
            rounding = self.fp_rounding(state)
            if rounding is not self._rounding:  # (the MXCSR of a mode, looked up once)
                self._rounding, self._guest_mxcsr = rounding, host_fp.guest_mxcsr(rounding)
        fp_env.value = self._guest_mxcsr
        result = self.enter(tb.entry, state.address, self.mem_base)
        env = fp_env.value
        if env & _MXCSR_FLAGS and self.fp_accrue is not None:
            fp_env.value = env & ~_MXCSR_FLAGS
            self.fp_accrue(state, FFlag(host_fp.flags_from_mxcsr(env)))
        return result

    def _raise_pending(self) -> None:
        error, self.pending_error = self.pending_error, None
        state = self.state
        state.set("exit_request", 1 if self.stop_requested else 0)  # (a stop stays asked)
        state.set("helper_status", 0)
        state.set("exception_index", 0xFFFF_FFFF)
        raise error
