from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.gdbstub.support import CC, build_target, build_threads


@pytest.fixture(scope="session")
def target_program(tmp_path_factory) -> Path:
    """tests/guest/gdb_target.c built for the session (riscv64, static, -g -O0)."""
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} not installed")
    return build_target(tmp_path_factory.mktemp("gdb-build"))


@pytest.fixture(scope="session")
def threads_program(tmp_path_factory) -> Path:
    """tests/guest/gdb_threads.c built for the session (riscv64, static, -pthread)."""
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} not installed")
    return build_threads(tmp_path_factory.mktemp("gdb-threads-build"))
