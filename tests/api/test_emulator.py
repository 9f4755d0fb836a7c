"""The Emulator's own behaviour: what Unicorn's riscv64 does differently or not at all
(invalid instructions, ebreak), threads and timeouts, errors, hooks between runs."""

from __future__ import annotations

import threading
import time

import pytest

import llvmtcg
from llvmtcg import Emulator, EmulatorError, ErrorKind, Hook, MemAccess, Perm
from tests.api.support import CODE, assemble, needs_cross

pytestmark = needs_cross
SPIN = "1: j 1b"


@pytest.fixture
def emu():
    emulator = Emulator("riscv64")
    emulator.mem_map(CODE, 0x2000)
    yield emulator
    emulator.close()


def load(emu: Emulator, source: str) -> int:
    code = assemble(source)
    emu.mem_write(CODE, code)
    return CODE + len(code)


def test_registers_by_name_enum_and_number(emu: Emulator) -> None:
    Reg = llvmtcg.riscv64.Reg
    emu.reg_write("a0", 5)
    assert emu.reg_read(Reg.A0) == emu.reg_read("x10") == emu.reg_read(10) == 5
    emu.reg_write(Reg.FA0, 0x3FF0_0000_0000_0000)  # 1.0
    emu.reg_write_batch({"a1": -1, "sp": 0x8000, "zero": 7})
    assert emu.reg_read_batch(["a1", "sp", "zero", "f10"]) == (
        2**64 - 1, 0x8000, 0, 0x3FF0_0000_0000_0000)
    emu.reg_write("fcsr", 0xFF)
    assert (emu.reg_read("frm"), emu.reg_read("fflags")) == (7, 0x1F)


def test_unknown_register_is_an_arg_error(emu: Emulator) -> None:
    with pytest.raises(EmulatorError) as info:
        emu.reg_read("eax")
    assert info.value.kind is ErrorKind.ARG
    with pytest.raises(EmulatorError):
        emu.reg_write_batch({"a0": 1, "nope": 2})
    assert emu.reg_read("a0") == 0  # nothing was written


def test_unknown_architecture_and_cpu_model() -> None:
    for args in (("m68k",), ("riscv64", "pentium")):
        with pytest.raises(EmulatorError) as info:
            Emulator(*args)
        assert info.value.kind is ErrorKind.ARCH


def test_floating_point_runs_and_reads_back(emu: Emulator) -> None:
    end = load(emu, "fcvt.d.l fa0, a0\nfadd.d fa1, fa0, fa0\nfcvt.l.d a1, fa1")
    emu.reg_write("a0", 21)
    emu.emu_start(CODE, end)
    assert emu.reg_read("fa1") == 0x4045_0000_0000_0000  # 42.0
    assert emu.reg_read("a1") == 42


def test_rounding_mode_set_by_the_guest_or_between_runs_takes_effect(emu: Emulator) -> None:
    # 1/3 rounds to ...555 to nearest and towards zero, to ...556 upwards. The run
    # loop reloads the host rounding mode only when frm changed (by the guest or not).
    guest_sets_rup = load(emu, "csrwi frm, 3\nfdiv.d fa0, fa1, fa2")
    emu.reg_write_batch({"fa1": 0x3FF0_0000_0000_0000, "fa2": 0x4008_0000_0000_0000})
    nearest = emu.context_save()
    emu.emu_start(CODE, guest_sets_rup)
    assert (emu.reg_read("fa0"), emu.reg_read("frm")) == (0x3FD5_5555_5555_5556, 3)
    divide = load(emu, "fdiv.d fa0, fa1, fa2")
    for frm, expected in ((0, 0x3FD5_5555_5555_5555), (3, 0x3FD5_5555_5555_5556),
                          (1, 0x3FD5_5555_5555_5555), (3, 0x3FD5_5555_5555_5556)):
        emu.reg_write("frm", frm)
        emu.emu_start(CODE, divide)
        assert emu.reg_read("fa0") == expected, frm
    emu.context_restore(nearest)  # (frm 0 again, as the last run's was before it)
    emu.emu_start(CODE, divide)
    assert emu.reg_read("fa0") == 0x3FD5_5555_5555_5555
    assert emu.reg_read("fflags") == 0x01  # inexact, accrued every time


def test_invalid_instruction_without_and_with_hook(emu: Emulator) -> None:
    end = load(emu, "li a0, 1\n.word 0xffffffff\nli a1, 2")
    with pytest.raises(EmulatorError) as info:
        emu.emu_start(CODE, end)
    assert (info.value.kind, info.value.pc) == (ErrorKind.INSN_INVALID, CODE + 4)
    assert emu.reg_read("a0") == 1 and emu.reg_read("pc") == CODE + 4

    def skip(e: Emulator, user_data: object) -> bool:
        e.reg_write("pc", e.reg_read("pc") + 4)
        return True

    emu.hook_add(Hook.INSN_INVALID, skip)
    emu.emu_start(CODE, end)
    assert emu.reg_read("a1") == 2


def test_faults_say_what_where(emu: Emulator) -> None:
    end = load(emu, "lui a0, 0x40\nsd a0, 0(a0)")
    with pytest.raises(EmulatorError) as info:
        emu.emu_start(CODE, end)
    error = info.value
    assert (error.kind, error.address, error.pc, error.errno) == (
        ErrorKind.WRITE_UNMAPPED, 0x40000, CODE + 4, 7)
    assert "0x40000" in str(error)


def test_ebreak_goes_to_the_intr_hook(emu: Emulator) -> None:
    end = load(emu, "li a0, 1\nebreak\nli a1, 2")
    with pytest.raises(EmulatorError) as info:
        emu.emu_start(CODE, end)
    assert info.value.kind is ErrorKind.EXCEPTION
    seen = []
    emu.hook_add(Hook.INTR, lambda e, intno, u: seen.append((intno, e.reg_read("pc"))))
    emu.emu_start(CODE, end)
    assert seen == [(3, CODE + 8)] and emu.reg_read("a1") == 2


def test_a_compressed_ebreak_resumes_two_bytes_on(emu: Emulator) -> None:
    # The architecture says how long the instruction is: c.ebreak (0x9002) is 2 bytes.
    emu.mem_write(CODE, bytes.fromhex("0545") + bytes.fromhex("0290") + bytes.fromhex("8945"))
    seen = []
    emu.hook_add(Hook.INTR, lambda e, intno, u: seen.append((intno, e.reg_read("pc"))))
    emu.emu_start(CODE, CODE + 6)
    assert seen == [(3, CODE + 4)] and emu.reg_read("a1") == 2


def test_timeout_stops_an_endless_loop(emu: Emulator) -> None:
    end = load(emu, SPIN)
    start = time.monotonic()
    emu.emu_start(CODE, end, timeout=50_000)  # 50 ms
    assert 0.04 < time.monotonic() - start < 5
    assert emu.reg_read("pc") == CODE


def test_emu_stop_from_another_thread(emu: Emulator) -> None:
    end = load(emu, SPIN)
    timer = threading.Timer(0.05, emu.emu_stop)
    timer.start()
    emu.emu_start(CODE, end)
    timer.join()
    assert emu.reg_read("pc") == CODE


def test_count_with_until_stops_at_whichever_comes_first(emu: Emulator) -> None:
    end = load(emu, "li a0, 1\nli a0, 2\nli a0, 3\nli a0, 4")
    emu.emu_start(CODE, CODE + 8, count=3)
    assert (emu.reg_read("a0"), emu.reg_read("pc")) == (2, CODE + 8)
    emu.emu_start(CODE, end, count=3)
    assert (emu.reg_read("a0"), emu.reg_read("pc")) == (3, CODE + 12)
    emu.emu_start(CODE, CODE)  # begin == until runs nothing
    assert emu.reg_read("pc") == CODE


def test_an_exception_in_a_callback_is_raised_from_emu_start(emu: Emulator) -> None:
    end = load(emu, "li a0, 1\nli a0, 2")

    def fail(e: Emulator, address: int, size: int, user_data: object) -> None:
        if address == CODE + 4:
            raise ValueError("from the hook")

    emu.hook_add(Hook.CODE, fail)
    with pytest.raises(ValueError, match="from the hook"):
        emu.emu_start(CODE, end)
    assert emu.reg_read("a0") == 1


def test_hooks_added_and_removed_between_runs_reach_translated_code(emu: Emulator) -> None:
    end = load(emu, "li a0, 1\nli a1, 2\nsd a1, 0x100(zero)")
    emu.mem_map(0, 0x1000)
    emu.emu_start(CODE, end)  # translated without hooks
    seen = []
    code = emu.hook_add(Hook.CODE, lambda e, a, s, u: seen.append(a))
    writes = emu.hook_add(Hook.MEM_WRITE, lambda e, *args: seen.append(args[:4]))
    emu.emu_start(CODE, end)
    assert seen == [CODE, CODE + 4, CODE + 8, (MemAccess.WRITE, 0x100, 8, 2)]
    emu.hook_del(code)
    emu.hook_del(writes)
    emu.emu_start(CODE, end)
    assert len(seen) == 4
    with pytest.raises(EmulatorError) as info:
        emu.hook_del(code)
    assert info.value.kind is ErrorKind.HOOK


def test_emu_stop_in_a_memory_hook_stops_before_the_access(emu: Emulator) -> None:
    end = load(emu, "li a0, 1\nsd a0, 0x100(zero)\nli a0, 2")
    emu.mem_map(0, 0x1000)
    emu.hook_add(Hook.MEM_WRITE, lambda e, *args: e.emu_stop())
    emu.emu_start(CODE, end)
    assert emu.reg_read("pc") == CODE + 4 and emu.mem_read(0x100, 8) == bytes(8)


def test_bad_hook_type(emu: Emulator) -> None:
    with pytest.raises(EmulatorError) as info:
        emu.hook_add(1 << 20, print)
    assert info.value.kind is ErrorKind.HOOK


def test_mem_map_arguments(emu: Emulator) -> None:
    with pytest.raises(EmulatorError) as info:
        emu.mem_map(0x100000, 0x1000, 8)
    assert info.value.kind is ErrorKind.ARG
    with pytest.raises(EmulatorError) as info:
        emu.mem_map(1 << 40, 0x1000)
    assert info.value.kind is ErrorKind.ARG
    emu.mem_map(0x100000, 0x2000, Perm.READ)
    assert (0x100000, 0x101FFF, Perm.READ) in emu.mem_regions()


def test_two_emulators_are_independent() -> None:
    code = assemble("addi a0, a0, 1")
    first, second = Emulator("riscv64"), Emulator("riscv64")
    for emu, start in ((first, 10), (second, 20)):
        emu.mem_map(CODE, 0x1000)
        emu.mem_write(CODE, code)
        emu.reg_write("a0", start)
    first.emu_start(CODE, CODE + 4)
    second.emu_start(CODE, CODE + 4)
    assert (first.reg_read("a0"), second.reg_read("a0")) == (11, 21)
    first.close()
    second.close()


def test_translation_shows_every_stage(emu: Emulator) -> None:
    end = load(emu, "addi a0, a0, 1\nmul a1, a0, a0\nbeq a1, zero, 1f\n1: nop")
    emu.hook_add(Hook.CODE, lambda *args: None)
    emu.emu_start(CODE, end)  # translations follow the last run's hooks and until
    stages = emu.translation(CODE)
    assert stages.pc == CODE and stages.guest_size == 12
    assert "addi" in stages.guest_asm and "mul" in stages.guest_asm
    assert "---- 0x0000000000010004" in stages.ir and "call api_code" in stages.ir
    assert "define" in stages.llvm_ir and "helper_api_code" in stages.llvm_ir
    assert "imul" in stages.host_asm
    with pytest.raises(EmulatorError) as info:
        emu.translation(0x900000)
    assert info.value.kind is ErrorKind.FETCH_UNMAPPED


def test_read_after_hooks_see_the_value_loaded(emu: Emulator) -> None:
    # (Unicorn 2.1's Python binding rejects UC_HOOK_MEM_READ_AFTER: no differential.)
    end = load(emu, "lui a0, 0x11\nlb a1, 0(a0)\nld a0, 8(a0)\nflw fa0, 0(a0)")
    emu.mem_write(0x11000, (0x80).to_bytes(8, "little") + (0x11000).to_bytes(8, "little"))
    seen = []
    emu.hook_add(Hook.MEM_READ_AFTER, lambda e, *args: seen.append(args[:4]))
    emu.emu_start(CODE, end)
    after = MemAccess.READ_AFTER
    assert seen == [(after, 0x11000, 1, 0x80), (after, 0x11008, 8, 0x11000),
                    (after, 0x11000, 4, 0x80)]
    assert emu.reg_read("a1") == 2**64 - 0x80 and emu.reg_read("a0") == 0x11000


def test_an_emulator_nobody_references_is_released() -> None:
    import gc
    import weakref

    emu = Emulator("riscv64")
    emu.mem_map(CODE, 0x1000)
    emu.hook_add(Hook.CODE, lambda *args: None)
    emu.mem_write(CODE, assemble("nop"))
    emu.emu_start(CODE, CODE + 4)
    gone = weakref.ref(emu)
    memory = emu._memory
    del emu
    gc.collect()
    assert gone() is None and memory.base == 0  # collected and closed


def test_hooked_amos_fault_stop_and_read_after_as_plain_accesses_do(emu: Emulator) -> None:
    end = load(emu, "amoadd.w a2, a1, (a0)\nli a3, 1")
    emu.mem_map(0x20000, 0x1000)
    emu.mem_write(0x20000, (0x8000_0010).to_bytes(4, "little"))
    # Misaligned: the atomic's own fault, with or without hooks.
    emu.reg_write_batch({"a0": 0x20002, "a1": 5})
    kinds = []
    for hooked in (False, True):
        if hooked:
            emu.hook_add(Hook.MEM_READ | Hook.MEM_WRITE, lambda *args: None)
        with pytest.raises(EmulatorError) as info:
            emu.emu_start(CODE, end)
        kinds.append(info.value.kind)
    assert kinds == [ErrorKind.WRITE_UNALIGNED] * 2
    # The loaded value after the read; a stop from the write hook: nothing written.
    emu.reg_write("a0", 0x20000)
    seen = []
    emu.hook_add(Hook.MEM_READ_AFTER, lambda e, *args: seen.append(args[:4]))
    emu.hook_add(Hook.MEM_WRITE, lambda e, *args: e.emu_stop())
    emu.emu_start(CODE, end)
    assert seen == [(MemAccess.READ_AFTER, 0x20000, 4, 0x8000_0010)]
    assert emu.reg_read("pc") == CODE and emu.reg_read("a2") == 0
    assert emu.mem_read(0x20000, 4) == (0x8000_0010).to_bytes(4, "little")
