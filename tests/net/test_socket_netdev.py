"""-netdev socket: QEMU's stream format (4-byte big-endian length, frame) over TCP on
127.0.0.1, carried by the machine loop's I/O thread; two ends link two "VMs"."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from launcher.net.stream import SocketNetdev
from launcher.net.user import NetdevError
from machines.cpu import Idle
from machines.loop import MachineClock, MachineLoop
from tests.machines.support import ScriptedCpu

FRAME = bytes.fromhex("ffffffffffff525400123456") + b"\x08\x06" + bytes(range(50))


def idle_loop() -> MachineLoop:
    def idle(cpu: ScriptedCpu) -> Idle:
        cpu.position -= 1  # every round is caused by an event, never polled
        return Idle()
    return MachineLoop(ScriptedCpu([idle]), MachineClock(), lambda: None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_with(loop: MachineLoop, host_side) -> None:
    errors: list[BaseException] = []

    def side() -> None:
        try:
            host_side()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(exc)
        finally:
            loop.request_shutdown(0)

    thread = threading.Thread(target=side)
    thread.start()
    try:
        assert loop.run() == 0
    finally:
        thread.join()
    if errors:
        raise errors[0]


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_wire_format_with_a_qemu_style_peer() -> None:
    port = free_port()
    received: list[bytes] = []
    netdev = SocketNetdev("s0", listen=("127.0.0.1", port))
    netdev.connect(received.append)
    loop = idle_loop()
    loop.post(lambda: netdev.start(loop))

    def peer() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            # Two frames in one write, the second split across two writes.
            second = FRAME[::-1]
            data = struct.pack(">I", len(FRAME)) + FRAME + struct.pack(">I", len(second))
            conn.sendall(data + second[:7])
            time.sleep(0.1)
            conn.sendall(second[7:])
            wait_for(lambda: len(received) == 2)
            loop.post(lambda: netdev.send(FRAME))  # the guest sends one back
            header = conn.recv(4, socket.MSG_WAITALL)
            assert struct.unpack(">I", header)[0] == len(FRAME)
            assert conn.recv(len(FRAME), socket.MSG_WAITALL) == FRAME
        assert received == [FRAME, FRAME[::-1]]

    try:
        run_with(loop, peer)
    finally:
        netdev.close()


def test_two_vms_linked() -> None:
    port = free_port()
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    a = SocketNetdev("a", listen=("127.0.0.1", port))
    b = SocketNetdev("b", connect=("127.0.0.1", port))
    a.connect(got_a.append)
    b.connect(got_b.append)
    loop = idle_loop()
    loop.post(lambda: a.start(loop))
    loop.post(lambda: b.start(loop))

    def traffic() -> None:
        wait_for(lambda: a._conn is not None)  # accepted on the I/O thread
        for i in range(20):
            loop.post(lambda i=i: b.send(FRAME + bytes([i])))
        loop.post(lambda: a.send(FRAME))
        wait_for(lambda: len(got_a) == 20 and len(got_b) == 1)

    try:
        run_with(loop, traffic)
    finally:
        a.close()
        b.close()
    assert got_a == [FRAME + bytes([i]) for i in range(20)]
    assert got_b == [FRAME]


def test_a_second_client_is_refused_and_a_broken_stream_dropped() -> None:
    port = free_port()
    netdev = SocketNetdev("s0", listen=("127.0.0.1", port))
    netdev.connect(lambda frame: None)
    loop = idle_loop()
    loop.post(lambda: netdev.start(loop))

    def clients() -> None:
        first = socket.create_connection(("127.0.0.1", port), timeout=30)
        wait_for(lambda: netdev._conn is not None)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as second:
            assert second.recv(1) == b""  # closed by the device at once
        first.sendall(struct.pack(">I", 1 << 30))  # a length no frame has
        assert first.recv(1) == b""
        first.close()
        wait_for(lambda: netdev._conn is None)
        with socket.create_connection(("127.0.0.1", port), timeout=30):
            wait_for(lambda: netdev._conn is not None)  # accepted again

    try:
        run_with(loop, clients)
    finally:
        netdev.close()


def test_a_busy_listen_port_and_an_absent_peer() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(NetdevError, match="can't bind ip=127.0.0.1 to socket: Address "
                                              "already in use"):
            SocketNetdev("s0", listen=("127.0.0.1", port))
    lonely = SocketNetdev("s1", connect=("127.0.0.1", free_port()))  # nobody listens
    lonely.send(FRAME)  # goes nowhere, as in QEMU
    lonely.close()
