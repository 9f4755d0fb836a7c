"""``llvmtcg-system-x86_64 -accel kvm -M microvm`` on real KVM, compared with
qemu-system-x86_64 on the same command line (../shared/images/x86_64: a real → protected
→ long mode guest). Skipped, with the reason, where /dev/kvm cannot be used."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from machines.x86_64_microvm import kvm_available

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT.parent / "shared" / "images" / "x86_64"
GUEST = IMAGES / "guest.bin"
EXPECTED = ["HELLO FROM KVM GUEST", "PROTECTED MODE OK", "LONG MODE OK",
            "CKSUM RAM=28cec6bbc64146c7 ROM=b06cf19ef23e02b4", "DONE"]
QEMU = shutil.which("qemu-system-x86_64")
COMMON = ["-m", "16M", "-nodefaults", "-display", "none", "-serial", "stdio"]
DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]

_reason = kvm_available()
needs_kvm = pytest.mark.skipif(_reason is not None, reason=f"KVM unusable here: {_reason}")
needs_guest = pytest.mark.skipif(not GUEST.exists(), reason=f"{GUEST} not present")
needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed "
                                "(Debian package qemu-system-x86)")


def ours(*args: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "launcher.system_x86_64", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          **kwargs)  # type: ignore[call-overload]


def qemu(*args: str) -> subprocess.CompletedProcess:
    assert QEMU is not None
    return subprocess.run([QEMU, *args], capture_output=True, text=True, timeout=60)


@needs_kvm
@needs_guest
def test_guest_prints_its_lines_and_exits_33() -> None:
    result = ours(*COMMON, "-bios", str(GUEST), *DEBUG_EXIT, "-accel", "kvm", "-M", "microvm")
    assert result.stdout.splitlines() == EXPECTED
    assert result.returncode == 33
    assert all(line.startswith("llvmtcg-system-x86_64: warning: host doesn't support "
                               "requested feature: CPUID.") for line in result.stderr.splitlines())


@needs_kvm
@needs_guest
@needs_qemu
def test_same_output_and_status_as_qemu() -> None:
    args = [*COMMON, "-bios", str(GUEST), *DEBUG_EXIT, "-accel", "kvm", "-M", "microvm"]
    theirs, mine = qemu(*args), ours(*args)
    assert theirs.returncode == 33
    assert (mine.stdout, mine.returncode) == (theirs.stdout, theirs.returncode)
    # The same CPUID warnings (qemu64's features this KVM lacks), with our program name.
    assert mine.stderr.replace("llvmtcg-system-x86_64", "qemu-system-x86_64") == theirs.stderr


@needs_kvm
@needs_guest
def test_machine_accel_property_selects_kvm() -> None:
    result = ours(*COMMON, "-bios", str(GUEST), *DEBUG_EXIT, "-M", "microvm,accel=kvm:tcg")
    assert (result.stdout.splitlines(), result.returncode) == (EXPECTED, 33)


@needs_kvm
@needs_guest
def test_halted_guest_is_kicked_out_of_kvm_run_by_sigterm() -> None:
    """Without isa-debug-exit the guest ends in ``cli; hlt``, inside KVM_RUN (the
    in-kernel irqchip halts it): SIGTERM must still end the emulator, status 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "launcher.system_x86_64", *COMMON,
                             "-bios", str(GUEST), "-accel", "kvm", "-M", "microvm"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode().rstrip("\r\n") for _ in EXPECTED]
        assert lines == EXPECTED
        time.sleep(0.2)  # into the final hlt
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert err.decode().splitlines()[-1] == "llvmtcg-system-x86_64: terminating on signal 15"


# -- errors -----------------------------------------------------------------------------------
# A read-only sysfs attribute: opening it for writing is EACCES even for root.
READ_ONLY_NODE = "/sys/devices/system/cpu/online"


@needs_guest
@pytest.mark.skipif(not os.path.exists(READ_ONLY_NODE), reason=f"no {READ_ONLY_NODE}")
def test_kvm_that_cannot_be_opened_falls_back_to_a_clear_no(tmp_path: Path) -> None:
    from launcher.accel.kvm import Kvm, KvmUnavailable
    from launcher.system.main import Exit
    from launcher.system_x86_64 import _build_with_fallback
    from machines.x86_64_microvm import MicrovmOptions

    with pytest.raises(KvmUnavailable, match=r"^failed to initialize kvm: Permission denied "
                       r"\(no read/write access to /sys/devices/system/cpu/online\)$"):
        Kvm(READ_ONLY_NODE)
    notes: list[str] = []
    for path, reason in ((READ_ONLY_NODE, "Permission denied"),
                         (str(tmp_path / "kvm"), "No such file or directory")):
        options = MicrovmOptions(bios=str(GUEST), kvm_path=path)
        with pytest.raises(Exit) as exit_:
            _build_with_fallback(["kvm", "tcg"], options, None, None, notes.append)
        assert (exit_.value.status, exit_.value.option, exit_.value.message) == (
            1, "-accel tcg", "x86-64 guests cannot run under tcg: llvmtcg has no x86-64 "
                             "translator (use -accel kvm)")
        assert notes[-2].startswith(f"-accel kvm: failed to initialize kvm: {reason} (")
        assert notes[-1] == "falling back to tcg"
        with pytest.raises(Exit) as exit_:
            _build_with_fallback(["kvm"], options, None, None, notes.append)
        assert exit_.value.option == "-accel kvm"
        assert exit_.value.message.startswith(f"failed to initialize kvm: {reason} (")


def test_absent_kvm_device_is_a_clear_error(tmp_path: Path) -> None:
    from launcher.accel.kvm import Kvm, KvmUnavailable
    with pytest.raises(KvmUnavailable, match=r"^failed to initialize kvm: No such file or "
                       r"directory \(.*/nokvm is absent: no KVM on this host\)$"):
        Kvm(str(tmp_path / "nokvm"))


@pytest.mark.parametrize(("args", "message"), [
    ([], "-accel tcg: x86-64 guests cannot run under tcg: llvmtcg has no x86-64 translator "
         "(use -accel kvm)"),
    (["-accel", "hvf"], "-accel hvf: invalid accelerator hvf (hvf exists only on macOS "
                        "hosts; use -accel kvm)"),
    (["-accel", "xen"], "-accel xen: invalid accelerator xen"),
    (["-accel", "kvm", "-M", "pc"], "unsupported machine type"),
    (["-accel", "kvm", "-M", "microvm,acpi=on"], "microvm with acpi=on is not supported"),
])
def test_command_line_errors(args: list[str], message: str) -> None:
    result = ours("-bios", str(GUEST), *args)
    assert result.returncode == 1
    assert result.stderr.startswith(f"llvmtcg-system-x86_64: {message}")
    assert result.stderr.count("\n") <= 2


@needs_kvm
def test_bios_must_be_a_multiple_of_64k(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xf4" * 1000)
    result = ours("-bios", str(bad), "-accel", "kvm")
    assert (result.returncode, result.stderr) == (
        1, f"llvmtcg-system-x86_64: could not load PC BIOS '{bad}'\n")


def test_accel_help_lists_tcg_and_kvm() -> None:
    result = ours("-accel", "help")
    assert (result.returncode, result.stdout) == (
        0, "Accelerators supported in QEMU binary:\ntcg\nkvm\n")


# -- the machine, built on KVM --------------------------------------------------------------
@needs_kvm
@needs_guest
def test_microvm_layout_and_virtio_slot_order() -> None:
    from machines.machine import DeviceOptions
    from machines.x86_64_microvm import MicrovmOptions, build
    machine = build(MicrovmOptions(ram_size=16 << 20, bios=str(GUEST), virtio_devices=(
        DeviceOptions("virtio-rng-device", spec="-device virtio-rng-device"),)))
    try:
        slots = [(e.base, e.size, e.name) for e in machine.buses.mmio.entries()]
        assert slots == [(0xFEB00000 + i * 0x200, 0x200, "virtio-mmio") for i in range(8)]
        # QEMU plugs the first -device into the last transport created.
        assert machine.buses.mmio_read(0xFEB00E08, 4) == 4  # DeviceID: entropy
        assert machine.buses.mmio_read(0xFEB00008, 4) == 0  # an empty slot
        ram = machine.ram
        # The firmware at 4 GiB - 64 KiB and its alias below 1 MiB are the same bytes.
        image = GUEST.read_bytes()
        assert ram.read(0xFFFF0000, 0x10000) == image == ram.read(0xF0000, 0x10000)
        ram.write(0xF0000, b"\x90")
        assert ram.read(0xFFFF0000, 1) == b"\x90"  # RAM-backed, aliased (isapc_ram_fw)
        machine.reset()  # the image is installed again
        assert ram.read(0xFFFF0000, 1) == image[:1]
        ram.write(0x100000, b"dma")
        assert ram.read(0x100000, 3) == b"dma"
        from devices.base import GuestMemoryError
        with pytest.raises(GuestMemoryError):
            ram.read(16 << 20, 1)  # past the end of RAM
    finally:
        machine.close()


# -- reset on triple fault -------------------------------------------------------------------
TRIPLE_FAULT_SOURCE = ROOT / "tests" / "guest" / "x86_64" / "triple_fault.S"
needs_binutils = pytest.mark.skipif(shutil.which("as") is None or shutil.which("ld") is None,
                                    reason="the host binutils (as, ld) are not installed")


@pytest.fixture(scope="module")
def triple_fault_bios(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triple")
    subprocess.run(["as", "--32", "-o", out / "tf.o", TRIPLE_FAULT_SOURCE], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-e", "0", "-Ttext=0", "--oformat", "binary",
                    "-o", out / "tf.bin", out / "tf.o"], check=True)
    return out / "tf.bin"


@needs_kvm
@needs_binutils
@pytest.mark.parametrize("no_reboot", [False, True], ids=["reset", "no-reboot"])
def test_triple_fault_resets_the_machine(triple_fault_bios: Path, no_reboot: bool) -> None:
    """A triple fault (KVM's SHUTDOWN exit) is a system reset, RAM kept (the guest counts
    its starts there and leaves on the third); with -no-reboot it ends the emulator
    with status 0, as QEMU."""
    args = [*COMMON, "-bios", str(triple_fault_bios), *DEBUG_EXIT, "-accel", "kvm",
            "-M", "microvm", *(["-no-reboot"] if no_reboot else [])]
    result = ours(*args)
    assert (result.stdout, result.returncode) == (("1", 0) if no_reboot else ("123", 33))
    if QEMU is not None:
        reference = qemu(*args)
        assert (result.stdout, result.returncode) == (reference.stdout, reference.returncode)
