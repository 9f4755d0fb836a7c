"""The guest-architecture contract and its registry, and how the runtime uses them."""

from __future__ import annotations

import dataclasses

import pytest

from llvmtcg.arch import (
    ELFCLASS32,
    ELFCLASS64,
    ELFDATA2MSB,
    GuestArch,
    UnknownArchError,
    UnknownRegisterError,
    arch_by_elf_machine,
    arch_by_name,
    arch_names,
    register_arch,
    registry,
)
from llvmtcg.ir import Builder, ExitReason, RoundingMode
from llvmtcg.runtime.cpu_state import CpuState
from tests.core.support import CODE, LAYOUT, HandFrontend, HandReg, R, c64, halt_at, make_cpu


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test are undone after it."""
    monkeypatch.setattr(registry.REGISTRY, "registered", dict(registry.REGISTRY.registered))


@dataclasses.dataclass(eq=False)
class ToyArch(HandFrontend):
    name = "toy"
    elf_machine = 0x7E57


def test_builtin_riscv64_by_name_and_by_elf_machine() -> None:
    cls = arch_by_name("riscv64")
    assert cls.name == "riscv64" and cls.elf_machine == 243 and issubclass(cls, GuestArch)
    assert arch_by_elf_machine(243) is cls
    assert arch_by_elf_machine(243, ELFCLASS64) is cls
    assert "riscv64" in arch_names()


def test_the_builtin_elf_table_matches_the_architectures() -> None:
    for (machine, elf_class, elf_data), name in registry.BUILTIN_ELF.items():
        cls = arch_by_name(name)
        assert (cls.elf_machine, cls.elf_class, cls.elf_data) == (machine, elf_class, elf_data)
    assert set(registry.BUILTIN_ELF.values()) == set(registry.BUILTIN_ARCHS)


def test_finding_an_architecture_by_elf_machine_imports_that_one_only() -> None:
    import subprocess
    import sys

    code = ("import sys; from llvmtcg.arch import arch_by_elf_machine; "
            "assert arch_by_elf_machine(243).name == 'riscv64'; "
            "print(sorted(m for m in sys.modules if m.startswith('llvmtcg.frontends.') "
            "and m.count('.') == 2 and not m.endswith('decodetree')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['llvmtcg.frontends.riscv']"


def test_unknown_names_and_machines_are_clear_errors() -> None:
    with pytest.raises(UnknownArchError) as info:
        arch_by_name("sparc64")
    assert str(info.value) == ("unknown guest architecture 'sparc64' "
                               "(known: aarch64, riscv64)")
    with pytest.raises(UnknownArchError, match="no guest architecture runs ELF machine 62"):
        arch_by_elf_machine(62)  # x86-64
    with pytest.raises(UnknownArchError):
        arch_by_elf_machine(243, ELFCLASS32)  # riscv32 is another architecture
    with pytest.raises(UnknownArchError):
        arch_by_elf_machine(243, ELFCLASS64, ELFDATA2MSB)


def test_registering_an_architecture(scratch_registry) -> None:
    assert register_arch(ToyArch) is ToyArch
    assert register_arch(ToyArch) is ToyArch  # again: harmless
    assert arch_by_name("toy") is ToyArch and arch_by_elf_machine(0x7E57) is ToyArch
    assert arch_names() == sorted(["aarch64", "riscv64", "toy"])

    class Impostor(ToyArch):
        pass

    with pytest.raises(ValueError, match="'toy' is already registered"):
        register_arch(Impostor)
    with pytest.raises(TypeError, match="not a GuestArch"):
        register_arch(dict)

    class Nameless(GuestArch):  # sets no name (nor anything else)
        pass

    with pytest.raises(TypeError, match="Nameless does not set name"):
        register_arch(Nameless)


def test_an_architecture_must_write_the_abstract_methods() -> None:
    class Half(GuestArch):
        name = "half"

        def helpers(self):
            raise AssertionError

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_defaults_describe_a_user_mode_guest_without_fp() -> None:
    arch, state = HandFrontend(), CpuState(LAYOUT)
    assert arch.tb_flags(state) == 0 and arch.mmu_index(state) == 0
    assert arch.fp_rounding(state) is RoundingMode.RNE
    assert arch.exec_interrupt(state) is False
    with pytest.raises(NotImplementedError, match="hand"):
        arch.do_interrupt(state, 3)
    assert arch.counts_insns is False


def test_register_names() -> None:
    arch, state = HandFrontend(), CpuState(LAYOUT)
    assert arch.register("r3") is HandReg.R3 and arch.register("PC") is HandReg.PC
    assert arch.register(5) is HandReg.R5 and arch.register(HandReg.R1) is HandReg.R1
    arch.reg_write(state, "r2", 0x1234)
    assert state.get("r", 2) == 0x1234 and arch.reg_read(state, HandReg.R2) == 0x1234
    for bad in ("r9", "x0", 99):
        with pytest.raises(UnknownRegisterError) as info:
            arch.register(bad)
        assert str(info.value) == f"hand has no register {bad!r}"


@dataclasses.dataclass(eq=False)
class FlaggedArch(HandFrontend):
    """Resets r[3] and reports translation flags; records the flags it was asked for."""

    flags_seen: list[int] = dataclasses.field(default_factory=list)

    def reset(self, state: CpuState) -> None:
        state.set("r", 7, 3)

    flags: int = 0x8_0025

    def tb_flags(self, state: CpuState) -> int:
        return self.flags

    def translate(self, pc, flags, fetch, log=None):
        self.flags_seen.append(flags)
        return super().translate(pc, flags, fetch, log)


def test_cpu_resets_the_state_and_translates_with_its_flags() -> None:
    arch = FlaggedArch()

    @arch.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[3], c64(1))
        halt_at(b, CODE + 4)

    cpu = make_cpu(arch)
    assert cpu.state.get("r", 3) == 7  # reset ran when the state was made
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 8
    assert arch.flags_seen == [0x8_0025]
    cpu.close()


def test_tb_flags_must_fit_in_32_bits() -> None:
    with pytest.raises(ValueError, match="hand: tb_flags 0x100000000 does not fit in 32 bits"):
        make_cpu(FlaggedArch(flags=1 << 32))
