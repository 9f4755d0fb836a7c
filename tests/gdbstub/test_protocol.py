"""The gdbstub spoken to by hand: what gdb sends, and what it never sends (garbage, bad
checksums, malformed and unknown packets, oversized packets, a client that vanishes).
The emulator must answer as the protocol says and never crash."""

from __future__ import annotations

import re
import time

import pytest

from tests.gdbstub.support import RawClient, finish, free_port, kill_quietly, start_user


@pytest.fixture
def session(target_program):
    """A raw client connected to llvmtcg-user -g running the target program."""
    sessions = []

    def start(*args: str) -> tuple[RawClient, object]:
        port = free_port()
        proc = start_user(target_program, list(args), port)
        client = RawClient(port)
        sessions.append((client, proc))
        return client, proc
    yield start
    for client, proc in sessions:
        client.close()
        kill_quietly(proc)


def nm_symbol(prog, name: str) -> int:
    import subprocess

    out = subprocess.run(["riscv64-linux-gnu-nm", str(prog)], capture_output=True,
                         text=True, check=True).stdout
    return int(re.search(rf"^([0-9a-f]+) \w {name}$", out, re.M).group(1), 16)


def reg(client: RawClient, number: int) -> int:
    return int.from_bytes(bytes.fromhex(client.command(f"p{number:x}").decode()), "little")


def test_handshake_and_target_description(session) -> None:
    client, proc = session()
    supported = client.command("qSupported:multiprocess+;swbreak+;xmlRegisters=i386")
    assert b"PacketSize=" in supported and b"qXfer:features:read+" in supported
    assert client.command("?").startswith(b"T05thread:")
    assert client.command("qAttached") == b"1"
    assert client.command("qC").startswith(b"QC")
    xml, offset = b"", 0
    while True:  # read it in small pieces, as a client with a small buffer would
        chunk = client.command(f"qXfer:features:read:target.xml:{offset:x},40")
        xml += chunk[1:]
        offset += len(chunk) - 1
        if chunk[:1] == b"l":
            break
        assert chunk[:1] == b"m"
    assert b"<architecture>riscv:rv64</architecture>" in xml
    assert b'name="org.gnu.gdb.riscv.cpu"' in xml and b'name="org.gnu.gdb.riscv.fpu"' in xml
    assert b'<reg name="pc" bitsize="64" type="code_ptr" regnum="32"/>' in xml
    assert b'<reg name="fcsr" bitsize="32" type="int" regnum="68" group="float"/>' in xml
    assert client.command("qXfer:features:read:other.xml:0,100") == b"E00"
    assert len(client.command("g")) == 33 * 16


def test_bad_input_is_answered_and_harmless(session, target_program) -> None:
    client, proc = session()
    client.send_raw(b"garbage \x00\xff+++")  # between packets: skipped
    client.send_raw(b"$g#00")  # a bad checksum: '-', gdb would send it again
    assert client.read_ack() == b"-"
    assert client.command("qFooBar") == b""  # unknown packets: empty
    assert client.command("vMustReplyEmpty") == b""
    assert client.command("Z9,1000,4") == b""  # unknown breakpoint types: unsupported
    assert client.command("Z2,1000,0") == b"E22"  # a watchpoint of no bytes
    assert client.command("mzz,4") == b"E22"  # malformed
    assert client.command("m10") == b"E22"
    assert client.command("M10,4:zz") == b"E22"
    assert client.command("P0=") == b"E14"  # (wrong size for the register)
    assert client.command("p1000") == b"E14"  # no such register
    assert client.command("m0,8") == b"E14"  # unmapped guest memory
    assert client.command("M0,2:0000") == b"E14"
    assert client.command("Hgzz") == b"E22"
    assert client.command("") == b""
    client.send_raw(b"$" + b"A" * 40000)  # oversized, no end: dropped
    assert client.read_ack() == b"-"
    client.send_raw(b"#00")  # (the tail of it: garbage now)
    assert client.command("vCont?") == b"vCont;c;C;s;S"  # still serving
    # A text section is readable, the same bytes as the ELF's.
    main = nm_symbol(target_program, "main")
    assert len(client.command(f"m{main:x},10")) == 32
    assert client.command("c").startswith(b"W0a")  # it runs to the end: status 10
    status, output = finish(proc)
    assert status == 10 and output == "total 10 scaled 15.0\n"


def test_registers_and_memory_round_trip(session) -> None:
    client, proc = session()
    client.command("P0b=efbeadde00000000")  # a1 (x11)
    assert reg(client, 11) == 0xDEADBEEF
    client.command("P0=0100000000000000")  # x0 stays zero
    assert reg(client, 0) == 0
    sp = reg(client, 2)
    assert client.command(f"M{sp - 16:x},4:01020304") == b"OK"
    assert client.command(f"m{sp - 16:x},4") == b"01020304"
    # X: binary data, with '}' escaping '#', '$', '}' and '*'.
    assert client.command(f"X{sp - 16:x},4:".encode() + b"}\x03}]}\x04}\x0a") == b"OK"
    assert client.command(f"m{sp - 16:x},4") == b"237d242a"
    assert client.command(f"X{sp:x},0:") == b"OK"  # the probe gdb sends first


def test_breakpoint_step_and_no_ack_mode(session, target_program) -> None:
    client, proc = session()
    assert client.command("QStartNoAckMode") == b"OK"
    client.ack = False
    add = nm_symbol(target_program, "add")
    assert client.command(f"Z0,{add:x},2") == b"OK"
    assert client.command("vCont;c").startswith(b"T05thread:")
    assert reg(client, 32) == add
    # Steps from a breakpoint: exactly one instruction each.
    for _ in range(3):
        pc = reg(client, 32)
        low = int(client.command(f"m{pc:x},1"), 16)
        assert client.command("s").startswith(b"T05")
        assert reg(client, 32) == pc + (4 if low & 3 == 3 else 2)
    assert client.command("c").startswith(b"T05")  # add again
    assert reg(client, 32) == add and reg(client, 11) == 1  # add(0, 1)
    assert client.command(f"z0,{add:x},2") == b"OK"
    assert client.command("c").startswith(b"W0a")


def test_ctrl_c_interrupts_a_running_guest(session) -> None:
    client, proc = session("spin")
    client.send_raw(RawClient.frame(b"c"))
    assert client.read_ack() == b"+"
    time.sleep(1.0)
    client.send_raw(b"\x03")
    assert client.read_packet().startswith(b"T02")  # SIGINT
    assert client.command("D") == b"OK"
    client.close()
    time.sleep(0.5)
    assert proc.poll() is None  # detached: spinning on
    kill_quietly(proc)


def test_a_vanishing_client_lets_the_program_run_on(session) -> None:
    client, proc = session()
    client.command("qSupported")
    client.close()
    status, output = finish(proc)
    assert status == 10 and output == "total 10 scaled 15.0\n"


def test_segv_stop_then_exit_signal(session) -> None:
    client, proc = session("segv")
    assert client.command("c").startswith(b"T0b")  # SIGSEGV
    assert client.command("C0b") == b"X0b"  # passed on: the process dies of it
    status, _ = finish(proc)
    assert status == -11


def step_until_ecall_done(client: RawClient, limit: int = 60) -> bytes:
    """Single-step until an ecall was stepped over; the stop reply after it."""
    for _ in range(limit):
        pc = reg(client, 32)
        word = int.from_bytes(bytes.fromhex(client.command(f"m{pc:x},4").decode()), "little")
        reply = client.command("s")
        if word == 0x00000073:  # ecall
            return reply
        assert reply.startswith(b"T05"), reply
    raise AssertionError("no ecall reached")


def test_stepping_over_syscalls(session, target_program) -> None:
    client, proc = session()
    write = nm_symbol(target_program, "__libc_write")
    client.command(f"Z0,{write:x},4")
    assert client.command("c").startswith(b"T05")
    client.command(f"z0,{write:x},4")
    # The write syscall completes within the step, which stops after it.
    assert step_until_ecall_done(client).startswith(b"T05")
    assert reg(client, 10) == len("total 10 scaled 15.0\n")  # what write returned
    exit_ = nm_symbol(target_program, "_exit")
    client.command(f"Z0,{exit_:x},4")
    assert client.command("c").startswith(b"T05")
    assert step_until_ecall_done(client) == b"W0a"  # exit_group within a step
    status, output = finish(proc)
    assert status == 10 and output == "total 10 scaled 15.0\n"
