"""``llvmtcg-system-x86_64``: qemu-system-x86_64's command line for x86-64 guests under
KVM (also ``python -m launcher.system_x86_64``).

llvmtcg has no x86-64 translator, so the only accelerator that runs anything is KVM:
``-accel kvm`` (or ``-machine accel=kvm``). Accelerators are tried in the order given
(``-accel kvm -accel tcg``, ``-machine accel=kvm:tcg``), and a KVM that cannot be used
falls back to the next as QEMU does — to ``tcg``, which says in one line that it
cannot run x86-64 code. The only machine is ``microvm`` (machines/x86_64_microvm.py).
The option syntax, messages and serial backends are the shared ones
(launcher/system/).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from launcher.monitor.consoles import Consoles
from launcher.system.main import (
    Exit,
    _gdb_monitor,
    _gdbserver,
    _line_writer,
    _open_consoles,
    _Signals,
    run_reporting_errors,
)
from launcher.system.main import Target as Target
from launcher.system.options import (
    HELP_WORDS,
    Options,
    parse_args,
    parse_list,
    parse_ram_size,
    split_list,
)

if TYPE_CHECKING:  # the machine is imported only when one is built
    from machines.x86_64_microvm import DebugExitOptions, MicrovmOptions, X86Machine

TARGET = Target(name="x86_64", prog="llvmtcg-system-x86_64")
MACHINES = {"microvm": "microvm (i386)"}  # QEMU 7.2's -M help text
ACCELERATORS = ("tcg", "kvm")  # what -accel help lists (QEMU's order)
NO_X86_TCG = ("x86-64 guests cannot run under tcg: llvmtcg has no x86-64 translator "
              "(use -accel kvm)")
HVF_ONLY_MACOS = "invalid accelerator hvf (hvf exists only on macOS hosts; use -accel kvm)"
_MACHINE_PROPS = ("accel", "acpi", "type")


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the launcher; returns the exit status (tests call this directly)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = sys.argv[1:] if argv is None else argv
    return run_reporting_errors(TARGET, lambda: _main(args, out, err), err)


def _fail(message: str, option: str | None = None) -> Exit:
    return Exit(1, message, option)


def usage() -> str:
    return (f"usage: {TARGET.prog} [options]\n"
            "QEMU 7.2-compatible x86-64 system emulator on KVM (llvmtcg).\n\n"
            "  -accel kvm                        accelerator (-accel help)\n"
            "  -M/-machine microvm[,accel=kvm]   machine (-M help)\n"
            "  -m SIZE[M|G]                      RAM size\n"
            "  -bios FILE                        firmware (a multiple of 64 KiB)\n"
            "  -kernel bzImage  -initrd FILE  -append CMDLINE   direct Linux boot\n"
            "  -nographic  -display none  -serial stdio|mon:stdio|null|file:PATH\n"
            "  -device isa-debug-exit[,iobase=N,iosize=N]\n"
            "  -drive file=FILE,format=raw,if=none,id=ID\n"
            "  -device virtio-blk-device,drive=ID  -device virtio-rng-device\n"
            "  -chardev ...  -monitor DEV  -qmp DEV  -mon chardev=ID  (docs/managing.md)\n"
            "  -S  -no-shutdown  -gdb tcp::PORT|unix:PATH  -s (= -gdb tcp::1234)\n"
            "  -no-reboot  -d guest_errors  -D LOGFILE  -version\n")


def _main(args: list[str], out: TextIO, err: TextIO) -> int:
    options = parse_args(args)
    if options.show_help:
        out.write(usage())
        return 0
    if options.show_version:
        out.write(f"{TARGET.prog} version 0.1.0 (QEMU 7.2 command line)\n")
        return 0
    listing = _help_request(options)
    if listing is not None:
        out.write(listing)
        return 0
    machine_name = options.machine or "microvm"  # QEMU's default is pc, which we lack
    if machine_name not in MACHINES:
        raise _fail("unsupported machine type\nUse -machine help to list supported machines")

    from machines import x86_64_microvm as microvm
    machine_options, no_reboot, log_path = _check(options, machine_name)
    accelerators = _accelerators(options)
    log_stream: TextIO | None = None
    guest_error = None
    if log_path is not None:
        log_stream = err if log_path == "" else _open_log(log_path)
        guest_error = _line_writer(log_stream)
    listener = _gdb_listener(options)
    consoles = _open_consoles(TARGET, options, err)
    serial = consoles.serial
    try:
        machine = _build_with_fallback(accelerators, machine_options,
                                       serial.write if serial is not None else None,
                                       guest_error, lambda text: err.write(
                                           f"{TARGET.prog}: {text}\n"))
        try:
            return _run(machine, consoles, no_reboot, options, listener, err)
        finally:
            machine.close()
    except microvm.MicrovmError as exc:
        raise _fail(str(exc), exc.option) from None
    finally:
        consoles.close()
        if listener is not None:
            listener.close()
        if log_stream is not None and log_stream is not err:
            log_stream.close()


def _help_request(options: Options) -> str | None:
    if options.machine in HELP_WORDS:
        lines = ["Supported machines are:"]
        lines += [f"{name:<20} {text}" for name, text in sorted(MACHINES.items())]
        return "\n".join(lines) + "\n"
    for text in options.accel:
        if parse_list(text, f"-accel {text}", "accel").implied in HELP_WORDS:
            return "Accelerators supported in QEMU binary:\n" + "".join(
                f"{name}\n" for name in ACCELERATORS)
    for text in options.devices:
        parts = split_list(text)
        if parts[0] in HELP_WORDS:
            from machines.virtio_devices import device_list_text
            return device_list_text() + '\nUncategorized devices:\n' \
                'name "isa-debug-exit", bus ISA\n'
    return None


def _accelerators(options: Options) -> list[str]:
    """The accelerators to try, in order (QEMU: every -accel, else -machine accel=,
    else tcg)."""
    names: list[str] = []
    for text in options.accel:
        parsed = parse_list(text, f"-accel {text}", "accel")
        name = parsed.implied or ""
        if name == "hvf":
            raise _fail(HVF_ONLY_MACOS, f"-accel {text}")
        if name not in ACCELERATORS:
            raise _fail(f"invalid accelerator {name}", f"-accel {text}")
        for key, _ in parsed.pairs:
            raise _fail(f"Property '{name}-accel.{key}' not found", f"-accel {text}")
        names.append(name)
    if names:
        return names
    machine_accel = dict(options.machine_props).get("accel")
    if machine_accel is not None:
        for name in machine_accel.split(":"):
            if name == "hvf":
                raise _fail(HVF_ONLY_MACOS)
            if name not in ACCELERATORS:
                raise _fail(f"invalid accelerator {name}")
            names.append(name)
        return names
    return ["tcg"]


def _check(options: Options, machine_name: str) -> tuple[MicrovmOptions, bool, str | None]:
    """The machine options, -no-reboot and the -d log path ("" = stderr, None = off)."""
    from machines.machine import DeviceOptions
    from machines.x86_64_microvm import MicrovmOptions

    props = dict(options.machine_props)
    for name, _ in options.machine_props:
        if name not in _MACHINE_PROPS:
            raise _fail(f"Property '{machine_name}-machine.{name}' not found")
    if props.get("acpi", "off") not in ("off", "auto"):
        raise _fail("microvm with acpi=on is not supported by llvmtcg (no ACPI tables): "
                    "use acpi=off, which is what llvmtcg's microvm models")
    if options.smp is not None:
        parsed = parse_list(options.smp, f"-smp {options.smp}", "cpus")
        if parsed.implied not in (None, "1") or parsed.pairs:
            raise _fail("llvmtcg's KVM accelerator runs one vCPU: use -smp 1")
    if options.cpu is not None and split_list(options.cpu)[0] not in ("qemu64",):
        raise _fail(f"unable to find CPU model '{split_list(options.cpu)[0]}' (llvmtcg's "
                    "KVM guests have the qemu64 model)")
    if options.dtb is not None:
        raise _fail("-dtb is not used on x86 (the kernel gets an e820 map)")
    for name, value in (("-initrd", options.initrd), ("-append", options.append)):
        if value is not None and options.kernel is None:
            raise _fail(f"{name} only allowed with -kernel option")
    ram_size = None
    if options.memory is not None:
        parsed = parse_list(options.memory, f"-m {options.memory}", "size")
        if parsed.pairs:
            raise _fail(f"Invalid parameter '{parsed.pairs[0][0]}'", f"-m {options.memory}")
        try:
            ram_size = parse_ram_size(parsed.implied or "") or None
        except ValueError:
            raise _fail("Parameter 'size' expects a non-negative number below 2^64",
                        f"-m {options.memory}") from None
    if options.display is not None and split_list(options.display)[0] != "none":
        raise _fail(f"Display '{split_list(options.display)[0]}' is not available.")
    if options.networks:  # the shared parser knows -netdev/-nic/-net (launcher/net)
        kind, text = options.networks[0]
        raise _fail("networking is not supported by the KVM launcher yet", f"-{kind} {text}")
    debug_exits: list[DebugExitOptions] = []
    virtio: list[DeviceOptions] = []
    for text in options.devices:
        parts = split_list(text)
        pairs = []
        for part in parts[1:]:
            if "=" not in part:
                raise _fail(f"Expected '=' after parameter '{part}'", f"-device {text}")
            pairs.append(tuple(part.split("=", 1)))
        if parts[0] == "isa-debug-exit":
            debug_exits.append(_debug_exit(dict(pairs), f"-device {text}"))
        else:
            device_id = dict(pairs).get("id")
            props = tuple((k, v) for k, v in pairs if k != "id")
            virtio.append(DeviceOptions(parts[0], props, device_id, f"-device {text}"))
    if options.loadvm is not None:
        raise _fail("VM snapshots are not supported with KVM yet", f"-loadvm {options.loadvm}")
    from launcher.system.main import _check_drive
    drives = tuple(_check_drive(text, options.snapshot) for text in options.drives)
    log_path = None
    if options.log_items is not None:
        items = {i for i in options.log_items.split(",") if i}
        if items - {"guest_errors"}:
            raise _fail("only -d guest_errors is supported with KVM (no code is "
                        "translated)")
        log_path = options.log_file or ""
    return (MicrovmOptions(ram_size=ram_size, bios=options.bios, kernel=options.kernel,
                           initrd=options.initrd, append=options.append,
                           virtio_devices=tuple(virtio), drives=drives,
                           debug_exit=tuple(debug_exits)),
            options.no_reboot, log_path)


def _debug_exit(props: dict[str, str], option: str) -> DebugExitOptions:
    from machines.x86_64_microvm import DebugExitOptions
    values = {"iobase": DebugExitOptions.iobase, "iosize": DebugExitOptions.iosize}
    for key, text in props.items():
        if key not in values:
            raise _fail(f"Property 'isa-debug-exit.{key}' not found", option)
        try:
            number = int(text, 0)
        except ValueError:
            raise _fail(f"Property 'isa-debug-exit.{key}' doesn't take value '{text}'",
                        option) from None
        if not 0 <= number <= 0xFFFF or (key == "iosize" and number == 0):
            raise _fail(f"Property 'isa-debug-exit.{key}' doesn't take value '{text}'",
                        option)
        values[key] = number
    return DebugExitOptions(values["iobase"], values["iosize"])


def _open_log(path: str) -> TextIO:
    try:
        return open(path, "w")  # noqa: SIM115 - closed by _main
    except OSError as exc:
        raise _fail(f"Error opening logfile {path}: {exc.strerror}") from None


def _build_with_fallback(accelerators: list[str], options: MicrovmOptions,
                         serial_out: Callable[[bytes], object] | None,
                         guest_error: Callable[[str], None] | None,
                         note: Callable[[str], None]) -> X86Machine:
    """Build the machine with the first accelerator that works (QEMU's order and
    messages); only KVM can run x86-64 code here."""
    import dataclasses

    from launcher.accel.kvm import KvmError, KvmUnavailable
    from machines import x86_64_microvm as microvm

    options = dataclasses.replace(options, serial_out=serial_out, guest_error=guest_error)
    for index, name in enumerate(accelerators):
        last = index == len(accelerators) - 1
        option = "-accel " + name
        if name == "tcg":
            raise _fail(NO_X86_TCG, option)
        try:
            return microvm.build(options)
        except KvmUnavailable as exc:
            if last:
                raise _fail(str(exc), option) from None
            note(f"{option}: {exc}")
            note(f"falling back to {accelerators[index + 1]}")
        except KvmError as exc:
            raise _fail(str(exc), option) from None
    raise _fail(NO_X86_TCG)


def _gdb_listener(options: Options):  # -> socket.socket | None
    """The -gdb DEV / -s listening socket (QEMU's gdbstub devices), or None."""
    from llvmtcg.gdbstub import GdbAddressError, listen
    device = options.gdb[-1] if options.gdb else None
    if device is None or device == "none":
        return None
    try:
        return listen(device)
    except GdbAddressError as exc:
        raise _fail(str(exc), f"-gdb {device}") from None


def _run(machine: X86Machine, consoles: Consoles, no_reboot: bool, options: Options,
         listener, err: TextIO) -> int:  # listener: socket.socket | None
    from launcher.accel.kvm_cpu import KvmCpuError
    from launcher.accel.kvm_gdb import KvmDebugger
    from launcher.accel.kvm_monitor import KvmX86Cpus
    from launcher.monitor.consoles import SerialPort
    from launcher.monitor.vm import MachineTypeInfo, Vm
    from machines.loop import RunState

    cpu = machine.create_cpu()
    for text in machine.warnings:
        err.write(f"{TARGET.prog}: warning: {text}\n")
    # The vCPU under a gdbstub (-gdb, -s, or the monitor's gdbserver later).
    debugger = KvmDebugger(cpu, machine.ram.read, machine.ram.write, listener)
    loop = machine.make_loop(debugger, no_reboot=no_reboot)  # type: ignore[arg-type]
    loop.no_shutdown = options.no_shutdown
    if options.start_paused:
        loop.state = RunState.PRELAUNCH
    consoles.quit = lambda: loop.request_shutdown(0, "host-qmp-quit")
    # The monitors run on the loop's thread, the vCPU's: a command is served between
    # two KVM_RUNs (the I/O thread kicks the vCPU out of KVM_RUN: kvm_cpu.KvmCpu.stop).
    vm = Vm(loop, machine, TARGET.name, "llvmtcg 0.1.0", dict(consoles.chardevs),
            [MachineTypeInfo("microvm", False, "microvm.ram", cpu_max=1,
                             default_cpu_type="qemu64-x86_64-cpu")],
            cpus=KvmX86Cpus(cpu), physical=machine.ram.read, kvm=True,
            gdbserver=lambda device: _gdbserver(debugger, device))
    debugger.monitor_command = _gdb_monitor(vm)
    consoles.start(loop, vm, SerialPort(machine.serial_input, machine.serial_break))
    debugger.attach(loop)
    try:
        with _Signals(TARGET, loop, consoles, err):
            return loop.run()
    except KvmCpuError as exc:
        raise Exit(1, str(exc)) from None


def entry() -> None:
    """The console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
