"""QMP, the human monitor and the character devices, end to end: the real launcher
running OpenSBI, driven by the clients people use (``qemu.qmp``, pexpect). Where
qemu-system-riscv64 is installed, the same QMP conversation runs against it too and
the replies must have the same shape (and, for errors, the same words)."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from qemu.qmp import QMPClient

from tests.machines.support import QEMU, image, needs_images

REPO = Path(__file__).resolve().parents[2]
BANNER = b"OpenSBI v1.1"  # the first line OpenSBI prints
ENV = dict(os.environ, PYTHONPATH=str(REPO))
OURS = [sys.executable, "-m", "launcher.system_riscv64"]


def emulators() -> list[object]:
    return [pytest.param(OURS, id="llvmtcg"),
            pytest.param([QEMU], id="qemu", marks=pytest.mark.skipif(
                QEMU is None, reason="qemu-system-riscv64 not installed"))]


def wait_for_path(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the emulator exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def start(program: list[str], *args: str, stdout: int | None = subprocess.DEVNULL
          ) -> subprocess.Popen:
    return subprocess.Popen(
        [*program, "-M", "virt", "-bios", image("fw_jump.bin"), "-display", "none", *args],
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, env=ENV)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    # unix socket paths must be short (108 bytes)
    path = Path(f"/tmp/llvmtcg-mon-{os.getpid()}-{time.monotonic_ns()}")
    path.mkdir()
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_file_contains(path: Path, wanted: bytes, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = path.read_bytes() if path.exists() else b""
        if wanted in data:
            return data
        time.sleep(0.1)
    raise AssertionError(f"{wanted!r} not in {path}: {data[-2000:]!r}")


# -- QMP with the qemu.qmp client -------------------------------------------------------------
@needs_images
@pytest.mark.parametrize("program", emulators())
def test_qmp_session_with_qemu_qmp(program: list[str], run_dir: Path,
                                   procs: list[subprocess.Popen]) -> None:
    sock = run_dir / "qmp.sock"
    serial = run_dir / "serial.txt"
    proc = start(program, "-qmp", f"unix:{sock},server=on,wait=off", "-serial",
                 f"file:{serial}")
    procs.append(proc)
    wait_for_path(sock, proc)

    async def session() -> dict[str, object]:
        client = QMPClient("test")
        await client.connect(str(sock))
        seen: dict[str, object] = {"greeting": client.greeting._raw}
        with client.listener() as listener:
            seen["status"] = await client.execute("query-status")
            seen["version"] = await client.execute("query-version")
            assert await client.execute("stop") == {}
            stop = await asyncio.wait_for(listener.get(), 10)
            seen["paused"] = await client.execute("query-status")
            assert await client.execute("cont") == {}
            resume = await asyncio.wait_for(listener.get(), 10)
            seen["events"] = [stop["event"], resume["event"]]
            seen["timestamp"] = sorted(stop["timestamp"])
            seen["hmp"] = await client.execute("human-monitor-command",
                                               {"command-line": "info status"})
            assert await client.execute("system_reset") == {}
            reset = await asyncio.wait_for(listener.get(), 10)
            seen["reset"] = (reset["event"], reset["data"])
            seen["cpus"] = await client.execute("query-cpus-fast")
            seen["kvm"] = await client.execute("query-kvm")
            seen["numa"] = {m["name"]: m["numa-mem-supported"]
                            for m in await client.execute("query-machines")}
            names = {c["name"] for c in await client.execute("query-commands")}
            seen["commands"] = names >= {"query-status", "stop", "cont", "system_reset",
                                        "system_powerdown", "quit", "human-monitor-command",
                                        "query-chardev", "query-machines", "query-block"}
            seen["chardevs"] = sorted(c["label"] for c in await client.execute("query-chardev"))
            wait_file_contains(serial, BANNER)  # the guest runs meanwhile
            await client.execute("quit")
            shutdown = await asyncio.wait_for(listener.get(), 10)
            seen["shutdown"] = (shutdown["event"], shutdown["data"])
        try:
            await client.disconnect()
        except EOFError:  # the server closed first: it was told to quit
            pass
        return seen

    seen = asyncio.run(session())
    assert proc.wait(timeout=30) == 0
    greeting = seen["greeting"]["QMP"]  # type: ignore[index]
    assert greeting["capabilities"] == ["oob"]
    assert greeting["version"]["qemu"]["major"] == 7 and greeting["version"]["qemu"]["minor"] == 2
    assert seen["status"] == {"status": "running", "singlestep": False, "running": True}
    assert seen["paused"] == {"status": "paused", "singlestep": False, "running": False}
    assert seen["events"] == ["STOP", "RESUME"]
    assert seen["timestamp"] == ["microseconds", "seconds"]
    assert seen["hmp"] == "VM status: running\r\n"
    assert seen["reset"] == ("RESET", {"guest": False, "reason": "host-qmp-system-reset"})
    cpu = seen["cpus"][0]  # type: ignore[index]
    assert (cpu["cpu-index"], cpu["target"], cpu["props"]) == (0, "riscv64", {"core-id": 0})
    assert seen["kvm"] == {"enabled": False, "present": False}
    # virt takes -numa node,mem=|memdev= (qemu-system-riscv64 7.2 reports the same for it)
    assert seen["numa"]["virt"] is True  # type: ignore[index]
    assert seen["commands"] is True
    assert "compat_monitor0" in seen["chardevs"] and "serial0" in seen["chardevs"]
    assert seen["shutdown"] == ("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})


# -- QMP over a raw socket: protocol errors and garbage ------------------------------------
# Requests and the error (or reply keys) QEMU 7.2 answers each with.
PROTOCOL_CASES: list[tuple[bytes, object]] = [
    (b'{"execute": "query-status"}',
     ("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'")),
    (b'{"execute": "qmp_capabilities", "id": 1}', ["return", "id"]),
    (b'{"execute": "qmp_capabilities"}', ("CommandNotFound",
                                         "Capabilities negotiation is already complete, "
                                         "command ignored")),
    (b'{"execute":\n "query-status", "id": "a"}', ["return", "id"]),
    (b'{"execute": "foo", "id": [1]}', ("CommandNotFound", "The command foo has not been found")),
    (b'{"execute": "query-status", "arguments": {"x": 1}}',
     ("GenericError", "Parameter 'x' is unexpected")),
    (b'{"execute": "human-monitor-command"}',
     ("GenericError", "Parameter 'command-line' is missing")),
    (b'{"execute": "human-monitor-command", "arguments": {"command-line": 5}}',
     ("GenericError", "Invalid parameter type for 'command-line', expected: string")),
    (b'{"execute": "query-status", "arguments": []}',
     ("GenericError", "QMP input member 'arguments' must be an object")),
    (b"[1, 2]", ("GenericError", "QMP input must be a JSON object")),
    (b"garbage", ("GenericError", "JSON parse error, invalid keyword 'garbage'")),
    (b"{bad json}", ("GenericError", "JSON parse error, invalid keyword 'bad'")),
    (b'"str"', ("GenericError", "QMP input must be a JSON object")),
    (b"42", ("GenericError", "QMP input must be a JSON object")),
    (b'{"foo": 1}', ("GenericError", "QMP input member 'foo' is unexpected")),
    (b'{"execute": 5}', ("GenericError", "QMP input member 'execute' must be a string")),
    (b'{"execute": "query-status"}', ["return"]),
]


class RawQmp:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.buffer = b""

    def message(self, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"no reply; got {self.buffer!r}"
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                data = self.sock.recv(65536)
                assert data, "the server closed the connection"
                self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def reply(self) -> dict:
        while True:
            message = self.message()
            if "event" not in message:
                return message

    def send(self, data: bytes) -> None:
        self.sock.sendall(data + b"\n")

    def close(self) -> None:
        self.sock.close()


@needs_images
@pytest.mark.parametrize("program", emulators())
def test_qmp_errors_as_qemu_words_them(program: list[str], run_dir: Path,
                                       procs: list[subprocess.Popen]) -> None:
    sock = run_dir / "qmp.sock"
    proc = start(program, "-qmp", f"unix:{sock},server=on,wait=off", "-serial", "null")
    procs.append(proc)
    wait_for_path(sock, proc)
    client = RawQmp(sock)
    assert list(client.message()) == ["QMP"]
    for request, expected in PROTOCOL_CASES:
        client.send(request)
        reply = client.reply()
        if isinstance(expected, list):
            assert list(reply) == expected, (request, reply)
        else:
            assert reply["error"] == {"class": expected[0], "desc": expected[1]}, request
            assert list(reply) == (["id", "error"] if b'"id"' in request else ["error"])
    client.close()
    proc.kill()


@needs_images
def test_garbage_and_vanishing_clients_leave_the_vm_running(
        run_dir: Path, procs: list[subprocess.Popen]) -> None:
    sock = run_dir / "qmp.sock"
    serial = run_dir / "serial.txt"
    proc = start(OURS, "-qmp", f"unix:{sock},server=on,wait=off", "-serial", f"file:{serial}")
    procs.append(proc)
    wait_for_path(sock, proc)
    # A client that sends binary junk, half a request, and a huge value, then vanishes.
    junk = RawQmp(sock)
    junk.message()
    junk.sock.sendall(bytes(range(256)) + b'\n{"execute": "qmp_capabilities"}\n')
    junk.sock.sendall(b'{"execute": "query-status", "arguments": {"x": "' + b"A" * (2 << 20))
    junk.sock.sendall(b'"}}\n{"execute": "query-')
    junk.close()
    # Connect/disconnect without a word, several times.
    for _ in range(3):
        socket.socket(socket.AF_UNIX).connect(str(sock))
    client = RawQmp(sock)
    assert "QMP" in client.message()
    client.send(b'{"execute": "qmp_capabilities"}')
    assert client.reply() == {"return": {}}
    client.send(b'{"execute": "query-status"}')
    assert client.reply()["return"]["status"] == "running"
    wait_file_contains(serial, BANNER)
    client.send(b'{"execute": "quit"}')
    assert client.reply() == {"return": {}}
    assert proc.wait(timeout=30) == 0
    assert b"Traceback" not in proc.stderr.read()


@needs_images
def test_start_paused_then_cont(run_dir: Path, procs: list[subprocess.Popen]) -> None:
    sock = run_dir / "qmp.sock"
    serial = run_dir / "serial.txt"
    proc = start(OURS, "-S", "-qmp", f"unix:{sock},server=on,wait=off",
                 "-serial", f"file:{serial}")
    procs.append(proc)
    wait_for_path(sock, proc)
    client = RawQmp(sock)
    client.message()
    client.send(b'{"execute": "qmp_capabilities"}')
    client.reply()
    client.send(b'{"execute": "query-status"}')
    assert client.reply()["return"] == {"status": "prelaunch", "singlestep": False,
                                        "running": False}
    client.send(b'{"execute": "human-monitor-command", '
                b'"arguments": {"command-line": "info status"}}')
    assert client.reply()["return"] == "VM status: paused (prelaunch)\r\n"
    time.sleep(1)
    assert serial.read_bytes() == b""  # nothing ran
    client.send(b'{"execute": "cont"}')
    assert client.message()["event"] == "RESUME"
    wait_file_contains(serial, BANNER)
    client.close()


# -- HMP ------------------------------------------------------------------------------------
@needs_images
def test_hmp_over_a_unix_socket(run_dir: Path, procs: list[subprocess.Popen]) -> None:
    sock_path = run_dir / "mon.sock"
    proc = start(OURS, "-monitor", f"unix:{sock_path},server=on,wait=off", "-serial", "null")
    procs.append(proc)
    wait_for_path(sock_path, proc)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(sock_path))
    from pexpect.fdpexpect import fdspawn
    mon = fdspawn(sock.fileno(), timeout=30)
    mon.expect_exact("QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ")
    mon.send("info status\r")
    mon.expect_exact("info status\r\nVM status: running\r\n(qemu) ")
    mon.send("stop\r")
    mon.expect_exact("(qemu) ")
    mon.send("info status\r")
    mon.expect_exact("VM status: paused\r\n(qemu) ")
    mon.send("xp/2xw 0x1000\r")  # the reset vector QEMU's virt writes: auipc t0,0; addi a2
    mon.expect_exact("0000000000001000: 0x00000297 0x02828613\r\n(qemu) ")
    mon.send("x/4bx 0x1000\r")  # M-mode: virtual = physical
    mon.expect_exact("0000000000001000: 0x97 0x02 0x00 0x00\r\n")
    mon.send("p/x 1+2*3\r")
    mon.expect_exact("0x7\r\n(qemu) ")
    mon.send("p $pc\r")
    mon.expect(r"0x[0-9a-f]+\r\n\(qemu\) ")
    mon.send("info registers\r")
    mon.expect(r"CPU#0\r\n pc       [0-9a-f]{16}\r\n mhartid  0000000000000000\r\n")
    mon.expect_exact(" x0/zero  0000000000000000 x1/ra    ")
    mon.expect_exact("(qemu) ")
    mon.send("info chardev\r")
    mon.expect_exact(f"compat_monitor0: filename=unix:{sock_path},server=on")
    mon.send("bogus\r")
    mon.expect_exact("unknown command: 'bogus'\r\n(qemu) ")
    mon.send("x/2z 0\r")
    mon.expect_exact("invalid char in format: 'z'\r\nTry \"help x\" for more information")
    mon.send("help\r")
    mon.expect_exact("system_reset  -- reset the system\r\n")
    mon.send("c\r")
    mon.expect_exact("(qemu) ")
    mon.send("info status\r")
    mon.expect_exact("VM status: running\r\n(qemu) ")
    mon.send("quit\r")
    assert proc.wait(timeout=30) == 0
    sock.close()


@needs_images
def test_nographic_mux_console_and_monitor() -> None:
    """-nographic is -serial mon:stdio: the console, C-a c to the monitor and back,
    C-a h help, C-a x exit; the terminal is restored at the end."""
    child = pexpect.spawn(OURS[0], [*OURS[1:], "-M", "virt", "-bios", image("fw_jump.bin"),
                                    "-nographic"], env=ENV, timeout=60)
    try:
        child.expect_exact("OpenSBI v1.1")
        child.send("\x01c")
        child.expect_exact("QEMU 7.2.0 monitor - type 'help' for more information")
        child.expect_exact("(qemu) ")
        child.send("info status\r")
        child.expect_exact("VM status: running")
        child.expect_exact("(qemu) ")
        child.send("info chardev\r")
        child.expect_exact("serial0-base: filename=stdio")
        child.expect_exact("serial0: filename=mux")
        child.send("\x01c")  # back to the console ...
        child.send("\x01c")  # ... and to the monitor again: the prompt only
        child.expect_exact("(qemu) ")
        child.send("\x01h")
        child.expect_exact("C-a c    switch between console and monitor")
        child.send("\x01x")
        child.expect_exact("QEMU: Terminated")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


# -- chardev backends end to end ----------------------------------------------------------
@needs_images
def test_tcp_serial_server_keeps_output_for_a_late_client_and_survives_it(
        run_dir: Path, procs: list[subprocess.Popen]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    qmp = run_dir / "qmp.sock"
    proc = start(OURS, "-serial", f"tcp:127.0.0.1:{port},server=on,wait=off",
                 "-qmp", f"unix:{qmp},server=on,wait=off")
    procs.append(proc)
    wait_for_path(qmp, proc)
    time.sleep(2)  # the banner is printed with no client connected
    data = b""
    for attempt in range(2):  # a client comes, reads, and goes; another one comes back
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            if attempt == 0:
                while BANNER not in data:
                    chunk = client.recv(65536)
                    assert chunk, data
                    data += chunk
    assert b"OpenSBI v1.1" in data  # kept while nobody was connected
    control = RawQmp(qmp)
    control.message()
    control.send(b'{"execute": "qmp_capabilities"}')
    control.reply()
    control.send(b'{"execute": "query-status"}')
    assert control.reply()["return"]["running"] is True
    control.close()


@needs_images
def test_socket_client_reconnects(procs: list[subprocess.Popen]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)
    port = listener.getsockname()[1]
    proc = start(OURS, "-chardev", f"socket,id=con,host=127.0.0.1,port={port},reconnect=1",
                 "-serial", "chardev:con")
    procs.append(proc)
    conn, _ = listener.accept()
    data = b""
    conn.settimeout(60)
    while BANNER not in data:
        chunk = conn.recv(65536)
        assert chunk
        data += chunk
    conn.close()  # the emulator reconnects within a second or so
    again, _ = listener.accept()
    again.close()
    listener.close()
    assert proc.poll() is None


@needs_images
def test_pty_backend_prints_its_name(procs: list[subprocess.Popen]) -> None:
    proc = start(OURS, "-serial", "pty", stdout=subprocess.PIPE)
    procs.append(proc)
    line = proc.stdout.readline().decode()
    assert line.startswith("char device redirected to /dev/pts/"), line
    assert line.endswith(" (label serial0)\n")
    name = line.split()[4]
    fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
    data = b""
    deadline = time.monotonic() + 60
    while BANNER not in data and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            data += os.read(fd, 65536)
    os.close(fd)
    assert BANNER in data


@needs_images
def test_pipe_and_file_append(run_dir: Path, procs: list[subprocess.Popen]) -> None:
    base = run_dir / "p"
    os.mkfifo(f"{base}.in")
    os.mkfifo(f"{base}.out")
    reader = os.open(f"{base}.out", os.O_RDONLY | os.O_NONBLOCK)
    proc = start(OURS, "-chardev", f"pipe,id=p,path={base}", "-serial", "chardev:p")
    procs.append(proc)
    data = b""
    deadline = time.monotonic() + 60
    while BANNER not in data and time.monotonic() < deadline:
        if select.select([reader], [], [], 1)[0]:
            data += os.read(reader, 65536)
    os.close(reader)
    assert BANNER in data
    proc.kill()
    log = run_dir / "log.txt"
    log.write_bytes(b"before\n")
    proc2 = start(OURS, "-chardev", f"file,id=f,path={log},append=on", "-serial", "chardev:f")
    procs.append(proc2)
    assert wait_file_contains(log, BANNER).startswith(b"before\n\r\nOpenSBI v1.1")


@pytest.mark.parametrize("args,message", [
    (["-chardev", "foo,id=x"], "-chardev foo,id=x: 'foo' is not a valid char driver name"),
    (["-chardev", "null"], "-chardev null: chardev: no id specified"),
    (["-chardev", "socket,id=a,host=localhost,port=abc,server=on"],
     "address resolution failed for localhost:abc"),
    (["-chardev", "null,id=a", "-chardev", "null,id=a"], "Duplicate ID 'a' for chardev"),
    (["-mon", "chardev=nope"], '-mon chardev=nope: chardev "nope" not found'),
    (["-chardev", "null,id=a", "-mon", "chardev=a,mode=foo"],
     "Parameter 'mode' does not accept value 'foo'"),
    (["-serial", "tcp:127.0.0.1:1"], "Failed to connect to '127.0.0.1:1': Connection refused"),
    (["-chardev", "file,id=f"], "chardev: file: no filename given"),
])
def test_bad_options_are_one_line(args: list[str], message: str) -> None:
    result = subprocess.run([*OURS, "-M", "virt", "-bios", "none", "-display", "none", *args],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            env=ENV, timeout=60)
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


@needs_images
def test_a_waiting_server_blocks_the_start_until_a_client_connects(
        run_dir: Path, procs: list[subprocess.Popen]) -> None:
    sock = run_dir / "qmp.sock"
    serial = run_dir / "serial.txt"
    proc = start(OURS, "-qmp", f"unix:{sock},server=on", "-serial", f"file:{serial}")
    procs.append(proc)
    line = proc.stderr.readline().decode()
    assert line == (f"llvmtcg-system-riscv64: -qmp unix:{sock},server=on: info: QEMU waiting "
                    f"for connection on: disconnected:unix:{sock},server=on\n")
    time.sleep(1)
    assert not serial.exists()  # the machine is not even built yet
    client = RawQmp(sock)
    assert "QMP" in client.message()
    wait_file_contains(serial, BANNER)
    client.close()


@needs_images
def test_monitor_on_stdio() -> None:
    child = pexpect.spawn(OURS[0], [*OURS[1:], "-M", "virt", "-bios", image("fw_jump.bin"),
                                    "-display", "none", "-serial", "null", "-monitor",
                                    "stdio"], env=ENV, timeout=60)
    try:
        child.expect_exact("QEMU 7.2.0 monitor - type 'help' for more information")
        child.expect_exact("(qemu) ")
        child.send("info status\r")
        child.expect_exact("VM status: running")
        child.send("q\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
