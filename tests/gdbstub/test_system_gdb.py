"""llvmtcg-system-riscv64 -S -gdb tcp::PORT driven by gdb-multiarch: stop at the reset
vector, step through the boot ROM, break in OpenSBI (fw_jump.elf is stripped: its
entry point, and a function found in its code), read CSRs, detach and let the firmware
boot; the same gdb session against qemu-system-riscv64 gives the same answers."""

from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.gdbstub.support import (
    IMAGES,
    RawClient,
    build_bare,
    finish,
    free_port,
    kill_quietly,
    needs_gdb,
    run_gdb,
    start_system,
)

pytestmark = [needs_gdb, pytest.mark.skipif(not (IMAGES / "fw_jump.bin").exists(),
                                            reason="no OpenSBI image")]
FW_ENTRY = 0x80000000  # fw_jump.elf's entry point (its ELF header's e_entry)

SESSION = ["p/x $pc", "x/6i $pc", "stepi", "p/x $pc", "stepi", "stepi", "p/x $a0",
           "p/x $a2", f"break *{FW_ENTRY:#x}", "c", "p/x $pc", "p/x $a0", "p/x $a1",
           "p/x $mhartid", "p/x $misa", "p $priv", "p/x $mstatus", "p/x $satp",
           "p/x $mtvec", "stepi", "stepi", "p/x $pc", "x/2i $pc", "info registers mepc",
           "p/x $sp"]


def system_session(commands: list[str], qemu: bool = False, bios=None) -> tuple[str, str]:
    port = free_port()
    proc = start_system(port, "-S", bios=bios, qemu=qemu)
    try:
        out = run_gdb(port, commands + ["kill"])
        _, output = finish(proc)
    finally:
        kill_quietly(proc)
    return out, output


def test_reset_vector_boot_rom_and_firmware_entry() -> None:
    out, _ = system_session(SESSION)
    values = re.findall(r"^\$\d+ = (.*)$", out, re.M)
    assert values[0] == "0x1000"  # -S: stopped before the first instruction
    assert "=> 0x1000:\tauipc\tt0,0x0" in out and "csrr\ta0,mhartid" in out
    assert values[1] == "0x1004"  # one instruction per stepi
    assert values[2:4] == ["0x0", "0x1028"]  # a0 = mhartid, a2 = fw_dynamic_info
    assert values[4] == "0x80000000"  # the breakpoint: OpenSBI's entry
    assert values[6] == "0x87e00000"  # a1: the device tree, as QEMU places it
    assert values[7] == "0x0"  # mhartid
    assert values[8] == "0x800000000014112d"  # misa: RV64 IMAFDCSU
    assert values[9] == "3"  # gdb's virtual priv register: M
    assert values[13] == "0x80000008"  # two instructions further


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None, reason="no qemu-system")
def test_session_matches_qemu_system() -> None:
    ours, _ = system_session(SESSION)
    theirs, _ = system_session(SESSION, qemu=True)
    # QEMU 7.2's rv64 has the H extension (misa bit 7), which llvmtcg does not
    # implement; and qemu names its inferior a process (multiprocess extensions).
    theirs = theirs.replace("0x80000000001411ad", "0x800000000014112d")
    theirs = theirs.replace("(process 1)", "(Remote target)")
    assert ours.splitlines() == theirs.splitlines()


def test_detach_lets_the_firmware_boot() -> None:
    port = free_port()
    proc = start_system(port, "-S")
    try:
        out = run_gdb(port, [f"break *{FW_ENTRY:#x}", "c", "delete", "detach"])
        assert "detached" in out, out
        deadline = time.monotonic() + 120
        output = b""
        while b"Platform Name" not in output and time.monotonic() < deadline:
            output += proc.stdout.read1(4096)
        assert b"OpenSBI v1.1" in output and b"Platform Name" in output, output
    finally:
        kill_quietly(proc)


def test_ctrl_c_and_bad_input_while_running() -> None:
    port = free_port()
    proc = start_system(port)  # running, not -S: a connecting debugger stops it
    try:
        client = RawClient(port)
        assert client.command("?").startswith(b"T05thread:1;")
        client.send_raw(b"$zz#00garbage")  # a bad checksum, then garbage
        assert client.read_ack() == b"-"
        assert client.command("qfThreadInfo") == b"m1"
        assert client.command("m0,8") == b"E14"  # nothing at physical 0 (M-mode, bare)
        assert client.command("p1041") == b"03000000" + b"00" * 4  # priv: M
        assert client.command(f"p{65 + 0xF14:x}") == b"00" * 8  # mhartid (65 + CSR number)
        assert client.command(f"p{65 + 0x7C0:x}") == b"E14"  # a CSR the hart lacks
        client.send_raw(RawClient.frame(b"c"))
        assert client.read_ack() == b"+"
        time.sleep(1.0)
        client.send_raw(b"\x03")
        assert client.read_packet().startswith(b"T02thread:1;")
        pc = int.from_bytes(bytes.fromhex(client.command("p20").decode()), "little")
        assert pc >= FW_ENTRY  # somewhere in the firmware or beyond
        client.close()  # gone: the machine runs on
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        kill_quietly(proc)


WATCH_SESSION = ["break *0x80000000", "c", "delete", "watch *(long *)0x80001000", "c", "c",
                 "p/x $pc", "p $t1", "delete", "rwatch *(long *)0x80001008", "c", "p/x $pc",
                 "delete", "awatch *(long *)0x80001000", "c", "c", "p $t1", "delete",
                 "stepi", "p/x $pc"]


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None, reason="no qemu-system")
def test_watchpoints_match_qemu_system(tmp_path) -> None:
    bios = build_bare(tmp_path)
    ours, _ = system_session(WATCH_SESSION, bios=bios)
    theirs, _ = system_session(WATCH_SESSION, qemu=True, bios=bios)
    assert "Old value = 1\nNew value = 2" in ours, ours
    assert "Hardware read watchpoint 3: *(long *)0x80001008" in ours
    assert "Hardware access (read/write) watchpoint 4: *(long *)0x80001000" in ours
    theirs = theirs.replace("(process 1)", "(Remote target)")
    assert ours.splitlines() == theirs.splitlines()
