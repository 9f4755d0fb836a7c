"""``llvmtcg-user``: run a foreign Linux ELF program (QEMU's ``qemu-riscv64`` options).

    llvmtcg-user [-L DIR] [-E VAR=VAL] [-U VAR] [-0 ARGV0] [-cpu MODEL] [-strace]
                 [-cache-dir DIR] [-no-cache] [-perfmap] [-g PORT]
                 [-d ITEMS] [-D FILE] [-version] PROG [ARGS...]

Option parsing stops at PROG: everything after it belongs to the guest. Errors a user
can act on (an unknown option, a missing or malformed program) print one line and exit
with status 1; ``--debug`` shows Python tracebacks for internal errors.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
from dataclasses import dataclass

from llvmtcg import dataclass_code

# (first: every dataclass made from here on, ~70 on a warm run's path, runs methods
# compiled by an earlier run; saved with the translations at exit)
dataclass_code.install()

from llvmtcg.log import LOG_ITEMS, TRANSLATION_LOG_ITEMS, Log, LogError  # noqa: E402
from llvmtcg.options import RuntimeOptions, options_from_environment  # noqa: E402

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


@dataclass(frozen=True, slots=True)
class CliOption:
    """One option: its spellings (QEMU's single-dash one first), where its value goes,
    and how it is shown in ``-h``. A flag has no metavar; a repeatable option collects
    a list."""

    names: tuple[str, ...]
    dest: str
    help: str
    metavar: str | None = None
    repeat: bool = False
    hidden: bool = False


# The option table (a hand-written parser: importing typer and click cost ~0.1 s, a
# fifth of a warm start). Option parsing stops at the program: the rest is the guest's.
OPTIONS = (
    CliOption(("-L", "--L"), "sysroot", "sysroot for the ELF interpreter and absolute paths",
              "DIR"),
    CliOption(("-E", "--E"), "set_env", "set a guest environment variable", "VAR=VAL",
              repeat=True),
    CliOption(("-U", "--U"), "unset_env", "remove a guest environment variable", "VAR",
              repeat=True),
    CliOption(("-0", "--0"), "argv0", "the guest's argv[0] (default: PROG)", "ARGV0"),
    CliOption(("-cpu", "--cpu"), "cpu",
              "CPU model and properties, e.g. rv64,zba=false (help: list)", "MODEL"),
    CliOption(("-strace", "--strace"), "strace",
              "log every syscall with its arguments and result"),
    CliOption(("-d", "--d"), "log_items",
              "log items: in_asm,op,llvm,out_asm,exec,unimp,page (help: list)", "ITEMS"),
    CliOption(("-D", "--D"), "log_file", "write -d and -strace output to FILE", "FILE"),
    CliOption(("-version", "--version"), "version", "print the version and exit"),
    CliOption(("--debug",), "debug", "show Python tracebacks"),
    CliOption(("-no-cache", "--no-cache"), "no_cache",
              "do not use the persistent code cache ($LLVMTCG_CACHE_DIR, ~/.cache/llvmtcg)"),
    CliOption(("-cache-dir", "--cache-dir"), "cache_dir",
              "where the code cache lives (default: $LLVMTCG_CACHE_DIR, else "
              "$XDG_CACHE_HOME/llvmtcg or ~/.cache/llvmtcg)", "DIR"),
    CliOption(("-perfmap", "--perfmap"), "perfmap",
              "name translated code for Linux perf in /tmp/perf-<pid>.map"),
    CliOption(("-g", "--g"), "gdb_port",
              "wait for gdb on PORT (tcp) before the first instruction ($QEMU_GDB too)",
              "PORT"),
    CliOption(("--env-fd",), "env_fd", "", "FD", hidden=True),
    CliOption(("--sigign",), "sigign", "", "SIGNALS", hidden=True),
)
HELP_OPTIONS = ("-h", "-help", "--help")
_BY_NAME = {name: option for option in OPTIONS for name in option.names}


@dataclass(slots=True)
class CommandLine:
    """What the command line says: option values by ``CliOption.dest``, the program and
    its arguments."""

    values: dict[str, object]
    prog: str | None
    args: list[str]
    help: bool = False


def parse_command_line(argv: list[str]) -> CommandLine:
    """Options up to the program (``--`` ends them too), then the program and its
    arguments, untouched. A value follows its option, or is attached (``-d=in_asm``,
    ``-dop`` for one-letter options).

    Raises:
        UsageError: an unknown option, a missing or bad value.
    """
    values: dict[str, object] = {
        o.dest: [] if o.repeat else (None if o.metavar else False) for o in OPTIONS}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            i -= 1
            break
        if arg in HELP_OPTIONS:
            return CommandLine(values, None, [], help=True)
        name, eq, attached = arg.partition("=")
        option = _BY_NAME.get(name)
        if option is None and arg[:2] in _BY_NAME and _BY_NAME[arg[:2]].metavar:
            option, eq, attached = _BY_NAME[arg[:2]], "=", arg[2:]  # -Lsysroot
        if option is None:
            raise UsageError(f"unknown option '{name}' (-h lists the options)")
        if option.metavar is None:
            if eq:
                raise UsageError(f"option '{name}' takes no value")
            values[option.dest] = True
            continue
        if eq:
            value = attached
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            raise UsageError(f"option '{name}' requires an argument")
        if option.repeat:
            values[option.dest].append(value)  # type: ignore[union-attr]
        else:
            values[option.dest] = value
    rest = argv[i:]
    return CommandLine(values, rest[0] if rest else None, rest[1:])


def usage() -> str:
    """The ``-h`` text."""
    lines = [f"Usage: {EMULATOR} [OPTIONS] PROG [ARGS]...", "",
             "Run a Linux riscv64 ELF program on this host (like qemu-riscv64).", "",
             "Arguments:",
             "  PROG       the guest program (an ELF file)",
             "  [ARGS]...  the guest's arguments, passed untouched", "", "Options:"]
    for option in OPTIONS:
        if not option.hidden:
            spelled = ", ".join(option.names)
            if option.metavar:
                spelled += f" {option.metavar}"
            lines.append(f"  {spelled:<28} {option.help}")
    lines.append(f"  {', '.join(HELP_OPTIONS):<28} show this message and exit")
    return "\n".join(lines) + "\n"


def run(argv: list[str]) -> None:
    """Parse ``argv`` and run the program (or print what an informational option asks)."""
    line = parse_command_line(argv)
    v = line.values
    if line.help:
        sys.stdout.write(usage())
        return
    if v["version"]:
        print(f"{EMULATOR} version {VERSION} (llvmtcg: guest code -> IR -> LLVM -> x86-64)")
        return
    if v["log_items"] == "help":
        sys.stdout.write(_help_log_items())
        return
    if v["cpu"] == "help":
        sys.stdout.write(_help_cpus())
        return
    if line.prog is None:
        raise UsageError("no program given (usage: llvmtcg-user [options] PROG [ARGS...])")
    env_fd = v["env_fd"]
    argv0, args = binfmt_arguments(v["argv0"], line.args, first_process=env_fd is None)
    if env_fd is not None:
        try:
            env_fd = int(env_fd)  # type: ignore[arg-type]
        except ValueError:
            raise UsageError(f"invalid value for '--env-fd': {env_fd!r} is not an "
                             f"integer") from None
    _run_program(line.prog, args, sysroot=v["sysroot"],
                 set_env=_split_env(v["set_env"]),  # type: ignore[arg-type]
                 unset_env=_split_env(v["unset_env"]),  # type: ignore[arg-type]
                 argv0=argv0, cpu=v["cpu"], strace=v["strace"],
                 log_items=v["log_items"] or "", log_file=v["log_file"], debug=v["debug"],
                 code_cache=not v["no_cache"], cache_dir=v["cache_dir"],
                 perfmap=v["perfmap"],
                 reentry=(env_fd, v["sigign"] or "") if env_fd is not None else None,
                 gdb_port=v["gdb_port"] if v["gdb_port"] is not None else (
                     # (a guest execve re-enters without the debugger)
                     os.environ.get("QEMU_GDB") if env_fd is None else None))


def binfmt_arguments(argv0: str | None, args: list[str], *, first_process: bool,
                     preserved: bool | None = None) -> tuple[str | None, list[str]]:
    """The guest's argv[0] and arguments, as qemu-user takes them: ``-0`` first, else
    ``$QEMU_ARGV0``; started by binfmt_misc with the ``P`` flag (``preserved``: None
    asks the auxiliary vector), the first argument after the program's path is the
    program's own argv[0] (see :mod:`llvmtcg.user.binfmt`). A guest execve re-entering
    the emulator (``first_process`` False) passes ``-0`` itself."""
    if first_process:
        if preserved is None:
            from llvmtcg.user.auxv import preserved_argv0

            preserved = preserved_argv0()
        if preserved and args:
            original, args = args[0], args[1:]
            if argv0 is None:
                argv0 = original
        if argv0 is None and os.environ.get("QEMU_ARGV0"):
            argv0 = os.environ["QEMU_ARGV0"]
    return argv0, args


def _help_cpus() -> str:
    """``-cpu help``: each guest architecture's models and properties."""
    from llvmtcg.user.arch import user_arch, user_arch_names

    names = user_arch_names()
    if len(names) == 1:
        return user_arch(names[0]).cpu_help()
    return "".join(f"{name}:\n{user_arch(name).cpu_help()}" for name in names)


def _binfmt_exec_fd() -> int | None:
    from llvmtcg.user.auxv import exec_fd

    return exec_fd()


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
                 cache_dir=None, perfmap=False, gdb_port=None) -> None:
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

    envp = _host_environment()
    ignored: set[int] = set()
    if reentry is not None:  # a guest execve: its environment comes through a file
        envp, ignored = _read_reentry(*reentry)
    if sysroot is not None and not os.path.isdir(sysroot):
        raise UsageError(f"-L {sysroot}: not a directory")
    log = _open_log(log_items, log_file, append=reentry is not None)
    try:
        if reentry is None and (fd := _binfmt_exec_fd()) is not None:
            # binfmt_misc's O/C flags: the kernel opened the program for us (it may be
            # execute-only); the path still names it.
            image = dataclasses.replace(read_elf(f"/proc/self/fd/{fd}"), path=prog)
            os.close(fd)
        else:
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
                        runtime=runtime_options(code_cache, cache_dir, perfmap, log,
                                                program=_program_key(prog)))
    listener = None
    if gdb_port:
        from llvmtcg.gdbstub import GdbAddressError, listen

        if not gdb_port.isdigit():
            raise UsageError(f"-g {gdb_port}: not a port number")
        try:
            listener = listen(gdb_port)
        except GdbAddressError as e:
            raise UsageError(str(e)) from None
        # Hot regions are compiled from blocks that breakpoints did not cut: off.
        config.runtime = dataclasses.replace(config.runtime, hot_threshold=0)
    signals = SignalState()
    setup_host_signals(signals, ignored)
    process = None
    try:
        process = Process(config, image, argv, envp, prog, log, signals)
        _started()
        if listener is not None:
            if process.arch.gdb_architecture is None:
                raise UsageError(f"-g: no gdbstub for {process.arch.name} programs yet")
            process.attach_debugger(listener)
        process.run()
    except GuestExit as e:
        _flush(log)
        _save_translations(process)
        _write_counters(process)
        os._exit(e.status)
    except GuestKilled as e:
        _flush(log)
        _save_translations(process)
        _write_counters(process)
        report_death(e, log)
    except ElfError as e:
        raise UsageError(str(e)) from None


STATS_ENV = "LLVMTCG_STATS"


def runtime_options(code_cache: bool, cache_dir: str | None, perfmap: bool,
                    log: Log, program: str | None = None) -> RuntimeOptions:
    """The runtime's options from the command line and the environment (the only place
    llvmtcg-user reads ``$LLVMTCG_*``; a guest execve carries both on: the flags through
    the new command line, the variables through the host environment). ``program``
    names the executable for the baseline block cache (see :func:`_program_key`)."""
    return options_from_environment(
        os.environ, code_cache=code_cache and not log.items & TRANSLATION_LOG_ITEMS,
        cache_dir=cache_dir and os.path.abspath(cache_dir), perf_map=perfmap,
        program=program)


def _program_key(prog: str) -> str | None:
    """The key of the program's file of baseline blocks: its executable's real path,
    size and modification time (a rebuilt program starts a new file; blocks are
    checked against the guest bytes anyway). None if it cannot be read."""
    from llvmtcg.runtime.native.baseline_cache import program_key

    try:
        st = os.stat(prog)
    except OSError:
        return None
    return program_key("user", os.path.realpath(prog), st.st_size, st.st_mtime_ns)


def _save_translations(process) -> None:
    """Keep the baseline blocks this run emitted for the program's next run (best
    effort: the cache is an optimisation, and the guest has already exited), and the
    code of the dataclass methods this process compiled (:mod:`llvmtcg.dataclass_code`)."""
    try:
        dataclass_code.save()
    except Exception:  # noqa: BLE001 - never turn a guest's exit into an error
        pass
    if process is None:
        return
    try:
        process.cpu.save_translations()
    except Exception:  # noqa: BLE001 - never turn a guest's exit into an error
        pass


def _write_counters(process) -> None:
    """Append this process's counters as one JSON line to ``$LLVMTCG_STATS`` (bench/run
    reads translation throughput from there). Best effort."""
    path = os.environ.get(STATS_ENV)
    if not path or process is None:
        return
    import json

    try:
        with open(path, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), **process.cpu.counters(),
                                "dataclass_methods_compiled": dataclass_code.compiled})
                    + "\n")
    except (OSError, TypeError, ValueError):
        pass


def _host_environment() -> list[bytes]:
    """The guest's environment: this process's, without what CPython's start-up added.
    With LANG=C (or no locale) and no LC_ALL, CPython sets LC_CTYPE=C.UTF-8 in its own
    environment (PEP 538 locale coercion); qemu's guests do not get it, and with it
    Debian's coreutils quote in UTF-8. /proc/self/environ still holds the strings
    execve passed: an LC_CTYPE missing there is the interpreter's."""
    env = dict(os.environb)
    if b"LC_CTYPE" in env:
        try:
            with open("/proc/self/environ", "rb") as f:
                initial = f.read().split(b"\0")
        except OSError:
            initial = None
        if initial is not None and not any(e.startswith(b"LC_CTYPE=") for e in initial):
            del env[b"LC_CTYPE"]
    return [k + b"=" + v for k, v in env.items()]


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


# Start-up and the cyclic garbage collector: importing the runtime and setting up the
# process allocate objects that live as long as the process (modules, classes,
# functions, tables), and the collections they set off traverse all of them again and
# again: ~13 ms of a warm hello's CPU and ~33 ms of the `startup` benchmark's (one full
# collection alone ~20 ms). ``main`` turns the collector off until the process is set
# up; then what exists is frozen (gc.freeze: never traversed again, as the fork path
# does for the child) and the collector runs as usual for the guest's run.
_collector_paused = False


def _started() -> None:
    """The process is set up: freeze the start-up objects and collect from here on."""
    global _collector_paused
    if _collector_paused:
        _collector_paused = False
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> None:
    """The console entry point (also ``python -m llvmtcg.user``)."""
    global _collector_paused
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv[:_prog_index(argv)]
    if gc.isenabled():
        # (before importing the runtime too: its imports set off ~30 young collections
        # of the start-up heap, ~5 ms)
        gc.disable()
        _collector_paused = True
    from llvmtcg.runtime.run_loop import tenure_survivors

    tenure_survivors()  # (one emulator for the process's life: see its doc)
    try:
        run(argv)
    except UsageError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - an internal error: one line unless --debug
        if debug:
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (run with --debug for a traceback)")
    finally:
        if _collector_paused:  # (a usage error, or -h: nothing was set up)
            _collector_paused = False
            gc.enable()
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
