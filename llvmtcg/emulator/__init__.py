"""The embedding API: llvmtcg as a Unicorn-class emulator engine.

    from llvmtcg import Emulator, Perm, Hook
    emu = Emulator("riscv64")
    emu.mem_map(0x10000, 0x4000, Perm.READ | Perm.EXEC)

See docs/library.md.
"""

from llvmtcg.emulator.emulator import Emulator, Translation
from llvmtcg.emulator.inline import CmpLog, CmpRecord, Predicate, Reg
from llvmtcg.emulator.instrument import coverage_location
from llvmtcg.emulator.snapshot import Snapshot
from llvmtcg.emulator.types import Context, EmulatorError, ErrorKind, Hook, MemAccess, Perm

__all__ = ["CmpLog", "CmpRecord", "Context", "Emulator", "EmulatorError", "ErrorKind", "Hook",
           "MemAccess", "Perm", "Predicate", "Reg", "Snapshot", "Translation", "coverage_location"]
