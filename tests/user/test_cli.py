"""The llvmtcg-user command line: QEMU's options, pass-through of the guest's own
arguments, and one clear line (never a traceback) for every user error."""

from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest

from tests.user.support import REPO, TEST_ENV, build, code_cache_dir, needs_cc, run_llvmtcg

pytestmark = needs_cc


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llvmtcg.user", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                               "LLVMTCG_CACHE_DIR": code_cache_dir()})


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llvmtcg-user: "), lines
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_version():
    result = cli("-version")
    assert result.returncode == 0 and result.stdout.startswith("llvmtcg-user version ")


def test_help_lists_qemu_options():
    result = cli("-h")
    assert result.returncode == 0
    for option in ("-L", "-E", "-U", "-0", "-cpu", "-strace", "-d", "-D", "-version"):
        assert option in result.stdout


def test_log_and_cpu_help():
    assert "in_asm" in cli("-d", "help").stdout
    assert "rv64" in cli("-cpu", "help").stdout


def test_unknown_option():
    assert_one_line_error(cli("-bogus", "prog"), "unknown option '-bogus'")


def test_missing_program_argument():
    assert_one_line_error(cli(), "no program")


def test_missing_file(tmp_path):
    assert_one_line_error(cli(str(tmp_path / "nope")), "No such file")


def test_directory(tmp_path):
    assert_one_line_error(cli(str(tmp_path)), "is a directory")


def test_bad_cpu_and_log_items(guest_build):
    prog = str(build(guest_build, "hello_asm.S", "asm"))
    assert_one_line_error(cli("-cpu", "rv32", prog), "unknown CPU model")
    assert_one_line_error(cli("-d", "bogus", prog), "bogus")
    assert_one_line_error(cli("-L", "/nonexistent-sysroot", prog), "not a directory")


def _elf_variants(good: bytes) -> dict[str, tuple[bytes, str]]:
    phoff = struct.unpack_from("<Q", good, 32)[0]
    variants = {
        "not-elf": (b"#!/bin/sh\necho hi\n", "not an ELF file"),
        "truncated-header": (good[:40], "truncated ELF header"),
        "truncated-phdrs": (good[:phoff + 20], "truncated"),
        "truncated-segment": (good[:phoff + 56 * 3], "truncated"),
    }
    wrong_machine = bytearray(good)
    struct.pack_into("<H", wrong_machine, 18, 62)  # EM_X86_64
    variants["wrong-machine"] = (bytes(wrong_machine), "wrong architecture: a x86-64 ELF")
    elf32 = bytearray(good)
    elf32[4] = 1
    variants["elf32"] = (bytes(elf32), "32-bit")
    bad_phentsize = bytearray(good)
    struct.pack_into("<H", bad_phentsize, 54, 32)
    variants["bad-phentsize"] = (bytes(bad_phentsize), "program header size")
    relocatable = bytearray(good)
    struct.pack_into("<H", relocatable, 16, 1)
    variants["relocatable"] = (bytes(relocatable), "not an executable")
    # First PT_LOAD: file size larger than memory size, then an offset past the end.
    load = next(phoff + 56 * i for i in range(struct.unpack_from("<H", good, 56)[0])
                if struct.unpack_from("<I", good, phoff + 56 * i)[0] == 1)
    filesz_gt = bytearray(good)
    filesz = struct.unpack_from("<Q", good, load + 32)[0]
    struct.pack_into("<Q", filesz_gt, load + 40, filesz - 8)  # p_memsz < p_filesz
    variants["filesz-gt-memsz"] = (bytes(filesz_gt), "exceeds memory size")
    offset_past = bytearray(good)
    struct.pack_into("<Q", offset_past, load + 8, len(good) + 0x10000)
    variants["offset-past-end"] = (bytes(offset_past), "past the end of the file")
    misaligned = bytearray(good)
    struct.pack_into("<Q", misaligned, load + 16, struct.unpack_from("<Q", good, load + 16)[0]
                     + 0x10)
    variants["vaddr-offset-mismatch"] = (bytes(misaligned), "modulo the page size")
    return variants


@pytest.mark.parametrize("variant", ["not-elf", "truncated-header", "truncated-phdrs",
                                     "truncated-segment", "wrong-machine", "elf32",
                                     "bad-phentsize", "relocatable", "filesz-gt-memsz",
                                     "offset-past-end", "vaddr-offset-mismatch"])
def test_malformed_elf(guest_build, tmp_path, variant):
    good = build(guest_build, "hello_asm.S", "asm").read_bytes()
    data, message = _elf_variants(good)[variant]
    path = tmp_path / variant
    path.write_bytes(data)
    path.chmod(0o755)
    assert_one_line_error(cli(str(path)), str(path), message)


def test_host_binary_is_wrong_architecture():
    assert_one_line_error(cli("/bin/true"), "wrong architecture")


def test_dynamic_program_without_sysroot(guest_build):
    prog = build(guest_build, "hello.c", "dynamic")
    result = cli(str(prog))
    assert_one_line_error(result, "ld-linux-riscv64-lp64d.so.1", "ELF interpreter")


def test_guest_options_pass_through(guest_build, tmp_path):
    prog = build(guest_build, "args.c", "nolibc")
    ours = run_llvmtcg(prog, ["-strace", "-d", "in_asm", "--help", "-L", "--", "x"],
                       cwd=tmp_path)
    lines = ours.stdout.decode().splitlines()
    assert lines[:8] == ["argc=8", f'argv[0]="{prog}"', 'argv[1]="-strace"', 'argv[2]="-d"',
                         'argv[3]="in_asm"', 'argv[4]="--help"', 'argv[5]="-L"',
                         'argv[6]="--"'], ours.describe()
    assert ours.stderr == b""


def test_environment_options(guest_build, tmp_path):
    prog = build(guest_build, "args.c", "nolibc")
    ours = run_llvmtcg(prog, [], cwd=tmp_path,
                       options=["-E", "T_NEW=1,T_OTHER=2", "-E", "T_VAR=changed", "-U",
                                "T_EMPTY", "-0", "renamed"])
    out = ours.stdout.decode()
    assert 'argv[0]="renamed"' in out
    assert "env T_NEW=1\nenv T_OTHER=2\nenv T_VAR=changed\n" in out
    assert "T_EMPTY" not in out


def test_strace(guest_build, tmp_path):
    prog = build(guest_build, "hello_asm.S", "asm")
    ours = run_llvmtcg(prog, options=["-strace"], cwd=tmp_path)
    assert ours.returncode == 3 and ours.stdout == b"hello from assembly\n"
    trace = ours.stderr.decode().splitlines()
    assert len(trace) == 2, trace
    pid, call = trace[0].split(" ", 1)
    assert pid.isdigit()
    assert call.startswith("write(1,0x") and call.endswith(",20) = 20"), call
    assert trace[1] == f"{pid} exit(3)"


def test_strace_to_log_file_and_errors(guest_build, tmp_path):
    prog = build(guest_build, "fileio.c", "nolibc")
    log = tmp_path / "trace.log"
    work = tmp_path / "work"
    work.mkdir()
    ours = run_llvmtcg(prog, [str(work)], options=["-strace", "-D", str(log)], cwd=tmp_path)
    assert ours.returncode == 0 and ours.stderr == b"", ours.describe()
    text = log.read_text()
    assert 'openat(AT_FDCWD,"data.txt",O_RDWR|O_CREAT|O_EXCL,0640) = 3' in text
    assert re.search(r'openat\(AT_FDCWD,"missing",O_RDONLY,0[0-7]*\) = -1 errno=2 '
                     r'\(No such file or directory\)', text), text
    assert "read(0,0x0000000000000010,1) = -1 errno=14 (Bad address)" in text


def test_unimplemented_syscall(guest_build, tmp_path):
    prog = build(guest_build, "unimp_asm.S", "asm")
    quiet = run_llvmtcg(prog, cwd=tmp_path)
    assert quiet.returncode == 38 and quiet.stderr == b""
    loud = run_llvmtcg(prog, options=["-d", "unimp"], cwd=tmp_path)
    assert loud.returncode == 38
    lines = loud.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "unimplemented syscall 244" in lines[0], lines


def test_log_in_asm_and_page(guest_build, tmp_path):
    prog = build(guest_build, "hello_asm.S", "asm")
    ours = run_llvmtcg(prog, options=["-d", "in_asm,page"], cwd=tmp_path)
    assert ours.returncode == 3
    err = ours.stderr.decode()
    assert "IN: 0x" in err and "ecall" in err
    assert "guest mappings:" in err


def test_console_script_entry_point():
    from launcher.user import main
    from llvmtcg.user.cli import main as cli_main

    assert main is cli_main


def test_cache_dir_and_no_cache(guest_build, tmp_path):
    """-cache-dir puts compiled code where it says (and a second run reuses it);
    -no-cache writes nothing."""
    prog = build(guest_build, "hello_asm.S", "asm")
    cache = tmp_path / "cache"
    for _ in range(2):  # (the LLVM block tier: the code cache keeps its objects)
        ours = run_llvmtcg(prog, options=["-cache-dir", str(cache)], cwd=tmp_path,
                           env={**dict(TEST_ENV), "LLVMTCG_BASELINE": "0"})
        assert ours.returncode == 3 and ours.stdout == b"hello from assembly\n"
    entries = [p for p in cache.glob("*/*") if p.is_file()]
    assert entries, "no code cache entries written"
    stamp = {p: p.stat().st_size for p in entries}
    unused = tmp_path / "unused"
    ours = run_llvmtcg(prog, options=["-no-cache"], cwd=tmp_path,
                       env={**dict(TEST_ENV), "LLVMTCG_CACHE_DIR": str(unused)})
    assert ours.returncode == 3 and ours.stdout == b"hello from assembly\n"
    assert not unused.exists()
    assert {p: p.stat().st_size for p in entries} == stamp


def test_perfmap_names_translated_code(guest_build, tmp_path):
    """-perfmap writes /tmp/perf-<pid>.map lines (hex address, hex size, symbol) for the
    code llvmtcg generates, as QEMU's -perfmap does; the guest does not see it."""
    import glob
    import os

    prog = build(guest_build, "hello_asm.S", "asm")
    before = set(glob.glob("/tmp/perf-*.map"))
    ours = run_llvmtcg(prog, options=["-perfmap", "-no-cache"], cwd=tmp_path)
    assert ours.returncode == 3 and ours.stdout == b"hello from assembly\n"
    new = set(glob.glob("/tmp/perf-*.map")) - before
    assert len(new) == 1
    path = new.pop()
    try:
        lines = open(path).read().splitlines()
    finally:
        os.unlink(path)
    entries = [line.split() for line in lines]
    assert all(len(e) == 3 and int(e[0], 16) and int(e[1], 16) for e in entries)
    names = {e[2] for e in entries}
    assert "llvmtcg_enter" in names and any(n.startswith("tb_") for n in names)


def test_the_collector_is_paused_while_the_process_is_set_up():
    """Start-up allocates objects that live as long as the process: the cyclic
    collector is off until the process is set up, then they are frozen (never traversed
    again) and it collects as usual while the guest runs."""
    code = """if True:
        import gc, json, os
        import llvmtcg.user.process as process_mod
        from llvmtcg.user.cli import main

        class Recorder:
            def __init__(self, *args, **kwargs):
                self.setup = gc.isenabled()

            def run(self):
                print(json.dumps({"setup": self.setup, "run": gc.isenabled(),
                                  "frozen": gc.get_freeze_count()}), flush=True)
                os._exit(0)

        process_mod.Process = Recorder
        main([os.environ["PROG"]])
        """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**TEST_ENV, "PYTHONPATH": str(REPO), "LLVMTCG_HOT_THRESHOLD": "0",
                              "PROG": str(REPO / "examples" / "hello-riscv64")},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    seen = json.loads(out.stdout)
    assert seen["setup"] is False and seen["run"] is True and seen["frozen"] > 10_000


def test_a_usage_error_leaves_the_collector_on():
    import gc

    from llvmtcg.user.cli import main as cli_main

    assert gc.isenabled()
    with pytest.raises(SystemExit):
        cli_main(["-no-such-option"])
    assert gc.isenabled() and gc.get_freeze_count() == 0
