"""MMU indices and translation-block flags."""

from __future__ import annotations

from llvmtcg.frontends.riscv.priv.csr import Csr, CsrFile
from llvmtcg.frontends.riscv.priv.state import (
    MMU_CONTEXTS,
    N_MMU_IDX,
    FsState,
    MmuIdx,
    Mstatus,
    Priv,
    TbFlags,
    data_mmu_index,
    fetch_mmu_index,
    get_field,
    set_field,
    tb_flags,
)

MPP_S, MPP_U, MPP_M = 1 << 11, 0, 3 << 11


def test_data_index_per_privilege_and_sum_mxr() -> None:
    assert data_mmu_index(Priv.U, 0) == MmuIdx.U
    assert data_mmu_index(Priv.U, Mstatus.SUM) == MmuIdx.U  # SUM is for S only
    assert data_mmu_index(Priv.U, Mstatus.MXR) == MmuIdx.U_MXR
    assert data_mmu_index(Priv.S, 0) == MmuIdx.S
    assert data_mmu_index(Priv.S, Mstatus.SUM) == MmuIdx.S_SUM
    assert data_mmu_index(Priv.S, Mstatus.SUM | Mstatus.MXR) == MmuIdx.S_SUM_MXR
    assert data_mmu_index(Priv.M, Mstatus.SUM | Mstatus.MXR) == MmuIdx.M


def test_mprv_uses_mpp_for_data_only() -> None:
    # "When MPRV=1, load and store memory addresses are translated and protected ... as
    # though the current privilege mode were set to MPP. Instruction address-translation
    # and protection are unaffected by the setting of MPRV." SUM "is in effect when
    # MPRV=1 and MPP=S".
    assert data_mmu_index(Priv.M, Mstatus.MPRV | MPP_S) == MmuIdx.S
    assert data_mmu_index(Priv.M, Mstatus.MPRV | MPP_S | Mstatus.SUM) == MmuIdx.S_SUM
    assert data_mmu_index(Priv.M, Mstatus.MPRV | MPP_U | Mstatus.MXR) == MmuIdx.U_MXR
    assert data_mmu_index(Priv.M, Mstatus.MPRV | MPP_M) == MmuIdx.M
    assert data_mmu_index(Priv.S, Mstatus.MPRV | MPP_U) == MmuIdx.S  # only M-mode
    assert fetch_mmu_index(Priv.M) == MmuIdx.M and fetch_mmu_index(Priv.S) == MmuIdx.S


def test_mmu_contexts_cover_every_index() -> None:
    assert len(MMU_CONTEXTS) == N_MMU_IDX == 7
    assert MMU_CONTEXTS[MmuIdx.S_SUM_MXR].sum and MMU_CONTEXTS[MmuIdx.S_SUM_MXR].mxr
    assert MMU_CONTEXTS[MmuIdx.U_MXR].priv == Priv.U


def test_tb_flags_layout() -> None:
    status = Mstatus.SUM | (int(FsState.CLEAN) << 13)
    flags = tb_flags(Priv.S, status, 8 << 60)
    assert flags == 1 | (MmuIdx.S_SUM << 2) | (2 << 5) | TbFlags.PAGING
    assert TbFlags.priv(flags) == Priv.S and TbFlags.mmu_idx(flags) == MmuIdx.S_SUM
    assert TbFlags.fs(flags) == FsState.CLEAN
    # M-mode fetches are never translated; MPRV changes only the data index.
    flags = tb_flags(Priv.M, Mstatus.MPRV | MPP_S, 8 << 60)
    assert flags == 3 | (MmuIdx.S << 2)
    assert tb_flags(Priv.U, 0, 0) == 0


def test_hart_flags_follow_state() -> None:
    h = CsrFile(cycles=lambda: 0, instret=lambda: 0)
    assert h.tb_flags() == 3 | (MmuIdx.M << 2)
    h.write(Csr.MSTATUS, 3 << 13)
    h.priv = Priv.U
    assert h.tb_flags() == (3 << 5) and h.data_mmu_index() == MmuIdx.U
    assert h.fetch_mmu_index() == MmuIdx.U


def test_field_helpers() -> None:
    assert get_field(0b1_1000_0000_0000, Mstatus.MPP) == 3
    assert set_field(0, Mstatus.FS, 2) == 2 << 13
    assert set_field(Mstatus.FS, Mstatus.FS, 0) == 0
