"""QEMU's system-emulator command line: ``-opt value`` options and ``key=value`` lists.

Syntax as qemu-system-*: options start with one dash (two are accepted too); an option
that takes an argument takes the next word, whatever it looks like; argument lists are
comma-separated ``key=value`` pairs where ``,,`` stands for a comma, the first element
may omit its key (``-machine virt`` is ``type=virt``), and ``help`` or ``?`` asks for
the list of what the option accepts. Errors carry QEMU's wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class OptionError(Exception):
    """A bad command line: ``option`` is the option text QEMU prefixes (``-m 12X``),
    or None for messages QEMU prints without one."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


HELP_WORDS = ("help", "?")


def split_list(text: str) -> list[str]:
    """Split a QEMU option list at single commas; ``,,`` is a literal comma."""
    parts, current, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == ",":
            if text[i + 1:i + 2] == ",":
                current.append(",")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


@dataclass(frozen=True, slots=True)
class OptList:
    """A parsed ``key=value,...`` list: the implied first value and the pairs in order."""

    implied: str | None
    pairs: tuple[tuple[str, str], ...]
    wants_help: bool

    def get(self, key: str, default: str | None = None) -> str | None:
        found = default
        for name, value in self.pairs:
            if name == key:
                found = value  # the last one wins, as in QemuOpts
        return found


def parse_list(text: str, option: str, implied_key: str | None = None) -> OptList:
    """``text`` as QemuOpts parses it for ``option`` (for messages)."""
    implied: str | None = None
    pairs: list[tuple[str, str]] = []
    wants_help = False
    for index, part in enumerate(split_list(text)):
        if part in HELP_WORDS and not (index == 0 and implied_key is not None):
            wants_help = True
            continue
        if "=" not in part:
            if index == 0 and implied_key is not None:
                implied = part
                continue
            if part == "":
                raise OptionError("Invalid parameter ''", option)
            raise OptionError(f"Expected '=' after parameter '{part}'", option)
        key, value = part.split("=", 1)
        if key in HELP_WORDS and value in ("", "on", "1"):
            wants_help = True
            continue
        if implied_key is not None and key == implied_key and index == 0:
            implied = value
            continue
        pairs.append((key, value))
    return OptList(implied, tuple(pairs), wants_help)


# -- sizes ---------------------------------------------------------------------------------
_SIZE = re.compile(r"^(0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?)([kKMGTPE]|[bB])?$")
_SUFFIX = {"b": 1, "B": 1, "k": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30,
           "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}

SIZE_HELP = ("Parameter 'size' expects a non-negative number below 2^64\n"
             "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
             "and exabytes, respectively.")


def parse_ram_size(text: str) -> int:
    """``-m`` sizes: MiB without a suffix; k/M/G/T/P/E; rounded up to 8 KiB (QEMU's
    ram_size alignment). 0 means the machine's default (returned as 0)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(text)
    number, suffix = match.groups()
    value = int(number, 16) if number.startswith("0x") else float(number)
    size = int(value * _SUFFIX.get(suffix or "M"))
    if size >= 1 << 64:
        raise ValueError(text)
    return -(-size // 8192) * 8192


# -- the options ----------------------------------------------------------------------------
@dataclass(slots=True)
class DriveSpec:
    text: str
    values: OptList


@dataclass(slots=True)
class Options:
    """Every option, as given (values are checked where they are used)."""

    machine: str | None = None  # -M type (None: the default machine)
    machine_props: list[tuple[str, str]] = field(default_factory=list)
    machine_help: bool = False
    machine_text: str = ""
    memory: str | None = None
    smp: str | None = None
    cpu: str | None = None
    accel: list[str] = field(default_factory=list)
    bios: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    dtb: str | None = None
    nographic: bool = False
    display: str | None = None
    serial: list[str] = field(default_factory=list)
    chardevs: list[str] = field(default_factory=list)
    monitors: list[str] = field(default_factory=list)
    mons: list[str] = field(default_factory=list)
    qmps: list[str] = field(default_factory=list)
    start_paused: bool = False  # -S: do not start the CPU (until gdb or a monitor continues)
    no_shutdown: bool = False
    drives: list[str] = field(default_factory=list)
    blockdevs: list[str] = field(default_factory=list)
    snapshot: bool = False
    loadvm: str | None = None  # -loadvm NAME: start from that internal VM snapshot
    devices: list[str] = field(default_factory=list)
    numa: list[str] = field(default_factory=list)  # -numa node,... / -numa dist,...
    objects: list[str] = field(default_factory=list)  # -object memory-backend-ram,...
    # -netdev/-nic/-net in command-line order, as (option name, value).
    networks: list[tuple[str, str]] = field(default_factory=list)
    no_reboot: bool = False
    nodefaults: bool = False  # no default devices (llvmtcg's machines create none anyway)
    gdb: list[str] = field(default_factory=list)  # -gdb DEV; -s is -gdb tcp::1234
    log_items: str | None = None
    log_file: str | None = None
    show_help: bool = False
    show_version: bool = False


# name -> (takes an argument, the attribute or list it goes to)
_TABLE: dict[str, tuple[bool, str]] = {
    "M": (True, "machine"), "machine": (True, "machine"),
    "m": (True, "memory"), "smp": (True, "smp"), "cpu": (True, "cpu"),
    "accel": (True, "accel+"), "bios": (True, "bios"), "kernel": (True, "kernel"),
    "initrd": (True, "initrd"), "append": (True, "append"), "dtb": (True, "dtb"),
    "nographic": (False, "nographic"), "display": (True, "display"),
    "serial": (True, "serial+"), "chardev": (True, "chardevs+"),
    "monitor": (True, "monitors+"), "mon": (True, "mons+"), "qmp": (True, "qmps+"),
    "S": (False, "start_paused"), "no-shutdown": (False, "no_shutdown"),
    "drive": (True, "drives+"), "blockdev": (True, "blockdevs+"),
    "snapshot": (False, "snapshot"), "loadvm": (True, "loadvm"),
    "device": (True, "devices+"), "numa": (True, "numa+"), "object": (True, "objects+"),
    "netdev": (True, "net:netdev"), "nic": (True, "net:nic"), "net": (True, "net:net"),
    "no-reboot": (False, "no_reboot"), "d": (True, "log_items"), "D": (True, "log_file"),
    "nodefaults": (False, "nodefaults"),
    "gdb": (True, "gdb+"), "s": (False, "gdb_default"),
    "h": (False, "show_help"), "help": (False, "show_help"),
    "version": (False, "show_version"),
}

OPTION_NAMES = tuple(_TABLE)


def parse_args(argv: list[str]) -> Options:
    """The options in ``argv`` (without the program name)."""
    options = Options()
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-") or word == "-":
            raise OptionError("invalid option", word)  # QEMU 7.2 takes no image name here
        name = word[2:] if word.startswith("--") else word[1:]
        entry = _TABLE.get(name)
        if entry is None:
            raise OptionError("invalid option", word)
        takes_arg, target = entry
        if not takes_arg:
            if target == "gdb_default":
                options.gdb.append("tcp::1234")  # QEMU's DEFAULT_GDBSTUB_PORT
            else:
                setattr(options, target, True)
            continue
        if i >= len(argv):
            raise OptionError("requires an argument", word)
        value = argv[i]
        i += 1
        if target.endswith("+"):
            getattr(options, target[:-1]).append(value)
        elif target.startswith("net:"):
            options.networks.append((target[4:], value))
        elif target == "machine":
            _machine_option(options, value, word)
        else:
            setattr(options, target, value)
    return options


def _machine_option(options: Options, value: str, word: str) -> None:
    parsed = parse_list(value, f"{word} {value}", implied_key="type")
    if parsed.implied is not None:
        options.machine = parsed.implied
    options.machine_props.extend(parsed.pairs)  # merged over all -M, later ones win
    options.machine_help = options.machine_help or parsed.wants_help
    options.machine_text = f"{word} {value}"
