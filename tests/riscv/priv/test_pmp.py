"""PMP: OFF/TOR/NA4/NAPOT matching, priority, locking, defaults (§3.7)."""

from __future__ import annotations

import pytest

from llvmtcg.frontends.riscv.priv.csr import Csr, CsrFile, HartConfig
from llvmtcg.frontends.riscv.priv.pmp import (
    CFG_L,
    CFG_R,
    CFG_W,
    CFG_X,
    Pmp,
    PmpMode,
    napot_range,
)
from llvmtcg.frontends.riscv.priv.state import IllegalInstruction, Priv
from llvmtcg.runtime.exits import Access
from llvmtcg.runtime.softmmu import Perm

R, W, X = Access.READ, Access.WRITE, Access.FETCH
TOR, NA4, NAPOT = PmpMode.TOR << 3, PmpMode.NA4 << 3, PmpMode.NAPOT << 3


def napot(base: int, size: int) -> int:
    return (base >> 2) | ((size >> 3) - 1)


def test_napot_encoding_table() -> None:
    # Table 3.11: yyyy...yyy0 = 8 bytes, yyyy...yy01 = 16 bytes, yyyy...y011 = 32 bytes.
    assert napot_range(0b1010_0000) == (0b1010_0000 << 2, (0b1010_0000 << 2) + 8)
    assert napot_range(0b1010_0001) == (0b1010_0000 << 2, (0b1010_0000 << 2) + 16)
    assert napot_range(0b1010_0011) == (0b1010_0000 << 2, (0b1010_0000 << 2) + 32)
    # All 54 bits set: the whole 2^56-byte physical address space and beyond.
    assert napot_range((1 << 54) - 1) == (0, 1 << 57)


def test_tor_ranges() -> None:
    # "the entry matches any address y such that pmpaddr[i-1] <= y < pmpaddr[i]" and
    # "If PMP entry 0's A field is set to TOR, zero is used for the lower bound".
    pmp = Pmp()
    pmp.write_addr(0, 0x1000 >> 2)
    pmp.write_cfg(0, TOR | CFG_R)
    pmp.write_addr(1, 0x3000 >> 2)
    pmp.write_cfg(1, TOR | CFG_W | CFG_R)
    assert pmp.check(0, 4, R, Priv.S) and not pmp.check(0, 4, W, Priv.S)
    assert pmp.check(0xFFC, 4, R, Priv.U)
    assert pmp.check(0x1000, 8, W, Priv.S) and pmp.check(0x2FF8, 8, W, Priv.S)
    assert not pmp.check(0x3000, 4, R, Priv.S)  # matches nothing: S fails
    assert pmp.check(0x3000, 4, W, Priv.M)  # ... and M succeeds


def test_tor_with_bottom_above_top_matches_nothing() -> None:
    # "If pmpaddr[i-1] >= pmpaddr[i] and pmpcfg[i].A=TOR, then PMP entry i matches no
    # addresses."
    pmp = Pmp()
    pmp.write_addr(0, 0x2000 >> 2)
    pmp.write_addr(1, 0x1000 >> 2)
    pmp.write_cfg(1, TOR | CFG_R | CFG_W | CFG_X)
    assert not pmp.check(0x1800, 4, R, Priv.S)
    assert pmp.range(1) is None


def test_na4_and_all_bytes_rule() -> None:
    # "if a PMP entry is configured to match the four-byte range 0xC–0xF, then an 8-byte
    # access to the range 0x8–0xF will fail, assuming that PMP entry is the
    # highest-priority entry that matches those addresses." - even in M-mode:
    # "irrespective of the L, R, W, and X bits".
    pmp = Pmp()
    pmp.write_addr(0, 0xC >> 2)
    pmp.write_cfg(0, NA4 | CFG_R | CFG_W)
    assert pmp.check(0xC, 4, R, Priv.U)
    assert not pmp.check(0x8, 8, R, Priv.U)
    assert not pmp.check(0x8, 8, R, Priv.M)
    assert pmp.check(0x8, 4, R, Priv.M)  # no entry matches: M succeeds
    assert not pmp.check(0x10, 1, R, Priv.U)


def test_an_entry_inside_an_access_matches_it() -> None:
    # "The lowest-numbered PMP entry that matches any byte of an access": a 4-byte entry
    # in the middle of an 8-byte access matches it, partially, so the access fails.
    pmp = Pmp()
    pmp.write_addr(0, 0x104 >> 2)
    pmp.write_cfg(0, NA4 | CFG_R)
    assert pmp.range(0) == (0x104, 0x108)
    assert not pmp.check(0x102, 8, R, Priv.M)


def test_napot_region() -> None:
    pmp = Pmp()
    pmp.write_addr(0, napot(0x8000_0000, 0x20_0000))
    pmp.write_cfg(0, NAPOT | CFG_R | CFG_X)
    assert pmp.range(0) == (0x8000_0000, 0x8020_0000)
    assert pmp.check(0x8000_0000, 8, X, Priv.S) and pmp.check(0x801F_FFF8, 8, R, Priv.U)
    assert not pmp.check(0x8000_0000, 8, W, Priv.S)
    assert not pmp.check(0x801F_FFFC, 8, R, Priv.S)  # runs past the end
    assert not pmp.check(0x8020_0000, 4, R, Priv.S)


def test_lowest_entry_wins() -> None:
    # "PMP entries are statically prioritized. The lowest-numbered PMP entry that
    # matches any byte of an access determines whether that access succeeds or fails."
    pmp = Pmp()
    pmp.write_addr(0, napot(0x8000_0000, 0x1000))
    pmp.write_cfg(0, NAPOT)  # no permissions
    pmp.write_addr(1, napot(0, 1 << 40))
    pmp.write_cfg(1, NAPOT | CFG_R | CFG_W | CFG_X)
    assert not pmp.check(0x8000_0800, 4, R, Priv.S)
    assert pmp.check(0x8000_1000, 4, R, Priv.S)
    assert pmp.check(0x8000_0800, 4, W, Priv.M)  # L clear: M ignores the permissions


def test_defaults() -> None:
    # "If no PMP entry matches an M-mode access, the access succeeds. If no PMP entry
    # matches an S-mode or U-mode access, but at least one PMP entry is implemented, the
    # access fails." "If at least one PMP entry is implemented, but all PMP entries' A
    # fields are set to OFF, then all S-mode and U-mode memory accesses will fail."
    pmp = Pmp(16)
    assert pmp.check(0x8000_0000, 8, W, Priv.M)
    assert not pmp.check(0x8000_0000, 8, R, Priv.S)
    assert not pmp.check(0x8000_0000, 2, X, Priv.U)
    assert Pmp(0).check(0x8000_0000, 8, W, Priv.U)
    assert pmp.page_perms(0x8000_0000, Priv.M) == (Perm.RWX, True)
    assert pmp.page_perms(0x8000_0000, Priv.S) == (0, True)


def test_lock_enforces_on_machine_mode_and_freezes_the_entry() -> None:
    # "When the L bit is set, these permissions are enforced for all privilege modes."
    # "If PMP entry i is locked, writes to pmpicfg and pmpaddri are ignored."
    pmp = Pmp()
    pmp.write_addr(0, napot(0x1000, 0x1000))
    pmp.write_cfg(0, CFG_L | NAPOT | CFG_R)
    assert pmp.check(0x1000, 4, R, Priv.M) and not pmp.check(0x1000, 4, W, Priv.M)
    assert not pmp.check(0x1000, 4, X, Priv.M)
    assert not pmp.write_cfg(0, NAPOT | CFG_R | CFG_W | CFG_X)
    assert not pmp.write_addr(0, napot(0x2000, 0x1000))
    assert pmp.cfg[0] == CFG_L | NAPOT | CFG_R and pmp.range(0) == (0x1000, 0x2000)


def test_lock_with_off_still_locks() -> None:
    # "Setting the L bit locks the PMP entry even when the A field is set to OFF."
    pmp = Pmp()
    pmp.write_cfg(3, CFG_L)
    assert not pmp.write_cfg(3, NAPOT | CFG_R)
    assert not pmp.write_addr(3, 0x1234)
    assert pmp.check(0, 4, W, Priv.M)  # OFF matches nothing


def test_locked_tor_locks_the_previous_address() -> None:
    # "if PMP entry i is locked and pmpicfg.A is set to TOR, writes to pmpaddri-1 are
    # ignored."
    pmp = Pmp()
    pmp.write_addr(4, 0x1000 >> 2)
    pmp.write_addr(5, 0x2000 >> 2)
    pmp.write_cfg(5, CFG_L | TOR | CFG_R)
    assert not pmp.write_addr(4, 0)
    assert pmp.addr[4] == 0x1000 >> 2
    assert pmp.write_cfg(4, NAPOT | CFG_R)  # entry 4's own config stays writable
    # A locked entry that is not TOR leaves the address below it alone.
    pmp.write_cfg(7, CFG_L | NAPOT)
    assert pmp.write_addr(6, 0x55)


def test_reserved_write_only_encoding_is_ignored() -> None:
    # "The R, W, and X fields form a collective WARL field for which the combinations
    # with R=0 and W=1 are reserved."
    pmp = Pmp()
    pmp.write_cfg(0, NAPOT | CFG_R)
    assert not pmp.write_cfg(0, NAPOT | CFG_W)
    assert pmp.cfg[0] == NAPOT | CFG_R
    pmp.write_cfg(1, 0x60 | NA4 | CFG_X)  # bits 6:5 are read-only zero
    assert pmp.cfg[1] == NA4 | CFG_X


def test_page_perms_uniform_and_split() -> None:
    pmp = Pmp()
    pmp.write_addr(0, napot(0x8000_0000, 0x800))
    pmp.write_cfg(0, NAPOT | CFG_R)
    pmp.write_addr(1, napot(0x8000_0000, 0x10_0000))
    pmp.write_cfg(1, NAPOT | CFG_R | CFG_W | CFG_X)
    assert pmp.page_perms(0x8000_0000, Priv.S) == (0, False)
    assert pmp.page_perms(0x8000_1000, Priv.S) == (Perm.RWX, True)
    assert pmp.page_perms(0x9000_0000, Priv.U) == (0, True)


# -- the CSR views --------------------------------------------------------------------------

def hart(entries: int = 16) -> CsrFile:
    return CsrFile(HartConfig(pmp_entries=entries), cycles=lambda: 0, instret=lambda: 0)


def test_pmpcfg_csrs_pack_eight_entries() -> None:
    # RV64: "eight even-numbered CSRs, pmpcfg0, pmpcfg2, ..., pmpcfg14, hold the
    # configurations for the 64 PMP entries"; "the odd-numbered configuration
    # registers, pmpcfg1, pmpcfg3, ..., pmpcfg15, are illegal."
    h = hart()
    h.write(Csr.PMPCFG0 + 2, 0x1F_00_00_00_00_00_00_11)
    assert h.pmp.cfg[8] == NA4 | CFG_R and h.pmp.cfg[15] == NAPOT | CFG_X | CFG_W | CFG_R
    assert h.pmp.cfg[0] == 0 and h.read(Csr.PMPCFG0) == 0
    assert h.read(Csr.PMPCFG0 + 2) == 0x1F_00_00_00_00_00_00_11
    h.write(Csr.PMPCFG0, 0x80 << 8)  # pmp1cfg = L
    assert h.pmp.cfg[1] == CFG_L
    for odd in (1, 3, 15):
        with pytest.raises(IllegalInstruction):
            h.read(Csr.PMPCFG0 + odd)


def test_pmp_csrs_past_the_implemented_entries_do_not_exist() -> None:
    h = hart(16)
    with pytest.raises(IllegalInstruction):
        h.read(Csr.PMPCFG0 + 4)
    with pytest.raises(IllegalInstruction):
        h.write(Csr.PMPADDR0 + 16, 1)
    h.write(Csr.PMPADDR0 + 15, (1 << 64) - 1)
    assert h.read(Csr.PMPADDR0 + 15) == (1 << 54) - 1  # bits 63:54 are zero
    assert hart(64).read(Csr.PMPADDR0 + 63) == 0


def test_pmp_csrs_are_machine_only() -> None:
    # "PMP CSRs are only accessible to M-mode."
    h = hart()
    with pytest.raises(IllegalInstruction):
        h.read(Csr.PMPADDR0, Priv.S)
