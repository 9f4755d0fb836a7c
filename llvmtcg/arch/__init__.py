"""Guest architectures: the contract the engine calls (:class:`GuestArch`) and the
registry that finds one by name or ELF machine.

    arch = arch_by_name("riscv64")()          # the default CPU model
    cpu = Cpu(arch, GuestMemory())            # the runtime takes any GuestArch
"""

from llvmtcg.arch.contract import (
    ELFCLASS32,
    ELFCLASS64,
    ELFDATA2LSB,
    ELFDATA2MSB,
    TB_FLAGS_BITS,
    CpuModelError,
    DebugFeature,
    DebugRegister,
    Fetch,
    GuestArch,
    PageTranslation,
    UnknownRegisterError,
)
from llvmtcg.arch.registry import (
    BUILTIN_ARCHS,
    UnknownArchError,
    arch_by_elf_machine,
    arch_by_name,
    arch_names,
    register_arch,
)

__all__ = ["BUILTIN_ARCHS", "ELFCLASS32", "ELFCLASS64", "ELFDATA2LSB", "ELFDATA2MSB",
           "CpuModelError", "DebugFeature", "DebugRegister", "Fetch", "GuestArch",
           "PageTranslation", "TB_FLAGS_BITS",
           "UnknownArchError",
           "UnknownRegisterError", "arch_by_elf_machine", "arch_by_name", "arch_names",
           "register_arch"]
