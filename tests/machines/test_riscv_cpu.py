"""-cpu rv64 and its properties: QEMU 7.2's defaults, ISA string, checks and messages."""

from __future__ import annotations

import pytest

from machines.riscv_cpu import CpuOptionError, RiscvCpuConfig, pmu_event_map


def test_default_is_qemus_rv64() -> None:
    config = RiscvCpuConfig.parse("rv64", [])
    # What QEMU 7.2 writes to the virt and spike device trees.
    assert config.isa_string() == "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc"
    assert config.has_mmu and config.pmu_counters == 16 and not config.warnings


@pytest.mark.parametrize("options,isa", [
    ([("h", "off")], "rv64imafdc_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc"),
    ([("Zifencei", "off")], "rv64imafdch_zicsr_zihintpause_zba_zbb_zbc_zbs_sstc"),
    ([("c", "no"), ("x-j", "on")], "rv64imafdh_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc"),
    ([("v", "on")], "rv64imafdcvh_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc"),
    ([("zk", "on"), ("sstc", "off")],
     "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbkb_zbkc_zbkx_zbs_zk_zkn_zknd_zkne"
     "_zknh_zkr_zkt"),
])
def test_isa_string_follows_the_properties(options: list[tuple[str, str]], isa: str) -> None:
    assert RiscvCpuConfig.parse("rv64", options).isa_string() == isa


def test_an_older_privileged_spec_disables_newer_extensions_with_warnings() -> None:
    config = RiscvCpuConfig.parse("rv64", [("priv_spec", "v1.11.0")])
    assert config.isa_string() == "rv64imafdc_zicsr_zifencei_zihintpause"
    assert config.warnings[0] == ("disabling h extension for hart 0x0 because privilege spec "
                                  "version does not match")


def test_g_sets_imafd_with_a_warning() -> None:
    config = RiscvCpuConfig.parse("rv64", [("g", "on"), ("f", "off")])
    assert config.enabled("f") and config.warnings == ("Setting G will also set "
                                                       "IMAFD_Zicsr_Zifencei",)


@pytest.mark.parametrize("model,options,message", [
    ("rv32", [], "unable to find CPU model 'rv32'"),
    ("rv64", [("zifencei", "off")], "can't apply global rv64-riscv-cpu.zifencei=off: "
                                    "Property 'rv64-riscv-cpu.zifencei' not found"),
    ("rv64", [("c", "maybe")], "can't apply global rv64-riscv-cpu.c=maybe: Parameter 'c' "
                               "expects 'on' or 'off'"),
    ("rv64", [("pmu-num", "300")], "Parameter 'pmu-num' expects uint8_t"),
    ("rv64", [("vlen", "x")], "Parameter 'vlen' expects uint64"),
    ("rv64", [("i", "off"), ("e", "on")], "H depends on an I base integer ISA with 32 x "
                                          "registers"),
    ("rv64", [("i", "off"), ("h", "off")], "Either I or E extension must be set"),
    ("rv64", [("u", "off")], "Setting S extension without U extension is illegal"),
    ("rv64", [("f", "off")], "D extension requires F extension"),
    ("rv64", [("zfinx", "on")], "Zfinx cannot be supported together with F extension"),
    ("rv64", [("priv_spec", "v9")], "Unsupported privilege spec version 'v9'"),
    ("rv64", [("v", "on"), ("vlen", "96")], "Vector extension VLEN must be power of 2"),
])
def test_refusals_use_qemus_words(model: str, options: list[tuple[str, str]],
                                  message: str) -> None:
    with pytest.raises(CpuOptionError) as info:
        RiscvCpuConfig.parse(model, options)
    assert str(info.value).endswith(message)


def test_pmu_event_map_is_qemus() -> None:
    # From QEMU's qemu-virt-256M.dts: 16 programmable counters (mhpmcounter3..18).
    assert pmu_event_map(16) == [0x01, 0x01, 0x7FFF9, 0x02, 0x02, 0x7FFFC, 0x10019, 0x10019,
                                 0x7FFF8, 0x1001B, 0x1001B, 0x7FFF8, 0x10021, 0x10021, 0x7FFF8,
                                 0, 0, 0, 0, 0]
    assert pmu_event_map(0)[2] == 1
