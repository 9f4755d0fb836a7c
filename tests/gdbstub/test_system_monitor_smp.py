"""gdb's ``monitor`` (qRcmd) and several harts under gdb-multiarch, and the human
monitor's ``gdbserver``, ``cpu`` and ``info cpus``: each session also runs against
qemu-system-riscv64 on the same command line and must print the same (after the
differences noted where they are normalised)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qemu.qmp import QMPClient

from tests.gdbstub.support import (
    ENV,
    IMAGES,
    REPO,
    finish,
    free_port,
    kill_quietly,
    listening,
    needs_gdb,
    run_gdb,
    start_system,
)
from tests.machines.support import quit_qmp

pytestmark = [needs_gdb, pytest.mark.skipif(not (IMAGES / "fw_jump.bin").exists(),
                                            reason="no OpenSBI image")]
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None,
                                reason="qemu-system-riscv64 not installed")

MONITOR_SESSION = ["monitor info status", "monitor xp/2x 0x1000", "monitor bogus",
                   "monitor p/x 6 * 7", "stepi",
                   "monitor info status", "p/x $pc"]
SMP_SESSION = ["info threads", "thread 2", "p/x $pc", "p/x $mhartid",
               "monitor info cpus", "monitor cpu 1", "monitor info cpus",
               "monitor cpu 2", "stepi", "p/x $pc", "p/x $a0"]


def session(commands: list[str], *options: str, qemu: bool = False) -> str:
    port = free_port()
    proc = start_system(port, "-S", *options, qemu=qemu)
    try:
        out = run_gdb(port, commands + ["kill"])
        finish(proc)
    finally:
        kill_quietly(proc)
    return out


def normalise(text: str) -> str:
    """What legitimately differs: QEMU announces gdb's multiprocess extension (thread
    ``1.N``, ``process 1``) and its harts have their own host threads."""
    text = re.sub(r"Thread 1\.(\d+)", r"Thread \1", text)
    text = text.replace("(process 1)", "(Remote target)")
    text = re.sub(r"Target Id +Frame", "Target Id Frame", text)  # (column widths)
    return re.sub(r"thread_id=\d+", "thread_id=N", text)


def test_monitor_commands_through_gdb() -> None:
    out = session(MONITOR_SESSION + ["monitor info registers"])
    assert "VM status: paused (prelaunch)" in out
    assert "0000000000001000: 0x00000297 0x02828613" in out
    assert "unknown command: 'bogus'" in out
    assert "0x2a" in out
    assert re.search(r"^CPU#0\n pc       0000000000001004$", out, re.M), out
    assert re.search(r"^VM status: running$", out, re.M) is None  # gdb stops it again


@needs_qemu
def test_monitor_commands_match_qemu() -> None:
    ours = session(MONITOR_SESSION)
    theirs = session(MONITOR_SESSION, qemu=True)
    assert normalise(ours) == normalise(theirs)


def test_harts_are_threads() -> None:
    out = session(SMP_SESSION + ["thread 1", "p/x $mhartid"], "-smp", "2")
    assert re.search(r"^\* 1 +Thread 1 \(CPU#0 \[running\]\) 0x0+1000 in \?\? \(\)$", out,
                     re.M), out
    assert re.search(r"^  2 +Thread 2 \(CPU#1 \[running\]\) 0x0+1000", out, re.M), out
    values = re.findall(r"^\$\d+ = (.*)$", out, re.M)
    assert values == ["0x1000", "0x1", "0x1004", "0x0", "0x0"], out
    assert "* CPU #0: thread_id=" in out and "* CPU #1: thread_id=" in out
    assert "invalid CPU index" in out  # (cpu 2 of 2)


@needs_qemu
def test_harts_as_threads_match_qemu() -> None:
    # (after the step QEMU's other hart has run on by a racy amount: not compared)
    ours = session(SMP_SESSION, "-smp", "2")
    theirs = session(SMP_SESSION, "-smp", "2", qemu=True)
    assert normalise(ours) == normalise(theirs)


# -- the human monitor's gdbserver, and QMP with several harts --------------------------
def start_with_qmp(socket_path: Path, *options: str, qemu: bool = False
                   ) -> subprocess.Popen:
    program = ["qemu-system-riscv64"] if qemu else [sys.executable, "-m",
                                                    "launcher.system_riscv64"]
    proc = subprocess.Popen(
        [*program, "-M", "virt", "-bios", str(IMAGES / "fw_jump.bin"), "-display", "none",
         "-serial", "null", "-qmp", f"unix:{socket_path},server=on,wait=off", *options],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=dict(ENV, PYTHONPATH=str(REPO)))
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def hmp_and_gdb(socket_path: Path, qemu: bool) -> list[object]:
    """query-cpus-fast; gdbserver on a port; gdb reads hart 1's mhartid there; gdbserver
    none closes the port; a bad device."""
    port = free_port()
    proc = start_with_qmp(socket_path, "-S", "-smp", "2", qemu=qemu)
    replies: list[object] = []

    async def talk() -> None:
        client = QMPClient("test")
        await client.connect(str(socket_path))

        async def hmp(line: str, **arguments: object) -> object:
            return await client.execute("human-monitor-command",
                                        {"command-line": line, **arguments})
        cpus = await client.execute("query-cpus-fast")
        for cpu in cpus:
            cpu["thread-id"] = 0
        replies.append(cpus)
        replies.append(await hmp(f"gdbserver tcp::{port}"))
        assert listening(port)
        gdb = await asyncio.to_thread(run_gdb, port, ["thread 2", "p/x $mhartid", "detach"])
        replies.append(re.findall(r"^\$\d+ = (.*)$", gdb, re.M))
        replies.append(await hmp("info status"))
        replies.append(await hmp("gdbserver none"))
        replies.append(listening(port))
        registers = await hmp("info registers", **{"cpu-index": 1})
        replies.append(str(registers).splitlines()[1])
        try:
            await hmp("info cpus", **{"cpu-index": 2})
        except Exception as exc:  # noqa: BLE001 - qemu.qmp's ExecuteError
            replies.append(str(exc))
        replies.append(re.sub(r"=\d+", "=N", str(await hmp("cpu 1"))))
        replies.append(await hmp("gdbserver unix:/nonexistent/gdb.sock"))
        await quit_qmp(client)

    try:
        asyncio.run(talk())
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        if socket_path.exists():
            os.unlink(socket_path)
    return replies


@pytest.fixture
def qmp_path() -> Path:
    return Path(f"/tmp/llvmtcg-gdbmon-{os.getpid()}-{time.monotonic_ns()}.sock")


def test_gdbserver_from_the_monitor(qmp_path: Path) -> None:
    replies = hmp_and_gdb(qmp_path, qemu=False)
    cpus = replies[0]
    assert [c["qom-path"] for c in cpus] == ["/machine/soc0/harts[0]",
                                             "/machine/soc0/harts[1]"]
    assert replies[1].startswith("Waiting for gdb connection on device 'tcp::")
    assert replies[2] == ["0x1"]  # gdb read hart 1's mhartid
    assert replies[3] == "VM status: running\r\n"  # detach ran it
    assert replies[4] == "Disabled gdbserver\r\n"
    assert replies[5] is False  # the port is closed
    assert replies[6] == "CPU#1"
    assert "expects a CPU number" in replies[7]
    assert replies[9] == "Could not open gdbserver on device 'unix:/nonexistent/gdb.sock'\r\n"


@needs_qemu
def test_gdbserver_from_the_monitor_matches_qemu(qmp_path: Path) -> None:
    ours = hmp_and_gdb(qmp_path, qemu=False)
    theirs = hmp_and_gdb(qmp_path, qemu=True)
    for replies in (ours, theirs):
        replies[1] = re.sub(r"tcp::\d+", "tcp::P", replies[1])
        # (QEMU connects to a unix: device without server=on first, and says so)
        replies[9] = replies[9].splitlines()[-1]
    assert ours == theirs


def test_docs_gdb_session() -> None:
    """docs/managing.md's gdb session: its commands, and every line of its output
    (gdb's stdout and stderr are read apart: their order is not compared)."""
    text = (REPO / "docs" / "managing.md").read_text()
    lines = re.search(r"```gdb\n(.*?)```", text, re.S).group(1).splitlines()
    commands = [line[6:] for line in lines if line.startswith("(gdb) ")]
    out = normalise(session(commands, "-smp", "2")).splitlines()
    for line in lines:
        if not line.startswith("(gdb) "):
            assert normalise(line) in out, (line, out)
