"""QEMU-compatible system emulators: the command line (options.py) and the run (main.py),
shared by the ``llvmtcg-system-<target>`` programs."""

from launcher.system.main import Target, main

__all__ = ["Target", "main"]
