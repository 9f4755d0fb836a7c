"""``llvmtcg-binfmt``: register llvmtcg-user with the kernel's binfmt_misc, so that
executing a foreign Linux program (``./hello-riscv64``) runs it under the emulator, as
QEMU's ``scripts/qemu-binfmt-conf.sh`` does for qemu-user.

    llvmtcg-binfmt [--install | --remove] [--arch NAME]... [--interpreter-dir DIR]
                   [--preserve-argv0] [--credential] [--persistent] [--mount]

Without ``--install``/``--remove`` it prints the registration lines (what would be
written to ``/proc/sys/fs/binfmt_misc/register``), one per architecture:
``:llvmtcg-riscv64:M::MAGIC:MASK:INTERPRETER:FLAGS``. The magic and mask match the first
20 bytes of the ELF header: ``\\x7fELF``, 64-bit, little-endian, version 1, any OS ABI,
ET_EXEC or ET_DYN (the mask's ``\\xfe`` on e_type's low byte) and the architecture's
e_machine (from the architecture registry, like everything else here).

The interpreter is ``llvmtcg-<arch>`` (installed with the package) from
``--interpreter-dir``, or found on PATH. The flags (``man binfmt_misc``; QEMU offers the
same three):

- ``P`` (``--preserve-argv0``): the kernel passes the program's own argv[0] after its
  path (``llvmtcg-riscv64 /full/path argv0 args…``) and sets AT_FLAGS_PRESERVE_ARGV0
  in the interpreter's auxiliary vector; llvmtcg-user then takes the path as the
  program and argv0 as the guest's argv[0] (:func:`preserved_argv0`), as qemu-user
  does. Without it the guest's argv[0] is the full path.
- ``C`` (``--credential``): credentials (setuid/setgid bits) come from the program,
  not the interpreter; implies ``O``: the kernel opens the program and passes the fd
  (AT_EXECFD), so an execute-only program runs too. Caution: a setuid guest program
  then runs the whole emulator (a Python interpreter) with raised privileges.
- ``F`` (``--persistent``): the kernel opens the interpreter when the registration is
  made, so it works in containers and chroots that lack it. ``llvmtcg-<arch>`` is a
  Python script: its ``#!`` interpreter is still looked up at exec time.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from llvmtcg.user.auxv import (  # noqa: F401 - this module's API too
    AT_EXECFD,
    AT_FLAGS,
    AT_FLAGS_PRESERVE_ARGV0,
    exec_fd,
    preserved_argv0,
)

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
_ELFCLASS64, _ELFDATA2LSB, _EV_CURRENT = 2, 1, 1
_ET_EXEC = 2


@dataclass(frozen=True, slots=True)
class Registration:
    """One binfmt_misc entry (type ``M``: magic bytes at offset 0)."""

    name: str
    magic: bytes
    mask: bytes
    interpreter: str
    flags: str

    def line(self) -> str:
        """What is written to ``register``. Every byte is escaped as ``\\xHH``, which
        the kernel decodes; a raw ``:`` would end the field."""
        def escaped(data: bytes) -> str:
            return "".join(f"\\x{b:02x}" for b in data)

        return (f":{self.name}:M::{escaped(self.magic)}:{escaped(self.mask)}:"
                f"{self.interpreter}:{self.flags}")


def elf_magic(e_machine: int) -> tuple[bytes, bytes]:
    """(magic, mask) for a 64-bit little-endian ELF executable or shared object
    (PIE) of machine ``e_machine`` — qemu-binfmt-conf.sh's for the same machine."""
    magic = (b"\x7fELF" + bytes((_ELFCLASS64, _ELFDATA2LSB, _EV_CURRENT)) + bytes(9)
             + _ET_EXEC.to_bytes(2, "little") + e_machine.to_bytes(2, "little"))
    mask = b"\xff" * 7 + b"\x00" + b"\xff" * 8 + b"\xfe\xff" + b"\xff\xff"
    return magic, mask


def flags_for(preserve_argv0: bool, credential: bool, persistent: bool) -> str:
    return "".join(flag for flag, wanted in (("P", preserve_argv0), ("O", credential),
                                            ("C", credential), ("F", persistent))
                   if wanted)


def registrations(arches: list[str], interpreter_dir: str | None, flags: str
                  ) -> list[Registration]:
    """The entries for ``arches`` (user-mode architecture names).

    Raises:
        ValueError: an unknown architecture, or no ``llvmtcg-<arch>`` interpreter.
    """
    from llvmtcg.arch import arch_by_name
    from llvmtcg.user.arch import user_arch_names

    known = user_arch_names()
    out = []
    for name in arches:
        if name not in known:
            raise ValueError(f"unknown architecture {name!r} (known: {', '.join(known)})")
        command = f"llvmtcg-{name}"
        if interpreter_dir is not None:
            interpreter = os.path.join(os.path.abspath(interpreter_dir), command)
            if not os.access(interpreter, os.X_OK):
                raise ValueError(f"{interpreter}: not an executable")
        else:
            found = shutil.which(command)
            if found is None:
                raise ValueError(f"{command} not found on PATH (install the package, or "
                                 "give --interpreter-dir)")
            interpreter = os.path.abspath(found)
        magic, mask = elf_magic(arch_by_name(name).elf_machine)
        out.append(Registration(f"llvmtcg-{name}", magic, mask, interpreter, flags))
    return out


def install(entries: list[Registration], directory: Path = BINFMT_DIR) -> None:
    """Write each entry to ``register``, replacing one of the same name.

    Raises:
        OSError: binfmt_misc is not mounted, or we may not register (root needed).
    """
    register = directory / "register"
    if not register.exists():
        raise OSError(f"{register} does not exist: mount binfmt_misc first "
                      f"(mount -t binfmt_misc binfmt_misc {directory}, or --mount)")
    for entry in entries:
        remove([entry.name], directory)
        with open(register, "w") as f:
            f.write(entry.line())


def remove(names: list[str], directory: Path = BINFMT_DIR) -> None:
    """Unregister the entries ``names`` (those that exist)."""
    for name in names:
        path = directory / name
        if path.exists():
            with open(path, "w") as f:
                f.write("-1")


def main(argv: list[str] | None = None) -> None:
    """The ``llvmtcg-binfmt`` command."""
    import argparse  # (not at import: every llvmtcg-user start reads exec_fd from here)

    from llvmtcg.user.arch import user_arch_names

    parser = argparse.ArgumentParser(
        prog="llvmtcg-binfmt",
        description="Print, install or remove binfmt_misc registrations that run foreign "
                    "Linux programs under llvmtcg-user (like qemu-binfmt-conf.sh).")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--install", action="store_true",
                        help=f"register them (root; {BINFMT_DIR} must be mounted)")
    action.add_argument("--remove", action="store_true", help="unregister them")
    parser.add_argument("--arch", action="append", choices=user_arch_names(),
                        help="only this architecture (repeatable; default: all)")
    parser.add_argument("--interpreter-dir", metavar="DIR",
                        help="where llvmtcg-<arch> is (default: found on PATH)")
    parser.add_argument("--preserve-argv0", action="store_true",
                        help="flag P: the guest keeps its own argv[0]")
    parser.add_argument("--credential", action="store_true",
                        help="flags OC: credentials from the program (setuid applies)")
    parser.add_argument("--persistent", action="store_true",
                        help="flag F: the kernel opens the interpreter now")
    parser.add_argument("--mount", action="store_true",
                        help=f"mount binfmt_misc on {BINFMT_DIR} if it is not")
    args = parser.parse_args(argv)
    arches = args.arch or user_arch_names()
    try:
        if args.remove:
            remove([f"llvmtcg-{name}" for name in arches])
            return
        entries = registrations(arches, args.interpreter_dir,
                                flags_for(args.preserve_argv0, args.credential,
                                          args.persistent))
        if args.install:
            if args.mount and not (BINFMT_DIR / "register").exists():
                _mount()
            install(entries)
        else:
            for entry in entries:
                print(entry.line())
    except (OSError, ValueError) as e:
        sys.stderr.write(f"llvmtcg-binfmt: {e}\n")
        sys.exit(1)


def _mount() -> None:
    import subprocess

    result = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"cannot mount binfmt_misc: {result.stderr.strip()}")


if __name__ == "__main__":
    main()
