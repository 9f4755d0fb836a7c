"""RISC-V 64 names for the embedding API: ``llvmtcg.riscv64.Reg.A0`` and friends.

``Reg`` numbers registers as gdb does (x0-x31, pc, f0-f31, CSRs at 65 + number); ABI
names (``A0``), ``X``/``F`` numbers and ``FP`` are aliases of one member.
"""

from llvmtcg.frontends.riscv.cpu import Reg

__all__ = ["Reg"]
