"""QMP, the human monitor (also on the ``-nographic`` multiplexer) and gdb-multiarch
with ``-accel kvm -M microvm`` running ../shared/images/x86_64/guest.bin, compared with
qemu-system-x86_64 on the same command line where it can be. Skipped, with the
reason, where /dev/kvm cannot be used."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pexpect
import pytest
from qemu.qmp import QMPClient

from tests.accel.test_kvm_microvm import (
    DEBUG_EXIT,
    EXPECTED,
    GUEST,
    QEMU,
    ROOT,
    needs_guest,
    needs_kvm,
    needs_qemu,
)
from tests.gdbstub.support import free_port, needs_gdb, wait_listening
from tests.machines.support import quit_qmp

pytestmark = [needs_kvm, needs_guest]
OURS = [sys.executable, "-m", "launcher.system_x86_64"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
MACHINE = ["-accel", "kvm", "-M", "microvm", "-m", "16M", "-nodefaults", "-display", "none",
           "-bios", str(GUEST)]


def emulators() -> list[object]:
    return [pytest.param(OURS, id="llvmtcg"),
            pytest.param([QEMU], id="qemu", marks=needs_qemu)]


def start_with_qmp(program: list[str], machine: list[str], run_dir: Path,
                   *extra: str) -> tuple[subprocess.Popen, Path, Path]:
    """The emulator stopped (-S) with a QMP socket and the serial port in a file."""
    sock, serial = run_dir / "qmp.sock", run_dir / "serial.txt"
    proc = subprocess.Popen([*program, *machine, "-serial", f"file:{serial}", "-S", *extra,
                             "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=ENV)
    return proc, sock, serial


async def connect(proc: subprocess.Popen, sock: Path) -> tuple[QMPClient, float]:
    """A QMP client connected once the socket exists; the session's deadline."""
    client = QMPClient("test")
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await client.connect(str(sock))
    return client, deadline


def run_to_exit(proc: subprocess.Popen, talk: Callable[[], Awaitable[None]]) -> None:
    """Runs the QMP conversation; the emulator must then exit with status 0."""
    try:
        asyncio.run(talk())
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def qmp_session(program: list[str], run_dir: Path) -> list[object]:
    """-S; the CPU and registers at reset; cont until the guest's DONE (it then halts:
    no isa-debug-exit); stop; the registers again; memory; system_reset; quit."""
    proc, sock, serial = start_with_qmp(program, MACHINE, run_dir)
    seen: list[object] = []

    async def talk() -> None:
        client, deadline = await connect(proc, sock)

        async def hmp(line: str) -> str:
            text = await client.execute("human-monitor-command", {"command-line": line})
            # (this host's KVM does not keep MXCSR: KVM_SET_FPU leaves it 0)
            return re.sub(r"MXCSR=[0-9a-f]+", "MXCSR=M", str(text))
        cpus = await client.execute("query-cpus-fast")
        cpus[0]["thread-id"] = 0
        seen.extend([cpus, await client.execute("query-kvm"),
                     await client.execute("query-status"), await hmp("info registers"),
                     await hmp("xp/2xw 0xffff0"), await hmp("p/x $pc"), await hmp("info kvm")])
        await client.execute("cont")
        while "DONE" not in (serial.read_text() if serial.exists() else ""):
            assert time.monotonic() < deadline + 120, "the guest never printed DONE"
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # (then it halts for good)
        await client.execute("stop")
        seen.extend([await client.execute("query-status"), await hmp("info registers"),
                     await hmp("x/2xg 0x100000"), await hmp("p/x $sp + 8")])
        await client.execute("system_reset")
        # (the reset is done by the main loop after the command's reply: wait for it)
        status = await hmp("info status")
        for _ in range(100):
            if "prelaunch" in status:
                break
            await asyncio.sleep(0.1)
            status = await hmp("info status")
        seen.append(status)
        await quit_qmp(client)

    run_to_exit(proc, talk)
    return seen


@pytest.fixture
def run_dir() -> Path:
    path = Path(f"/tmp/llvmtcg-kvmmon-{os.getpid()}-{time.monotonic_ns()}")
    path.mkdir()
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def test_qmp_and_hmp_with_kvm(run_dir: Path) -> None:
    seen = qmp_session(OURS, run_dir)
    assert seen[0] == [{"thread-id": 0, "props": {"core-id": 0, "thread-id": 0,
                                                  "socket-id": 0},
                        "qom-path": "/machine/unattached/device[0]", "cpu-index": 0,
                        "target": "x86_64"}]
    assert seen[1] == {"enabled": True, "present": True}
    assert seen[2]["status"] == "prelaunch"
    assert "EIP=0000fff0 EFL=00000002 [-------] CPL=0" in seen[3]
    assert "CS =f000 ffff0000 0000ffff 00009b00" in seen[3]
    assert seen[4] == "00000000000ffff0: 0x000000ea 0xf4f4f4f0\r\n"  # ljmp $0xf000,...
    assert seen[5] == "0xfffffff0\r\n"
    assert seen[6] == "kvm support: enabled\r\n"
    assert seen[7]["status"] == "paused"
    registers = seen[8]
    assert "R12=28cec6bbc64146c7 R13=b06cf19ef23e02b4" in registers  # the checksums
    assert "CS =0018 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]" in registers
    assert "HLT=1" in registers and "EFER=0000000000000500" in registers
    assert seen[11] == "VM status: paused (prelaunch)\r\n"  # reset while stopped


@needs_qemu
def test_qmp_and_hmp_match_qemu(run_dir: Path) -> None:
    assert qmp_session(OURS, run_dir) == qmp_session([QEMU], run_dir)


def test_nographic_monitor_with_kvm() -> None:
    """-nographic: the console and the human monitor share the terminal (C-a c)."""
    child = pexpect.spawn(OURS[0], [*OURS[1:], *MACHINE, "-nographic", "-S"], env=ENV,
                          timeout=120)
    try:
        child.send("\x01c")
        child.expect_exact("(qemu) ")
        child.sendline("info status")
        child.expect_exact("VM status: paused (prelaunch)")
        child.sendline("c")
        child.send("\x01c")  # back to the console: the guest's lines
        for line in EXPECTED:
            child.expect_exact(line)
        child.send("\x01c")
        child.expect_exact("(qemu) ")
        child.sendline("info registers")
        child.expect("R12=28cec6bbc64146c7")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


# -- gdb ------------------------------------------------------------------------------------
# Up to the hardware breakpoint: the same under qemu-system-x86_64 (its software
# breakpoints, int3 written into guest memory, crash this host's nested KVM).
GDB_SESSION = ["p/x $pc", "p/x $cs", "p/x $eflags", "info registers rip", "stepi",
               "p/x $pc", "x/2xb 0xffff0", "hbreak *0xf0026", "c", "p/x $pc", "p/x $rdx",
               "delete", "monitor info status"]


def gdb_session(program: list[str], commands: list[str]) -> tuple[str, int, str]:
    port = free_port()
    proc = subprocess.Popen([*program, *MACHINE, *DEBUG_EXIT, "-serial", "stdio", "-S",
                             "-gdb", f"tcp::{port}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV)
    try:
        wait_listening(port, proc)
        gdb = subprocess.run(["gdb-multiarch", "-nx", "-batch", "-ex", "set confirm off",
                              "-ex", f"target remote 127.0.0.1:{port}",
                              *(arg for c in commands for arg in ("-ex", c))],
                             capture_output=True, text=True, timeout=300)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return gdb.stdout + gdb.stderr, proc.returncode, out.decode()


@needs_gdb
def test_gdb_breakpoints_and_steps_with_kvm() -> None:
    # (watchpoints go to the debug registers as data breakpoints too, but this host's
    # nested KVM never reports those: not tested here)
    out, status, console = gdb_session(OURS, GDB_SESSION + [
        "break *0xf002c", "c", "p/x $pc", "delete", "stepi", "p/x $pc",
        "break *0xf011b", "c", "p/x $pc", "p/x $efer", "p/x $cs", "x/s 0xf02a9",
        "delete", "monitor info status", "detach"])
    values = re.findall(r"^\$\d+ = (.*)$", out, re.M)
    assert values[:7] == ["0xfff0", "0xf000", "0x2", "0x0", "0x26", "0x603fb",
                          "0x2c"], out  # rip is CS-relative in real mode (CS base f0000)
    assert "Hardware assisted breakpoint 1 at 0xf0026" in out
    assert "VM status: paused (debug)" in out  # a breakpoint stops the VM as QEMU's
    assert values[7] == "0x2f", out  # one instruction (a 3-byte mov) further
    assert values[8:11] == ["0xf011b", "0x500", "0x18"], out  # lm64: long mode, CS 0x18
    assert '0xf02a9:\t"LONG MODE OK\\r\\n"' in out, out
    assert "[Inferior 1 (Remote target) detached]" in out
    assert status == 33 and console.splitlines() == EXPECTED  # the guest ran on


@needs_gdb
@needs_qemu
def test_gdb_session_matches_qemu() -> None:
    ours, _, _ = gdb_session(OURS, GDB_SESSION + ["kill"])
    theirs, _, _ = gdb_session([QEMU], GDB_SESSION + ["kill"])
    theirs = theirs.replace("(process 1)", "(Remote target)")
    assert ours.splitlines() == theirs.splitlines()


def test_gdb_is_refused_a_fifth_debug_register() -> None:
    """x86 has four debug registers: the fifth breakpoint is an error reply."""
    from tests.gdbstub.support import RawClient
    port = free_port()
    proc = subprocess.Popen([*OURS, *MACHINE, "-serial", "null", "-S", "-gdb",
                             f"tcp::{port}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        wait_listening(port, proc)
        client = RawClient(port)
        assert client.command("qSupported").startswith(b"PacketSize=")
        assert b"i386:x86-64" in client.command("qXfer:features:read:target.xml:0,3fff")
        assert [client.command(f"Z0,{0xf0000 + i:x},1") for i in range(5)] == \
            [b"OK"] * 4 + [b"E14"]
        assert client.command("Z2,100000,8") == b"E14"  # (no room either)
        assert client.command("z0,f0000,1") == b"OK"
        assert client.command("Z2,100000,8") == b"OK"
        assert client.command("p10") == b"f0ff000000000000"  # rip
        assert client.command("m0,4") != b"E14"  # RAM at 0
        assert client.command("mfee00000,4") == b"E14"  # not RAM (the LAPIC)
        client.send_raw(RawClient.frame(b"k"))
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()



def test_gdbserver_from_the_monitor_and_ctrl_c_with_kvm(run_dir: Path) -> None:
    """HMP gdbserver starts the stub while the guest runs; gdb's Ctrl-C kicks the vCPU
    out of KVM_RUN (the guest halts for good: no isa-debug-exit); monitor via qRcmd."""
    from tests.gdbstub.support import RawClient
    sock, port = run_dir / "qmp.sock", free_port()
    proc = subprocess.Popen([*OURS, *MACHINE, "-serial", "null", "-qmp",
                             f"unix:{sock},server=on,wait=off"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    replies: list[object] = []

    async def talk() -> None:
        client, _ = await connect(proc, sock)
        replies.append(await client.execute("human-monitor-command",
                                            {"command-line": f"gdbserver tcp::{port}"}))

        def debug() -> None:
            gdb = RawClient(port)
            replies.append(gdb.command("?"))
            replies.append(gdb.command("qRcmd," + b"info status".hex()))
            replies.append(gdb.read_packet())
            gdb.send_raw(RawClient.frame(b"c"))
            assert gdb.read_ack() == b"+"
            time.sleep(2)
            gdb.send_raw(b"\x03")
            replies.append(gdb.read_packet())
            replies.append(gdb.command("D"))
            gdb.close()
        await asyncio.to_thread(debug)
        await asyncio.sleep(0.5)
        replies.append(await client.execute("query-status"))
        await quit_qmp(client)

    run_to_exit(proc, talk)
    assert replies[0] == f"Waiting for gdb connection on device 'tcp::{port}'\r\n"
    assert replies[1].startswith(b"T05thread:1;")
    assert replies[2] == b"O" + b"VM status: paused\r\n".hex().encode()  # gdb stopped it
    assert replies[3] == b"OK"
    assert replies[4].startswith(b"T02thread:1;")  # Ctrl-C: SIGINT
    assert replies[5] == b"OK"
    assert replies[6]["status"] == "running"  # detached: it runs on


# -- x/i, info mtree, info qtree --------------------------------------------------------------
# QEMU's microvm has devices llvmtcg's has not (its docstring says which): their lines go.
QEMU_ONLY = ("kvmvapic", "fwcfg", "kvmclock", "fw_cfg_io")


def _without_qemu_only(text: str) -> str:
    kept, skip_deeper_than = [], None
    for line in text.splitlines():
        depth = len(line) - len(line.lstrip())
        if skip_deeper_than is not None and depth > skip_deeper_than:
            continue
        skip_deeper_than = None
        if any(name in line for name in QEMU_ONLY):
            skip_deeper_than = depth
            continue
        kept.append(line)
    return "\n".join(kept)


def views_session(program: list[str], run_dir: Path) -> list[str]:
    """x/i in real mode (-S) and, after the guest's DONE, in long mode; the trees."""
    machine = [arg if arg != "microvm" else "microvm,acpi=off" for arg in MACHINE]
    proc, sock, serial = start_with_qmp(program, machine, run_dir,
                                        "-device", "isa-debug-exit,iobase=0x80,iosize=2",
                                        "-device", "virtio-rng-device")
    seen: list[str] = []

    async def talk() -> None:
        client, deadline = await connect(proc, sock)

        async def hmp(line: str) -> str:
            text = await client.execute("human-monitor-command", {"command-line": line})
            return _without_qemu_only(str(text))
        seen.extend([await hmp("x/3i 0xffff0"), await hmp("x/6i 0xf0000"),
                     await hmp("info mtree"), await hmp("info qtree")])
        await client.execute("cont")
        while "DONE" not in (serial.read_text() if serial.exists() else ""):
            assert time.monotonic() < deadline + 120, "the guest never printed DONE"
            await asyncio.sleep(0.2)
        # (after DONE the guest halts for good: `cli; hlt`; wait until it has)
        while True:
            await client.execute("stop")
            if "HLT=1" in await hmp("info registers"):
                break
            assert time.monotonic() < deadline + 120, "the guest never halted"
            await client.execute("cont")
            await asyncio.sleep(0.2)
        seen.extend([await hmp("x/2i $pc - 1"), await hmp("x/3i 0xf0026")])
        await quit_qmp(client)

    run_to_exit(proc, talk)
    return seen


def test_disassembly_and_trees_with_kvm(run_dir: Path) -> None:
    seen = views_session(OURS, run_dir)
    assert seen[0].startswith("0x000ffff0:  ea 00 00 00 f0           ljmpw    $0xf000:$0x0")
    assert "0x000f0002:  31 c0                    xorw     %ax, %ax" in seen[1]
    assert "(prio 1, ram): alias isa-bios @pc.bios" in seen[2]
    assert "00000000000000f4" not in seen[2] and "0000000000000080-0000000000000081" in seen[2]
    assert "dev: virtio-rng-device" in seen[3] and "iobase = 128 (0x80)" in seen[3]
    assert "hlt" in seen[4]  # long mode: `cli; hlt` at the end


@needs_qemu
def test_disassembly_and_trees_match_qemu(run_dir: Path) -> None:
    ours, qemus = views_session(OURS, run_dir), views_session([QEMU], run_dir)
    # (QEMU lists every property of the virtio-rng device; llvmtcg names it only)
    rng = '      dev: virtio-rng-device, id ""'
    qemu_lines = qemus[3].splitlines()
    start = qemu_lines.index(rng) + 1
    end = start
    while qemu_lines[end].startswith("        "):
        end += 1
    assert end - start > 5
    qemus[3] = "\n".join(qemu_lines[:start] + qemu_lines[end:])
    # (QEMU prints its address spaces in an order that changes from run to run)
    for views in (ours, qemus):
        views[2] = sorted(views[2].split("\n\n"))
    assert ours[:3] == qemus[:3] and ours[4:] == qemus[4:]
    assert ours[3] == qemus[3]


@needs_gdb
@needs_qemu
def test_gdb_watchpoints_behave_as_qemus() -> None:
    """A write watchpoint on the RAM the guest fills: where KVM reports data breakpoints
    both stop at the store; this host's nested KVM reports none, and both run the guest
    to its end (the debug-register encoding is unit-tested in test_kvm_debug_registers)."""
    session = ["watch *(long *)0x100000", "rwatch *(long *)0x100008", "c", "p/x $pc"]
    ours, status, console = gdb_session(OURS, session)
    theirs, qemu_status, _ = gdb_session([QEMU], session)
    assert "Hardware watchpoint 1: *(long *)0x100000" in ours
    assert ours.splitlines() == theirs.splitlines()
    assert status == qemu_status
    assert console.splitlines() == EXPECTED
