"""``llvmtcg-user``: run a foreign Linux ELF program (QEMU's ``qemu-riscv64`` options).

    llvmtcg-user [-L DIR] [-E VAR=VAL] [-U VAR] [-0 ARGV0] [-cpu MODEL] [-strace]
                 [-cache-dir DIR] [-no-cache] [-perfmap]
                 [-d ITEMS] [-D FILE] [-version] PROG [ARGS...]

Option parsing stops at PROG: everything after it belongs to the guest. Errors a user
can act on (an unknown option, a missing or malformed program) print one line and exit
with status 1; ``--debug`` shows Python tracebacks for internal errors.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

try:  # typer >= 0.17 carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions

from llvmtcg.log import LOG_ITEMS, Log, LogError
from llvmtcg.options import RuntimeOptions, options_from_environment

EMULATOR = "llvmtcg-user"
VERSION = "0.1.0"
USER_LOG_ITEMS = ("in_asm", "op", "llvm", "out_asm", "exec", "unimp", "page", "int")


class UsageError(Exception):
    """A command-line or program error: one line for the user, exit status 1."""


def _split_env(values: list[str] | None) -> list[str]:
    # QEMU splits -E/-U arguments on commas too.
    return [item for value in values or [] for item in value.split(",") if item]


def _help_log_items() -> str:
    return "\n".join(f"{name:<10} {LOG_ITEMS[name]}" for name in USER_LOG_ITEMS) + \
        "\nstrace     (use -strace) every syscall with its arguments and result\n"


app = typer.Typer(
    add_completion=False,
    context_settings={"allow_interspersed_args": False,
                      "help_option_names": ["-h", "-help", "--help"]},
    help="Run a Linux riscv64 ELF program on this host (like qemu-riscv64).",
)


Opt = typer.Option


@app.command()
def run(
    prog: Annotated[str | None, typer.Argument(
        metavar="PROG", show_default=False, help="the guest program (an ELF file)")] = None,
    args: Annotated[list[str] | None, typer.Argument(
        metavar="[ARGS]...", show_default=False,
        help="the guest's arguments, passed untouched")] = None,
    sysroot: Annotated[str | None, Opt(
        "-L", "--L", metavar="DIR",
        help="sysroot for the ELF interpreter and absolute paths")] = None,
    set_env: Annotated[list[str] | None, Opt(
        "-E", "--E", metavar="VAR=VAL", help="set a guest environment variable")] = None,
    unset_env: Annotated[list[str] | None, Opt(
        "-U", "--U", metavar="VAR", help="remove a guest environment variable")] = None,
    argv0: Annotated[str | None, Opt(
        "-0", "--0", metavar="ARGV0", help="the guest's argv[0] (default: PROG)")] = None,
    cpu: Annotated[str | None, Opt(
        "-cpu", "--cpu", metavar="MODEL", show_default=False,
        help="CPU model and properties, e.g. rv64,zba=false (help: list)")] = None,
    strace: Annotated[bool, Opt(
        "-strace", "--strace", help="log every syscall with its arguments and result")] = False,
    log_items: Annotated[str, Opt(
        "-d", "--d", metavar="ITEMS",
        help="log items: in_asm,op,llvm,out_asm,exec,unimp,page (help: list)")] = "",
    log_file: Annotated[str | None, Opt(
        "-D", "--D", metavar="FILE", help="write -d and -strace output to FILE")] = None,
    version: Annotated[bool, Opt(
        "-version", "--version", help="print the version and exit")] = False,
    debug: Annotated[bool, Opt("--debug", help="show Python tracebacks")] = False,
    no_cache: Annotated[bool, Opt(
        "-no-cache", "--no-cache",
        help="do not use the persistent code cache ($LLVMTCG_CACHE_DIR, ~/.cache/llvmtcg)")
    ] = False,
    cache_dir: Annotated[str | None, Opt(
        "-cache-dir", "--cache-dir", metavar="DIR",
        help="where the code cache lives (default: $LLVMTCG_CACHE_DIR, else "
             "$XDG_CACHE_HOME/llvmtcg or ~/.cache/llvmtcg)")] = None,
    perfmap: Annotated[bool, Opt(
        "-perfmap", "--perfmap",
        help="name translated code for Linux perf in /tmp/perf-<pid>.map")] = False,
    env_fd: Annotated[int | None, Opt("--env-fd", hidden=True)] = None,
    sigign: Annotated[str, Opt("--sigign", hidden=True)] = "",
) -> None:
    if version:
        print(f"{EMULATOR} version {VERSION} (llvmtcg: guest code -> IR -> LLVM -> x86-64)")
        raise typer.Exit(0)
    if log_items == "help":
        sys.stdout.write(_help_log_items())
        raise typer.Exit(0)
    if cpu == "help":
        sys.stdout.write(_help_cpus())
        raise typer.Exit(0)
    if prog is None:
        raise UsageError("no program given (usage: llvmtcg-user [options] PROG [ARGS...])")
    _run_program(prog, list(args or []), sysroot=sysroot, set_env=_split_env(set_env),
                 unset_env=_split_env(unset_env), argv0=argv0, cpu=cpu, strace=strace,
                 log_items=log_items, log_file=log_file, debug=debug, code_cache=not no_cache,
                 cache_dir=cache_dir, perfmap=perfmap,
                 reentry=(env_fd, sigign) if env_fd is not None else None)


def _help_cpus() -> str:
    """``-cpu help``: each guest architecture's models and properties."""
    from llvmtcg.user.arch import user_arch, user_arch_names

    names = user_arch_names()
    if len(names) == 1:
        return user_arch(names[0]).cpu_help()
    return "".join(f"{name}:\n{user_arch(name).cpu_help()}" for name in names)


def _open_log(log_items: str, log_file: str | None, append: bool) -> Log:
    stream = None
    if log_file:
        try:
            stream = open(log_file, "a" if append else "w", buffering=1)  # noqa: SIM115
        except OSError as e:
            raise UsageError(f"cannot open log file {log_file}: {e.strerror}") from None
        # Keep the log's fd out of the range the guest's own files get.
        high = os.dup2(stream.fileno(), 1023) if stream.fileno() < 1023 else stream.fileno()
        if high != stream.fileno():
            os.set_inheritable(high, False)
            stream.close()
            stream = open(high, "a", buffering=1, closefd=True)  # noqa: SIM115
    items = {i.strip() for i in log_items.split(",") if i.strip()}
    try:
        return Log(items, stream)
    except LogError as e:
        raise UsageError(f"{e} (-d help lists them)") from None


def _run_program(prog: str, args: list[str], *, sysroot, set_env, unset_env, argv0, cpu,
                 strace, log_items, log_file, debug, code_cache, reentry,
                 cache_dir=None, perfmap=False) -> None:
    from llvmtcg.arch import CpuModelError
    from llvmtcg.user.arch import user_arch
    from llvmtcg.user.elf import ElfError, read_elf
    from llvmtcg.user.process import (
        GuestExit,
        GuestKilled,
        Process,
        UserConfig,
        report_death,
    )
    from llvmtcg.user.signals import SignalState, setup_host_signals

    envp = [k + b"=" + v for k, v in os.environb.items()]
    ignored: set[int] = set()
    if reentry is not None:  # a guest execve: its environment comes through a file
        envp, ignored = _read_reentry(*reentry)
    if sysroot is not None and not os.path.isdir(sysroot):
        raise UsageError(f"-L {sysroot}: not a directory")
    log = _open_log(log_items, log_file, append=reentry is not None)
    try:
        image = read_elf(prog)
    except ElfError as e:
        raise UsageError(str(e)) from None
    try:
        user_arch(image.arch).make_arch(cpu)  # the model is the program's architecture's
    except CpuModelError as e:
        raise UsageError(f"{e} (-cpu help lists the models)") from None
    envp = _edit_environment(envp, set_env, unset_env)
    argv = [os.fsencode(argv0 if argv0 is not None else prog)] + [os.fsencode(a) for a in args]
    # Absolute, so a guest that changes directory and execs passes the same ones on.
    config = UserConfig(sysroot=sysroot and os.path.abspath(sysroot), cpu=cpu, strace=strace,
                        log_items=log_items, log_file=log_file and os.path.abspath(log_file),
                        debug=debug, code_cache=code_cache,
                        cache_dir=cache_dir and os.path.abspath(cache_dir), perfmap=perfmap,
                        runtime=runtime_options(code_cache, cache_dir, perfmap, log))
    signals = SignalState()
    setup_host_signals(signals, ignored)
    process = None
    try:
        process = Process(config, image, argv, envp, prog, log, signals)
        process.run()
    except GuestExit as e:
        _flush(log)
        _write_counters(process)
        os._exit(e.status)
    except GuestKilled as e:
        _flush(log)
        _write_counters(process)
        report_death(e, log)
    except ElfError as e:
        raise UsageError(str(e)) from None


STATS_ENV = "LLVMTCG_STATS"
# Code the cache supplies is not translated, so it would not be logged: with these -d
# items the code cache is off.
TRANSLATION_LOG_ITEMS = {"in_asm", "op", "llvm", "out_asm"}


def runtime_options(code_cache: bool, cache_dir: str | None, perfmap: bool,
                    log: Log) -> RuntimeOptions:
    """The runtime's options from the command line and the environment (the only place
    llvmtcg-user reads ``$LLVMTCG_*``; a guest execve carries both on: the flags through
    the new command line, the variables through the host environment)."""
    return options_from_environment(
        os.environ, code_cache=code_cache and not log.items & TRANSLATION_LOG_ITEMS,
        cache_dir=cache_dir and os.path.abspath(cache_dir), perf_map=perfmap)


def _write_counters(process) -> None:
    """Append this process's counters as one JSON line to ``$LLVMTCG_STATS`` (bench/run
    reads translation throughput from there). Best effort."""
    path = os.environ.get(STATS_ENV)
    if not path or process is None:
        return
    import json

    try:
        with open(path, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), **process.cpu.counters()}) + "\n")
    except (OSError, TypeError, ValueError):
        pass


def _edit_environment(envp: list[bytes], set_env: list[str], unset_env: list[str]) \
        -> list[bytes]:
    """-U removes variables, -E sets them (in place, or appended), as QEMU does."""
    for name in unset_env:
        key = os.fsencode(name)
        envp = [e for e in envp if e.partition(b"=")[0] != key]
    for item in set_env:
        entry = os.fsencode(item)
        key = entry.partition(b"=")[0]
        for i, e in enumerate(envp):
            if e.partition(b"=")[0] == key:
                envp[i] = entry
                break
        else:
            envp.append(entry)
    return envp


def _read_reentry(fd: int, sigign: str) -> tuple[list[bytes], set[int]]:
    """The environment and ignored signals the exec'ing guest passed (see
    llvmtcg.user.syscalls.proc); the fd is closed so the guest never sees it."""
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    envp = data.split(b"\0")[:-1] if data else []
    return envp, {int(s) for s in sigign.split(",") if s.isdigit()}


def _flush(log: Log) -> None:
    for stream in (sys.stdout, sys.stderr, log.stream):
        try:
            if stream is not None:
                stream.flush()
        except OSError:
            pass


def main(argv: list[str] | None = None) -> None:
    """The console entry point (also ``python -m llvmtcg.user``)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv[:_prog_index(argv)]
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name=EMULATOR, standalone_mode=False)
    except click_exceptions.NoSuchOption as e:
        token = next((a for a in argv if a.startswith(e.option_name)), e.option_name)
        _fail(f"unknown option '{token}' (-h lists the options)")
    except click_exceptions.BadOptionUsage as e:
        _fail(f"{e.format_message()}")
    except click_exceptions.ClickException as e:
        _fail(e.format_message().replace("\n", " "))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except UsageError as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - an internal error: one line unless --debug
        if debug:
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (run with --debug for a traceback)")
    sys.exit(0)


def _prog_index(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if not a.startswith("-"):
            return i
    return len(argv)


def _fail(message: str) -> None:
    sys.stderr.write(f"{EMULATOR}: {message}\n")
    sys.stderr.flush()
    sys.exit(1)
