"""Static arm64 C programs and Debian's arm64 BusyBox under llvmtcg-user, compared with
qemu-aarch64: integer and flag edge cases, exclusives and LSE atomics, glibc's AdvSIMD
string routines, signals, and BusyBox applets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.aarch64.support import (
    SYSROOT,
    build,
    compare,
    fetch_busybox,
    needs_cc,
    needs_qemu,
)

pytestmark = [needs_cc, needs_qemu]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("aarch64")


# Edge values combined pairwise: a few by default, all of them in the slow run.
QUICK = ["8"]


@pytest.mark.parametrize("values", [
    QUICK, pytest.param([], marks=pytest.mark.slow)], ids=["quick", "all"])
def test_alu_edge_cases(build_dir, values):
    """ADDS/SUBS/ADCS/SBCS carry and overflow, CCMP, CSEL, shifts, bitfields, division
    by zero, CLZ/CLS/RBIT/REV, addressing modes."""
    out = compare(build(build_dir, "alu.c"), values)
    assert b"udiv64 0000000000000001 0000000000000000 0 -> 0000000000000000" in out.stdout


@pytest.mark.parametrize("march", ["armv8-a", "armv8.1-a"])
def test_atomics(build_dir, march):
    """LDXR/STXR, LDXP/STXP, CLREX; for Armv8.1 the builtins are CAS/SWP/LDADD/LDCLR."""
    out = compare(build(build_dir, "atomics.c", f"-march={march}", name=f"atomics-{march}"))
    assert out.stdout.splitlines() == [b"excl 8 7 status after clrex 1", b"pair 3 2",
                                       b"atomics 10 1 99 -1 240 48"]


@pytest.mark.parametrize("values", [
    QUICK, pytest.param([], marks=pytest.mark.slow)], ids=["quick", "all"])
def test_scalar_fp(build_dir, values):
    """Arithmetic, FMA, min/max, compares, FRINT*, conversions over edge values (NaNs,
    infinities, subnormals, rounding boundaries) in all four rounding modes: results,
    NZCV and FPSR's cumulative flags."""
    out = compare(build(build_dir, "fp.c", "-lm"), values)
    assert b"1.4142135623730951 0.333333343 24.7053 libm" in out.stdout


def test_advsimd_lane_operations(build_dir):
    """Every implemented AdvSIMD data-processing group through arm_neon.h intrinsics."""
    out = compare(build(build_dir, "simd.c", "-O1"))
    assert out.stdout.count(b"\n") == 288


def test_advsimd_hot_loops(build_dir):
    """FP and integer AdvSIMD loops hot enough for regions (the vector IR ops in the
    optimising tier), with NaNs and subnormals under every rounding mode, FZ and DN."""
    out = compare(build(build_dir, "simd_loops.c", "-O2"))
    assert out.stdout.count(b" fpsr ") == 8


def test_strings_and_signals(build_dir):
    out = compare(build(build_dir, "strings.c"))
    assert b"signal 110" in out.stdout


@pytest.mark.skipif(not Path(SYSROOT, "lib", "ld-linux-aarch64.so.1").exists(),
                    reason=f"no arm64 glibc in {SYSROOT}")
def test_dynamic_pie_with_sysroot(build_dir):
    """A PIE linked against glibc: Debian's ld-linux-aarch64.so.1 from -L loads it."""
    out = compare(build(build_dir, "strings.c", static=False, name="strings-dynamic"),
                  options=["-L", SYSROOT])
    assert b"signal 110" in out.stdout


@pytest.mark.parametrize("args, status", [([], 0), (["no-handler"], -4)],
                         ids=["handled", "fatal"])
def test_udf_and_brk_signals(build_dir, args, status):
    """UDF raises SIGILL and BRK SIGTRAP at the instruction; a handler sees the pc, x0
    and the fpsimd_context record in the frame and its changes to them are restored."""
    out = compare(build(build_dir, "traps.c"), args)
    assert out.returncode == status
    if not args:
        assert b"after udf x0 1334 v1 1234" in out.stdout
        assert b"after brk x0 105" in out.stdout


def test_open_flags(build_dir, tmp_path):
    """arm64's O_DIRECTORY, O_NOFOLLOW, O_DIRECT and O_LARGEFILE are not the host's:
    opendir, O_NOFOLLOW on a symlink, pipe2(O_DIRECT) and F_GETFL/F_SETFL."""
    out = compare(build(build_dir, "openflags.c"), cwd=tmp_path)
    assert b"opendir d: ok, 5 entries" in out.stdout
    assert b"O_NOFOLLOW on a symlink: errno Too many levels of symbolic links" in out.stdout
    assert b"pipe2 O_DIRECT: reads 2 3" in out.stdout
    # -strace names them by their arm64 meaning too.
    from tests.user.support import run_llvmtcg

    traced = run_llvmtcg(build(build_dir, "openflags.c"), [], options=["-strace"], cwd=tmp_path)
    assert b'openat(AT_FDCWD,"d",O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC' in traced.stderr
    assert b'openat(AT_FDCWD,"d/link",O_RDONLY|O_NOFOLLOW' in traced.stderr


def test_environment_is_the_emulators(build_dir, tmp_path):
    """The guest gets the environment the emulator was started with: with LANG=C,
    CPython adds LC_CTYPE=C.UTF-8 to its own (PEP 538), which must not reach the guest."""
    from tests.user.support import run_llvmtcg

    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "A": "1"}
    out = run_llvmtcg(build(build_dir, "environ.c"), [], options=["-U", "PYTHONPATH",
                      "-U", "LLVMTCG_CACHE_DIR"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.describe()
    assert out.stdout.splitlines() == [b"PATH=/usr/bin:/bin", b"LANG=C", b"A=1"]


@pytest.fixture(scope="module")
def busybox(tmp_path_factory):
    path = fetch_busybox(tmp_path_factory.mktemp("busybox-arm64"))
    if path is None:
        pytest.skip("apt-get cannot download busybox-static:arm64 (dpkg --add-architecture "
                    "arm64; apt-get update)")
    return path


SORT_INPUT = b"pear\napple\nzoo\nbanana\napple\n"


@pytest.mark.parametrize("args, stdin", [
    (["echo", "hello", "arm64"], None),
    (["sh", "-c", "x=0; for i in 1 2 3 4; do x=$((x + i * i)); done; echo $x; "
      "case $x in 30) echo thirty;; esac"], None),
    (["sort", "-r"], SORT_INPUT),
    (["md5sum"], SORT_INPUT),
    (["sha256sum"], SORT_INPUT),
    (["sed", "-e", "s/a/A/g", "-e", "/zoo/d"], SORT_INPUT),
    (["awk", '{ n += length($0) } END { printf "%d %.3f %g\\n", n, n / NR, sqrt(n) }'],
     SORT_INPUT),
], ids=["echo", "sh", "sort", "md5sum", "sha256sum", "sed", "awk"])
def test_busybox(busybox, tmp_path, args, stdin):
    compare(busybox, args, cwd=tmp_path, stdin=stdin)


@pytest.mark.parametrize("cpu", ["cortex-a53", "cortex-a57", "cortex-a72"])
def test_cpu_models_match_qemu(build_dir, cpu):
    """-cpu MODEL: AT_HWCAP, AT_HWCAP2, MIDR_EL1 and ID_AA64ISAR0_EL1 as qemu-aarch64
    gives them for the same model, and the crypto instructions the HWCAP bits promise."""
    out = compare(build(build_dir, "cpuinfo.c", "-march=armv8-a+crc+crypto"), options=["-cpu", cpu])
    assert b"aes " in out.stdout and b"sha256 " in out.stdout and b"pmull " in out.stdout


def test_cpu_max_advertises_what_is_implemented(build_dir):
    """-cpu max has more than Armv8.0 here than the Cortex models (LSE atomics) but less
    than qemu's max, so only its crypto results are compared, not the ID values."""
    from tests.aarch64.support import run_qemu
    from tests.user.support import run_llvmtcg

    prog = build(build_dir, "cpuinfo.c", "-march=armv8-a+crc+crypto")
    ours = run_llvmtcg(prog, [], options=["-cpu", "max"])
    reference = run_qemu(prog, [], options=["-cpu", "max"])
    hwcap = int(ours.stdout.split()[1], 16)
    assert hwcap == 0x9FB  # FP ASIMD AES PMULL SHA1 SHA2 CRC32 ATOMICS CPUID
    assert ours.stdout.splitlines()[1:] == reference.stdout.splitlines()[1:]


def test_q_register_loads_and_stores(build_dir):
    """LDR/STR Q in every addressing mode, LDP/STP Q, LD1/ST1 of whole registers (one
    16-byte access each), LD2-LD4/ST2-ST4 (a wide access and permutes on one page,
    element by element across one) at every offset around a page boundary, and the
    faults of the ones that run into a read-only or inaccessible page (for structures,
    mid-structure: the registers at the fault and the bytes stored before it)."""
    out = compare(build(build_dir, "vldst.c"))
    assert out.stdout.count(b"fault at") == 69
