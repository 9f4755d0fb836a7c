"""llvmtcg-user -g PORT on an arm64 program driven by gdb-multiarch, compared with
qemu-aarch64 -g PORT under the same gdb commands: the aarch64 target description
(x0-x30, sp, pc, cpsr; v0-v31 as gdb's vector unions, fpsr, fpcr), breakpoints, stepping
and register reads. Both emulators model a Cortex-A72 (qemu's max adds SVE registers)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.aarch64.support import CC, GUEST_SRC, QEMU, needs_cc, needs_qemu
from tests.gdbstub.support import (
    ENV,
    REPO,
    finish,
    free_port,
    kill_quietly,
    needs_gdb,
    run_gdb,
    wait_listening,
)

pytestmark = [needs_cc, needs_qemu, needs_gdb]


@pytest.fixture(scope="module")
def target_program(tmp_path_factory):
    out = tmp_path_factory.mktemp("aarch64-gdb") / "gdb_target"
    subprocess.run([CC, "-static", "-g", "-O0", "-o", str(out),
                    str(GUEST_SRC.parent / "gdb_target.c")], check=True)
    return out


def debug(prog, commands: list[str], emulator: str) -> tuple[str, int, str]:
    port = free_port()
    if emulator == "llvmtcg":
        cmd = [sys.executable, "-m", "llvmtcg.user", "-cpu", "cortex-a72", "-g", str(port),
               str(prog)]
    else:
        cmd = [QEMU, "-cpu", "cortex-a72", "-g", str(port), str(prog)]
    proc = subprocess.Popen(cmd, env=dict(ENV, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        out = run_gdb(port, commands, prog)
        status, output = finish(proc)
    finally:
        kill_quietly(proc)
    return out, status, output


def normalise(text: str) -> str:
    # The initial stacks differ (sp, x29, and whatever points into the stack).
    text = re.sub(r"argv=0x[0-9a-f]+", "argv=STACK", text)
    text = re.sub(r"(sp|x29) +0x[0-9a-f]+ +0x[0-9a-f]+", r"\1 STACK", text)
    return re.sub(r"\((process \d+|Remote target)\)", "(TARGET)", text)


SESSION = ["break add", "c", "info registers pc x0 x1 cpsr", "p counter", "bt",
           "x/3i $pc", "finish", "p $pc", "stepi", "p $pc", "break scaled", "delete 1", "c",
           "finish", "p $v0", "p $d0", "p $v0.d.f[0]", "p/x $fpcr", "p $fpsr", "delete", "c"]


def test_session_matches_qemu(target_program) -> None:
    ours, status, output = debug(target_program, SESSION, "llvmtcg")
    theirs, qemu_status, qemu_output = debug(target_program, SESSION, "qemu")
    assert (status, output) == (qemu_status, qemu_output) == (10, "total 10 scaled 15.0\n")
    assert "Breakpoint 1, add (a=0, b=0)" in ours
    assert "Value returned is $5 = 15" in ours, ours  # scaled(10) in d0
    assert "f = {15, 0}" in ours, ours  # $v0 as the union's double view
    assert "exited with code 012" in ours
    assert normalise(ours) == normalise(theirs)
