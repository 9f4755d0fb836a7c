"""Threaded programs compared with qemu-riscv64: a thread pool fed through condition
variables (tests/guest/pool.c, the pattern of ``xz -T2`` and ``zstd -T2``) by default;
the real ``xz -T2`` and ``zstd -T2``, built from Debian's sources (slow: the first run
builds them), compressing and decompressing a file — the compressed bytes identical to
qemu-riscv64's, the round trip exact."""

from __future__ import annotations

import pytest

from tests.user.debian_tools import debian_tool
from tests.user.support import (
    assert_same,
    build,
    fresh_dir,
    needs_cc,
    needs_qemu,
    run_llvmtcg,
    run_qemu,
)

pytestmark = [needs_cc, needs_qemu]


@pytest.mark.parametrize("threads,blocks", [(2, 24), (4, 40)])
def test_thread_pool(guest_build, tmp_path, threads, blocks):
    prog = build(guest_build, "pool.c", "pthread")
    args = [str(threads), str(blocks)]
    ours = run_llvmtcg(prog, args, cwd=fresh_dir(tmp_path, "ours"))
    reference = run_qemu(prog, args, cwd=fresh_dir(tmp_path, "qemu"))
    assert_same(ours, reference, f"pool {threads} {blocks}")
    assert ours.returncode == 0 and b"round trip ok" in ours.stdout, ours.describe()


def sample_data() -> bytes:
    """About 1.2 MB that compresses like real files: text lines and some binary."""
    lines = b"".join(b"line %d: the quick brown fox %x jumps over %d lazy dogs\n"
                     % (i, i * 2654435761 & 0xFFFFFFFF, i % 97) for i in range(16000))
    binary = bytes((i * 7 + (i >> 5)) & 0xFF for i in range(200_000))
    return lines + binary + lines[::3]


# (compress args, decompress args): -T2 and blocks small enough that both threads work
COMMANDS = {
    "zstd": (["-T2", "-3", "-B262144", "-c"], ["-d", "-c"]),
    "xz": (["-T2", "-3", "--block-size=262144", "-c"], ["-T2", "-d", "-c"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_debian_tool_with_two_threads(tmp_path, name):
    tool = debian_tool(name)
    data = sample_data()
    (tmp_path / "data").write_bytes(data)
    compress, decompress = COMMANDS[name]
    ours = run_llvmtcg(tool, [*compress, "data"], cwd=tmp_path)
    reference = run_qemu(tool, [*compress, "data"], cwd=tmp_path, timeout=300)
    assert reference.returncode == 0, reference.describe()
    assert ours.returncode == 0, ours.describe()
    assert ours.stdout == reference.stdout, f"{name}: compressed bytes differ from qemu's"
    (tmp_path / "packed").write_bytes(ours.stdout)
    back = run_llvmtcg(tool, [*decompress, "packed"], cwd=tmp_path)
    assert back.returncode == 0 and back.stdout == data, back.describe()[:2000]
