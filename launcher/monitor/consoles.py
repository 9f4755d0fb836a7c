"""The command line's character devices and monitors, as QEMU's vl.c sets them up.

``-chardev`` opens named backends (``mux=on`` wraps one in a multiplexer); ``-serial``,
``-monitor`` and ``-qmp`` take shorthands (``mon:`` muxes the serial port with a human
monitor) and name their chardevs ``serial0``, ``compat_monitor0``, ``compat_monitor1``…;
``-mon chardev=ID,mode=readline|control`` puts a monitor on a named one. With
``-nographic`` and neither a serial nor a monitor option the serial port is
``mon:stdio``; with only one of them given, the other defaults to ``stdio`` alone.

:func:`open_consoles` opens every backend before the machine exists (so a bad option
fails early and ``wait=on`` servers wait first); :meth:`Consoles.start` binds the
frontends (monitors first, then the serial port, which gets the multiplexer's focus)
and hands the backends to the machine loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from launcher.chardev import (
    Chardev,
    ChardevError,
    ChardevEvent,
    ChardevSpec,
    MuxChardev,
    StdioChardev,
    open_chardev,
    parse_bool,
    parse_chardev,
    parse_shorthand,
)


class ConsoleError(Exception):
    """A bad chardev/monitor option: QEMU's message and the option it is about."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


@dataclass(slots=True)
class ConsoleOptions:
    chardevs: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)
    monitors: list[str] = field(default_factory=list)  # -monitor
    mons: list[str] = field(default_factory=list)  # -mon
    qmps: list[str] = field(default_factory=list)  # -qmp
    nographic: bool = False


SERIAL_INPUT_LIMIT = 4096  # bytes queued for the guest before the backend holds back


class SerialPort:
    """The machine's serial0 as a chardev frontend (loop thread): input is queued in
    the machine's SerialInput up to SERIAL_INPUT_LIMIT bytes, then held back in the
    host until the guest has read it all."""

    def __init__(self, serial_input, send_break: Callable[[], None] | None) -> None:  # noqa: ANN001
        self._input = serial_input
        self._break = send_break
        self.chardev: Chardev | None = None
        serial_input.on_drained = self._drained

    def can_receive(self) -> int:
        return max(0, SERIAL_INPUT_LIMIT - self._input.pending)

    def _drained(self) -> None:
        if self.chardev is not None:
            self.chardev.accept_input()

    def receive(self, data: bytes) -> None:
        self._input.push(data)

    def event(self, event: ChardevEvent) -> None:
        if event is ChardevEvent.BREAK and self._break is not None:
            self._break()


@dataclass(slots=True)
class Consoles:
    """The opened character devices and who uses them."""

    chardevs: dict[str, Chardev] = field(default_factory=dict)  # label -> backend
    roots: list[Chardev] = field(default_factory=list)  # what the loop is handed
    serial: Chardev | None = None
    monitors: list[tuple[Chardev, str]] = field(default_factory=list)  # (chardev, mode)
    quit: Callable[[], None] = lambda: None  # bound to the loop once it exists

    def restore_terminal(self) -> None:
        for chardev in self.chardevs.values():
            if isinstance(chardev, StdioChardev):
                chardev.restore()

    def close(self) -> None:
        for chardev in reversed(list(self.chardevs.values())):
            try:
                chardev.close()
            except OSError:
                pass

    def start(self, loop, vm, serial_port: SerialPort | None) -> None:  # noqa: ANN001
        """Bind the monitors and the serial port, then let the loop serve them."""
        from launcher.monitor.hmp import HmpMonitor
        from launcher.monitor.qmp import QmpMonitor
        for chardev, mode in self.monitors:
            if mode == "control":
                QmpMonitor(chardev, vm)
            else:
                HmpMonitor(chardev, vm)
        if self.serial is not None and serial_port is not None:
            self.serial.set_frontend(serial_port)
            serial_port.chardev = self.serial
        for chardev in self.roots:
            loop.post(lambda chardev=chardev: chardev.attach(loop))


def open_consoles(options: ConsoleOptions, *, info: Callable[[str, str], None],
                  announce: Callable[[str], None]) -> Consoles:
    """Open every backend the options name. ConsoleError in QEMU's words (what was
    opened before the error is closed again: a terminal goes back to cooked mode)."""
    consoles = Consoles()
    try:
        return _open(consoles, options, info, announce)
    except BaseException:
        consoles.close()
        raise


def _open(consoles: Consoles, options: ConsoleOptions, info: Callable[[str, str], None],
          announce: Callable[[str], None]) -> Consoles:
    from launcher.system.options import parse_list  # (launcher.system imports this module)
    specs: dict[str, ChardevSpec] = {}

    def add(spec: ChardevSpec, option: str) -> Chardev:
        label = spec.id or ""
        if label in consoles.chardevs:
            raise ConsoleError(f"Duplicate ID '{label}' for chardev", option)
        mux = spec.flag("mux", False)
        try:
            backend = open_chardev(spec, announce=announce,
                                   info=lambda text: info(option, text))
        except ChardevError as exc:
            raise ConsoleError(str(exc), option) from None
        if not mux:
            consoles.chardevs[label] = backend
            consoles.roots.append(backend)
            return backend
        backend.id = f"{label}-base"
        consoles.chardevs[backend.id] = backend
        muxed = MuxChardev(label, backend, on_quit=lambda: consoles.quit())
        consoles.chardevs[label] = muxed
        consoles.roots.append(muxed)
        return muxed

    for text in options.chardevs:
        option = f"-chardev {text}"
        parsed = parse_list(text, option, implied_key="backend")
        try:
            spec = parse_chardev(parsed.implied, list(parsed.pairs))
            spec.flag("mux", False)
        except ChardevError as exc:
            raise ConsoleError(str(exc), option) from None
        specs[spec.id or ""] = spec
        add(spec, option)

    monitor_count = 0

    def shorthand(text: str, label: str, option: str) -> Chardev:
        if text.startswith("chardev:"):
            name = text[len("chardev:"):]
            if name not in consoles.chardevs:
                raise ConsoleError(f"chardev \"{name}\" not found", option)
            return consoles.chardevs[name]
        try:
            spec = parse_shorthand(text, label)
        except ChardevError as exc:
            raise ConsoleError(str(exc), option) from None
        return add(spec, option)

    # QEMU's order: -chardev, then -serial, then the monitors as given.
    serials = list(options.serials)
    monitors = [(text, "readline") for text in options.monitors]
    monitors += [(text, "control") for text in options.qmps]
    default_monitor = not (options.monitors or options.qmps or options.mons)
    if options.nographic:  # vl.c: the console and the monitor go to stdio
        if not serials and default_monitor:
            serials = ["mon:stdio"]
        elif not serials:
            serials = ["stdio"]
        elif default_monitor:
            monitors.append(("stdio", "readline"))
    stdio_users = [t for t in serials[:1] + [t for t, _ in monitors]
                   if t in ("stdio", "mon:stdio")]
    if len(stdio_users) > 1:
        raise ConsoleError("cannot use stdio by multiple character devices",
                           f"-serial {serials[0]}" if serials and serials[0] in stdio_users
                           else None)

    for text, mode in monitors:
        option = f"-{'monitor' if mode == 'readline' else 'qmp'} {text}"
        chardev = shorthand(text, f"compat_monitor{monitor_count}", option)
        monitor_count += 1
        consoles.monitors.append((chardev, mode))
    for text in options.mons:
        option = f"-mon {text}"
        parsed = parse_list(text, option, implied_key="chardev")
        values = dict(parsed.pairs)
        name = parsed.implied or values.pop("chardev", None)
        for key in values:
            if key not in ("mode", "pretty"):
                raise ConsoleError(f"Invalid parameter '{key}'", option)
        mode = values.get("mode", "readline")
        if mode not in ("readline", "control"):
            raise ConsoleError(f"Parameter 'mode' does not accept value '{mode}'", option)
        if "pretty" in values:
            try:
                parse_bool("pretty", values["pretty"])
            except ChardevError as exc:
                raise ConsoleError(str(exc), option) from None
        if not name or name not in consoles.chardevs:
            raise ConsoleError(f"chardev \"{name or ''}\" not found", option)
        consoles.monitors.append((consoles.chardevs[name], mode))

    for index, text in enumerate(serials[:1]):
        if text == "none":
            break
        option = f"-serial {text}"
        serial = shorthand(text, f"serial{index}", option)
        consoles.serial = serial
        if text.startswith("mon:"):
            consoles.monitors.insert(0, (serial, "readline"))
    if len(serials) > 1:
        raise ConsoleError("the machine has one serial port", f"-serial {serials[1]}")

    users: dict[int, int] = {}
    for chardev, _ in consoles.monitors:
        users[id(chardev)] = users.get(id(chardev), 0) + 1
    if consoles.serial is not None:
        users[id(consoles.serial)] = users.get(id(consoles.serial), 0) + 1
    for chardev in consoles.chardevs.values():
        if users.get(id(chardev), 0) > 1 and not isinstance(chardev, MuxChardev):
            raise ConsoleError(f"Device '{chardev.id}' is in use")
    return consoles
