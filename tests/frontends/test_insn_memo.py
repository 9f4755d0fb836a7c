"""The RISC-V frontend's per-word memo: replayed IR equals translated IR.

Every instruction start of a snippet is translated as a block start, several times,
so each word is met at many addresses and block positions (other local and label
numbers) and is replayed from the memo; the blocks must equal those of a frontend
without the memo, op for op.
"""

from __future__ import annotations

from llvmtcg.frontends.riscv.cpu import CpuModel
from llvmtcg.frontends.riscv.frontend import RiscvFrontend
from llvmtcg.frontends.riscv.priv.state import FsState, Priv, TbFlags
from llvmtcg.ir.recording import Recording
from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault
from tests.riscv.harness import CODE, assemble, needs_cross

# Each line twice or more: the memo records a word when it meets it again.
SNIPPET = """
1:  add a0, a1, a2
    ld a3, 16(sp)
    add a0, a1, a2
    ld a3, 16(sp)
    ld a4, 0(a5)
    sd a3, -8(sp)
    auipc a0, 0
    auipc a0, 0
    la a1, 1b
    fadd.d fa0, fa1, fa2
    fadd.d fa0, fa1, fa2, rtz
    fadd.d fa0, fa1, fa2, rtz
    csrw frm, a0
    fadd.d fa0, fa1, fa2
    fcvt.l.d a0, fa0
    fcvt.l.d a0, fa0
    div a0, a1, a2
    div a0, a1, a2
    remu a3, a4, a5
    remu a3, a4, a5
    lr.d a0, (a1)
    sc.d a2, a3, (a1)
    amoadd.w a0, a1, (a2)
    amoadd.w a0, a1, (a2)
    c.addi a0, 3
    c.addi a0, 3
    c.ldsp ra, 8(sp)
    c.ldsp ra, 8(sp)
    sh1add a0, a1, a2
    sh1add a0, a1, a2
    beq a0, a1, 1b
    c.addi a0, 3
    c.ldsp ra, 8(sp)
    jal ra, 1b
    add a0, a1, a2
    csrr a0, fflags
    csrr a0, fflags
    ebreak
    add a0, a1, a2
    .word 0
    add a0, a1, a2
"""


def _fetcher(code: bytes):
    def fetch(addr: int, size: int) -> bytes:
        if not (CODE <= addr and addr + size <= CODE + len(code)):
            raise GuestFault(MemFault(addr, Access.FETCH, FaultKind.UNMAPPED))
        return code[addr - CODE:addr - CODE + size]
    return fetch


def _starts(code: bytes) -> list[int]:
    starts, offset = [], 0
    while offset < len(code):
        starts.append(CODE + offset)
        offset += 4 if code[offset] & 3 == 3 else 2
    return starts


def _text(frontend: RiscvFrontend, pc: int, fetch, flags: int) -> str:
    block = frontend.translate(pc, fetch, flags=flags)
    return f"{block}{block.locals}{block.n_labels}/{block.guest_size}/{block.n_insns}"


def _compare(system: bool, flags: int) -> RiscvFrontend:
    code = assemble(SNIPPET)
    fetch = _fetcher(code)
    with_memo = RiscvFrontend(CpuModel(), system=system)
    without = RiscvFrontend(CpuModel(), system=system, memo=False)
    for _ in range(3):
        for pc in _starts(code):
            assert _text(with_memo, pc, fetch, flags) == _text(without, pc, fetch, flags)
    return with_memo


@needs_cross
def test_replayed_blocks_equal_translated_ones_user_mode():
    frontend = _compare(False, 0)
    memo = frontend._memos[0]
    recorded = {word for word, entry in memo.items() if type(entry) is Recording}
    code = assemble(SNIPPET)
    words = []
    for pc in _starts(code):
        offset = pc - CODE
        size = 4 if code[offset] & 3 == 3 else 2
        words.append(int.from_bytes(code[offset:offset + size], "little"))
    add, ld, auipc = words[0], words[1], words[6]  # (ld a3, 16(sp): c.ldsp)
    assert {add, ld} <= recorded  # (served by the memo: the test is not vacuous)
    assert memo[auipc] is None  # its IR holds its address


@needs_cross
def test_replayed_blocks_equal_translated_ones_system_mode():
    for priv in (Priv.M, Priv.S, Priv.U):
        for fs in (FsState.OFF, FsState.CLEAN, FsState.DIRTY):
            flags = (int(priv) | int(priv) << TbFlags.MMU_IDX_SHIFT
                     | int(fs) << TbFlags.FS_SHIFT | (TbFlags.PAGING if priv != Priv.M else 0))
            _compare(True, flags)


def _system_flags() -> list[int]:
    return [int(priv) | int(priv) << TbFlags.MMU_IDX_SHIFT | int(fs) << TbFlags.FS_SHIFT
            | (TbFlags.PAGING if priv != Priv.M else 0)
            for priv in (Priv.M, Priv.S, Priv.U)
            for fs in (FsState.OFF, FsState.CLEAN, FsState.DIRTY)]


@needs_cross
def test_one_frontend_across_flags_values_translates_each_as_without_memo():
    """Recordings are shared between flags values only for words whose translation
    reads no flags: one frontend meeting the snippet under every privilege and FS
    state, interleaved, gives what a memo-less frontend gives under each."""
    code = assemble(SNIPPET)
    fetch = _fetcher(code)
    with_memo = RiscvFrontend(CpuModel(), system=True)
    without = RiscvFrontend(CpuModel(), system=True, memo=False)
    for _ in range(3):
        for flags in _system_flags():
            for pc in _starts(code):
                assert _text(with_memo, pc, fetch, flags) == _text(without, pc, fetch, flags)


@needs_cross
def test_a_word_that_reads_no_flags_is_recorded_once_for_every_flags_value():
    code = assemble("add a0, a1, a2\nld a3, 16(a4)\nfadd.d fa0, fa1, fa2\ncsrr a0, sstatus\n")
    fetch = _fetcher(code)
    starts = _starts(code)[:4]  # (assemble appends an ebreak)
    add, ld, fadd, csrr = (int.from_bytes(code[pc - CODE:end - CODE], "little")
                           for pc, end in zip(starts, _starts(code)[1:5], strict=True))
    frontend = RiscvFrontend(CpuModel(), system=True)
    s_mode = _system_flags()[5]  # S, FS Clean
    u_mode = _system_flags()[8]  # U, FS Dirty: another MMU index, no sstatus access
    for pc in starts:  # (met twice under S: recorded)
        frontend.translate(pc, fetch, flags=s_mode)
        frontend.translate(pc, fetch, flags=s_mode)
    shared = frontend._shared
    assert type(shared[add]) is Recording  # (the test is not vacuous)
    # Loads and stores carry the MMU index, FP instructions depend on FS, CSR
    # accesses on the privilege: their IR is per flags value.
    assert shared[ld] is None and shared[fadd] is None and shared[csrr] is None
    block = frontend.translate(CODE, fetch, flags=u_mode)
    assert frontend._memos[u_mode][add] is shared[add]  # (U's first sight: replayed)
    without = RiscvFrontend(CpuModel(), system=True, memo=False)
    assert str(block) == str(without.translate(CODE, fetch, flags=u_mode))
    # The load under U mode has U's MMU index, not S's.
    ld_u = str(frontend.translate(starts[1], fetch, flags=u_mode))
    ld_s = str(frontend.translate(starts[1], fetch, flags=s_mode))
    assert ld_u != ld_s
    assert ld_u == str(without.translate(starts[1], fetch, flags=u_mode))
