"""``telnet=on`` sockets (``-monitor telnet::PORT,server=on``, ``-chardev socket,…,
telnet=on``): the option negotiation QEMU sends at each connection, and the client's
telnet commands kept out of the input; ``websocket=on``: the RFC 6455 handshake and
frames. Both compared with qemu-system-riscv64."""

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


def read_for(sock: socket.socket, seconds: float, until: bytes | None = None) -> bytes:
    """What arrives in ``seconds`` (or, with ``until``, up to 120 s until it has come
    and ``seconds`` more have passed: the emulator may be slow to start)."""
    out = b""
    deadline = time.monotonic() + (120 if until else seconds)
    while time.monotonic() < deadline:
        if until is not None and until in out:
            until, deadline = None, time.monotonic() + seconds
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
            greeting = read_for(sock, 1, until=b"(qemu) ")
            # telnet(1)'s answers, then a command with an escaped 0xFF and a break
            sock.sendall(b"\xff\xfd\x01\xff\xfd\x03\xff\xfb\x1finfo st\xff\xffatus\r\n"
                         b"\xff\xf3")
            reply = read_for(sock, 1, until=b"atus'")
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


# -- websocket=on ---------------------------------------------------------------------------
def masked(payload: bytes, opcode: int = 2) -> bytes:
    mask = b"\x0f\x1e\x2d\x3c"
    return (bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i & 3] for i, b in enumerate(payload)))


def payloads(data: bytes) -> tuple[bytes, list[int]]:
    """The server's frames (unmasked, short): their payloads joined, their opcodes."""
    out, opcodes = b"", []
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        assert data[0] & 0x80 and not data[1] & 0x80 and length < 126, data
        out += data[2:2 + length]
        opcodes.append(opcode)
        data = data[2 + length:]
    return out, opcodes


def monitor_over_websocket(program: list[str]) -> tuple[bytes, bytes, bytes, bytes]:
    port = free_port()
    proc = subprocess.Popen(
        [*program, "-M", "virt", "-bios", image("fw_jump.bin"), "-display", "none",
         "-serial", "null", "-S", "-chardev",
         f"socket,id=mon,host=127.0.0.1,port={port},server=on,wait=off,websocket=on",
         "-mon", "chardev=mon"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        wait_listening(port, proc)
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n")
            response = read_for(sock, 1, until=b"(qemu) ")
            head, _, greeting = response.partition(b"\r\n\r\n")
            sock.sendall(masked(b"info status\r\n"))
            reply = read_for(sock, 1, until=b"(prelaunch)")
            sock.sendall(masked(b"ping", opcode=9))
            pong = read_for(sock, 1, until=b"ping")
            sock.sendall(masked(b"quit\r\n"))
            read_for(sock, 2)
        assert proc.wait(timeout=60) == 0
        return head, greeting, reply, pong
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_images
@pytest.mark.parametrize("program", [pytest.param(OURS, id="llvmtcg"), pytest.param(
    [QEMU], id="qemu", marks=pytest.mark.skipif(QEMU is None, reason="no qemu-system"))])
def test_monitor_over_websocket(program: list[str]) -> None:
    head, greeting, reply, pong = monitor_over_websocket(program)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in lines  # RFC 6455's
    assert b"Sec-WebSocket-Protocol: binary" in lines
    text, opcodes = payloads(greeting)
    assert text.startswith(b"QEMU 7.2.") and set(opcodes) == {2}  # binary frames
    text, _ = payloads(reply)
    assert b"\r\nVM status: paused (prelaunch)\r\n(qemu) " in text
    assert pong == b"\x8a\x04ping"


def test_websocket_needs_a_tcp_server() -> None:
    from launcher.chardev import ChardevError, open_chardev, parse_chardev
    for props, message in (([("port", "1")], "WebSocket client is not implemented"),
                           ([("path", "/tmp/x"), ("server", "on")],
                            "'websocket' option is only valid for TCP sockets")):
        spec = parse_chardev("socket", [("id", "w"), ("websocket", "on"), *props])
        with pytest.raises(ChardevError, match=message):
            open_chardev(spec)
