"""llvmtcg's Emulator("aarch64") against Unicorn's arm64 on the same snippets:
registers, memory, hook events, count, errors and svc must agree."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from llvmtcg import Emulator, Hook, MemAccess, Perm
from tests.api.support import run_catching

AS, OBJCOPY = "aarch64-linux-gnu-as", "aarch64-linux-gnu-objcopy"
pytestmark = pytest.mark.skipif(shutil.which(AS) is None,
                                reason="aarch64-linux-gnu binutils not installed")
unicorn = pytest.importorskip("unicorn")
arm64_const = pytest.importorskip("unicorn.arm64_const")
CODE, DATA = 0x10000, 0x20000
REGS = ("x0", "x1", "x2", "x3", "x4", "sp", "pc")
LOOP = """
    mov x0, #5
    mov x1, #0
1:  add x1, x1, x0
    subs x0, x0, #1
    b.ne 1b
    mov x2, #0x7b
    nop
"""
MEMORY = f"""
    mov x0, #{DATA:#x}
    ldr x1, =0x1122334455667788
    str x1, [x0, #8]
    ldr w2, [x0, #8]
    ldrb w3, [x0, #9]
    strh w3, [x0, #2]
    ldr x4, [x0]
    stp x4, x1, [x0, #16]
    b 1f
    .ltorg
1:  nop
"""


@functools.cache
def assemble(source: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, binary = Path(tmp, "s.S"), Path(tmp, "s.o"), Path(tmp, "s.bin")
        src.write_text(f".text\n{source}\n")
        subprocess.run([AS, "-o", str(obj), str(src)], check=True, capture_output=True)
        subprocess.run([OBJCOPY, "-O", "binary", "-j", ".text", str(obj), str(binary)],
                       check=True)
        return binary.read_bytes()


def both(scenario, lse: bool = False) -> tuple[Any, Any]:
    """(what the scenario observed on llvmtcg, on Unicorn); ``lse``: on Unicorn's
    "max" CPU (its default has no Armv8.1 atomics; ours has)."""
    results = []
    ours = Emulator("aarch64")
    results.append(scenario(ours, lambda name: name))
    ours.close()
    theirs = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
    if lse:
        theirs.ctl_set_cpu_model(arm64_const.UC_CPU_ARM64_MAX)
    results.append(scenario(theirs, lambda name: getattr(arm64_const,
                                                         f"UC_ARM64_REG_{name.upper()}")))
    return results[0], results[1]


def load(engine, source: str) -> int:
    code = assemble(source)
    engine.mem_map(CODE, 0x1000)
    engine.mem_map(DATA, 0x1000)
    engine.mem_write(CODE, code)
    engine.reg_write(engine_reg(engine, "sp"), DATA + 0x800)
    return CODE + len(code)


def engine_reg(engine, name: str) -> Any:
    if isinstance(engine, Emulator):
        return name
    return getattr(arm64_const, f"UC_ARM64_REG_{name.upper()}")


def regs(engine, r) -> list[int]:
    return [engine.reg_read(r(name)) for name in REGS]


def test_until_registers_and_memory() -> None:
    def scenario(engine, r):
        end = load(engine, LOOP + MEMORY)
        engine.emu_start(CODE, end)
        return regs(engine, r), bytes(engine.mem_read(DATA, 32))

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0][1] == 0x1122334455667788


def test_count_is_exact() -> None:
    def scenario(engine, r):
        end = load(engine, LOOP)
        seen = []
        for count in (1, 2, 3, 5, 8, 13, 100):
            engine.emu_start(CODE, end, count=count)
            seen.append(regs(engine, r))
        return seen

    ours, theirs = both(scenario)
    assert ours == theirs


def test_code_and_memory_hook_events() -> None:
    def scenario(engine, r):
        end = load(engine, MEMORY)
        events = []
        engine.hook_add(Hook.CODE, lambda e, a, s, u: events.append(("code", a, s)))
        engine.hook_add(Hook.MEM_READ | Hook.MEM_WRITE, lambda e, access, a, s, v, u:
                        events.append((access, a, s, v)))
        engine.emu_start(CODE, end)
        return events

    ours, theirs = both(scenario)
    assert ours == theirs


def test_unmapped_access_without_and_with_hook() -> None:
    source = "mov x0, #0x40000\nldr x1, [x0, #8]\nmov x2, #3"

    def scenario(engine, r):
        end = load(engine, source)
        error = run_catching(engine, CODE, end)
        state = regs(engine, r)

        def map_it(e, access, address, size, value, user_data):
            e.mem_map(0x40000, 0x1000)
            e.mem_write(0x40008, b"\x07")
            return True

        engine.hook_add(Hook.MEM_UNMAPPED, map_it)
        engine.emu_start(CODE, end)
        return error, state, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0] == 6 and ours[1][-1] == CODE + 4


def test_svc_goes_to_the_intr_hook() -> None:
    def scenario(engine, r):
        end = load(engine, "mov x8, #93\nsvc #0\nmov x0, #1")
        calls = []
        engine.hook_add(Hook.INTR, lambda e, intno, u: calls.append(
            (intno, e.reg_read(r("pc")), e.reg_read(r("x8")))))
        engine.emu_start(CODE, end)
        return calls, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0] == [(2, CODE + 8, 93)]


def test_write_to_read_only_memory_is_an_error() -> None:
    def scenario(engine, r):
        end = load(engine, f"mov x0, #{DATA:#x}\nmov x1, #5\nstr x1, [x0]\nnop")
        engine.mem_protect(DATA, 0x1000, Perm.READ)
        return run_catching(engine, CODE, end), engine.reg_read(r("pc"))

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours == (12, CODE + 8)


def test_inline_instrumentation_on_aarch64() -> None:
    from collections import Counter

    from llvmtcg import Reg
    from llvmtcg.emulator import coverage_location

    with Emulator("aarch64") as emu:
        end = load(emu, LOOP)
        coverage = bytearray(1 << 10)
        emu.coverage_map(coverage)
        emu.counters_enable(Hook.BLOCK)
        log = emu.cmplog(64)
        blocks, chosen = [], []
        emu.hook_add(Hook.BLOCK, lambda e, a, s, u: blocks.append(a))
        emu.hook_add(Hook.CODE, lambda e, a, s, u: chosen.append((a, e.reg_read("x0"))),
                     when=Reg("x0") == 2)
        emu.emu_start(CODE, end)
        expected, prev = bytearray(1 << 10), 0
        for pc in blocks:
            location = coverage_location(pc, 10)
            expected[location ^ prev] += 1
            prev = location >> 1
        assert coverage == expected
        assert emu.counts(Hook.BLOCK) == Counter(blocks)
        assert chosen and all(x0 == 2 for _, x0 in chosen)
        assert log is not None and log.total >= 5  # b.ne five times (flags compare)


ATOMICS = f"""
    .arch armv8.1-a
    mov x0, #{DATA:#x}
    ldr x1, =0x8122334455667788
    mov x6, #7
    stp x1, x6, [x0]
    ldxr x2, [x0]
    stxr w3, x6, [x0]
    stxr w4, x1, [x0]
    ldaxr w2, [x0]
    stlxr w3, w1, [x0]
    ldxp x2, x4, [x0]
    stxp w3, x1, x6, [x0]
    ldadd x6, x2, [x0]
    swpal w1, w2, [x0]
    ldclrb w6, w4, [x0]
    ldumin x6, x5, [x0]
    ldsmax w6, w5, [x0]
    mov x5, x2
    cas x5, x1, [x0]
    cas x5, x1, [x0]
    ldp x2, x3, [x0]
    casp x2, x3, x6, x7, [x0]
    b 1f
    .ltorg
1:  nop
"""


def test_memory_hook_events_of_exclusives_and_lse_atomics() -> None:
    """Unicorn's (QEMU's single-threaded) expansion: a load and a store each, the store
    with the value written (a failing CAS writes back what it read); a failing
    store-exclusive accesses nothing."""
    def scenario(engine, r):
        end = load(engine, ATOMICS)
        events = []
        engine.hook_add(Hook.MEM_READ | Hook.MEM_WRITE, lambda e, access, a, s, v, u:
                        events.append((access, a, s, v, e.reg_read(r("pc")))))
        engine.emu_start(CODE, end)
        return events, regs(engine, r), bytes(engine.mem_read(DATA, 16))

    ours, theirs = both(scenario, lse=True)
    assert ours == theirs
    writes = [access for access, *_ in ours[0]].count(MemAccess.WRITE)
    assert writes == 15  # stp 2, stxr 1 (of 2), stlxr 1, stxp 2, LSE 5, CAS 2, CASP 2


Q_MEMORY = f"""
    mov x0, #{DATA:#x}
    ldr q0, [x0, #0x40]
    str q0, [x0, #0x80]
    ldp q1, q2, [x0, #0x40]
    stp q2, q1, [x0, #0x100]!
    ld1 {{v3.16b, v4.16b}}, [x0], #32
    st1 {{v3.2d}}, [x0]
    ldr q5, [x0, #0xed0]
    add x5, x0, #0xec8
    str q5, [x5]
    nop
"""


def test_memory_hook_events_of_q_register_accesses() -> None:
    """A 16-byte load or store (LDR/STR Q, LDP/STP Q, LD1/ST1) reports its two 8-byte
    accesses, as Unicorn does; the bytes moved agree."""
    def scenario(engine, r):
        end = load(engine, Q_MEMORY)
        engine.mem_write(DATA + 0x40, bytes(range(0x40, 0x80)))
        engine.mem_write(DATA + 0xFF0, bytes(range(0xA0, 0xB0)))
        events = []
        engine.hook_add(Hook.MEM_READ | Hook.MEM_WRITE, lambda e, access, a, s, v, u:
                        events.append((access, a, s, v)))
        engine.emu_start(CODE, end)
        return events, bytes(engine.mem_read(DATA, 0x1000)), regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert len(ours[0]) == 22  # 11 accesses of 16 bytes
