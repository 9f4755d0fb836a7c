"""``llvmtcg-system-riscv64``: QEMU's qemu-system-riscv64 command line (also
``python -m launcher.system_riscv64``)."""

from __future__ import annotations

import sys

from launcher.system import Target
from launcher.system import main as system_main

TARGET = Target(name="riscv64", prog="llvmtcg-system-riscv64")


def main(argv: list[str] | None = None) -> int:
    return system_main(TARGET, argv)


def entry() -> None:
    """The console-script entry point."""
    from llvmtcg.runtime.run_loop import tenure_survivors

    tenure_survivors()  # (one emulator for the process's life: see its doc)
    sys.exit(main())


if __name__ == "__main__":
    entry()
