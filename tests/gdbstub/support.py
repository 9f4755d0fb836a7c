"""Running the emulators under a debugger: free ports, the real gdb client in batch
mode, and a raw protocol client for what gdb never sends (malformed packets)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUEST_SRC = REPO / "tests" / "guest"
IMAGES = (REPO / ".." / "shared" / "images" / "riscv64").resolve()
CC = "riscv64-linux-gnu-gcc"
GDB = "gdb-multiarch"
needs_gdb = pytest.mark.skipif(shutil.which(GDB) is None, reason=f"{GDB} not installed")
needs_cc = pytest.mark.skipif(shutil.which(CC) is None, reason=f"{CC} not installed")
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "LANG": "C"}


def build_target(build_dir: Path) -> Path:
    """tests/guest/gdb_target.c, static, with debug information, unoptimised."""
    out = build_dir / "gdb_target"
    if not out.exists():
        subprocess.run([CC, "-march=rv64gc", "-mabi=lp64d", "-static", "-g", "-O0", "-o",
                        str(out), str(GUEST_SRC / "gdb_target.c")], check=True)
    return out


def build_threads(build_dir: Path) -> Path:
    """tests/guest/gdb_threads.c, static, -pthread, with debug information, unoptimised."""
    out = build_dir / "gdb_threads"
    if not out.exists():
        subprocess.run([CC, "-march=rv64gc", "-mabi=lp64d", "-static", "-pthread", "-g",
                        "-O0", "-o", str(out), str(GUEST_SRC / "gdb_threads.c")], check=True)
    return out


def build_bare(build_dir: Path) -> Path:
    """tests/guest/bare_counter.S as an ELF for -bios (linked at 0x80000000)."""
    out = build_dir / "bare_counter.elf"
    if not out.exists():
        subprocess.run([CC, "-march=rv64gc", "-mabi=lp64d", "-nostdlib", "-static",
                        "-Wl,-N,-Ttext=0x80000000,--build-id=none,--no-warn-rwx-segments",
                        "-o", str(out),
                        str(GUEST_SRC / "bare_counter.S")], check=True)
    return out


def free_port() -> int:
    """A TCP port nobody listens on (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                return True
    return False


listening = _listening  # (whether something listens on a port, without connecting)


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until ``proc`` listens on ``port`` (without connecting: the stub serves
    the first connection only)."""
    deadline = time.monotonic() + timeout
    while not _listening(port):
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else b""
            raise AssertionError(f"emulator exited with {proc.returncode}: {out!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on port {port}")
        time.sleep(0.05)


def start_user(prog: Path, args: list[str], port: int, emulator: str = "llvmtcg"
               ) -> subprocess.Popen:
    """The program under llvmtcg-user -g PORT (or qemu-riscv64 -g PORT), waiting for
    the debugger."""
    env = dict(ENV, PYTHONPATH=str(REPO))
    if emulator == "llvmtcg":
        cmd = [sys.executable, "-m", "llvmtcg.user", "-g", str(port), str(prog), *args]
    else:
        cmd = ["qemu-riscv64", "-g", str(port), str(prog), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_listening(port, proc)
    return proc


def start_system(port: int, *options: str, bios: Path | None = None,
                 qemu: bool = False) -> subprocess.Popen:
    """llvmtcg-system-riscv64 (or qemu-system-riscv64) -M virt with -gdb on ``port``."""
    env = dict(ENV, PYTHONPATH=str(REPO))
    program = ["qemu-system-riscv64"] if qemu else [
        sys.executable, "-m", "launcher.system_riscv64"]
    cmd = [*program, "-M", "virt", "-bios", str(bios or IMAGES / "fw_jump.bin"),
           "-nographic", "-gdb", f"tcp::{port}", *options]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    wait_listening(port, proc)
    return proc


def run_gdb(port: int, commands: list[str], binary: Path | None = None,
            timeout: float = 240) -> str:
    """gdb-multiarch in batch mode: connect, run ``commands``, return what it printed."""
    args = [GDB, "-nx", "-batch", "-ex", "set confirm off", "-ex", "set pagination off"]
    if binary is None:
        args += ["-ex", "set architecture riscv:rv64"]
    args += ["-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    if binary is not None:
        args.append(str(binary))
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    """(exit status, output) of an emulator process; killed if it does not end."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"emulator did not end: {out!r}") from None
    return proc.returncode, out.decode(errors="replace")


class RawClient:
    """The GDB remote protocol spoken by hand, for malformed input gdb never sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = b""
        self.ack = True

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, n: int = 1) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("stub closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def read_ack(self) -> bytes:
        return self._read(1)

    def read_packet(self) -> bytes:
        """The next packet's payload (checksum verified, acknowledged)."""
        while self._read(1) != b"$":
            pass
        payload = b""
        while (c := self._read(1)) != b"#":
            payload += c
        check = self._read(2)
        assert int(check, 16) == sum(payload) & 0xFF, (payload, check)
        if self.ack:
            self.send_raw(b"+")
        return payload

    @staticmethod
    def frame(payload: bytes) -> bytes:
        return b"$" + payload + b"#" + b"%02x" % (sum(payload) & 0xFF)

    def command(self, payload: bytes | str) -> bytes:
        """Send a packet and return the reply's payload."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.send_raw(self.frame(payload))
        if self.ack:
            assert self.read_ack() == b"+"
        return self.read_packet()


def kill_quietly(proc: subprocess.Popen) -> None:
    """End an emulator a test is done with (again: a no-op)."""
    if proc.poll() is None:
        proc.kill()
    if proc.stdout is not None and not proc.stdout.closed:
        proc.communicate()


__all__ = ["ENV", "IMAGES", "RawClient", "build_target", "build_threads", "finish", "free_port",
           "kill_quietly", "listening", "needs_cc", "needs_gdb", "run_gdb", "start_system",
           "start_user"]
