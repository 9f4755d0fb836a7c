"""llvmtcg-user -g PORT driven by the real gdb (gdb-multiarch, batch mode), compared
with qemu-riscv64 -g PORT running the same program under the same gdb commands."""

from __future__ import annotations

import re
import time

from tests.gdbstub.support import (
    GUEST_SRC,
    finish,
    free_port,
    kill_quietly,
    needs_gdb,
    run_gdb,
    start_user,
)

pytestmark = needs_gdb


def debug(prog, args: list[str], commands: list[str], emulator: str = "llvmtcg"
          ) -> tuple[str, int, str]:
    """(gdb's output, the emulator's exit status, its output)."""
    port = free_port()
    proc = start_user(prog, args, port, emulator)
    try:
        out = run_gdb(port, commands, prog)
        status, output = finish(proc)
    finally:
        kill_quietly(proc)
    return out, status, output


def _thread_list(client) -> list[bytes]:
    """qfThreadInfo, then qsThreadInfo until "l" (QEMU lists one thread per reply)."""
    threads: list[bytes] = []
    reply = client.command("qfThreadInfo")
    while reply.startswith(b"m"):
        threads += reply[1:].split(b",")
        reply = client.command("qsThreadInfo")
    assert reply == b"l", reply
    return threads


def normalise(text: str) -> str:
    # Stack addresses differ (the emulators build different initial stacks), and qemu
    # numbers its inferior as a process (multiprocess extensions).
    text = re.sub(r"argv=0x[0-9a-f]+", "argv=ADDR", text)
    return re.sub(r"\((process \d+|Remote target)\)", "(TARGET)", text)


PRINTF_LINE = next(n for n, line in enumerate(
    (GUEST_SRC / "gdb_target.c").read_text().splitlines(), 1) if "printf(" in line)
SESSION = ["break add", "c", "info registers pc ra a0 a1 gp", "p counter", "bt", "x/3i $pc",
           "finish", "p $pc", "stepi", "p $pc", "next", "next", "p total", "p scale",
           "break scaled", "delete 1", "c", "info registers fa0", "finish", "p $fa0",
           "p $fcsr", "delete", "c"]


def test_session_matches_qemu(target_program) -> None:
    ours, status, output = debug(target_program, [], SESSION)
    theirs, qemu_status, qemu_output = debug(target_program, [], SESSION, "qemu")
    assert (status, output) == (qemu_status, qemu_output) == (10, "total 10 scaled 15.0\n")
    assert "Breakpoint 1, add (a=0, b=0)" in ours
    assert "Value returned is $2 = 0" in ours
    assert "Value returned is $7 = 15" in ours  # scaled(10) in fa0
    assert "{float = 0, double = 15}" in ours
    assert "exited with code 012" in ours
    assert normalise(ours) == normalise(theirs)


def test_stepi_executes_exactly_one_instruction(target_program) -> None:
    # Each stepi moves pc by the length of the instruction it was on (no branch in
    # add's body before its return), whatever the blocks around it are.
    commands = ["break add", "c"] + ["p/x $pc", "x/2xb $pc", "stepi"] * 6 + ["p/x $pc"]
    out, status, _ = debug(target_program, [], commands + ["kill"])
    pcs = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", out, re.M)]
    firsts = [int(b, 16) for b in re.findall(r":\s+(0x[0-9a-f]{2})\s+0x[0-9a-f]{2}$", out, re.M)]
    assert len(pcs) == 7 and len(firsts) == 6, out
    for before, after, low in zip(pcs, pcs[1:], firsts, strict=False):
        assert after - before == (4 if low & 3 == 3 else 2), out


def test_print_variable_and_set_it(target_program) -> None:
    # Writing memory (M) and registers (P) through gdb changes what the program does.
    out, status, output = debug(target_program, [], [
        f"break {PRINTF_LINE}", "c", "p total", "p counter", "set var total = 33",
        "p total", "delete", "c"])
    assert "$1 = 10" in out and "$2 = 5" in out and "$3 = 33" in out, out
    assert status == 33 and output == "total 33 scaled 49.5\n"


def test_segv_is_reported_then_kills(target_program) -> None:
    out, status, output = debug(target_program, ["segv"], ["c", "p $pc", "c"])
    assert "Program received signal SIGSEGV" in out, out
    assert "Program terminated with signal SIGSEGV" in out, out
    assert status == -11


def test_signal_can_be_dropped_by_gdb(target_program) -> None:
    # 'signal 0' resumes without the signal: the store faults again.
    out, status, _ = debug(target_program, ["segv"], ["c", "signal 0", "kill"])
    assert out.count("Program received signal SIGSEGV") == 2, out


def test_detach_lets_the_program_finish(target_program) -> None:
    out, status, output = debug(target_program, [], ["break add", "c", "detach"])
    assert "Breakpoint 1, add" in out and "detached" in out, out
    assert status == 10 and output == "total 10 scaled 15.0\n"


def test_kill(target_program) -> None:
    out, status, output = debug(target_program, ["spin"], ["break add", "c", "kill"])
    assert "Breakpoint 1, add" in out and "killed" in out, out
    # As qemu-riscv64: the emulator ends with status 0 and says why.
    assert status == 0 and output == "llvmtcg-user: terminated via the gdbstub\n"


def test_quit_detaches(target_program) -> None:
    # qAttached says 1 (as QEMU): quitting gdb detaches and the program runs on.
    out, status, output = debug(target_program, [], ["break add", "c", "quit"])
    assert status == 10 and output == "total 10 scaled 15.0\n", out


def test_watchpoints(target_program) -> None:
    # qemu-riscv64 7.2 has no watchpoints in user mode; gdb's own expectations (stop
    # before the access, gdb steps over it: RISC-V's nonsteppable watchpoints) decide.
    out, status, output = debug(target_program, [], [
        "break main", "c", "watch counter", "c", "c", "p counter", "delete 2",
        "rwatch scale", "c", "p value", "delete", "c"])
    assert "Hardware watchpoint 2: counter\n\nOld value = 0\nNew value = 1" in out, out
    assert "Old value = 1\nNew value = 2" in out and "$1 = 2" in out
    assert "Hardware read watchpoint 3: scale\n\nValue = 1.5" in out
    assert "$2 = 10" in out  # stopped inside scaled(10)
    assert status == 10 and output == "total 10 scaled 15.0\n"


def test_breakpoint_in_code_already_translated(target_program) -> None:
    # By the second call of add, main's loop has run (and been translated, chained):
    # a breakpoint set now in the middle of that code must still stop it.
    counter_line = next(n for n, line in enumerate(
        (GUEST_SRC / "gdb_target.c").read_text().splitlines(), 1) if "counter++;" in line)
    out, status, _ = debug(target_program, [], [
        "break add", "c", "c", "delete", f"break {counter_line}", "c", "p counter", "p i",
        "c", "p counter", "delete", "c"])
    assert "Breakpoint 2, main" in out, out
    assert "$1 = 1\n$2 = 1\n" in out and "$3 = 2\n" in out, out
    assert status == 10


# -- threads -------------------------------------------------------------------------------
THREADS_SESSION = ["break work", "c", "info threads", "p value", "thread 1", "bt 1",
                   "thread 2", "next", "next", "p doubled", "c", "info threads", "p value",
                   "delete", "c"]


def _thread_events(out: str) -> list[str]:
    """What must not depend on timing: which gdb thread hit which breakpoint with which
    argument, the values printed, the rows of `info threads` (the current one starred,
    frames of the other threads left out: where a thread is stopped depends on timing),
    and how the program ended."""
    events = []
    for line in out.splitlines():
        if re.match(r"Thread \d+ hit Breakpoint|\$\d+ = |\[Inferior 1 .*exited", line):
            events.append(re.sub(r"\((process \d+|Remote target)\)", "(TARGET)", line))
        elif row := re.match(r"(\*?)\s+(\d+)\s+Thread [\d.]+ .*?(work \(value=\d+\))?$", line):
            events.append(f"row {row.group(1)}{row.group(2)} {row.group(3) or ''}")
    return events


def test_threads_session_matches_qemu(threads_program) -> None:
    """Every guest thread is a gdb thread: a breakpoint hit in a new thread switches to
    it, `info threads` lists and reads each one (Hg + g), `thread N` then `next` steps
    the selected thread, as under qemu-riscv64 -g."""
    ours, status, output = debug(threads_program, [], THREADS_SESSION)
    theirs, qemu_status, qemu_output = debug(threads_program, [], THREADS_SESSION, "qemu")
    assert (status, output) == (qemu_status, qemu_output) == (2, "results 40 42\n")
    assert "Thread 2 hit Breakpoint 1, work (value=20)" in ours, ours
    assert "Thread 3 hit Breakpoint 1, work (value=21)" in ours, ours
    assert "$2 = 40" in ours and "[Switching to thread 1 (Thread " in ours
    assert _thread_events(ours) == _thread_events(theirs), ours + "\n---\n" + theirs
    assert _thread_events(ours).count("row 1 ") == 2  # main, in pthread_join both times


def test_interrupt_while_the_first_thread_blocks(threads_program) -> None:
    """Ctrl-C stops a process whose first thread waits in pthread_join (a futex) while
    another spins: every thread stops, gdb reads and changes the spinning one's
    memory through it, and the program ends when resumed."""
    from elftools.elf.elffile import ELFFile

    from tests.gdbstub.support import RawClient

    with open(threads_program, "rb") as f:
        symbols = ELFFile(f).get_section_by_name(".symtab")
        spinning = symbols.get_symbol_by_name("spinning")[0]["st_value"]
    port = free_port()
    proc = start_user(threads_program, ["spin"], port)
    try:
        client = RawClient(port)
        assert client.command("?").startswith(b"T05thread:")
        client.send_raw(client.frame(b"vCont;c"))
        assert client.read_ack() == b"+"


        deadline = time.monotonic() + 120
        threads: list[bytes] = []
        while len(threads) < 2:  # (until the spinner exists)
            assert time.monotonic() < deadline
            time.sleep(1)
            client.send_raw(b"\x03")
            stop = client.read_packet()
            assert stop.startswith(b"T02thread:"), stop
            threads = _thread_list(client)
            if len(threads) < 2:
                client.send_raw(client.frame(b"vCont;c"))
                assert client.read_ack() == b"+"
        assert len(threads) == 2, threads
        for tid in threads:
            assert client.command(b"Hg" + tid) == b"OK"
            assert len(client.command("g")) == 33 * 16  # x0..x31, pc
        assert client.command(f"M{spinning:x},4:00000000") == b"OK"
        client.send_raw(client.frame(b"vCont;c"))
        assert client.read_ack() == b"+"
        assert client.read_packet() == b"W02"
        client.close()
        status, output = finish(proc)
    finally:
        kill_quietly(proc)
    assert status == 2 and output == "results 40 42\n"
