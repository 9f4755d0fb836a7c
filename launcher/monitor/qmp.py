"""QMP, the QEMU Machine Protocol, as QEMU 7.2 speaks it on a chardev.

A client connecting gets the greeting (version and the ``oob`` capability); until it
sends ``qmp_capabilities`` every other command is refused (CommandNotFound); then
commands get ``{"return": …}`` or ``{"error": {"class", "desc"}}``, with the request's
``id`` echoed, and run-state events are sent with their timestamps. The input is a byte
stream that :class:`JsonStreamer` cuts into JSON values the way QEMU's lexer does: a
value may span reads and lines; garbage gets a ``JSON parse error`` reply and the stream
recovers at the next line; nothing a client sends ends the connection or the VM.
Each monitor (chardev) has its own negotiation state; a new connection starts over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from launcher.chardev import Chardev, ChardevEvent
from launcher.monitor import block_commands, snapshot_commands
from launcher.monitor.hmp import HmpCommands
from launcher.monitor.vm import QEMU_VERSION, MonitorError, Vm

MAX_VALUE_BYTES = 1 << 20  # one request larger than this is refused (QEMU: 64 MiB)
MAX_NESTING = 1024  # QEMU's MAX_NESTING


class QmpError(Exception):
    """An error reply: QEMU's ErrorClass name and description."""

    def __init__(self, desc: str, error_class: str = "GenericError") -> None:
        super().__init__(desc)
        self.error_class = error_class
        self.desc = desc


# -- the input stream -----------------------------------------------------------------------
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_NUMBER_CHARS = frozenset("0123456789+-.eE")


class JsonStreamer:
    """Cuts a byte stream into top-level JSON texts (QEMU's json-streamer): each
    complete value, or the error for a malformed one, goes to ``emit``."""

    def __init__(self, emit: Callable[[object | QmpError], None]) -> None:
        self.emit = emit
        self.reset()

    def reset(self) -> None:
        self._text: list[str] = []
        self._size = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._word = ""  # a bare word or number being read
        self._recovering = False

    def feed(self, data: bytes) -> None:
        for char in data.decode("utf-8", errors="replace"):
            self._char(char)

    def _char(self, char: str) -> None:
        if self._recovering:  # after an error: skip to the end of the line
            if char == "\n":
                self._recovering = False
            return
        if self._word:
            if char in _WORD_CHARS or (self._word[0] in "-0123456789" and char in _NUMBER_CHARS):
                self._word += char
                return
            if not self._end_word():
                if char == "\n":  # the word's end was the line's: recovered already
                    self._recovering = False
                return
        if self._in_string:
            self._append(char)
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                self._in_string = False
                if self._depth == 0:
                    self._complete()
            return
        if char in " \t\r\n":
            if self._depth:
                self._append(char)
            return
        if char == '"':
            self._in_string = True
            self._append(char)
        elif char in "{[":
            self._depth += 1
            if self._depth > MAX_NESTING:
                self._error("JSON parse error, nesting too deep")
                return
            self._append(char)
        elif char in "}]":
            if self._depth == 0:
                self._error("JSON parse error, expecting value")
                return
            self._depth -= 1
            self._append(char)
            if self._depth == 0:
                self._complete()
        elif char in ":,":
            if self._depth == 0:
                self._error("JSON parse error, expecting value")
                return
            self._append(char)
        elif char in _WORD_CHARS or char == "-":
            self._word = char
        else:
            self._error(f"JSON parse error, stray '{char}'")

    def _end_word(self) -> bool:
        """A bare word ended: a literal, a number or an invalid keyword. False when it
        was an error (the rest of the line is skipped)."""
        word, self._word = self._word, ""
        if word[0] in "-0123456789":
            try:
                float(word)
            except ValueError:
                self._error(f"JSON parse error, invalid number '{word}'")
                return False
        elif word not in ("true", "false", "null"):
            self._error(f"JSON parse error, invalid keyword '{word}'")
            return False
        self._append(word)
        if self._depth == 0:
            self._complete()
        return True

    def _append(self, text: str) -> None:
        self._text.append(text)
        self._size += len(text)
        if self._size > MAX_VALUE_BYTES:
            self._error("JSON parse error, request too large")

    def _complete(self) -> None:
        text = "".join(self._text)
        self._text, self._size = [], 0
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else "nesting too deep"
            self.emit(QmpError(f"JSON parse error, {message[0].lower()}{message[1:]}"))
            return
        self.emit(value)

    def _error(self, desc: str) -> None:
        self.reset()
        self._recovering = True
        self.emit(QmpError(desc))


# -- commands -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: type | tuple[type, ...]
    type_name: str  # as QEMU's message names it
    required: bool = True


CommandFn = Callable[["QmpMonitor", dict], object]


@dataclass(frozen=True, slots=True)
class QmpCommand:
    name: str
    params: tuple[Param, ...]
    run: CommandFn
    # The arguments are a union the command checks itself (blockdev-add's
    # BlockdevOptions: the keys depend on the driver).
    free_form: bool = False


def _check_arguments(command: QmpCommand, arguments: dict) -> None:
    if command.free_form:
        return
    known = {p.name: p for p in command.params}
    for key in arguments:
        if key not in known:
            raise QmpError(f"Parameter '{key}' is unexpected")
    for param in command.params:
        if param.name not in arguments:
            if param.required:
                raise QmpError(f"Parameter '{param.name}' is missing")
            continue
        value = arguments[param.name]
        if not isinstance(value, param.kind) or (param.kind is int and isinstance(value, bool)):
            raise QmpError(f"Invalid parameter type for '{param.name}', "
                           f"expected: {param.type_name}")


def _timestamp() -> dict[str, int]:
    now = time.time()
    seconds = int(now)
    return {"seconds": seconds, "microseconds": int((now - seconds) * 1_000_000)}


class QmpMonitor:
    """A QMP server on one chardev (``-qmp``, ``-mon mode=control``)."""

    def __init__(self, chardev: Chardev, vm: Vm) -> None:
        self.chardev = chardev
        self.vm = vm
        self.negotiated = False
        self.oob = False
        self.hmp = HmpCommands(vm)
        self._streamer = JsonStreamer(self._request)
        chardev.set_frontend(self)
        vm.add_listener(self._on_event)

    # -- the chardev frontend (loop thread) ---------------------------------------------
    def event(self, event: ChardevEvent) -> None:
        if event is ChardevEvent.OPENED:
            self.negotiated = False
            self.oob = False
            self._streamer.reset()
            major, minor, micro = QEMU_VERSION
            self._send({"QMP": {"version": {"qemu": {"micro": micro, "minor": minor,
                                                     "major": major},
                                            "package": self.vm.package},
                                "capabilities": ["oob"]}})
        elif event is ChardevEvent.CLOSED:
            self.negotiated = False
            self._streamer.reset()

    def receive(self, data: bytes) -> None:
        self._streamer.feed(data)

    def _send(self, message: dict) -> None:
        self.chardev.write((json.dumps(message) + "\r\n").encode())

    def _on_event(self, name: str, data: dict[str, object] | None) -> None:
        if not self.negotiated or not self.chardev.connected:
            return
        message: dict[str, object] = {"timestamp": _timestamp(), "event": name}
        if data is not None:
            message["data"] = data
        self._send(message)

    # -- requests -------------------------------------------------------------------------
    def _request(self, value: object) -> None:
        request_id: object = None
        has_id = False
        try:
            if isinstance(value, QmpError):
                raise value
            if not isinstance(value, dict):
                raise QmpError("QMP input must be a JSON object")
            has_id, request_id = "id" in value, value.get("id")
            name = self._check_input(value)
            arguments = value.get("arguments", {})
            result = self._dispatch(name, arguments)
        except QmpError as exc:
            error = {"error": {"class": exc.error_class, "desc": exc.desc}}
            self._send({"id": request_id, **error} if has_id else error)
            return
        reply: dict[str, object] = {"return": result}
        if has_id:
            reply["id"] = request_id
        self._send(reply)

    def _check_input(self, request: dict) -> str:
        for key in request:
            if key not in ("execute", "exec-oob", "arguments", "id", "control"):
                raise QmpError(f"QMP input member '{key}' is unexpected")
        if "exec-oob" in request:
            if not self.oob:
                raise QmpError("QMP input member 'exec-oob' is unexpected")
            name = request["exec-oob"]
            key = "exec-oob"
        elif "execute" in request:
            name = request["execute"]
            key = "execute"
        else:
            raise QmpError("QMP input lacks member 'execute'")
        if not isinstance(name, str):
            raise QmpError(f"QMP input member '{key}' must be a string")
        if "arguments" in request and not isinstance(request["arguments"], dict):
            raise QmpError("QMP input member 'arguments' must be an object")
        return name

    def _dispatch(self, name: str, arguments: dict) -> object:
        if not self.negotiated and name != "qmp_capabilities":
            raise QmpError("Expecting capabilities negotiation with 'qmp_capabilities'",
                           "CommandNotFound")
        command = COMMANDS.get(name)
        if command is None:
            raise QmpError(f"The command {name} has not been found", "CommandNotFound")
        _check_arguments(command, arguments)
        try:
            return command.run(self, arguments)
        except MonitorError as exc:
            raise QmpError(str(exc)) from None

    # -- the commands ---------------------------------------------------------------------
    def qmp_capabilities(self, arguments: dict) -> object:
        if self.negotiated:
            raise QmpError("Capabilities negotiation is already complete, command ignored",
                           "CommandNotFound")
        enable = arguments.get("enable", [])
        for capability in enable:
            if capability != "oob":
                raise QmpError(f"Parameter 'enable' does not accept value '{capability}'"
                               if isinstance(capability, str) else
                               "Invalid parameter type for 'enable[0]', expected: string")
        self.oob = "oob" in enable
        self.negotiated = True
        return {}

    def query_status(self, _: dict) -> object:
        return {"status": self.vm.status, "singlestep": False, "running": self.vm.running}

    def query_version(self, _: dict) -> object:
        major, minor, micro = QEMU_VERSION
        return {"qemu": {"micro": micro, "minor": minor, "major": major},
                "package": self.vm.package}

    def query_commands(self, _: dict) -> object:
        return [{"name": name} for name in COMMANDS]

    def query_name(self, _: dict) -> object:
        return {"name": self.vm.name} if self.vm.name else {}

    def query_kvm(self, _: dict) -> object:
        return {"enabled": self.vm.kvm, "present": self.vm.kvm}

    def query_target(self, _: dict) -> object:
        return {"arch": self.vm.target}

    def query_machines(self, _: dict) -> object:
        machines = []
        for info in self.vm.machine_types:
            entry: dict[str, object] = {"hotpluggable-cpus": False, "name": info.name,
                                        "numa-mem-supported": info.numa_mem_supported,
                                        "default-cpu-type": info.default_cpu_type}
            if info.default:
                entry["is-default"] = True
            entry.update({"cpu-max": info.cpu_max, "deprecated": False,
                          "default-ram-id": info.ram_id})
            machines.append(entry)
        return machines

    def query_cpus_fast(self, _: dict) -> object:
        cpus = []
        for cpu in range(self.vm.cpu_count):
            path, props = self.vm.cpu_view.cpu_info(cpu)
            cpus.append({"thread-id": self.vm.thread_id, "props": props, "qom-path": path,
                         "cpu-index": cpu, "target": self.vm.target})
        return cpus

    def query_chardev(self, _: dict) -> object:
        return [{"frontend-open": is_open, "filename": filename, "label": label}
                for label, filename, is_open in self.vm.chardev_info()]

    def query_block(self, _: dict) -> object:
        return block_commands.query_block(self.vm.machine.block)

    def query_named_block_nodes(self, _: dict) -> object:
        return block_commands.query_named_block_nodes(self.vm.machine.block)

    def blockdev_snapshot_sync(self, arguments: dict) -> object:
        return self._block_command(block_commands.blockdev_snapshot_sync, arguments)

    def blockdev_snapshot(self, arguments: dict) -> object:
        return self._block_command(block_commands.blockdev_snapshot, arguments)

    def blockdev_add(self, arguments: dict) -> object:
        return self._block_command(block_commands.blockdev_add, arguments)

    def blockdev_del(self, arguments: dict) -> object:
        return self._block_command(block_commands.blockdev_del, arguments)

    def _block_command(self, command: Callable[[object, dict], object],
                       arguments: dict) -> object:
        try:
            return command(self.vm.machine, arguments)
        except block_commands.BlockCommandError as exc:
            raise QmpError(str(exc), "GenericError") from None

    def stop(self, _: dict) -> object:
        self.vm.stop()
        return {}

    def cont(self, _: dict) -> object:
        self.vm.cont()
        return {}

    def system_reset(self, _: dict) -> object:
        self.vm.system_reset()
        return {}

    def system_powerdown(self, _: dict) -> object:
        self.vm.system_powerdown()
        return {}

    def quit(self, _: dict) -> object:
        self.vm.quit()
        return {}

    def human_monitor_command(self, arguments: dict) -> object:
        # QEMU runs each command in a new monitor: its CPU is cpu-index (or the first).
        cpu = arguments.get("cpu-index", 0)
        if not 0 <= cpu < self.vm.cpu_count:
            raise QmpError("Parameter 'cpu-index' expects a CPU number")
        self.hmp.cpu_index = cpu
        try:
            return self.hmp.execute(arguments["command-line"]).replace("\n", "\r\n")
        finally:
            self.hmp.cpu_index = 0


_NO_ARGS: tuple[Param, ...] = ()
COMMANDS: dict[str, QmpCommand] = {c.name: c for c in (
    QmpCommand("qmp_capabilities", (Param("enable", list, "array", False),),
               QmpMonitor.qmp_capabilities),
    QmpCommand("query-status", _NO_ARGS, QmpMonitor.query_status),
    QmpCommand("query-version", _NO_ARGS, QmpMonitor.query_version),
    QmpCommand("query-commands", _NO_ARGS, QmpMonitor.query_commands),
    QmpCommand("query-name", _NO_ARGS, QmpMonitor.query_name),
    QmpCommand("query-kvm", _NO_ARGS, QmpMonitor.query_kvm),
    QmpCommand("query-target", _NO_ARGS, QmpMonitor.query_target),
    QmpCommand("query-machines", _NO_ARGS, QmpMonitor.query_machines),
    QmpCommand("query-cpus-fast", _NO_ARGS, QmpMonitor.query_cpus_fast),
    QmpCommand("query-chardev", _NO_ARGS, QmpMonitor.query_chardev),
    QmpCommand("query-block", _NO_ARGS, QmpMonitor.query_block),
    QmpCommand("query-named-block-nodes", (Param("flat", bool, "bool", False),),
               QmpMonitor.query_named_block_nodes),
    QmpCommand("blockdev-snapshot-sync",
               (Param("device", str, "string", False), Param("node-name", str, "string", False),
                Param("snapshot-file", str, "string"),
                Param("snapshot-node-name", str, "string", False),
                Param("format", str, "string", False), Param("mode", str, "string", False)),
               QmpMonitor.blockdev_snapshot_sync),
    QmpCommand("blockdev-snapshot", (Param("node", str, "string"), Param("overlay", str, "string")),
               QmpMonitor.blockdev_snapshot),
    QmpCommand("blockdev-add", _NO_ARGS, QmpMonitor.blockdev_add, free_form=True),
    QmpCommand("blockdev-del", (Param("node-name", str, "string"),), QmpMonitor.blockdev_del),
    QmpCommand("snapshot-save",
               (Param("job-id", str, "string"), Param("tag", str, "string"),
                Param("vmstate", str, "string"), Param("devices", list, "array")),
               lambda monitor, args: snapshot_commands.qmp_snapshot_save(monitor.vm, args)),
    QmpCommand("snapshot-load",
               (Param("job-id", str, "string"), Param("tag", str, "string"),
                Param("vmstate", str, "string"), Param("devices", list, "array")),
               lambda monitor, args: snapshot_commands.qmp_snapshot_load(monitor.vm, args)),
    QmpCommand("snapshot-delete",
               (Param("job-id", str, "string"), Param("tag", str, "string"),
                Param("devices", list, "array")),
               lambda monitor, args: snapshot_commands.qmp_snapshot_delete(monitor.vm, args)),
    QmpCommand("query-jobs", _NO_ARGS,
               lambda monitor, args: snapshot_commands.qmp_query_jobs(monitor.vm, args)),
    QmpCommand("job-dismiss", (Param("id", str, "string"),),
               lambda monitor, args: snapshot_commands.qmp_job_dismiss(monitor.vm, args)),
    QmpCommand("stop", _NO_ARGS, QmpMonitor.stop),
    QmpCommand("cont", _NO_ARGS, QmpMonitor.cont),
    QmpCommand("system_reset", _NO_ARGS, QmpMonitor.system_reset),
    QmpCommand("system_powerdown", _NO_ARGS, QmpMonitor.system_powerdown),
    QmpCommand("quit", _NO_ARGS, QmpMonitor.quit),
    QmpCommand("human-monitor-command",
               (Param("command-line", str, "string"), Param("cpu-index", int, "int", False)),
               QmpMonitor.human_monitor_command),
)}
