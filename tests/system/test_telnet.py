"""``telnet=on`` sockets (``-monitor telnet::PORT,server=on``, ``-chardev socket,…,
telnet=on``): the option negotiation QEMU sends at each connection, and the client's
telnet commands kept out of the input, compared with qemu-system-riscv64."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from launcher.chardev import TELNET_INIT, TelnetFilter
from tests.gdbstub.support import free_port, wait_listening
from tests.machines.support import QEMU, REPO, image, needs_images

OURS = [sys.executable, "-m", "launcher.system_riscv64"]


def test_filter_removes_commands_and_keeps_escaped_iac() -> None:
    breaks = []
    telnet = TelnetFilter(lambda: breaks.append(1))
    data = b"ab\xff\xfd\x01c\xff\xff\xff\xf3d\xff\xfb"
    assert telnet.filter(data) == b"abc\xffd"
    assert telnet.filter(b"\x1fe") == b"e"  # the option byte came in the next read
    assert breaks == [1]
    assert TELNET_INIT == bytes.fromhex("fffb01fffb03fffb00fffd00")  # QEMU's


def read_for(sock: socket.socket, seconds: float) -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def monitor_over_telnet(program: list[str]) -> tuple[bytes, bytes, int]:
    port = free_port()
    proc = subprocess.Popen(
        [*program, "-M", "virt", "-bios", image("fw_jump.bin"), "-display", "none",
         "-serial", "null", "-S", "-monitor", f"telnet::{port},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        wait_listening(port, proc)
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            greeting = read_for(sock, 3)
            # telnet(1)'s answers, then a command with an escaped 0xFF and a break
            sock.sendall(b"\xff\xfd\x01\xff\xfd\x03\xff\xfb\x1finfo st\xff\xffatus\r\n"
                         b"\xff\xf3")
            reply = read_for(sock, 3)
            sock.sendall(b"quit\r\n")
            read_for(sock, 2)
        return greeting, reply, proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_images
@pytest.mark.parametrize("program", [pytest.param(OURS, id="llvmtcg"), pytest.param(
    [QEMU], id="qemu", marks=pytest.mark.skipif(QEMU is None, reason="no qemu-system"))])
def test_monitor_over_telnet(program: list[str]) -> None:
    greeting, reply, status = monitor_over_telnet(program)
    assert greeting.startswith(TELNET_INIT)
    assert greeting[len(TELNET_INIT):].startswith(b"QEMU 7.2.")
    # (QEMU's readline redraws the line as it is typed; the command's output is the same)
    assert b"\r\nunknown command: 'info st\xffatus'\r\n(qemu) " in reply
    assert status == 0
