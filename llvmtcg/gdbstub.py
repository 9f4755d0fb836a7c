"""The GDB remote serial protocol, shared by user mode and system mode.

:class:`GdbStub` is the protocol engine for one connected debugger: bytes in
(:meth:`GdbStub.feed`), packets out (through ``send``). It knows the guest only through
a :class:`DebugTarget` — the runtime :class:`Cpu` (registers through the architecture's
``debug_*`` contract, memory through :meth:`Cpu.debug_read`/``debug_write``,
breakpoints through :meth:`Cpu.set_breakpoints`) plus what differs between the modes:
thread ids, resuming, detaching, killing. The modes drive it differently — user mode
blocks on the socket while the guest is stopped (``llvmtcg/user/gdb.py``), system mode
feeds it from the machine's I/O thread (``machines/gdb.py``) — and both report stops
with :meth:`GdbStub.report`.

Python stays off the guest's hot path: while the guest runs, the engine only looks at
bytes that arrive (a Ctrl-C, byte 0x03, asks the target to stop it, which the run
loop sees as an exit request at the next block boundary). Breakpoints are a set of pcs
the translator ends blocks at (see :meth:`Cpu.set_breakpoints`), single steps are
blocks of one instruction (:meth:`Cpu.step`).

Protocol notes (gdb's "Remote Protocol" appendix): every packet is acknowledged with
``+`` (or ``-`` for a bad checksum, which makes gdb send it again) until
``QStartNoAckMode``; unknown packets get the empty reply; a malformed one gets ``E``
and an error number; ``?`` repeats the last stop. Garbage between packets is skipped.
"""

from __future__ import annotations

import enum
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from llvmtcg.runtime.exits import Access, GuestFault, MemFault

if TYPE_CHECKING:
    from llvmtcg.arch import DebugFeature
    from llvmtcg.runtime.cpu_exec import Cpu

PACKET_SIZE = 0x4000  # the largest packet we accept (announced in qSupported)
_MAX_BUFFERED = PACKET_SIZE * 2 + 16  # (a packet, escapes and framing)
INTERRUPT = 0x03  # Ctrl-C, sent alone while the target runs
# Error replies. gdb shows the number only; QEMU answers E14 (EFAULT) for bad memory
# and unknown registers, E22 (EINVAL) for malformed packets.
E_FAULT = "E14"
E_INVALID = "E22"

# Z/z packet types of watchpoints: the accesses they catch, and the stop reply's key.
_WATCH_KINDS = {"2": (Access.WRITE, "watch"), "3": (Access.READ, "rwatch"),
                "4": (None, "awatch")}

# gdb's signal numbers (gdb/signals.def) for the host's (Linux's) where they differ.
GDB_SIGINT = 2
GDB_SIGTRAP = 5
_LINUX_TO_GDB = {
    1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 8, 9: 9, 10: 30, 11: 11, 12: 31, 13: 13,
    14: 14, 15: 15, 16: 143, 17: 20, 18: 19, 19: 17, 20: 18, 21: 21, 22: 22, 23: 16, 24: 24,
    25: 25, 26: 26, 27: 27, 28: 28, 29: 23, 30: 32, 31: 12, 32: 77,
    **{n: 45 + (n - 33) for n in range(33, 64)},  # GDB_SIGNAL_REALTIME_33 .. _63
}
_GDB_TO_LINUX = {gdb: linux for linux, gdb in _LINUX_TO_GDB.items()}


def gdb_signal(host_signal: int) -> int:
    """gdb's number for a (Linux) signal; 143 (GDB_SIGNAL_UNKNOWN) if it has none."""
    return _LINUX_TO_GDB.get(host_signal, 143)


def host_signal(gdb_number: int) -> int:
    """The (Linux) signal for gdb's signal number; 0 if there is none."""
    return _GDB_TO_LINUX.get(gdb_number, 0)


# -- what the target reports and is asked -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Stopped:
    """The guest stopped with (host) signal ``signal`` in thread ``thread``; ``watch``:
    after an access to a watchpoint (the WATCHPOINT fault: its start, the access)."""

    signal: int
    thread: int
    watch: MemFault | None = None


@dataclass(frozen=True, slots=True)
class Exited:
    """The process exited with ``status`` (user mode)."""

    status: int


@dataclass(frozen=True, slots=True)
class Terminated:
    """The process died of (host) signal ``signal`` (user mode)."""

    signal: int


StopEvent = Stopped | Exited | Terminated


class ResumeKind(enum.Enum):
    CONTINUE = "continue"
    STEP = "step"


@dataclass(frozen=True, slots=True)
class Resume:
    """Run on (``CONTINUE``) or execute one instruction (``STEP``), delivering (host)
    signal ``signal`` first (0: none; the signal a stop reported is dropped unless gdb
    passes it on). A step steps ``thread`` (0: the current one); whether the other
    threads run meanwhile is the target's choice (gdb allows both)."""

    kind: ResumeKind
    signal: int = 0
    # vCont naming a thread (0: none named): the thread this action is for, and whether
    # the other threads continue meanwhile (a later default ``c`` action).
    thread: int = 0
    others_continue: bool = False


class DebugTarget(Protocol):
    """What the engine needs from the emulator besides the CPU."""

    @property
    def cpu(self) -> Cpu:
        """The current thread's CPU: what register and memory packets read and write
        (stopped whenever the engine reads or writes it)."""
        ...

    def cpus(self) -> list[Cpu]:
        """Every thread's CPU (breakpoints and watchpoints apply to all of them)."""
        ...

    def thread_ids(self) -> list[int]:
        """The guest's threads as gdb numbers them (positive), in order."""
        ...

    def current_thread(self) -> int:
        """The thread :attr:`cpu` belongs to."""
        ...

    def select_thread(self, thread: int) -> None:
        """Make ``thread`` (one of :meth:`thread_ids`) the current one (``Hg``, and
        the thread of a stop)."""
        ...

    def thread_info(self, thread: int) -> str:
        """What ``info threads`` shows beside the thread (qThreadExtraInfo)."""
        ...

    def resume(self, action: Resume) -> None:
        """Let the guest run (the engine has replied; the next stop is reported with
        :meth:`GdbStub.report`)."""
        ...

    def interrupt(self) -> None:
        """gdb asked to stop the running guest (Ctrl-C): stop it soon and report a
        SIGINT stop (any thread)."""
        ...

    def detach(self) -> None:
        """gdb detached (or vanished): forget the debugger and let the guest run."""
        ...

    def kill(self) -> None:
        """gdb asked to kill the guest."""
        ...

    def monitor(self, command: str) -> str | None:
        """A ``monitor`` command (qRcmd): its output, or None if there are none."""
        ...


# -- framing -------------------------------------------------------------------------------

def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(payload: bytes) -> bytes:
    """``$payload#cc`` with ``$ # } *`` escaped as gdb expects."""
    escaped = re.sub(rb"[$#}*]", lambda m: b"}" + bytes([m.group()[0] ^ 0x20]), payload)
    return b"$" + escaped + b"#" + b"%02x" % checksum(escaped)


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as XML entities (xml.sax.saxutils.escape, whose import
    pulls in urllib, http and ssl: ~0.1 s on every start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(data: bytes) -> bytes:
    """Binary data of an ``X`` packet: ``}`` escapes the next byte (xor 0x20)."""
    out = bytearray()
    it = iter(data)
    for byte in it:
        if byte == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise ValueError("escape at end of data")
            out.append(nxt ^ 0x20)
        else:
            out.append(byte)
    return bytes(out)


class _Malformed(Exception):
    """A packet we understand but whose arguments are wrong: E22."""


def _hex_int(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise _Malformed(text) from None


def _addr_len(text: str) -> tuple[int, int]:
    addr, sep, length = text.partition(",")
    if not sep:
        raise _Malformed(text)
    return _hex_int(addr), _hex_int(length)


def target_xml(architecture: str, features: tuple[DebugFeature, ...]) -> str:
    """gdb's target description: the architecture and every feature's registers."""
    parts = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
             '<target version="1.0">', f"<architecture>{escape(architecture)}</architecture>"]
    for feature in features:
        parts.append(f'<feature name="{escape(feature.name)}">{feature.types_xml}')
        for reg in feature.registers:
            group = f' group="{escape(reg.group)}"' if reg.group else ""
            parts.append(f'<reg name="{escape(reg.name)}" bitsize="{reg.bits}" '
                         f'type="{escape(reg.type)}" regnum="{reg.number}"{group}/>')
        parts.append("</feature>")
    parts.append("</target>")
    return "\n".join(parts) + "\n"


# -- the engine ----------------------------------------------------------------------------

class GdbStub:
    """The protocol for one debugger connection.

    Args:
        target: the emulator side.
        send: writes bytes to the debugger (raises OSError when it is gone).
    """

    def __init__(self, target: DebugTarget, send: Callable[[bytes], None]) -> None:
        self.target = target
        self._send = send
        self.no_ack = False
        self.running = False  # the guest runs: only Ctrl-C is looked at
        self.last_stop: StopEvent = Stopped(GDB_SIGTRAP, 0)
        self.breakpoints: set[int] = set()
        self.watchpoints: set[tuple[str, int, int]] = set()  # (Z type, address, length)
        self._buffer = bytearray()
        self._last_sent = b""
        self._continue_thread = 0  # Hc: the thread a legacy s/c steps (0: the current)
        self._listed: list[int] = []  # qsThreadInfo: the threads still to list
        cpu = target.cpu
        features = cpu.arch.debug_features()
        if not features or cpu.arch.gdb_architecture is None:
            raise ValueError(f"{cpu.arch.name}: no debugger register description")
        self._xml = target_xml(cpu.arch.gdb_architecture, features).encode()
        self._core = features[0].registers
        self._sizes = {reg.number: reg.bits // 8 for f in features for reg in f.registers}
        self._pending_signal = 0  # the signal of the last stop (C/S may pass it on)

    @property
    def _arch(self):  # -> llvmtcg.arch.GuestArch (every thread has the same)
        return self.target.cpu.arch

    @property
    def _state(self):  # -> the current thread's CpuState
        return self.target.cpu.state

    # -- bytes in ----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the debugger: packets are answered (and may resume the target),
        a Ctrl-C interrupts a running guest, anything else is skipped."""
        buffer = self._buffer
        buffer += data
        while buffer:
            start = buffer[0]
            if start == ord("$"):
                end = buffer.find(b"#")
                if end < 0:
                    if len(buffer) > _MAX_BUFFERED:  # oversized: drop it, ask again
                        buffer.clear()
                        self._write(b"-")
                    return
                if len(buffer) < end + 3:
                    return  # the checksum has not arrived yet
                payload, check = bytes(buffer[1:end]), bytes(buffer[end + 1:end + 3])
                del buffer[:end + 3]
                self._packet(payload, check)
            elif start == INTERRUPT:
                del buffer[:1]
                if self.running:
                    self.target.interrupt()
            elif start == ord("-"):
                del buffer[:1]
                if not self.no_ack and self._last_sent:
                    self._write(self._last_sent)
            else:  # "+" acknowledgements, and garbage
                next_start = min((i for i in (buffer.find(b"$"), buffer.find(b"\x03"),
                                              buffer.find(b"-")) if i > 0),
                                 default=len(buffer))
                del buffer[:next_start]

    def _packet(self, payload: bytes, check: bytes) -> None:
        try:
            valid = int(check, 16) == checksum(payload)
        except ValueError:
            valid = False
        if not self.no_ack:
            self._write(b"+" if valid else b"-")
        if not valid:
            return  # gdb sends it again (in no-ack mode: it is lost, as the protocol says)
        if self.running:
            return  # all-stop mode: nothing but Ctrl-C is meaningful while running
        try:
            reply = self._dispatch(payload)
        except _Malformed:
            reply = E_INVALID
        if reply is not None:
            self.reply(reply)

    # -- bytes out -----------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        try:
            self._send(data)
        except OSError:
            pass  # the connection is gone; the reader notices and detaches

    def reply(self, payload: str | bytes) -> None:
        packet = frame(payload.encode("latin-1") if isinstance(payload, str) else payload)
        self._last_sent = packet
        self._write(packet)

    def report(self, event: StopEvent) -> None:
        """The guest stopped (or ended) after a resume: tell the debugger."""
        self.running = False
        self.last_stop = event
        self._pending_signal = event.signal if isinstance(event, Stopped) else 0
        if isinstance(event, Stopped) and event.thread in self.target.thread_ids():
            self.target.select_thread(event.thread)  # (QEMU: g_cpu = c_cpu = the stopped)
        self.reply(self._stop_reply(event))

    def _stop_reply(self, event: StopEvent) -> str:
        match event:
            case Stopped(signal=sig, thread=thread, watch=watch):
                thread = thread or self.target.current_thread()
                return f"T{gdb_signal(sig):02x}thread:{thread:x};{self._watch_reason(watch)}"
            case Exited(status=status):
                return f"W{status & 0xFF:02x}"
            case Terminated(signal=sig):
                return f"X{gdb_signal(sig):02x}"
        raise TypeError(event)

    # -- packets -------------------------------------------------------------------------
    def _dispatch(self, payload: bytes) -> str | bytes | None:
        """The reply to one packet (None: no reply, e.g. the target resumed)."""
        if payload[:1] == b"X":
            return self._write_binary(payload[1:])
        text = payload.decode("latin-1")
        if not text:
            return ""
        kind, rest = text[0], text[1:]
        match kind:
            case "?":
                return self._stop_reply(self.last_stop)
            case "g":
                return self._read_core()
            case "G":
                return self._write_core(rest)
            case "p":
                return self._read_register(_hex_int(rest))
            case "P":
                number, sep, value = rest.partition("=")
                if not sep:
                    raise _Malformed(rest)
                return self._write_register(_hex_int(number), value)
            case "m":
                return self._read_memory(*_addr_len(rest))
            case "M":
                where, sep, data = rest.partition(":")
                if not sep:
                    raise _Malformed(rest)
                addr, length = _addr_len(where)
                try:
                    raw = bytes.fromhex(data)
                except ValueError:
                    raise _Malformed(data) from None
                if len(raw) != length:
                    raise _Malformed(rest)
                return self._store(addr, raw)
            case "c" | "s":
                self._set_pc(rest)
                return self._resume(Resume(ResumeKind.CONTINUE if kind == "c"
                                           else ResumeKind.STEP, 0, self._continue_thread))
            case "C" | "S":
                sig, _, addr = rest.partition(";")
                self._set_pc(addr)
                return self._resume(Resume(ResumeKind.CONTINUE if kind == "C"
                                           else ResumeKind.STEP, host_signal(_hex_int(sig)),
                                           self._continue_thread))
            case "Z" | "z":
                return self._breakpoint(kind == "Z", rest)
            case "H":
                return self._set_thread(rest[:1], rest[1:])
            case "T":
                return "OK" if self._valid_thread(rest, any_ok=False) else E_INVALID
            case "D":
                self.reply("OK")
                self._detach()
                return None
            case "k":
                self._kill()
                return None
            case "q" | "Q":
                return self._query(text)
            case "v":
                return self._v_packet(rest)
        return ""  # unsupported

    def _query(self, text: str) -> str | bytes:
        name, _, args = text.partition(":")
        match name:
            case "qSupported":
                return (f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;"
                        "QStartNoAckMode+;vContSupported+")
            case "QStartNoAckMode":
                self.reply("OK")  # (still acknowledged: the mode starts after it)
                self.no_ack = True
                return None
            case "qXfer":
                return self._xfer(args)
            case "qAttached":
                return "1"  # gdb detaches (the guest runs on) rather than kills on quit
            case "qC":
                return f"QC{self.target.current_thread():x}"
            case "qfThreadInfo" | "qsThreadInfo":
                # One thread per reply, as QEMU lists its CPUs.
                if name == "qfThreadInfo":
                    self._listed = list(self.target.thread_ids())
                return f"m{self._listed.pop(0):x}" if self._listed else "l"
            case "qSymbol":
                return "OK"
        if name.startswith("qRcmd,"):
            try:
                command = bytes.fromhex(name[6:]).decode("utf-8", "replace")
            except ValueError:
                raise _Malformed(name) from None
            output = self.target.monitor(command)
            if output is None:
                return ""
            # Console output packets, one per line as QEMU's monitor flushes them
            # (each O packet's data fits the packet size gdb was told).
            for line in output.encode().splitlines(keepends=True):
                for start in range(0, len(line), PACKET_SIZE // 2 - 1):
                    self.reply("O" + line[start:start + PACKET_SIZE // 2 - 1].hex())
            return "OK"
        if name.startswith("qThreadExtraInfo,"):
            text = name[17:]
            if not self._valid_thread(text, any_ok=False):
                return E_INVALID
            return self.target.thread_info(_hex_int(text.split(".")[-1])).encode().hex()
        return ""

    def _xfer(self, args: str) -> str | bytes:
        # qXfer:features:read:ANNEX:OFFSET,LENGTH
        obj, _, rest = args.partition(":")
        op, _, rest = rest.partition(":")
        annex, _, where = rest.partition(":")
        if obj != "features" or op != "read":
            return ""
        if annex != "target.xml":
            return "E00"
        offset, length = _addr_len(where)
        chunk = self._xml[offset:offset + length]
        more = offset + length < len(self._xml)
        return (b"m" if more else b"l") + chunk

    def _v_packet(self, rest: str) -> str | None:
        if rest == "Cont?":
            return "vCont;c;C;s;S"
        if rest.startswith("Cont;"):
            threads = self.target.thread_ids()
            actions = rest[5:].split(";")
            for index, action in enumerate(actions):
                what, _, thread = action.partition(":")
                named = 0
                if thread and thread not in ("-1", "0"):
                    named = _hex_int(thread.split(".")[-1])
                    if named not in threads:
                        continue
                others = any(a[:1] == "c" and a.partition(":")[2] in ("", "-1", "0")
                             for a in actions[index + 1:])
                match what[:1]:
                    case "c":
                        return self._resume(Resume(ResumeKind.CONTINUE, 0, named, True))
                    case "s":
                        return self._resume(Resume(ResumeKind.STEP, 0, named, others))
                    case "C" | "S":
                        kind = ResumeKind.CONTINUE if what[0] == "C" else ResumeKind.STEP
                        return self._resume(Resume(kind, host_signal(_hex_int(what[1:])),
                                                   named, kind is ResumeKind.CONTINUE
                                                   or others))
                    case _:
                        return ""  # (t, r: not offered in vCont?)
            return E_INVALID
        if rest.startswith("Kill"):
            self.reply("OK")
            self._kill()
            return None
        return ""  # vMustReplyEmpty and everything else

    def _set_thread(self, op: str, text: str) -> str:
        """``Hg THREAD`` (registers and memory) / ``Hc THREAD`` (legacy s and c):
        -1 (all) and 0 (any) leave the choice as it is."""
        if op not in ("g", "c") or not self._valid_thread(text):
            return E_INVALID
        if text in ("-1", "0"):
            if op == "c":
                self._continue_thread = 0
            return "OK"
        thread = int(text.split(".")[-1], 16)
        if op == "g":
            self.target.select_thread(thread)
        else:
            self._continue_thread = thread
        return "OK"

    def _valid_thread(self, text: str, any_ok: bool = True) -> bool:
        if text in ("-1", "0"):
            return any_ok
        try:
            return int(text.split(".")[-1], 16) in self.target.thread_ids()
        except ValueError:
            return False

    # -- registers -----------------------------------------------------------------------
    @property
    def _state(self):  # the selected thread's (user mode: Hg changes target.cpu)
        return self.target.cpu.state

    def _value(self, number: int) -> bytes | None:
        size = self._sizes.get(number)
        if size is None:
            return None
        value = self._arch.debug_reg_read(self._state, number)
        if value is None:
            return None
        return (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    def _read_core(self) -> str:
        out = []
        for reg in self._core:
            value = self._value(reg.number)
            out.append(value.hex() if value is not None else "xx" * (reg.bits // 8))
        return "".join(out)

    def _write_core(self, text: str) -> str:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise _Malformed(text) from None
        pos = 0
        for reg in self._core:
            size = reg.bits // 8
            if pos + size > len(raw):
                break
            self._arch.debug_reg_write(self._state, reg.number,
                                       int.from_bytes(raw[pos:pos + size], "little"))
            pos += size
        self._registers_changed()
        return "OK"

    def _read_register(self, number: int) -> str:
        value = self._value(number)
        return value.hex() if value is not None else E_FAULT

    def _write_register(self, number: int, text: str) -> str:
        size = self._sizes.get(number)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise _Malformed(text) from None
        if size is None or len(raw) != size:
            return E_FAULT
        if not self._arch.debug_reg_write(self._state, number, int.from_bytes(raw, "little")):
            return E_FAULT
        self._registers_changed()
        return "OK"

    def _registers_changed(self) -> None:
        cpu = self.target.cpu
        if cpu.system_mode:  # (a CSR write may change the translation regime)
            cpu.tlb_flush()

    def _set_pc(self, text: str) -> None:
        if text:  # c ADDR / s ADDR: resume there
            self._state.pc = _hex_int(text)

    # -- memory --------------------------------------------------------------------------
    def _read_memory(self, addr: int, length: int) -> str:
        if length > PACKET_SIZE // 2:
            length = PACKET_SIZE // 2  # gdb asks again for the rest
        try:
            return self.target.cpu.debug_read(addr, length).hex()
        except GuestFault:
            return E_FAULT

    def _store(self, addr: int, data: bytes) -> str:
        try:
            self.target.cpu.debug_write(addr, data)
        except GuestFault:
            return E_FAULT
        return "OK"

    def _write_binary(self, payload: bytes) -> str:
        where, sep, data = payload.partition(b":")
        if not sep:
            raise _Malformed(payload)
        addr, length = _addr_len(where.decode("latin-1"))
        try:
            raw = unescape(data)
        except ValueError:
            raise _Malformed(payload) from None
        if len(raw) != length:
            raise _Malformed(payload)
        return self._store(addr, raw) if raw else "OK"

    # -- breakpoints ---------------------------------------------------------------------
    def _breakpoint(self, insert: bool, text: str) -> str:
        kind, _, rest = text.partition(",")
        addr_text, _, size = rest.partition(",")
        if kind in _WATCH_KINDS:
            return self._watchpoint(insert, kind, _hex_int(addr_text), _hex_int(size))
        if kind not in ("0", "1"):
            return ""  # unknown types: unsupported, which gdb understands
        addr = _hex_int(addr_text)
        before = set(self.breakpoints)
        if insert:
            self.breakpoints.add(addr)
        else:
            self.breakpoints.discard(addr)
        try:
            for cpu in self.target.cpus():
                cpu.set_breakpoints(frozenset(self.breakpoints))
        except ValueError:  # the CPU has no room for it (x86's four debug registers)
            self.breakpoints = before
            return E_FAULT
        return "OK"

    def _watchpoint(self, insert: bool, kind: str, addr: int, length: int) -> str:
        if not 0 < length <= PACKET_SIZE:
            return E_INVALID
        before = set(self.watchpoints)
        if insert:
            self.watchpoints.add((kind, addr, length))
        else:
            self.watchpoints.discard((kind, addr, length))
        watched = tuple((start, start + size, _WATCH_KINDS[k][0])
                        for k, start, size in sorted(self.watchpoints))
        try:
            for cpu in self.target.cpus():
                cpu.set_watchpoints(watched)
        except ValueError:  # no room for it
            self.watchpoints = before
            return E_FAULT
        return "OK"

    def _watch_reason(self, fault: MemFault | None) -> str:
        """``watch:ADDR;`` (or rwatch, awatch) for the watchpoint behind ``fault``."""
        if fault is None:
            return ""
        for kind, start, _ in sorted(self.watchpoints):
            access, key = _WATCH_KINDS[kind]
            if start == fault.addr and access in (None, fault.access):
                return f"{key}:{start:x};"
        return ""

    # -- run control ---------------------------------------------------------------------
    def _resume(self, action: Resume) -> None:
        self.running = True
        self.target.resume(action)
        return None

    def _detach(self) -> None:
        self.clear()
        self.target.detach()

    def _kill(self) -> None:
        self.clear()
        self.target.kill()

    def clear(self) -> None:
        """Forget the breakpoints (detach, kill, a vanished debugger)."""
        self.breakpoints.clear()
        for cpu in self.target.cpus():
            cpu.set_breakpoints(frozenset())
        if self.watchpoints:
            self.watchpoints.clear()
            for cpu in self.target.cpus():
                cpu.set_watchpoints(())
        self.running = False


# -- sockets -------------------------------------------------------------------------------

class GdbAddressError(ValueError):
    """A ``-gdb``/``-g`` device the emulator cannot listen on (one line for the user)."""


def listen(device: str) -> socket.socket:
    """A listening socket for QEMU's gdbstub devices: ``tcp::PORT``, ``tcp:HOST:PORT``,
    ``unix:PATH`` (``-gdb``), or a bare port number (``-g``)."""
    try:
        if device.isdigit():
            device = f"tcp::{device}"
        kind, _, rest = device.partition(":")
        if kind == "tcp":
            host, _, port = rest.rpartition(":")
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]") or "0.0.0.0", int(port)))
        elif kind == "unix":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(rest.split(",")[0])
        else:
            raise GdbAddressError(f"gdbstub: unsupported device '{device}'")
        sock.listen(1)
        return sock
    except (OSError, ValueError, OverflowError) as exc:  # (OverflowError: a port > 65535)
        if isinstance(exc, GdbAddressError):
            raise
        raise GdbAddressError(f"gdbstub: cannot listen on '{device}': "
                              f"{getattr(exc, 'strerror', None) or exc}") from None


def accepted(sock: socket.socket) -> socket.socket:
    """A connection from a listening socket, set up for the protocol's small packets."""
    conn, _ = sock.accept()
    if conn.family in (socket.AF_INET, socket.AF_INET6):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


__all__ = ["DebugTarget", "Exited", "GdbAddressError", "GdbStub", "Resume", "ResumeKind",
           "StopEvent", "Stopped", "Terminated", "accepted", "frame", "gdb_signal",
           "host_signal", "listen", "target_xml"]
