"""System-mode RISC-V on a minimal machine: bare-metal programs (tests/guest/system/)
built at test time and run in M, S and U modes with traps, delegation, Sv39 paging,
SUM/MXR, a CLINT timer waking WFI, and code modified through a second mapping."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from devices.aclint import CLINT_SIZE, Aclint
from devices.base import VirtualClock
from devices.htif import Htif, HtifLayout
from llvmtcg.frontends.riscv.system import Riscv64SystemArch
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.physmem import PhysicalAddressSpace
from llvmtcg.system import SYSTEM_OPTIONS, CpuEvent, SystemCpu

GUEST = Path(__file__).resolve().parents[1] / "guest" / "system"
RAM, RAM_SIZE = 0x8000_0000, 0x10_0000
CLINT = 0x0200_0000
HTIF = 0x4000_0000
RESULTS = 0x8001_0000
MTIP, MSIP = 7, 3

pytestmark = pytest.mark.skipif(shutil.which("riscv64-linux-gnu-gcc") is None,
                                reason="needs the riscv64 cross compiler")


def symbols(name: str, tmp_path: Path) -> dict[str, int]:
    """The addresses of the labels of a program :func:`build` built."""
    out = subprocess.run(["riscv64-linux-gnu-nm", str(tmp_path / f"{name}.elf")],
                         check=True, capture_output=True, text=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in map(str.split, out.splitlines())
            if len(parts) == 3}


def build(name: str, tmp_path: Path) -> bytes:
    """The flat image of tests/guest/system/NAME.S linked at RAM."""
    elf, image = tmp_path / f"{name}.elf", tmp_path / f"{name}.bin"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-march=rv64gc", "-mabi=lp64d",
                    "-static", "-Wl,--build-id=none", f"-Wl,-Ttext={RAM:#x}", "-o", str(elf),
                    str(GUEST / f"{name}.S")], check=True)
    subprocess.run(["riscv64-linux-gnu-objcopy", "-O", "binary", str(elf), str(image)],
                   check=True)
    return image.read_bytes()


class MiniMachine:
    """RAM at 0x80000000, a CLINT (real time) and an HTIF whose tohost ends the run."""

    def __init__(self, image: bytes, options: RuntimeOptions = SYSTEM_OPTIONS) -> None:
        self.space = PhysicalAddressSpace(1 << 32)
        self.memory = self.space.memory
        self.space.add_ram("ram", RAM, RAM_SIZE)
        self.space.load(RAM, image)
        self.clock = VirtualClock()
        self.console = bytearray()
        self.exit_code: int | None = None
        self.cpu: SystemCpu | None = None
        self.lines: dict[int, bool] = {}
        self.clint = Aclint(self.clock, [self._line(MTIP)], [self._line(MSIP)])
        self.space.add_mmio("clint", CLINT, CLINT_SIZE, self.clint)
        self.htif = Htif(self.console.extend, self._exit, layout=HtifLayout.at(HTIF, HTIF + 8))
        self.space.add_mmio("htif", HTIF, 16, self.htif)  # the rest of its page: a hole
        self.cpu = SystemCpu(Riscv64SystemArch(time=self.clint.mtime), self.memory, options)
        self.space.on_code_write.append(self.cpu.cpu.invalidate_range)
        self.cpu.reset(RAM)
        for line, level in self.lines.items():
            self.cpu.set_irq(line, level)

    def _line(self, line: int):
        def drive(level: bool) -> None:
            self.lines[line] = level
            if self.cpu is not None:
                self.cpu.set_irq(line, level)
        return drive

    def _exit(self, code: int) -> None:
        self.exit_code = code
        self.cpu.stop()

    def run(self, timeout: float = 60.0) -> tuple[int, list[CpuEvent]]:
        events = []
        limit = time.monotonic() + timeout
        while self.exit_code is None:
            assert time.monotonic() < limit, "the guest did not finish"
            event = self.cpu.run()
            events.append(event)
            fired = self.clock.run_due()
            if event is CpuEvent.IDLE and not fired:
                deadline = self.clock.next_deadline()
                assert deadline is not None, "WFI with no timer armed"
                time.sleep(max(0, deadline - self.clock.now_ns()) / 1e9)
                self.clock.run_due()
        return self.exit_code, events

    def results(self, count: int) -> list[int]:
        data = self.memory.read(RESULTS, 8 * count)
        return [int.from_bytes(data[i:i + 8], "little") for i in range(0, 8 * count, 8)]


def test_m_mode_traps_illegal_ecall_and_fp_off(tmp_path: Path) -> None:
    machine = MiniMachine(build("m_traps", tmp_path))
    code, _ = machine.run()
    assert code == 0
    at = symbols("m_traps", tmp_path)
    illegal, ecall, fp_off = (machine.results(9)[i:i + 3] for i in (0, 3, 6))
    assert illegal == [2, at["illegal_at"], 0x7C001073]  # cause, epc, tval = the insn
    assert ecall == [11, at["ecall_at"], 0]  # environment call from M-mode
    assert fp_off[:2] == [2, at["fp_off_at"]]  # fmv.d.x with FS = Off
    assert fp_off[2] == int.from_bytes(machine.memory.read(at["fp_off_at"], 4), "little")
    value, mstatus = machine.results(0x22)[0x20:0x22]
    assert value == 0x4004  # FP works once FS is on ...
    assert (mstatus >> 13) & 3 == 3  # ... and marked it Dirty


def test_s_mode_paging_faults_sum_mxr_and_code_through_an_alias(tmp_path: Path) -> None:
    machine = MiniMachine(build("s_paging", tmp_path))
    code, _ = machine.run()
    r = machine.results(15)
    assert code == 0, [hex(v) for v in r]
    assert r[0] == 0x1234  # read through the remapped page
    assert r[1:4] == [13, 0x11000, 0x5678]  # load page fault to S; mapped; retried
    assert r[4:6] == [13, 0x9ABC]  # a U page: faults in S without SUM, reads with it
    assert r[6:8] == [13, 0xDEF0]  # execute-only: faults without MXR, reads with it
    assert r[8:10] == [1, 2]  # the rewritten code ran: invalidated by physical page
    assert r[10] >> 60 == 8  # satp: Sv39
    assert r[11] == 9  # ecall from S, not delegated: M-mode


def test_timer_interrupt_wakes_wfi(tmp_path: Path) -> None:
    machine = MiniMachine(build("timer_wfi", tmp_path))
    code, events = machine.run()
    assert code == 0
    taken, wfis, mcause, mip = machine.results(4)
    assert taken == 1
    assert mcause == (1 << 63) | 7  # machine timer interrupt
    assert mip & (1 << 7)
    assert CpuEvent.IDLE in events  # the CPU returned to the machine to sleep
    assert wfis >= 1


@pytest.mark.parametrize("baseline", [True, False], ids=["baseline", "llvm"])
def test_sstatus_sie_and_sscratch_inline_and_interrupts_sie_unmasks(
        tmp_path: Path, baseline: bool) -> None:
    options = dataclasses.replace(SYSTEM_OPTIONS, baseline=baseline)
    machine = MiniMachine(build("s_sie", tmp_path), options)
    code, _ = machine.run()
    assert code == 0
    at = symbols("s_sie", tmp_path)
    sie, sum_, fs, sd = 1 << 1, 1 << 18, 3 << 13, 1 << 63
    uxl = 2 << 32
    r = machine.results(6 + 8)
    assert r[0] == uxl | sie  # csrrci returns the old value
    assert r[1] == uxl | sd | fs | sum_  # a write changing the flags (FS Dirty: SD)
    assert r[2] == uxl | sd | fs | sum_  # inline read of the same (SIE was clear)
    assert r[3] == uxl | sd | fs | sum_ | sie
    assert r[4] == uxl | sd | fs  # SUM and SIE cleared
    assert r[5] == 0  # no instruction ran between an unmasking write and its interrupt
    ssi, sti = (1 << 63) | 1, (1 << 63) | 5
    assert r[6:] == [ssi, at["after_reg"], ssi, at["after_imm"], ssi, at["after_rs"],
                     sti, at["after_timer"]]
    assert machine.results(20)[16:] == [0x1234, 0x55, 0xF55, 0xF54]  # sscratch
    # Every sstatus access is in S-mode: none went through the CSR helper.
    assert "csr sstatus" not in machine.cpu.arch.counters(machine.cpu.state)


def test_u_mode_traps_delegated_to_s(tmp_path: Path) -> None:
    machine = MiniMachine(build("u_mode", tmp_path))
    code, _ = machine.run()
    assert code == 0
    at = symbols("u_mode", tmp_path)
    r = machine.results(7)
    csrr_sstatus = int.from_bytes(machine.memory.read(at["u_illegal_at"], 4), "little")
    assert r[0:3] == [2, csrr_sstatus, at["u_illegal_at"]]  # illegal CSR access from U
    assert r[3:5] == [8, at["u_ecall_at"]]  # ecall from U, delegated to S
    assert (r[5] >> 8) & 1 == 0  # sstatus.SPP: the trap came from U
    assert r[6] == 9  # ecall from S goes to M


def test_a_hole_in_a_device_page_is_an_access_fault(tmp_path: Path) -> None:
    machine = MiniMachine(build("bus_hole", tmp_path))
    code, _ = machine.run()
    assert code == 0
    at = symbols("bus_hole", tmp_path)
    assert machine.results(6) == [5, at["load_at"], HTIF + 0x100,  # load access faults
                                  5, at["load2_at"], HTIF + 0x208]


def test_asids_sfence_by_asid_and_address_and_superpages(tmp_path: Path) -> None:
    machine = MiniMachine(build("s_tlb", tmp_path))
    code, _ = machine.run()
    r = machine.results(9)
    assert code == 0, [hex(v) for v in r]
    assert r[0:3] == [0x1111, 0x2222, 0x1111]  # satp switches between ASIDs 1 and 2
    assert r[3] == 0x3333  # PTE changed, sfence.vma zero, asid
    assert r[4] == 0x1111  # PTE changed back, sfence.vma addr, asid
    assert r[5] == 0x1111  # r0 read back through the megapage
    # The megapage was unmapped and sfence.vma named its first page only: another
    # page of it must not be served from a stale 4 KiB TLB entry.
    assert r[6:9] == [0, 13, 0x210000]


def test_stores_to_rom_are_discarded(tmp_path: Path) -> None:
    machine = MiniMachine(build("rom_store", tmp_path))
    li_a0_42_ret = (0x02A00513).to_bytes(4, "little") + (0x00008067).to_bytes(4, "little")
    word = 0x0123456789ABCDEF
    machine.space.add_rom("rom", 0x1000, li_a0_42_ret + word.to_bytes(8, "little"))
    code, _ = machine.run()
    r = machine.results(4)
    assert code == 0, [hex(v) for v in r]
    assert r == [word, word, 42, 0]


def test_indirect_jumps_use_the_native_lookup_and_follow_remapping(tmp_path: Path) -> None:
    """Calls whose targets share a jump cache entry are served by the native lookup
    table (no LOOKUP exit to Python); after a remap and sfence.vma (by address, then
    all) the same virtual pc runs the newly mapped code."""
    machine = MiniMachine(build("s_lookup", tmp_path))
    code, _ = machine.run()
    assert code == 0, [hex(v) for v in machine.results(4)]
    assert machine.results(3) == [1100, 11000, 1100]
    counters = machine.cpu.cpu.counters()
    # 3 loops x 200 calls, each missing the jump cache; a loop's first call of each
    # function after the flush goes to Python (a new generation), the rest stay native.
    assert counters["lookup"]["hits"] >= 3 * 190, counters
    assert counters["exits"].get("LOOKUP", 0) < 60, counters


def test_native_lookup_follows_satp_switches(tmp_path: Path) -> None:
    """After a satp switch (a TLB flush) the native lookup takes an earlier generation's
    entry only when the TLB maps its page to the physical page the code was translated
    from: alternating two address spaces that map one virtual page to different code,
    every round runs its own mapping's code, and the other page's functions are served
    natively (one LOOKUP exit per code page and round fills the TLB)."""
    machine = MiniMachine(build("s_lookup_satp", tmp_path))
    code, _ = machine.run()
    assert code == 0, [hex(v) for v in machine.results(5)]
    assert machine.results(4) == [3300, 33000, 3300, 33000]
    counters = machine.cpu.cpu.counters()
    assert counters["lookup"]["hits"] >= 4 * 4 * 95, counters
    assert counters["exits"].get("LOOKUP", 0) < 46, counters


def test_lookup_checks_the_second_page(tmp_path: Path) -> None:
    """A block whose last instruction runs onto the next page is reused only while
    that page maps to the physical page it was translated from (QEMU's tb_lookup_cmp
    checks a TB's second page): the same head pc, flags and physical pc under two
    mappings of the second page give two translations, a direct link into such a
    block does not outlive a remap, and a remap of the second page alone (sfence.vma
    of its address) is seen."""
    machine = MiniMachine(build("s_lookup_page2", tmp_path))
    code, _ = machine.run()
    assert code == 0, [hex(v) for v in machine.results(6)]
    assert machine.results(5) == [1000, 10000, 1000, 10000, 10000]


@pytest.mark.parametrize("baseline", [True, False], ids=["baseline", "llvm"])
def test_time_csr_native_and_illegal(tmp_path: Path, baseline: bool) -> None:
    """rdtime reads the CLINT's mtime natively where it is legal (M; S with
    mcounteren.TM; U with scounteren.TM too): in order with an mtime read over MMIO,
    following an mtime write; where it is not, the helper raises an illegal
    instruction (tval: the instruction) and rd is unchanged."""
    options = dataclasses.replace(SYSTEM_OPTIONS, baseline=baseline)
    machine = MiniMachine(build("s_time", tmp_path), options)
    code, _ = machine.run()
    r = machine.results(10)
    assert code == 0, [hex(v) for v in r]
    assert r[0] <= r[1] <= r[2]
    assert 1 << 40 <= r[3] < (1 << 40) + 10_000_000 * 30  # (10 MHz: within 30 s)
    assert r[4] == 0x55 and r[6] == 0x66
    assert r[3] <= r[5] <= r[7] <= r[8] < (1 << 40) + 10_000_000 * 30
    rdtime_a0 = 0xC0102573
    log = [int.from_bytes(machine.memory.read(0x8001_0080 + 8 * i, 8), "little")
           for i in range(5)]
    assert log == [2, rdtime_a0, 2, rdtime_a0, 0]
    # Only the two illegal reads went through the Python helper.
    counters = machine.cpu.arch.counters(machine.cpu.state)
    assert counters["csr time"] == 2, counters


@pytest.mark.parametrize("baseline", [True, False], ids=["baseline", "llvm"])
def test_s_mode_csrs_inline(tmp_path: Path, baseline: bool) -> None:
    """sepc, scause, stval, stvec, sscratch, sie (reads, clears) and sstatus reads,
    translated inline at S privilege, follow the model's rules and share its values
    both ways (trap entry writes, sret reads); none of them calls the CSR helper.
    sret in S-mode is inline too (to U and to S, with nothing pending), except with
    mstatus.TSR set, where the helper raises."""
    from llvmtcg.frontends.riscv.system import hart_of

    options = dataclasses.replace(SYSTEM_OPTIONS, baseline=baseline)
    machine = MiniMachine(build("s_csr_inline", tmp_path), options)
    code, _ = machine.run()
    r = machine.results(16)
    assert code == 0, [hex(v) for v in r]
    at = symbols("s_csr_inline", tmp_path)
    assert r[:5] == [0x12345678, 0x123456F8, 0x8000000000000004, 15, at["s_trap"]]
    assert r[5:7] == [0x222, 0x220]
    assert r[7] == 2 << 32  # UXL = 64 bits; SIE, SPIE, SPP, FS, SUM 0
    assert r[8:12] == [8, at["u_code"] + 4, 0, 0x8001_0000]
    assert r[12:15] == [0, 0x10200073, at["tsr_test"]]  # sret with TSR: illegal
    assert r[15] == 2 << 32 | 0x20  # SPIE
    csr = hart_of(machine.cpu.state).csr
    assert csr.stval == 0x777 and csr.mie == 0xA20
    counters = machine.cpu.arch.counters(machine.cpu.state)
    inline = ("sepc", "scause", "stval", "stvec", "sscratch", "sstatus")
    assert not [name for name in inline if f"csr {name}" in counters], counters
    assert counters["priv sret"] == 1, counters  # (only the illegal one)


def test_data_beside_code(tmp_path: Path) -> None:
    """Stores to data on a page that holds translated code go through the slow path
    without walking or invalidating anything (the TLB entry stays, as after QEMU's
    notdirty write); rewriting the code itself is still seen."""
    machine = MiniMachine(build("code_page_data", tmp_path))
    code, _ = machine.run()
    assert code == 0
    assert machine.results(3) == [1000, 200, 7]
    stats = machine.cpu.cpu.softmmu.stats
    assert stats["code_writes"] >= 200, stats
    assert stats["fills"] < 40, stats  # (not two walks per store)


def test_code_page_overwritten_in_order(tmp_path: Path) -> None:
    """A page of blocks overwritten in address order stops taking the slow path after
    a few blocks (the rest of the page is invalidated at once, then unprotected), while
    data written in order beside live code invalidates nothing; the rewritten code and
    the code after it (invalidated, unchanged) both run right. The run goes on into
    the next page, whose blocks at its end go at its first store. A loop rewriting
    code before it on its own page sweeps the page once, not at every store."""
    machine = MiniMachine(build("code_page_overwrite", tmp_path))
    code, _ = machine.run()
    assert code == 0
    assert machine.results(8) == [2016, 2016, 6816, 120, 448, 112, 497, 289]
    stats = machine.cpu.cpu.softmmu.stats
    tb_stats = machine.cpu.cpu.tbs.stats
    # Two sweeps of the first page, one of the second (a run going on), one of the
    # loop's page (sweeping again at each store would retranslate the loop each time).
    assert stats["code_overwrites"] == 4, stats
    # 20 * 64 stores beside the code, then only the first few of the 48 rewrites and
    # of the 1024 over both pages (the second page's 496 before its blocks: none),
    # and the loop's 32 (its page keeps code).
    assert 20 * 64 + 32 <= stats["code_writes"] < 20 * 64 + 32 + 24, stats
    # The 64 blocks twice, the 16, the 32 and the loop's few once; nothing for the data.
    assert tb_stats["invalidated"] <= 2 * 64 + 16 + 32 + 8, tb_stats
