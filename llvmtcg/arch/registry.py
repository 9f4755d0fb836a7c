"""The registry of guest architectures: find one by name or by ELF machine.

Architectures register their :class:`GuestArch` subclass with :func:`register_arch` when
their module is imported. The ones that ship with llvmtcg are listed here by module
*path* and imported on first lookup, so generic code (the runtime, user mode's loader)
finds an ISA without importing any.
"""

from __future__ import annotations

from llvmtcg.arch.contract import ELFCLASS64, ELFDATA2LSB, GuestArch
from llvmtcg.arch.lazy_registry import LazyRegistry

# name -> the module that defines and registers it (imported lazily).
BUILTIN_ARCHS: dict[str, str] = {
    "riscv64": "llvmtcg.frontends.riscv.arch",
    "aarch64": "llvmtcg.frontends.aarch64.arch",
}

# (e_machine, EI_CLASS, EI_DATA) of the built-in architectures' programs, so that finding
# the architecture of a program imports that one only (the other frontends' modules cost
# ~0.1 s to import). tests/core/test_arch.py checks it against the classes.
BUILTIN_ELF: dict[tuple[int, int, int], str] = {
    (243, ELFCLASS64, ELFDATA2LSB): "riscv64",  # EM_RISCV
    (183, ELFCLASS64, ELFDATA2LSB): "aarch64",  # EM_AARCH64
}

REGISTRY: LazyRegistry[GuestArch] = LazyRegistry("guest architecture", BUILTIN_ARCHS)


class UnknownArchError(LookupError):
    """No guest architecture by that name or ELF machine; the message is one line."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0])


def register_arch(cls: type[GuestArch]) -> type[GuestArch]:
    """Make ``cls`` findable by its ``name`` and ``elf_machine`` (usable as a class
    decorator). Registering the same class again is harmless.

    Raises:
        TypeError: ``cls`` is not a GuestArch subclass or lacks a class attribute.
        ValueError: another class already has its name.
    """
    if not (isinstance(cls, type) and issubclass(cls, GuestArch)):
        raise TypeError(f"{cls!r} is not a GuestArch subclass")
    for attribute in ("name", "elf_machine", "layout", "registers"):
        if not hasattr(cls, attribute):
            raise TypeError(f"{cls.__qualname__} does not set {attribute}")
    REGISTRY.register(cls.name, cls)
    return cls


def arch_names() -> list[str]:
    """Names of every architecture that can be looked up, sorted."""
    return REGISTRY.names()


def arch_by_name(name: str) -> type[GuestArch]:
    """The architecture class registered as ``name``.

    Raises:
        UnknownArchError: no such architecture.
    """
    cls = REGISTRY.get(name)
    if cls is None:
        raise UnknownArchError(f"unknown guest architecture {name!r} "
                               f"(known: {', '.join(arch_names())})")
    return cls


def arch_by_elf_machine(e_machine: int, elf_class: int = ELFCLASS64,
                        elf_data: int = ELFDATA2LSB) -> type[GuestArch]:
    """The architecture whose programs have ELF header ``e_machine``, ``EI_CLASS``
    ``elf_class`` and ``EI_DATA`` ``elf_data`` (one machine number may cover 32- and
    64-bit variants).

    Raises:
        UnknownArchError: no architecture runs such programs.
    """
    identity = (e_machine, elf_class, elf_data)
    builtin = BUILTIN_ELF.get(identity)
    if builtin is not None:
        REGISTRY.get(builtin)  # (imports that one)
    for cls in REGISTRY.registered.values():
        if (cls.elf_machine, cls.elf_class, cls.elf_data) == identity:
            return cls
    for cls in REGISTRY.all():
        if (cls.elf_machine, cls.elf_class, cls.elf_data) == identity:
            return cls
    raise UnknownArchError(f"no guest architecture runs ELF machine {e_machine} "
                           f"(class {elf_class}, data {elf_data})")

