"""Static arm64 C programs and Debian's arm64 BusyBox under llvmtcg-user, compared with
qemu-aarch64: integer and flag edge cases, exclusives and LSE atomics, glibc's AdvSIMD
string routines, signals, and BusyBox applets."""

from __future__ import annotations

import pytest

from tests.aarch64.support import build, compare, fetch_busybox, needs_cc, needs_qemu

pytestmark = [needs_cc, needs_qemu]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("aarch64")


def test_alu_edge_cases(build_dir):
    """ADDS/SUBS/ADCS/SBCS carry and overflow, CCMP, CSEL, shifts, bitfields, division
    by zero, CLZ/CLS/RBIT/REV, LDXR/STXR (+pairs, CLREX), addressing modes."""
    out = compare(build(build_dir, "alu.c"))
    assert b"udiv64 0000000000000001 0000000000000000 0 -> 0000000000000000" in out.stdout
    assert b"excl 8 7 status after clrex 1" in out.stdout


def test_alu_with_lse_atomics(build_dir):
    """The same program for Armv8.1: the atomics are CAS/SWP/LDADD/LDCLR."""
    out = compare(build(build_dir, "alu.c", "-march=armv8.1-a", name="alu-lse"))
    assert b"atomics 10 1 99 -1 240 48" in out.stdout


def test_strings_and_signals(build_dir):
    out = compare(build(build_dir, "strings.c"))
    assert b"signal 110" in out.stdout


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
], ids=["echo", "sh", "sort", "md5sum", "sha256sum", "sed"])
def test_busybox(busybox, tmp_path, args, stdin):
    compare(busybox, args, cwd=tmp_path, stdin=stdin)
