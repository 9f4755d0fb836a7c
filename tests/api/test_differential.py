"""llvmtcg's Emulator against Unicorn on the same riscv64 snippets: registers, memory,
hook events and errors must agree."""

from __future__ import annotations

from llvmtcg import Hook, MemAccess, Perm
from tests.api.support import CODE, assemble, both, needs_cross, run_catching

pytestmark = needs_cross

LOOP = """
    li a0, 0
    li a1, 5
    li a2, 0
1:  addi a0, a0, 1
    add a2, a2, a0
    bne a0, a1, 1b
    li a3, 0x7b
    nop
"""
MEMORY = """
    lui a0, 0x11
    li a1, 0x1122334455667788
    sd a1, 8(a0)
    lw a2, 8(a0)
    lbu a3, 9(a0)
    sh a3, 2(a0)
    ld a4, 0(a0)
    sd a4, 16(a0)
"""
REGS = ("a0", "a1", "a2", "a3", "a4", "pc")


def load(engine, source: str, perms: int = Perm.ALL) -> bytes:
    code = assemble(source)
    engine.mem_map(CODE, 0x1000, perms)
    engine.mem_map(CODE + 0x1000, 0x1000)
    engine.mem_write(CODE, code)
    return code


def regs(engine, r) -> list[int]:
    return [engine.reg_read(r(name)) for name in REGS]


def test_until_registers_and_memory() -> None:
    def scenario(engine, r):
        code = load(engine, LOOP + MEMORY)
        engine.emu_start(CODE, CODE + len(code))
        return regs(engine, r), bytes(engine.mem_read(CODE + 0x1000, 24))

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0][-1] == CODE + len(assemble(LOOP + MEMORY))


def test_until_in_the_middle_of_a_loop_body() -> None:
    def scenario(engine, r):
        code = load(engine, LOOP)
        # until = the add inside the loop: the first time pc reaches it the run ends.
        engine.emu_start(CODE, CODE + 16)
        first = regs(engine, r)
        engine.emu_start(engine.reg_read(r("pc")), CODE + len(code))
        return first, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0][-1] == CODE + 16


def test_count_is_exact() -> None:
    def scenario(engine, r):
        code = load(engine, LOOP)
        seen = []
        for count in (1, 2, 3, 4, 5, 7, 11, 18, 100):
            engine.reg_write(r("a0"), 0)
            engine.emu_start(CODE, CODE + len(code), count=count)
            seen.append(regs(engine, r))
        return seen

    ours, theirs = both(scenario)
    assert ours == theirs


def test_code_and_block_hook_events() -> None:
    def scenario(engine, r):
        code = load(engine, LOOP)
        events = []
        engine.hook_add(Hook.BLOCK, lambda e, a, s, u: events.append(("block", a, s, u)), "b")
        engine.hook_add(Hook.CODE, lambda e, a, s, u: events.append(("code", a, s, u)), "c")
        engine.hook_add(Hook.CODE, lambda e, a, s, u: events.append(
            ("ranged", a, e.reg_read(r("a0")))), None, CODE + 12, CODE + 16)
        engine.emu_start(CODE, CODE + len(code))
        return events

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ("ranged", CODE + 16, 5) in ours


def test_memory_hook_events() -> None:
    def scenario(engine, r):
        code = load(engine, MEMORY)
        events = []

        def on_access(e, access, address, size, value, user_data):
            events.append((access, address, size, value, e.reg_read(r("pc")), user_data))

        engine.hook_add(Hook.MEM_READ | Hook.MEM_WRITE, on_access, "m")
        engine.hook_add(Hook.MEM_WRITE, on_access, "ranged", CODE + 0x1010, CODE + 0x1010)
        engine.emu_start(CODE, CODE + len(code))
        return events

    ours, theirs = both(scenario)
    assert ours == theirs
    assert len(ours) == 7


def test_unmapped_read_without_and_with_hook() -> None:
    source = "lui a0, 0x20\nld a1, 8(a0)\nli a2, 3"

    def scenario(engine, r):
        code = load(engine, source)
        error = run_catching(engine, CODE, CODE + len(code))
        state = regs(engine, r)
        events = []

        def map_it(e, access, address, size, value, user_data):
            events.append((access, address, size, value))
            e.mem_map(0x20000, 0x1000)
            e.mem_write(0x20008, b"\x07")
            return True

        engine.hook_add(Hook.MEM_UNMAPPED, map_it)
        engine.emu_start(CODE, CODE + len(code))
        return error, state, events, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0] == 6 and ours[1][-1] == CODE + 4  # UC_ERR_READ_UNMAPPED at the ld


def test_write_protected_and_unmapped_write() -> None:
    source = "lui a0, 0x20\nli a3, 5\nsw a3, 4(a0)\nli a2, 3"

    def scenario(engine, r):
        code = load(engine, source)
        results = [run_catching(engine, CODE, CODE + len(code)), engine.reg_read(r("pc"))]
        engine.mem_map(0x20000, 0x1000, Perm.READ)
        events = []
        engine.hook_add(Hook.MEM_PROT, lambda e, *args: events.append(args[:4]) or False)
        results += [run_catching(engine, CODE, CODE + len(code)), engine.reg_read(r("pc"))]

        def unprotect(e, access, address, size, value, user_data):
            e.mem_protect(0x20000, 0x1000, Perm.ALL)
            return True

        engine.hook_add(Hook.MEM_WRITE_PROT, unprotect)
        results.append(run_catching(engine, CODE, CODE + len(code)))
        return (results, events, list(engine.mem_regions()), regs(engine, r),
                bytes(engine.mem_read(0x20000, 8)))

    ours, theirs = both(scenario)
    assert ours[:4] == theirs[:4]
    assert ours[0][:4] == [7, CODE + 8, 12, CODE + 8]
    # The retried store happened. (Unicorn 2.1 drops a store whose MEM_WRITE_PROT hook
    # returned True, although it retries reads and unmapped accesses the same way.)
    assert ours[4] == bytes(4) + (5).to_bytes(4, "little")


def test_fetch_from_unmapped_and_non_executable_memory() -> None:
    def scenario(engine, r):
        code = load(engine, "lui a0, 0x30\njr a0")
        events = []
        engine.hook_add(Hook.MEM_UNMAPPED, lambda e, *args: events.append(args[:4]) or False)
        results = [run_catching(engine, CODE, CODE + len(code)), engine.reg_read(r("pc"))]
        engine.mem_map(0x30000, 0x1000, Perm.READ | Perm.WRITE)
        results += [run_catching(engine, CODE, CODE + len(code)), engine.reg_read(r("pc"))]
        return results, events

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0] == [8, 0x30000, 14, 0x30000]


def test_emu_stop_from_a_code_hook() -> None:
    def scenario(engine, r):
        code = load(engine, LOOP)

        def stop_at_second_add(e, address, size, user_data):
            if address == CODE + 16 and e.reg_read(r("a0")) == 2:
                e.emu_stop()

        engine.hook_add(Hook.CODE, stop_at_second_add)
        engine.emu_start(CODE, CODE + len(code))
        return regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[-1] == CODE + 16


def test_a_code_hook_moving_pc() -> None:
    def scenario(engine, r):
        code = load(engine, "li a0, 1\nli a0, 2\nli a0, 3\nli a1, 4")

        def skip(e, address, size, user_data):
            if address == CODE + 4:
                e.reg_write(r("pc"), CODE + 12)

        engine.hook_add(Hook.CODE, skip)
        engine.emu_start(CODE, CODE + len(code))
        return regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[:2] == [1, 4]


def test_ecall_without_and_with_an_intr_hook() -> None:
    def scenario(engine, r):
        code = load(engine, "li a0, 1\necall\nli a1, 2\nnop")
        results = [run_catching(engine, CODE, CODE + len(code)), engine.reg_read(r("pc"))]
        events = []
        engine.hook_add(Hook.INTR, lambda e, intno, u: events.append((intno, e.reg_read(r("pc")))))
        results.append(run_catching(engine, CODE, CODE + len(code)))
        return results, events, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0][0] == 21  # UC_ERR_EXCEPTION


def test_context_save_and_restore() -> None:
    def scenario(engine, r):
        code = load(engine, LOOP)
        engine.reg_write(r("fa1"), 0x4000_0000_0000_0000)
        engine.reg_write(r("pc"), CODE)  # (Unicorn's riscv resets pc to 0x1000, ours to 0)
        saved = engine.context_save()
        engine.emu_start(CODE, CODE + len(code))
        after = regs(engine, r)
        engine.context_restore(saved)
        return after, regs(engine, r), engine.reg_read(r("fa1"))

    ours, theirs = both(scenario)
    assert ours == theirs


def test_code_rewritten_with_mem_write_between_runs() -> None:
    def scenario(engine, r):
        code = load(engine, "li a0, 1\nli a1, 2\nnop")
        engine.emu_start(CODE, CODE + len(code))
        first = regs(engine, r)
        engine.mem_write(CODE + 4, assemble("li a1, 9"))
        engine.emu_start(CODE, CODE + len(code))
        return first, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[1][1] == 9


def test_code_rewritten_by_guest_stores() -> None:
    patch = int.from_bytes(assemble("li a1, 5"), "little")
    # The patched instruction is in a later block (RISC-V has no precise self-modifying
    # code inside the running block: both engines run the old code there).
    source = (f"auipc t0, 0\nli t1, {patch}\nli a1, 9\nsw t1, 24(t0)\nj 1f\n"
              f"1: li a1, 7\nnop")

    def scenario(engine, r):
        code = load(engine, source)
        engine.emu_start(CODE, CODE + len(code))
        first = regs(engine, r)
        engine.mem_write(CODE + 24, assemble("li a1, 7"))  # and back, between runs
        engine.emu_start(CODE + 24, CODE + len(code))
        return first, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0][1] == 5 and ours[1][1] == 7


def test_memory_api_errors_and_regions() -> None:
    def scenario(engine, r):
        engine.mem_map(CODE, 0x3000, Perm.READ | Perm.WRITE)
        errors = []
        for call in (lambda: engine.mem_map(CODE + 0x1000, 0x1000),
                     lambda: engine.mem_map(CODE + 1, 0x1000),
                     lambda: engine.mem_map(0x50000, 0x10),
                     lambda: engine.mem_unmap(0x50000, 0x1000),
                     lambda: engine.mem_protect(0x50000, 0x1000),
                     lambda: engine.mem_read(0x50000, 4),
                     lambda: engine.mem_write(CODE + 0x2ffe, b"1234")):
            try:
                call()
                errors.append(0)
            except Exception as e:  # noqa: BLE001 - both engines' errors
                errors.append(e.errno)
        engine.mem_protect(CODE + 0x1000, 0x1000, Perm.READ)
        regions = list(engine.mem_regions())  # (Unicorn's is a generator)
        engine.mem_unmap(CODE, 0x1000)
        return errors, regions, list(engine.mem_regions())

    ours, theirs = both(scenario)
    assert ours == theirs


def test_compressed_code_counts_and_hooks() -> None:
    source = LOOP + "c.li a4, 3\nc.addi a4, 1\nc.nop"

    def scenario(engine, r):
        code = assemble(source, "rv64gc")
        engine.mem_map(CODE, 0x1000)
        engine.mem_write(CODE, code)
        events = []
        engine.hook_add(Hook.CODE, lambda e, a, s, u: events.append((a, s)))
        engine.hook_add(Hook.BLOCK, lambda e, a, s, u: events.append(("block", a, s)))
        engine.emu_start(CODE, CODE + len(code), count=9)
        partial = regs(engine, r)
        engine.emu_start(engine.reg_read(r("pc")), CODE + len(code))
        return events, partial, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs


def test_count_across_a_retried_access_and_a_pc_change() -> None:
    def scenario(engine, r):
        code = load(engine, "lui a0, 0x20\nld a1, 8(a0)\nli a2, 3\nli a3, 4\nli a4, 5")
        engine.hook_add(Hook.MEM_UNMAPPED, lambda e, *args: e.mem_map(0x20000, 0x1000) or True)
        engine.emu_start(CODE, CODE + len(code), count=3)
        retried = regs(engine, r)

        def skip(e, address, size, user_data):
            if address == CODE + 4:
                e.reg_write(r("pc"), CODE + 12)

        engine.reg_write(r("a2"), 0)
        engine.hook_add(Hook.CODE, skip)
        engine.emu_start(CODE, CODE + len(code), count=3)
        return retried, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[0][2:] == [3, 0, 0, CODE + 12]


def test_mem_map_ptr_shares_the_callers_memory() -> None:
    import ctypes
    import mmap

    def scenario(engine, r):
        shared = mmap.mmap(-1, 0x2000)
        shared[0x10:0x18] = (0x0102030405060708).to_bytes(8, "little")
        view = (ctypes.c_char * 0x2000).from_buffer(shared)
        code = load(engine, """
            lui a0, 0x40
            ld a1, 0x10(a0)
            addi a1, a1, 1
            sd a1, 0x20(a2)
            sb a1, 0(a0)
        """)
        engine.reg_write(r("a2"), 0x41000)
        engine.mem_map_ptr(0x40000, 0x2000, Perm.ALL, ctypes.addressof(view))
        engine.emu_start(CODE, CODE + len(code))
        seen = (bytes(shared[0:1]), bytes(shared[0x1020:0x1028]),
                bytes(engine.mem_read(0x41020, 8)))
        shared[0x100] = 0x5A  # the caller's store, seen by the engine
        seen += (bytes(engine.mem_read(0x40100, 1)), list(engine.mem_regions()))
        engine.mem_unmap(0x40000, 0x2000)
        del view
        shared.close()
        return regs(engine, r), seen

    ours, theirs = both(scenario)
    assert ours == theirs
    assert ours[1][1] == (0x0102030405060709).to_bytes(8, "little")


def test_mem_fetch_hook() -> None:
    # Unicorn 2.1 accepts UC_HOOK_MEM_FETCH but never calls it; llvmtcg reports each
    # instruction fetched, as UC_HOOK_CODE sees it. Both run the code alike.
    def scenario(engine, r):
        code = load(engine, LOOP)
        fetches, codes = [], []
        engine.hook_add(Hook.MEM_FETCH, lambda e, access, address, size, value, _:
                        fetches.append((address, size)))
        engine.hook_add(Hook.CODE, lambda e, address, size, _: codes.append((address, size)))
        engine.emu_start(CODE, CODE + len(code))
        return regs(engine, r), codes, fetches

    ours, theirs = both(scenario)
    assert ours[:2] == theirs[:2]
    assert theirs[2] == [] and ours[2] == ours[1]


ATOMICS = """
    lui a0, 0x11
    li a1, 0x8122334455667788
    li a6, -0x7fffffff
    sd a1, 0(a0)
    amoadd.d a2, a1, (a0)
    amoswap.w a3, a6, (a0)
    addi a5, a0, 4
    amomin.w a4, a6, (a5)
    amomaxu.d a4, a6, (a0)
    amoxor.w a4, a1, (a0)
    lr.d t0, (a0)
    sc.d t1, a6, (a0)
    sc.d t2, a1, (a0)
    lr.w t3, (a5)
    sw a1, 4(a0)
    sc.w t4, a6, (a5)
    amoor.d t5, a1, (a0)
"""


def test_memory_hook_events_of_amos_and_lr_sc() -> None:
    """An AMO is a read then a write of the value stored (QEMU's single-threaded
    expansion, which Unicorn runs); an SC with the reservation a read and a write (of
    what it read, if memory changed), one without none; ranges apply."""
    def scenario(engine, r):
        code = load(engine, ATOMICS)
        events = []

        def on_access(e, access, address, size, value, user_data):
            events.append((access, address, size, value, e.reg_read(r("pc")), user_data))

        engine.hook_add(Hook.MEM_READ | Hook.MEM_WRITE, on_access, "m")
        engine.hook_add(Hook.MEM_WRITE, on_access, "ranged", CODE + 0x1004, CODE + 0x1007)
        engine.emu_start(CODE, CODE + len(code))
        names = ("a2", "a3", "a4", "t0", "t1", "t2", "t3", "t4", "t5", "pc")
        return events, [engine.reg_read(r(n)) for n in names], engine.mem_read(CODE + 0x1000, 8)

    ours, theirs = both(scenario)
    assert ours == theirs
    writes = [e[1] for e in ours[0] if e[0] == MemAccess.WRITE]
    # sd, 6 AMOs, 2 SCs with the reservation, sw; 3 of them in the ranged hook's too.
    assert len(writes) == 13 and writes.count(CODE + 0x1004) == 6
    # SC: succeeded; no reservation; (t3: what lr.w read) memory changed since the LR.
    assert ours[1][4:8] == [0, 1, 2**64 - 1, 1]


def test_an_amo_on_read_only_memory_reports_both_accesses_then_faults() -> None:
    def scenario(engine, r):
        code = load(engine, "lui a0, 0x20\namoadd.w a2, a1, (a0)\nli a3, 1")
        engine.mem_map(0x20000, 0x1000, Perm.READ)
        events = []
        engine.hook_add(Hook.MEM_READ | Hook.MEM_WRITE, lambda e, *args: events.append(args[:4]))
        return run_catching(engine, CODE, CODE + len(code)), events, regs(engine, r)

    ours, theirs = both(scenario)
    assert ours == theirs
    # WRITE_PROT, the store's fault, after the read and the write were reported.
    assert ours[0] == 12 and [access for access, *_ in ours[1]] == [MemAccess.READ,
                                                                    MemAccess.WRITE]
