"""llvmtcg-system-riscv64: QEMU's option syntax, help listings, error messages, dumpdtb
against QEMU's, and the one missing piece (the system CPU) reported in one line."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from launcher.system.options import (
    OptionError,
    parse_args,
    parse_list,
    parse_ram_size,
    split_list,
)
from launcher.system_riscv64 import main
from tests.machines.support import (
    IMAGES,
    QEMU,
    REPO,
    image,
    needs_images,
    needs_qemu,
    tree_as_dict,
)

PROG = "llvmtcg-system-riscv64"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    from launcher.system import main as system_main
    from launcher.system_riscv64 import TARGET
    status = system_main(TARGET, list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def qemu(*argv: str) -> tuple[int, str, str]:
    assert QEMU is not None
    result = subprocess.run([QEMU, *argv], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr


# -- the syntax ------------------------------------------------------------------------------
def test_option_lists_split_at_single_commas() -> None:
    assert split_list("a,b=c,,d,e") == ["a", "b=c,d", "e"]
    parsed = parse_list("virt,dumpdtb=/tmp/a,,b.dtb", "-M", implied_key="type")
    assert parsed.implied == "virt" and parsed.pairs == (("dumpdtb", "/tmp/a,b.dtb"),)
    assert parse_list("virt,help", "-M", "type").wants_help
    assert parse_list("help", "-M", "type").implied == "help"
    with pytest.raises(OptionError, match="Expected '=' after parameter 'dumpdtb'"):
        parse_list("virt,dumpdtb", "-M virt,dumpdtb", "type")


@pytest.mark.parametrize("text,size", [
    ("64", 64 << 20), ("256M", 256 << 20), ("1G", 1 << 30), ("1.5G", 3 << 29),
    ("1000k", 0xFA000), ("100", 0x6400000), ("0", 0), ("5000", 5000 << 20),
])
def test_ram_sizes_as_qemu_reads_them(text: str, size: int) -> None:
    assert parse_ram_size(text) == size


def test_options_take_the_next_word_whatever_it_is() -> None:
    options = parse_args(["-append", "-foo console=ttyS0", "--kernel", "Image", "-nographic",
                          "-M", "virt", "-M", "dumpdtb=x.dtb", "-serial", "null", "-serial",
                          "stdio", "-device", "a", "-device", "b"])
    assert options.append == "-foo console=ttyS0" and options.kernel == "Image"
    assert options.nographic and options.machine == "virt"
    assert options.machine_props == [("dumpdtb", "x.dtb")]  # -M options merge, as in QEMU
    assert options.serial == ["null", "stdio"] and options.devices == ["a", "b"]


# -- help ----------------------------------------------------------------------------------
def test_machine_help_lists_machines_as_qemu() -> None:
    status, out, _ = run("-M", "help")
    assert status == 0
    assert out == ("Supported machines are:\n"
                   "spike                RISC-V Spike board (default)\n"
                   "virt                 RISC-V VirtIO board\n")


@needs_qemu
def test_help_lines_are_qemus() -> None:
    """Each line we print is the line QEMU prints (QEMU lists more)."""
    for args in (["-M", "help"], ["-machine", "virt,help"], ["-cpu", "help"],
                 ["-device", "help"], ["-device", "virtio-blk-device,help"],
                 ["-device", "virtio-net-device,help"],
                 ["-accel", "help"], ["-display", "help"]):
        status, out, _ = run(*args)
        qemu_status, qemu_out, _ = qemu("-M", "virt", *args) if args[0] == "-device" else \
            qemu(*args)
        assert status == 0 and qemu_status == 0
        qemu_lines = set(qemu_out.splitlines())
        for line in out.splitlines():
            assert line in qemu_lines or line == "", (args, line)


def test_device_help_formats() -> None:
    _, out, _ = run("-device", "help")
    assert out == ('Storage devices:\nname "virtio-blk-device", bus virtio-bus\n\n'
                   'Network devices:\nname "virtio-net-device", bus virtio-bus\n\n'
                   'Misc devices:\nname "virtio-rng-device", bus virtio-bus\n')
    _, out, _ = run("-device", "virtio-blk-device,help")
    assert out == ("virtio-blk-device options:\n"
                   "  drive=<str>            - Node name or ID of a block device to use as a "
                   "backend\n"
                   "  serial=<str>\n")
    _, out, _ = run("-device", "virtio-rng-device,?")
    assert out == "There are no options for virtio-rng-device.\n"
    status, _, err = run("-device", "nic,help")
    assert (status, err) == (1, f"{PROG}: -device nic,help: 'nic' is not a valid device model "
                                "name\n")


def test_log_item_help() -> None:
    status, out, _ = run("-d", "help")
    assert status == 0 and out.startswith("Log items (comma separated):\n")
    assert "guest_errors    log when the guest OS does something invalid" in out
    status, _, err = run("-d", "in_asm,bogus")
    assert status == 1 and err.startswith("Log items (comma separated):")


# -- errors --------------------------------------------------------------------------------
ERRORS = [
    (["-foo"], "-foo: invalid option"),
    (["Image"], "Image: invalid option"),
    (["-m"], "-m: requires an argument"),
    (["-M", "nope"], "unsupported machine type\nUse -machine help to list supported machines"),
    (["-M", "virt,foo=1"], "Property 'virt-machine.foo' not found"),
    (["-M", "virt,dumpdtb"], "-M virt,dumpdtb: Expected '=' after parameter 'dumpdtb'"),
    (["-m", "12X"], "-m 12X: Parameter 'size' expects a non-negative number below 2^64"),
    (["-cpu", "nope"], "unable to find CPU model 'nope'"),
    (["-cpu", "rv64,zzz=on"],
     "can't apply global rv64-riscv-cpu.zzz=on: Property 'rv64-riscv-cpu.zzz' not found"),
    (["-cpu", "rv64,c"], "Expected key=value format, found c."),
    (["-smp", "2"], "Invalid SMP CPUs 2. The max CPUs supported by machine 'spike' is 1"),
    (["-smp", "cpus=1,foo=1"], "Parameter 'smp.foo' is unexpected"),
    (["-smp", "x"], "Parameter 'smp.cpus' expects integer"),
    (["-accel", "kvm"], "-accel kvm: invalid accelerator kvm"),
    (["-accel", "tcg,foo=1"], "-accel tcg,foo=1: Property 'tcg-accel.foo' not found"),
    (["-display", "gtk"], "Display 'gtk' is not available."),
    (["-display", "foo"], "-display foo: Parameter 'type' does not accept value 'foo'"),
    (["-initrd", "x"], "-initrd only allowed with -kernel option"),
    (["-append", "x"], "-append only allowed with -kernel option"),
    (["-serial", "bogus"], "-serial bogus: 'bogus' is not a valid char driver"),
    (["-nographic", "-serial", "stdio"],
     "-serial stdio: cannot use stdio by multiple character devices"),
    (["-M", "virt", "-device", "nope"], "-device nope: 'nope' is not a valid device model name"),
    (["-M", "virt", "-device", "virtio-blk-device"],
     "-device virtio-blk-device: drive property not set"),
    (["-M", "virt", "-device", "virtio-rng-device,foo=bar"],
     "-device virtio-rng-device,foo=bar: Property 'virtio-rng-device.foo' not found"),
    (["-M", "virt", "-device", "virtio-blk-device,drive=d9"],
     "-device virtio-blk-device,drive=d9: Property 'virtio-blk-device.drive' can't find "
     "value 'd9'"),
    (["-M", "virt", "-drive", "file=/nonexistent,format=raw,if=none,id=d0"],
     "-drive file=/nonexistent,format=raw,if=none,id=d0: Could not open '/nonexistent': "
     "No such file or directory"),
    (["-drive", "format=raw,if=none,id=d0"],
     '-drive format=raw,if=none,id=d0: A block device must be specified for "file"'),
    (["-drive", "file=x,format=qcow9,if=none"], "-drive file=x,format=qcow9,if=none: "
                                                "Unknown driver 'qcow9'"),
    (["-drive", "file=x,format=raw,if=none,foo=1"],
     "-drive file=x,format=raw,if=none,foo=1: Block format 'raw' does not support the "
     "option 'foo'"),
    (["-drive", "file=x,format=raw,if=none,id=a", "-drive", "file=y,format=raw,if=none,id=a"],
     "-drive file=y,format=raw,if=none,id=a: Duplicate ID 'a' for drive"),
    (["-drive", "file=x,format=raw,readonly=maybe"],
     "-drive file=x,format=raw,readonly=maybe: Parameter 'read-only' expects 'on' or 'off'"),
    (["-M", "virt", "-bios", "/nonexistent"], 'Unable to load the RISC-V firmware "/nonexistent"'),
    (["-M", "virt", "-bios", "none", "-kernel", "/nonexistent"],
     "could not load kernel '/nonexistent': No such file or directory"),
    (["-M", "virt", "-bios", "none", "-dtb", "/nonexistent"],
     "Unable to get size of device tree file '/nonexistent'"),
    (["-D", "/nonexistent/dir/log", "-d", "int"],
     "Error opening logfile /nonexistent/dir/log: No such file or directory"),
]


@pytest.mark.parametrize("argv,message", ERRORS)
def test_errors_are_one_qemu_style_message(argv: list[str], message: str) -> None:
    status, out, err = run(*argv)
    assert (status, out, err) == (1, "", f"{PROG}: {message}\n")


# Mistakes QEMU rejects at once, before starting a machine: its message (first line,
# after "qemu-system-riscv64: ") is ours word for word.
SAME_AS_QEMU = [
    ["-foo"], ["-M", "nope"], ["-M", "virt,dumpdtb"], ["-m", "12X"], ["-cpu", "nope"],
    ["-cpu", "rv64,zzz=on"], ["-cpu", "rv64,c=maybe"], ["-cpu", "rv64,c"],
    ["-smp", "cpus=1,foo=1"], ["-accel", "kvm"], ["-accel", "tcg,foo=1"],
    ["-display", "foo"], ["-initrd", "x"], ["-append", "x"],
    ["-M", "virt", "-device", "nope"], ["-M", "virt", "-device", "virtio-blk-device"],
    ["-M", "virt", "-device", "virtio-rng-device,foo=bar"],
    ["-M", "virt", "-device", "virtio-blk-device,drive=d9"],
    ["-M", "virt", "-drive", "file=/nonexistent,format=raw,if=none,id=d0"],
    ["-drive", "format=raw,if=none,id=d0"],
    ["-drive", "file=/etc/hostname,format=raw,if=none,id=a", "-drive",
     "file=/etc/hostname,format=raw,if=none,id=a"],
    ["-M", "virt", "-bios", "/nonexistent"],
    ["-M", "virt", "-bios", "none", "-dtb", "/nonexistent", "-kernel", "/etc/hostname"],
]


@needs_qemu
@pytest.mark.parametrize("argv", SAME_AS_QEMU)
def test_errors_say_what_qemu_says(argv: list[str]) -> None:
    status, _, err = run(*argv)
    qemu_status, _, qemu_err = qemu(*argv, "-display", "none", "-S")
    qemu_first = next(line for line in qemu_err.splitlines()
                      if not line.startswith("qemu: module"))
    assert (status, qemu_status) == (1, 1)
    assert err.splitlines()[0].replace(PROG, "qemu-system-riscv64", 1) == qemu_first


def test_missing_default_firmware_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import machines.machine as machine_module
    monkeypatch.setattr(machine_module, "DEFAULT_BIOS", "/nonexistent/fw_dynamic.bin")
    status, _, err = run("-M", "virt")
    assert (status, err) == (1, f'{PROG}: Unable to load the RISC-V firmware '
                                f'"/nonexistent/fw_dynamic.bin" (the default -bios comes from '
                                f"Debian's opensbi package: apt-get install opensbi)\n")


# -- running -------------------------------------------------------------------------------
@needs_images
def test_dumpdtb_writes_the_tree_and_exits_0(tmp_path: Path) -> None:
    out_file = tmp_path / "virt.dtb"
    status, _, err = run("-M", f"virt,dumpdtb={out_file}", "-m", "256M", "-bios",
                         image("fw_jump.bin"), "-kernel", image("Image"), "-initrd",
                         image("initramfs-poweroff.cpio.gz"), "-append", "console=ttyS0")
    assert status == 0
    assert err == f"{PROG}: info: dtb dumped to {out_file}. Exiting.\n"
    qemu_tree = tree_as_dict((IMAGES / "qemu-virt-256M.dtb").read_bytes())
    ours = tree_as_dict(out_file.read_bytes())
    assert {p: v for p, v in qemu_tree.items() if p in ours} == ours
    status, _, err = run("-M", "virt,dumpdtb=/nonexistent/dir/x.dtb")
    assert (status, err) == (1, f"{PROG}: Failed dumping dtb to /nonexistent/dir/x.dtb\n")


@needs_images
@needs_qemu
def test_dumpdtb_as_a_program_matches_qemus(tmp_path: Path) -> None:
    args = ["-m", "512M", "-bios", image("fw_jump.bin"), "-kernel", image("Image"),
            "-initrd", image("initramfs.cpio.gz"), "-append", "console=ttyS0 quiet",
            "-device", "virtio-rng-device", "-nographic"]
    ours, theirs = tmp_path / "ours.dtb", tmp_path / "qemu.dtb"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "launcher.system_riscv64",
                             "-M", f"virt,dumpdtb={ours}", *args], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert qemu("-M", f"virt,dumpdtb={theirs}", *args)[0] == 0
    qemu_tree = tree_as_dict(theirs.read_bytes())
    missing = ("/fw-cfg@10100000", "/platform-bus@4000000", "/soc/pci@30000000")
    assert {p: v for p, v in qemu_tree.items() if not p.startswith(missing)} == \
        tree_as_dict(ours.read_bytes())


def test_entry_point_module_runs() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "launcher.system_riscv64", "-foo"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (1, f"{PROG}: -foo: invalid option\n")
    assert main(["-M", "help"]) == 0


def test_a_signal_ends_the_loop_with_status_0_and_restores_the_terminal() -> None:
    """SIGTERM while the CPU runs: the handler runs once the I/O thread kicks the CPU."""
    from launcher.system.main import Target, _Signals
    from machines.loop import MachineClock, MachineLoop
    from tests.machines.support import ScriptedCpu

    cpu = ScriptedCpu()
    loop = MachineLoop(cpu, MachineClock(), lambda: None)
    err = io.StringIO()
    timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGTERM))
    with _Signals(Target("riscv64", PROG), loop, consoles=None, err=err):  # type: ignore[arg-type]
        timer.start()
        status = loop.run()
    assert status == 0
    assert err.getvalue() == f"{PROG}: terminating on signal {int(signal.SIGTERM)}\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
