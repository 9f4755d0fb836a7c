"""The human monitor (HMP): QEMU's ``(qemu)`` prompt on a chardev, and the command
engine that also answers QMP's ``human-monitor-command``.

:class:`HmpCommands` turns one command line into its output text (``\\n`` newlines,
as QEMU's monitor_printf); :class:`HmpMonitor` is the chardev frontend: a small
readline (echo, backspace, Ctrl-U, history with the arrow keys), the banner when a
client connects or the multiplexer first gives it the focus, and ``\\r\\n`` line ends
on the wire as QEMU's monitor_puts writes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from launcher.chardev import Chardev, ChardevEvent, MuxChardev
from launcher.monitor import block_commands, net_commands, snapshot_commands
from launcher.monitor.vm import QEMU_VERSION, MonitorError, Vm

PROMPT = "(qemu) "


def banner() -> str:
    major, minor, micro = QEMU_VERSION
    return f"QEMU {major}.{minor}.{micro} monitor - type 'help' for more information\n"


class HmpError(Exception):
    """A command's usage error: the text, then QEMU's 'Try "help CMD"' hint."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "cont|c"
    args: str  # the usage shown by help
    help: str
    run: Callable[[HmpCommands, str], str]

    @property
    def names(self) -> list[str]:
        return self.name.split("|")


# -- expressions (QEMU's monitor expr: + - * / % & | ^, unary - + ~, ( ), $reg) ---------
_TOKEN = re.compile(r"\s*(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*|\$[A-Za-z_][A-Za-z0-9_]*|.)")
_MASK = (1 << 64) - 1


class _Expr:
    def __init__(self, text: str, vm: Vm, cpu: int = 0) -> None:
        self.tokens = [t for t in _TOKEN.findall(text) if t.strip()]
        self.pos = 0
        self.vm = vm
        self.cpu = cpu  # whose registers $name reads

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> int:
        if not self.tokens:
            raise HmpError("expression expected")
        value = self.logic()
        if self.peek() is not None:
            raise HmpError("malformed expression" if self.peek() != ")" else "')' expected")
        return value & _MASK

    def logic(self) -> int:
        value = self.sum()
        while self.peek() in ("&", "|", "^"):
            op, rhs = self.take(), self.sum()
            value = value & rhs if op == "&" else value | rhs if op == "|" else value ^ rhs
        return value

    def sum(self) -> int:
        value = self.product()
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.product()
            value = value + rhs if op == "+" else value - rhs
        return value & _MASK

    def product(self) -> int:
        value = self.unary()
        while self.peek() in ("*", "/", "%"):
            op, rhs = self.take(), self.unary()
            if op == "*":
                value *= rhs
            else:
                if rhs == 0:
                    raise HmpError("division by zero")
                value = value // rhs if op == "/" else value % rhs
        return value & _MASK

    def unary(self) -> int:
        token = self.peek()
        if token is None:
            raise HmpError("unexpected end of expression")
        self.take()
        if token == "+":
            return self.unary()
        if token == "-":
            return -self.unary() & _MASK
        if token == "~":
            return ~self.unary() & _MASK
        if token == "(":
            value = self.logic()
            if self.peek() != ")":
                raise HmpError("')' expected")
            self.take()
            return value
        if token.startswith("$"):
            try:
                return self.vm.register(token[1:], self.cpu)
            except KeyError:
                raise HmpError("unknown register") from None
        if token[0].isdigit():
            return int(token, 0) if not (len(token) > 1 and token[0] == "0"
                                          and token[1] in "01234567") else int(token, 8)
        raise HmpError("invalid char in expression")


# -- /fmt for x, xp, p ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Format:
    count: int = 1
    letter: str = "x"
    size: int = 0  # 0: the default for the letter


def parse_format(text: str) -> Format:
    match = re.fullmatch(r"(\d*)([a-z]*)", text)
    if match is None:
        bad = next(c for c in text if not c.isalnum())
        raise HmpError(f"invalid char in format: '{bad}'")
    count = int(match.group(1)) if match.group(1) else 1
    letter, size = "x", 0
    for char in match.group(2):
        if char in "xduoci":
            letter = char
        elif char in "bhwg":
            size = {"b": 1, "h": 2, "w": 4, "g": 8}[char]
        else:
            raise HmpError(f"invalid char in format: '{char}'")
    return Format(count, letter, size)


class HmpCommands:
    """The command engine: ``execute(line)`` returns what the monitor prints."""

    def __init__(self, vm: Vm) -> None:
        self.vm = vm
        self.history: list[str] = []
        self.cpu_index = 0  # the monitor's current CPU (``cpu N``): registers, x, p

    def execute(self, line: str) -> str:
        line = line.strip()
        if not line:
            return ""
        name, _, rest = line.partition(" ")
        fmt = ""
        if "/" in name:
            name, fmt = name.split("/", 1)
        command = _BY_NAME.get(name)
        if command is None:
            return f"unknown command: '{line.split()[0]}'\n"
        try:
            if fmt and command.names[0] not in ("x", "xp", "print"):
                raise HmpError("invalid char in format")
            return command.run(self, (f"/{fmt} " if fmt else "") + rest.strip())
        except HmpError as exc:
            return f"{exc}\nTry \"help {name}\" for more information\n"
        except MonitorError as exc:
            return f"Error: {exc}\n"

    # -- commands -----------------------------------------------------------------------
    def help(self, args: str) -> str:
        if args:
            if args == "info":
                return "".join(f"info {c.name} {c.args} -- {c.help}\n" for c in _INFO)
            command = _BY_NAME.get(args)
            if command is None:
                return f"unknown command: '{args}'\n"
            return _help_line(command)
        return "".join(_help_line(c) for c in _COMMANDS)

    def info(self, args: str) -> str:
        if not args:
            return "".join(f"info {c.name} {c.args} -- {c.help}\n" for c in _INFO)
        sub = args.split()[0]
        for command in _INFO:
            if sub in command.names:
                return command.run(self, args[len(sub):].strip())
        return f"unknown command: 'info {sub}'\n"

    def info_version(self, _: str) -> str:
        major, minor, micro = QEMU_VERSION
        return f"{major}.{minor}.{micro} ({self.vm.package})\n"

    def info_status(self, _: str) -> str:
        vm = self.vm
        if vm.running:
            return "VM status: running\n"
        suffix = "" if vm.status == "paused" else f" ({vm.status})"
        return f"VM status: paused{suffix}\n"

    def info_registers(self, args: str) -> str:
        if args == "-a":  # every CPU's, one after the other
            return "".join(self.vm.registers_text(cpu) for cpu in range(self.vm.cpu_count))
        if args:
            raise HmpError(f"invalid option '{args}'" if args.startswith("-")
                           else "too many arguments")
        return self.vm.registers_text(self.cpu_index)

    def info_cpus(self, _: str) -> str:
        # (the harts share the loop's thread: QEMU's MTTCG would give each its own)
        return "".join(f"{'*' if cpu == self.cpu_index else ' '} CPU #{cpu}: "
                       f"thread_id={self.vm.thread_id}\n"
                       for cpu in range(self.vm.cpu_count))

    def cpu(self, args: str) -> str:
        index = _Expr(args, self.vm, self.cpu_index).parse() if args else None
        if index is None:
            raise HmpError("unexpected end of expression")
        if index >= self.vm.cpu_count:
            return "invalid CPU index\n"
        self.cpu_index = index
        return ""

    def info_mtree(self, _: str) -> str:
        machine_tree = getattr(self.vm.machine, "mtree", None)  # (the KVM machine's)
        return machine_tree() if machine_tree is not None else self._memory().mtree()

    def info_qtree(self, _: str) -> str:
        machine_tree = getattr(self.vm.machine, "qtree", None)
        if machine_tree is not None:
            return machine_tree()
        lines = ["bus: main-system-bus", "  type System"]
        for region in self._memory().regions():
            if region.kind.value == "i/o":
                lines.append(f"  dev: {region.name}, id \"\"")
                lines.append(f"    mmio {region.base:016x}/{region.end - region.base:016x}")
        return "\n".join(lines) + "\n"

    def _memory(self):  # -> the machine's llvmtcg.runtime.physmem.PhysicalAddressSpace
        memory = getattr(self.vm.machine, "memory", None)
        if memory is None:  # (the KVM machine keeps no memory tree)
            raise MonitorError("the memory tree is not available on this machine")
        return memory

    def info_chardev(self, _: str) -> str:
        return "".join(f"{label}: filename={filename}\n"
                       for label, filename, _open in self.vm.chardev_info())

    def info_block(self, args: str) -> str:
        return block_commands.info_block(self.vm.machine.block, args)

    def info_snapshots(self, _: str) -> str:
        return snapshot_commands.info(self.vm)

    def savevm(self, args: str) -> str:
        return snapshot_commands.savevm(self.vm, args.split()[0] if args else None)

    def loadvm(self, args: str) -> str:
        if not args:
            raise HmpError("loadvm: string expected")
        return snapshot_commands.loadvm(self.vm, args.split()[0])

    def delvm(self, args: str) -> str:
        if not args:
            raise HmpError("delvm: string expected")
        return snapshot_commands.delvm(self.vm, args.split()[0])

    def info_name(self, _: str) -> str:
        return f"{self.vm.name}\n" if self.vm.name else ""

    def info_kvm(self, _: str) -> str:
        return f"kvm support: {'enabled' if self.vm.kvm else 'disabled'}\n"

    def info_history(self, _: str) -> str:
        return "".join(f"{i}: '{line}'\n" for i, line in enumerate(self.history))

    def stop(self, _: str) -> str:
        self.vm.stop()
        return ""

    def cont(self, _: str) -> str:
        self.vm.cont()
        return ""

    def system_reset(self, _: str) -> str:
        self.vm.system_reset()
        return ""

    def system_powerdown(self, _: str) -> str:
        self.vm.system_powerdown()
        return ""

    def quit(self, _: str) -> str:
        self.vm.quit()
        return ""

    def x(self, args: str) -> str:
        return self._dump(args, physical=False)

    def xp(self, args: str) -> str:
        return self._dump(args, physical=True)

    def _dump(self, args: str, physical: bool) -> str:
        """QEMU's memory_dump: lines of 16 bytes (8 for bytes), each item formatted."""
        fmt = Format()
        if args.startswith("/"):
            fmt_text, _, args = args[1:].partition(" ")
            fmt = parse_format(fmt_text)
        if not args.strip():
            raise HmpError("address expected")
        addr = _Expr(args, self.vm, self.cpu_index).parse()
        if fmt.letter == "i":
            return self._disassemble(addr, fmt.count, physical)
        size = fmt.size or (1 if fmt.letter == "c" else 4)
        length = size * fmt.count
        line_size = 8 if size == 1 else 16
        digits = {"o": -(-size * 8 // 3), "u": -(-size * 80 // 33),
                  "d": -(-size * 80 // 33)}.get(fmt.letter, size * 2)
        out = []
        while length > 0:
            chunk = min(length, line_size)
            try:
                data = (self.vm.read_physical(addr, chunk) if physical
                        else self.vm.read_virtual(addr, chunk, self.cpu_index))
            except MonitorError:
                out.append(f"{addr:016x}: Cannot access memory\n")
                break
            items = []
            for i in range(0, chunk, size):
                value = int.from_bytes(data[i:i + size], "little")
                items.append(_format_item(fmt.letter, value, size, digits))
            out.append(f"{addr:016x}:" + "".join(" " + item for item in items) + "\n")
            addr += chunk
            length -= chunk
        return "".join(out)

    def _disassemble(self, addr: int, count: int, physical: bool) -> str:
        name = self.vm.target
        try:
            import capstone
            name, arch, mode = self.vm.cpu_view.disassembler(self.cpu_index)
            engine = capstone.Cs(arch, mode)
        except (ImportError, AttributeError, capstone.CsError):
            raise HmpError(f"no disassembler for {name} (capstone)") from None

        def read(addr: int, size: int) -> bytes:
            if physical:
                return self.vm.read_physical(addr, size)
            return self.vm.read_virtual(addr, size, self.cpu_index)

        if arch == capstone.CS_ARCH_RISCV:
            return self._disassemble_riscv(engine, read, addr, count)
        return self._disassemble_capstone(engine, read, addr, count)

    @staticmethod
    def _disassemble_riscv(engine, read: Callable[[int, int], bytes], addr: int,
                           count: int) -> str:
        """QEMU's own RISC-V disassembler's lines."""
        out = []
        for _ in range(count):
            try:
                data = read(addr, 4)
            except MonitorError:
                try:
                    data = read(addr, 2)
                except MonitorError:
                    out.append(f"0x{addr:016x}:  Cannot access memory\n")
                    break
            insn = next(engine.disasm(data, addr, 1), None)
            if insn is None:
                out.append(f"0x{addr:016x}:  {int.from_bytes(data[:4], 'little'):08x}"
                           "          illegal\n")
                addr += 4 if data[0] & 3 == 3 else 2
                continue
            word = int.from_bytes(insn.bytes, "little")
            hexword = f"{word:08x}" if insn.size == 4 else f"{word:04x}    "
            out.append(f"0x{addr:016x}:  {hexword}          {insn.mnemonic:<23} "
                       f"{insn.op_str}\n")
            addr += insn.size
        return "".join(out)

    @staticmethod
    def _disassemble_capstone(engine, read: Callable[[int, int], bytes], addr: int,
                              count: int) -> str:
        """QEMU's capstone lines (disas/capstone.c cap_dump_insn, x86: AT&T syntax, the
        first 8 bytes beside the instruction and the rest on lines of their own)."""
        import capstone
        split = 8
        engine.syntax = capstone.CS_OPT_SYNTAX_ATT
        out = []
        for _ in range(count):
            data = b""
            for size in (15, 8, 4, 2, 1):  # an instruction may end just before a hole
                try:
                    data = read(addr, size)
                    break
                except MonitorError:
                    continue
            insn = next(engine.disasm(data, addr, 1), None) if data else None
            if insn is None:
                out.append(f"0x{addr:08x}: unable to read memory\n" if not data else
                           f"0x{addr:08x}:  {data[0]:02x}{' ' * (3 * split - 2)} "
                           f"{'(bad)':<8} \n")
                if not data:
                    break
                addr += 1
                continue
            head = "".join(f"{b:02x} " for b in insn.bytes[:split])
            out.append(f"0x{addr:08x}:  {head:<{3 * split}} {insn.mnemonic:<8} "
                       f"{insn.op_str}\n")
            for i in range(split, insn.size, split):
                tail = "".join(f"{b:02x} " for b in insn.bytes[i:i + split])
                out.append(f"0x{addr + i:08x}:  {tail}\n")
            addr += insn.size
        return "".join(out)

    def print_(self, args: str) -> str:
        fmt = Format()
        if args.startswith("/"):
            fmt_text, _, args = args[1:].partition(" ")
            fmt = parse_format(fmt_text)
        value = _Expr(args, self.vm, self.cpu_index).parse()
        if fmt.letter == "o":
            return f"{value:#o}\n".replace("0o", "0")
        if fmt.letter == "u":
            return f"{value}\n"
        if fmt.letter == "d":
            return f"{value - (1 << 64) if value >> 63 else value}\n"
        if fmt.letter == "c":
            return _char(value & 0xFF) + "\n"
        return f"{value:#x}\n"

    def gdbserver(self, args: str) -> str:
        device = args or "tcp::1234"
        if self.vm.gdbserver is None:
            return f"Could not open gdbserver on device '{device}'\n"
        return self.vm.gdbserver(device)

    def log(self, args: str) -> str:
        if not args:
            raise HmpError("log: string expected")
        if self.vm.set_log is None:
            return "log: logging is set up at start only: use -d ITEMS\n"
        error = self.vm.set_log(args)
        return f"{error}\n" if error else ""

    def logfile(self, args: str) -> str:
        if not args:
            raise HmpError("logfile: filename expected")
        if self.vm.set_logfile is None:
            return "logfile: logging is set up at start only: use -D FILE\n"
        error = self.vm.set_logfile(args)
        return f"{error}\n" if error else ""


def _help_line(command: Command) -> str:
    return f"{command.name} {command.args} -- {command.help}\n"


def _char(value: int) -> str:
    if 32 <= value < 127:
        return f"'{chr(value)}'" if value not in (0x27, 0x5C) else f"'\\{chr(value)}'"
    return {0x0A: "'\\n'", 0x0D: "'\\r'"}.get(value, f"'\\x{value:02x}'")


def _format_item(letter: str, value: int, size: int, digits: int) -> str:
    if letter == "o":
        return f"{value:#{digits}o}".replace("0o", "0")
    if letter == "u":
        return f"{value:{digits}d}"
    if letter == "d":
        if size == 8 and value >> 63:
            value -= 1 << 64
        return f"{value:{digits}d}"
    if letter == "c":
        return _char(value)
    return f"0x{value:0{digits}x}"


_COMMANDS = [
    Command("c|cont", "", "resume emulation", HmpCommands.cont),
    Command("cpu", "index", "set the default CPU", HmpCommands.cpu),
    Command("delvm", "tag", "delete a VM snapshot from its tag", HmpCommands.delvm),
    Command("gdbserver", "[device]", "start gdbserver on given device (default 'tcp::1234'), "
            "stop with 'none'", HmpCommands.gdbserver),
    Command("help|?", "[cmd]", "show the help", HmpCommands.help),
    Command("hostfwd_add", "[netdev_id] [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport",
            "redirect TCP or UDP connections from host to guest (requires -net user)",
            net_commands.hostfwd_add),
    Command("hostfwd_remove", "[netdev_id] [tcp|udp]:[hostaddr]:hostport",
            "remove host-to-guest TCP or UDP redirection", net_commands.hostfwd_remove),
    Command("info", "[subcommand]", "show various information about the system state",
            HmpCommands.info),
    Command("loadvm", "tag", "restore a VM snapshot from its tag", HmpCommands.loadvm),
    Command("log", "item1[,...]", "activate logging of the specified items", HmpCommands.log),
    Command("logfile", "filename", "output logs to 'filename'", HmpCommands.logfile),
    Command("print|p", "/fmt expr", "print expression value (use $reg for CPU register "
            "access)", HmpCommands.print_),
    Command("quit|q", "", "quit the emulator", HmpCommands.quit),
    Command("savevm", "tag", "save a VM snapshot. If no tag is provided, a new snapshot is "
            "created", HmpCommands.savevm),
    Command("set_link", "name on|off", "change the link status of a network adapter",
            net_commands.set_link),
    Command("stop", "", "stop emulation", HmpCommands.stop),
    Command("system_powerdown", "", "send system power down event",
            HmpCommands.system_powerdown),
    Command("system_reset", "", "reset the system", HmpCommands.system_reset),
    Command("x", "/fmt addr", "virtual memory dump starting at 'addr'", HmpCommands.x),
    Command("xp", "/fmt addr", "physical memory dump starting at 'addr'", HmpCommands.xp),
]
_INFO = [
    Command("block", "", "show info of one block device or all block devices",
            HmpCommands.info_block),
    Command("chardev", "", "show the character devices", HmpCommands.info_chardev),
    Command("cpus", "", "show infos for each CPU", HmpCommands.info_cpus),
    Command("history", "", "show the command line history", HmpCommands.info_history),
    Command("kvm", "", "show KVM information", HmpCommands.info_kvm),
    Command("mtree", "", "show memory tree", HmpCommands.info_mtree),
    Command("name", "", "show the current VM name", HmpCommands.info_name),
    Command("network", "", "show the network state", net_commands.info_network),
    Command("qtree", "", "show device tree", HmpCommands.info_qtree),
    Command("registers", "[-a]", "show the cpu registers (-a: all - show register info "
            "for all cpus)", HmpCommands.info_registers),
    Command("snapshots", "", "show the currently saved VM snapshots",
            HmpCommands.info_snapshots),
    Command("status", "", "show the current VM status (running|paused)",
            HmpCommands.info_status),
    Command("version", "", "show the version of QEMU", HmpCommands.info_version),
]
_BY_NAME = {name: command for command in _COMMANDS for name in command.names}


class HmpMonitor:
    """The ``(qemu)`` prompt on a chardev (``-monitor``, ``-mon mode=readline``,
    ``mon:stdio`` after C-a c)."""

    def __init__(self, chardev: Chardev, vm: Vm) -> None:
        self.chardev = chardev
        self.commands = HmpCommands(vm)
        self._line = ""
        self._escape = ""
        self._history_index = 0
        self._banner_shown = False
        self._last_cr = False
        chardev.set_frontend(self)

    def _print(self, text: str) -> None:
        # Bytes as they came (the input is read as latin-1), as QEMU's monitor echoes
        # them; other characters (none come from the guest) as UTF-8.
        data = text.replace("\n", "\r\n")
        try:
            self.chardev.write(data.encode("latin-1"))
        except UnicodeEncodeError:
            self.chardev.write(data.encode())

    def event(self, event: ChardevEvent) -> None:
        if event is ChardevEvent.OPENED:
            self._line = ""
            self._banner_shown = False
            if isinstance(self.chardev, MuxChardev):
                return  # on a multiplexer the banner waits for the focus (MUX_IN)
            self._show_banner()
        elif event is ChardevEvent.MUX_IN:
            if self._banner_shown:
                self._print(PROMPT + self._line)
            else:
                self._show_banner()
        elif event is ChardevEvent.MUX_OUT:
            if self._banner_shown:
                self._print("\n")

    def _show_banner(self) -> None:
        self._banner_shown = True
        self._print(banner() + PROMPT)

    def receive(self, data: bytes) -> None:
        for char in data.decode("latin-1"):
            self._key(char)

    def _key(self, char: str) -> None:
        if self._escape:  # ESC [ A-style sequences: the arrow keys
            self._escape += char
            if len(self._escape) == 2 and char not in "[O":
                self._escape = ""
            elif len(self._escape) >= 3 and (char.isalpha() or char == "~"):
                sequence, self._escape = self._escape, ""
                if sequence[-1] in "AB":
                    self._recall(-1 if sequence[-1] == "A" else 1)
            return
        if char == "\x1b":
            self._escape = char
            return
        if char in "\r\n":
            if char == "\n" and self._last_cr:
                self._last_cr = False
                return  # CR LF is one Enter
            self._last_cr = char == "\r"
            self._enter()
            return
        self._last_cr = False
        if char in "\x7f\x08":
            if self._line:
                self._line = self._line[:-1]
                self.chardev.write(b"\b \b")
        elif char == "\x15":  # Ctrl-U: kill the line
            self.chardev.write(b"\b \b" * len(self._line))
            self._line = ""
        elif char >= " ":
            self._line += char
            self.chardev.write(char.encode("latin-1"))

    def _recall(self, step: int) -> None:
        history = self.commands.history
        if not history:
            return
        self._history_index = max(0, min(len(history), self._history_index + step))
        line = history[self._history_index] if self._history_index < len(history) else ""
        self.chardev.write(b"\b \b" * len(self._line) + line.encode("latin-1"))
        self._line = line

    def _enter(self) -> None:
        line, self._line = self._line, ""
        self._print("\n")
        if line.strip():
            self.commands.history.append(line)
        self._history_index = len(self.commands.history)
        output = self.commands.execute(line)
        quitting = line.split()[:1] in (["q"], ["quit"])
        self._print(output if quitting else output + PROMPT)  # (no prompt after quit)
