"""RuntimeOptions: the code-cache key follows the codegen options, the environment is read
by options_from_environment only, and importing the runtime starts nothing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llvmtcg.ir import ExitReason
from llvmtcg.options import (
    DEFAULT_HOT_THRESHOLD,
    RuntimeOptions,
    default_cache_dir,
    option,
    options_from_environment,
)
from llvmtcg.runtime import tiering
from llvmtcg.runtime.cpu_exec import code_cache_key
from tests.core.support import CODE, LAYOUT, HandFrontend, counting_loop, make_cpu

CODEGEN_CHANGES = {"optimize": 1, "hot_threshold": 7, "flat_memory": False}
OTHER_CHANGES = {"max_region_blocks": 2, "tier_sync": True, "cache_dir": Path("/x"),
                 "perf_map": True, "baseline": False, "arena_size": 1 << 20,
                 "stencil_dir": Path("/y"), "program": "p"}


def key(options: RuntimeOptions) -> str:
    return code_cache_key(HandFrontend(), LAYOUT, ["helper_a"], options, count_insns=False)


def test_every_field_says_whether_it_changes_code() -> None:
    names = {f.name for f in dataclasses.fields(RuntimeOptions)}
    assert names == CODEGEN_CHANGES.keys() | OTHER_CHANGES.keys()
    assert dict(RuntimeOptions().codegen_key()) == {
        "optimize": 0, "hot_threshold": DEFAULT_HOT_THRESHOLD, "flat_memory": True}


@pytest.mark.parametrize(("name", "value"), CODEGEN_CHANGES.items())
def test_a_codegen_option_changes_the_cache_key(name, value) -> None:
    assert key(dataclasses.replace(RuntimeOptions(), **{name: value})) != key(RuntimeOptions())


@pytest.mark.parametrize(("name", "value"), OTHER_CHANGES.items())
def test_other_options_share_the_cache(name, value) -> None:
    assert key(dataclasses.replace(RuntimeOptions(), **{name: value})) == key(RuntimeOptions())


def test_a_new_codegen_option_gets_its_own_cache_without_touching_the_key() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithNewOption(RuntimeOptions):
        unroll: int = option(0, codegen=True)
        colour: str = option("blue", codegen=False)

    assert key(WithNewOption()) != key(RuntimeOptions())
    assert key(WithNewOption(unroll=1)) != key(WithNewOption())
    assert key(WithNewOption(colour="red")) == key(WithNewOption())


def test_the_rest_of_the_key() -> None:
    assert key(RuntimeOptions()) == key(RuntimeOptions())
    assert code_cache_key(HandFrontend(), LAYOUT, ["helper_b"], RuntimeOptions(), False) != \
        key(RuntimeOptions())
    assert code_cache_key(HandFrontend(), LAYOUT, ["helper_a"], RuntimeOptions(), True) != \
        key(RuntimeOptions())


@pytest.mark.parametrize(("field", "value"), [
    ("optimize", 2), ("hot_threshold", -1), ("max_region_blocks", 0)])
def test_bad_values_are_refused(field, value) -> None:
    with pytest.raises(ValueError, match=field):
        RuntimeOptions(**{field: value})


def test_options_from_the_environment() -> None:
    env = {"LLVMTCG_HOT_THRESHOLD": "30", "LLVMTCG_TIER_SYNC": "1",
           "LLVMTCG_PERF_MAP": "1", "LLVMTCG_CACHE_DIR": "/tmp/cc", "HOME": "/home/u"}
    stencils = Path("/home/u/.cache/llvmtcg")
    assert options_from_environment(env) == RuntimeOptions(
        hot_threshold=30, tier_sync=True, perf_map=True, cache_dir=Path("/tmp/cc"),
        stencil_dir=stencils)
    assert options_from_environment({"HOME": "/home/u"}) == RuntimeOptions(
        cache_dir=Path("/home/u/.cache/llvmtcg"), stencil_dir=stencils)
    # Flags of the command line win; no cache at all with -no-cache.
    assert options_from_environment(env, cache_dir="/elsewhere").cache_dir == Path("/elsewhere")
    assert options_from_environment(env, code_cache=False).cache_dir is None
    assert options_from_environment({}, perf_map=True, code_cache=False).perf_map
    assert not options_from_environment({"LLVMTCG_TIER_SYNC": "0"}).tier_sync
    assert options_from_environment({"LLVMTCG_HOT_THRESHOLD": " "}).hot_threshold == \
        DEFAULT_HOT_THRESHOLD
    assert options_from_environment({"LLVMTCG_HOT_THRESHOLD": "-5"}).hot_threshold == 0
    assert options_from_environment({}, optimize=1, code_cache=False).optimize == 1
    # The baseline's stencils stay put whatever the code cache does.
    assert options_from_environment(env, code_cache=False).stencil_dir == stencils
    assert options_from_environment({"LLVMTCG_STENCIL_DIR": "/s", **env}).stencil_dir == \
        Path("/s")
    assert options_from_environment({}).baseline
    assert not options_from_environment({"LLVMTCG_BASELINE": "0"}).baseline


def test_default_cache_dir() -> None:
    assert default_cache_dir({"LLVMTCG_CACHE_DIR": "/a", "XDG_CACHE_HOME": "/b"}) == Path("/a")
    assert default_cache_dir({"XDG_CACHE_HOME": "/b", "HOME": "/h"}) == Path("/b/llvmtcg")
    assert default_cache_dir({"HOME": "/h"}) == Path("/h/.cache/llvmtcg")


def test_importing_the_runtime_starts_no_thread_and_registers_no_hook() -> None:
    code = ("import threading\n"
            "import llvmtcg.runtime.cpu_exec, llvmtcg.runtime.tiering as t, llvmtcg.user.cli\n"
            "import llvmtcg.user.process\n"
            "assert threading.active_count() == 1, threading.enumerate()\n"
            "assert t._worker is None and not t._hooks_installed\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   cwd=Path(__file__).resolve().parents[2])


def test_the_compile_worker_starts_on_first_use_and_survives_fork() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, hot_threshold=50, tier_sync=False)
    cpu.state.set("r", 200_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert tiering._worker is not None and tiering._hooks_installed
    pid = os.fork()
    if pid == 0:  # the child: its own worker, on demand; the guest runs on
        status = 2
        try:
            cpu.state.set("r", 0, 0)
            cpu.state.set("r", 100_000, 1)
            cpu.pc = CODE
            done = cpu.run().reason is ExitReason.HALT and cpu.state.get("r", 0) == 100_000
            status = 0 if done else 1
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    cpu.close()
