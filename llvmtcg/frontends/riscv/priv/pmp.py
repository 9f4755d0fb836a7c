"""Physical memory protection (§3.7): pmpcfg/pmpaddr state and the access check.

Granularity is 4 bytes (G=0), so NA4 is selectable and pmpaddr reads back as written.
Address-matching ranges are recomputed on every write (16 entries: cheap), so checks
only compare integers.
"""

from __future__ import annotations

import enum

from llvmtcg.frontends.riscv.priv.state import Priv
from llvmtcg.runtime.exits import Access
from llvmtcg.runtime.softmmu import Perm

PAGE_SIZE = 4096
_PAGE_CACHE_LIMIT = 1 << 16  # pages whose permissions Pmp.page_perms keeps
PMPADDR_MASK = (1 << 54) - 1  # RV64: pmpaddr holds bits 55:2 of a 56-bit address

# pmpNcfg fields. R, W and X are the same bits as softmmu's Perm, so ``cfg & 7`` is a Perm.
CFG_R, CFG_W, CFG_X = 0x01, 0x02, 0x04
CFG_A_SHIFT, CFG_A = 3, 0x18
CFG_L = 0x80
CFG_WRITABLE = CFG_L | CFG_A | CFG_X | CFG_W | CFG_R  # bits 6:5 are WARL zero

ACCESS_PERM = {Access.READ: Perm.R, Access.WRITE: Perm.W, Access.FETCH: Perm.X}


class PmpMode(enum.IntEnum):
    """pmpNcfg.A: how pmpaddrN selects addresses."""

    OFF = 0
    TOR = 1  # top of range: pmpaddr[N-1] <= a < pmpaddr[N]
    NA4 = 2  # naturally aligned four bytes
    NAPOT = 3  # naturally aligned power of two, >= 8 bytes


def napot_range(pmpaddr: int) -> tuple[int, int]:
    """[start, end) of a NAPOT entry: the trailing ones of pmpaddr give the size
    (``y...y0`` = 8 bytes, ``y...y01`` = 16 bytes, ...; Table 3.11)."""
    ones = (~pmpaddr & (pmpaddr + 1)).bit_length() - 1  # count of trailing ones
    size = 1 << (ones + 3)
    start = (pmpaddr << 2) & ~(size - 1)
    return start, start + size


class Pmp:
    """A hart's PMP entries.

    Args:
        entries: how many entries are implemented (0, 16 or 64; QEMU has 16).
    """

    __slots__ = ("entries", "cfg", "addr", "_rules", "_pages")

    def __init__(self, entries: int = 16) -> None:
        if entries not in (0, 16, 64):
            raise ValueError(f"a PMP has 0, 16 or 64 entries, not {entries}")
        self.entries = entries
        self.cfg = [0] * entries
        self.addr = [0] * entries
        self._rules: list[tuple[int, int, int]] = []  # (start, end, cfg) of active entries
        # page_perms answers by (page, priv) until the rules change: a page walk asks
        # for each PTE it reads and for the page it finds.
        self._pages: dict[tuple[int, int], tuple[int, bool]] = {}

    def reset(self) -> None:
        """§3.4: "Writable PMP registers' A and L fields are set to 0" (the rest too here,
        as QEMU does)."""
        self.cfg = [0] * self.entries
        self.addr = [0] * self.entries
        self._rules = []
        self._pages = {}

    def save_state(self) -> dict[str, list[int]]:
        return {"cfg": list(self.cfg), "addr": list(self.addr)}

    def load_state(self, saved: dict[str, list[int]]) -> None:
        """Entries as saved (ValueError if they do not fit this PMP)."""
        cfg, addr = list(saved["cfg"]), list(saved["addr"])
        if len(cfg) != self.entries or len(addr) != self.entries:
            raise ValueError(f"saved PMP has {len(cfg)} entries, this one {self.entries}")
        self.cfg, self.addr = [int(v) for v in cfg], [int(v) for v in addr]
        self._update_rules()

    # -- CSR views ------------------------------------------------------------------------
    def read_cfg_csr(self, index: int) -> int:
        """pmpcfg<index> (RV64: even index; it packs entries 4*index .. 4*index+7)."""
        first = index * 4
        return sum(self.cfg[first + k] << (8 * k) for k in range(8) if first + k < self.entries)

    def write_cfg_csr(self, index: int, value: int) -> bool:
        """Write pmpcfg<index>; returns True if any entry changed."""
        first = index * 4
        changed = False
        for k in range(8):
            i = first + k
            if i >= self.entries:
                break
            changed |= self.write_cfg(i, (value >> (8 * k)) & 0xFF)
        return changed

    def write_cfg(self, i: int, cfg: int) -> bool:
        """Write pmp<i>cfg. Locked entries ignore writes (§3.7.1: "If PMP entry i is
        locked, writes to pmpicfg and pmpaddri are ignored"). R=0 W=1 is reserved in the
        collective WARL R/W/X field: such a write keeps the old value (QEMU does the
        same)."""
        if self.cfg[i] & CFG_L:
            return False
        cfg &= CFG_WRITABLE
        if cfg & CFG_W and not cfg & CFG_R:
            return False
        if cfg == self.cfg[i]:
            return False
        self.cfg[i] = cfg
        self._update_rules()
        return True

    def read_addr(self, i: int) -> int:
        return self.addr[i]

    def write_addr(self, i: int, value: int) -> bool:
        """Write pmpaddr<i>; returns True if it changed. Ignored when entry i is locked,
        or when entry i+1 is a locked TOR entry (its bottom is this register)."""
        if self.cfg[i] & CFG_L:
            return False
        if i + 1 < self.entries:
            above = self.cfg[i + 1]
            if above & CFG_L and self.mode(i + 1) == PmpMode.TOR:
                return False
        value &= PMPADDR_MASK
        if value == self.addr[i]:
            return False
        self.addr[i] = value
        self._update_rules()
        return True

    def mode(self, i: int) -> PmpMode:
        return PmpMode((self.cfg[i] & CFG_A) >> CFG_A_SHIFT)

    def range(self, i: int) -> tuple[int, int] | None:
        """The byte range [start, end) entry i matches, or None (OFF, or an empty TOR)."""
        mode = self.mode(i)
        if mode == PmpMode.OFF:
            return None
        if mode == PmpMode.TOR:
            start = self.addr[i - 1] << 2 if i > 0 else 0
            end = self.addr[i] << 2
            return (start, end) if start < end else None
        if mode == PmpMode.NA4:
            return self.addr[i] << 2, (self.addr[i] << 2) + 4
        return napot_range(self.addr[i])

    def _update_rules(self) -> None:
        rules = []
        for i in range(self.entries):
            span = self.range(i)
            if span is not None:
                rules.append((span[0], span[1], self.cfg[i]))
        self._rules = rules
        self._pages = {}

    # -- checks ---------------------------------------------------------------------------
    def _granted(self, cfg: int, priv: Priv) -> int:
        """Perm bits a matching entry grants: "If the L bit is clear and the privilege
        mode of the access is M, the access succeeds. Otherwise ... only if the R, W,
        or X bit corresponding to the access type is set." """
        if priv == Priv.M and not cfg & CFG_L:
            return Perm.RWX
        return cfg & Perm.RWX

    def _default(self, priv: Priv) -> int:
        """"If no PMP entry matches an M-mode access, the access succeeds. If no PMP
        entry matches an S-mode or U-mode access, but at least one PMP entry is
        implemented, the access fails." """
        return Perm.RWX if priv == Priv.M or self.entries == 0 else 0

    def check(self, paddr: int, size: int, access: Access, priv: Priv) -> bool:
        """Whether an access of ``size`` bytes at ``paddr`` is allowed.

        "The lowest-numbered PMP entry that matches any byte of an access determines
        whether that access succeeds or fails. The matching PMP entry must match all
        bytes of an access, or the access fails."
        """
        end = paddr + size
        for start, stop, cfg in self._rules:
            if paddr < stop and end > start:
                if paddr < start or end > stop:
                    return False
                return bool(self._granted(cfg, priv) & ACCESS_PERM[access])
        return bool(self._default(priv) & ACCESS_PERM[access])

    def page_perms(self, page: int, priv: Priv) -> tuple[int, bool]:
        """(Perm bits, uniform) for the 4 KiB page at ``page``: ``uniform`` is False when
        entries split the page, so the answer differs between its bytes and a TLB must
        not cache it (each access is then checked with :meth:`check`)."""
        key = (page, priv)
        found = self._pages.get(key)
        if found is None:
            if len(self._pages) >= _PAGE_CACHE_LIMIT:
                self._pages.clear()
            found = self._pages[key] = self._page_perms(page, priv)
        return found

    def _page_perms(self, page: int, priv: Priv) -> tuple[int, bool]:
        end = page + PAGE_SIZE
        for start, stop, cfg in self._rules:
            if page < stop and end > start:
                if page < start or end > stop:
                    return 0, False
                return self._granted(cfg, priv), True
        return self._default(priv), True

    def allows(self, paddr: int, size: int, access: Access, priv: Priv) -> bool:
        """:meth:`check`, answered from the page's cached permissions when no entry
        splits the page (the access stays inside it)."""
        if (paddr & (PAGE_SIZE - 1)) + size <= PAGE_SIZE:
            perms, uniform = self.page_perms(paddr & ~(PAGE_SIZE - 1), priv)
            if uniform:
                return bool(perms & ACCESS_PERM[access])
        return self.check(paddr, size, access, priv)
