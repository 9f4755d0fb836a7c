"""binfmt_misc (llvmtcg.user.binfmt, ``llvmtcg-binfmt``): the registrations match
qemu-binfmt-conf.sh's; the P (preserve-argv0) flag's argument convention; and, where
this machine lets us register (root, binfmt_misc mountable), the real kernel path: a
program run through a registration with and without P sees the argv[0] Linux gives.
The end-to-end test registers by file-name extension (type E, an extension no other
file has), so no other program on the machine changes interpreter meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llvmtcg.user.binfmt import BINFMT_DIR, Registration, elf_magic, flags_for, install, remove
from llvmtcg.user.cli import binfmt_arguments
from tests.user.support import REPO, TEST_ENV, build, needs_cc

# scripts/qemu-binfmt-conf.sh (QEMU 7.2), decoded.
QEMU_RISCV64_MAGIC = (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00"
                      b"\xf3\x00")
QEMU_AARCH64_MAGIC = (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00"
                      b"\xb7\x00")
QEMU_MASK = (b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff"
             b"\xff\xff")


def test_magic_and_mask_are_qemus():
    assert elf_magic(243) == (QEMU_RISCV64_MAGIC, QEMU_MASK)
    assert elf_magic(183) == (QEMU_AARCH64_MAGIC, QEMU_MASK)


def test_registration_line():
    entry = Registration("llvmtcg-riscv64", *elf_magic(243), "/usr/bin/llvmtcg-riscv64",
                         flags_for(True, True, True))
    line = entry.line()
    assert line.startswith(r":llvmtcg-riscv64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00")
    assert line.endswith(r"\xf3\x00:" + r"\xff" * 7 + r"\x00" + r"\xff" * 8
                         + r"\xfe\xff\xff\xff:/usr/bin/llvmtcg-riscv64:POCF")
    assert ":" not in line.replace(":", "", 7)  # exactly the seven field separators
    assert flags_for(False, False, False) == ""


def test_command_prints_every_architecture(tmp_path):
    for name in ("riscv64", "aarch64"):
        (tmp_path / f"llvmtcg-{name}").write_text("#!/bin/sh\n")
        (tmp_path / f"llvmtcg-{name}").chmod(0o755)
    result = subprocess.run([sys.executable, "-m", "llvmtcg.user.binfmt", "--interpreter-dir",
                             str(tmp_path), "--preserve-argv0"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[1] for line in lines] == ["llvmtcg-aarch64", "llvmtcg-riscv64"]
    assert all(line.endswith(f"{tmp_path}/{line.split(':')[1]}:P") for line in lines)
    missing = subprocess.run([sys.executable, "-m", "llvmtcg.user.binfmt", "--interpreter-dir",
                              str(tmp_path / "none")], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert missing.returncode == 1
    assert missing.stderr.startswith("llvmtcg-binfmt: ") and "not an executable" in \
        missing.stderr and "Traceback" not in missing.stderr


def test_preserved_argv0_convention(monkeypatch):
    monkeypatch.delenv("QEMU_ARGV0", raising=False)
    # P: [path] original-argv0 args...  (the path is PROG, already taken)
    assert binfmt_arguments(None, ["orig", "a", "b"], first_process=True,
                            preserved=True) == ("orig", ["a", "b"])
    assert binfmt_arguments("forced", ["orig", "a"], first_process=True,
                            preserved=True) == ("forced", ["a"])
    assert binfmt_arguments(None, ["a"], first_process=True, preserved=False) == (None, ["a"])
    monkeypatch.setenv("QEMU_ARGV0", "from-env")
    assert binfmt_arguments(None, ["a"], first_process=True, preserved=False) == \
        ("from-env", ["a"])
    assert binfmt_arguments("-0 wins", [], first_process=True, preserved=False) == \
        ("-0 wins", [])
    # A guest execve re-entering the emulator passes -0 itself: no second shift.
    assert binfmt_arguments("x", ["a"], first_process=False) == ("x", ["a"])


def _can_register() -> bool:
    if os.geteuid() != 0:
        return False
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                       capture_output=True)
    return (BINFMT_DIR / "register").exists() and os.access(BINFMT_DIR / "register", os.W_OK)


@needs_cc
@pytest.mark.parametrize("flags", ["P", ""])
def test_kernel_runs_the_program_through_a_registration(guest_build, tmp_path, flags):
    if not _can_register():
        pytest.skip("binfmt_misc cannot be registered here (needs root and a mountable "
                    "/proc/sys/fs/binfmt_misc)")
    prog = build(guest_build, "args.c", "static")
    extension = f"lltcg{os.getpid()}{flags.lower()}"
    guest = tmp_path / f"args.{extension}"
    guest.write_bytes(prog.read_bytes())
    guest.chmod(0o755)
    # The interpreter: a Python script that runs this checkout's llvmtcg-user (the
    # kernel runs it through its #! line; AT_FLAGS reaches that Python).
    interpreter = tmp_path / "llvmtcg-test-interp"
    interpreter.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                           "from llvmtcg.user.cli import main\nmain()\n")
    interpreter.chmod(0o755)
    name = f"llvmtcg-test-{extension}"
    entry = f":{name}:E::{extension}::{interpreter}:{flags}"
    with open(BINFMT_DIR / "register", "w") as f:
        f.write(entry)
    try:
        result = subprocess.run(["custom-argv0", "one"], executable=str(guest),
                                capture_output=True, env=TEST_ENV, timeout=300)
    finally:
        remove([name])
    assert not (BINFMT_DIR / name).exists()
    assert result.returncode == 0, result.stderr
    want = "custom-argv0" if flags == "P" else str(guest)
    assert f'argc=2\nargv[0]="{want}"\nargv[1]="one"\n'.encode() in result.stdout, \
        result.stdout


def test_install_needs_binfmt_misc(tmp_path):
    with pytest.raises(OSError, match="mount binfmt_misc first"):
        install([Registration("x", b"a", b"b", "/i", "")], tmp_path)
