"""The machine's main loop, driven by a scripted stand-in for the CPU: timers fire while
the CPU runs, an idle CPU sleeps until the deadline without spinning, power-off ends the
loop with its status, a guest reset restarts the machine, I/O wakes the loop."""

from __future__ import annotations

import os
import threading
import time

from machines.cpu import HartLines, Idle, IrqBit
from machines.loop import MachineClock, MachineLoop, RunState, SerialInput
from tests.machines.support import ScriptedCpu

MS = 1_000_000


def make_loop(cpu: ScriptedCpu, **kwargs: object) -> tuple[MachineLoop, list[int]]:
    resets: list[int] = []
    clock = MachineClock()
    loop = MachineLoop(cpu, clock, lambda: resets.append(1), **kwargs)  # type: ignore[arg-type]
    return loop, resets


def test_a_timer_stops_a_running_cpu_at_its_deadline() -> None:
    cpu = ScriptedCpu()  # runs "guest code" until stopped
    loop, _ = make_loop(cpu)
    fired: list[int] = []

    def deadline() -> None:
        fired.append(loop.clock.now_ns())
        loop.request_shutdown(7)

    armed_at = loop.clock.now_ns()
    loop.clock.set_timer(armed_at + 30 * MS, deadline)
    started = time.monotonic()
    assert loop.run() == 7
    elapsed = time.monotonic() - started
    assert fired and fired[0] >= armed_at + 30 * MS
    assert 0.025 < elapsed < 2.0
    assert cpu.runs <= 3  # woken for the deadline, not polled


def test_a_timer_armed_while_running_for_an_earlier_deadline_wakes_in_time() -> None:
    loop: MachineLoop
    cpu = ScriptedCpu([lambda c: loop.clock.set_timer(loop.clock.now_ns() + 20 * MS,
                                                      lambda: loop.request_shutdown(1))])
    loop, _ = make_loop(cpu)
    loop.clock.set_timer(loop.clock.now_ns() + 60_000 * MS, lambda: None)  # far away
    started = time.monotonic()
    assert loop.run() == 1
    assert time.monotonic() - started < 5.0  # not the 60 s timer


def test_an_idle_cpu_sleeps_until_the_deadline_without_spinning() -> None:
    lines = HartLines()
    loop: MachineLoop

    def wfi(cpu: ScriptedCpu) -> Idle | None:
        if cpu.irqs.get(IrqBit.MTIP):
            loop.request_shutdown(0)  # the interrupt arrived: the "guest" powers off
            return None
        cpu.position -= 1  # execute the same WFI again on the next run
        return Idle()

    cpu = ScriptedCpu([wfi])
    lines.attach(cpu)
    loop, _ = make_loop(cpu)
    loop.clock.set_timer(loop.clock.now_ns() + 50 * MS, lambda: lines.line(IrqBit.MTIP)(True))
    started = time.monotonic()
    assert loop.run() == 0
    assert time.monotonic() - started >= 0.045
    # Idle once, slept until the deadline, ran again and saw the interrupt.
    assert cpu.runs <= 3 and loop.stats["sleeps"] <= 2


def test_an_idle_cpu_with_no_timer_waits_for_io() -> None:
    read_fd, write_fd = os.pipe()
    loop: MachineLoop
    got: list[bytes] = []

    def on_readable() -> None:
        data = os.read(read_fd, 100)
        loop.post(lambda: (got.append(data), loop.request_shutdown(4)))

    cpu = ScriptedCpu([lambda c: Idle()])
    loop, _ = make_loop(cpu)
    loop.watch_fd(read_fd, on_readable)
    loop.clock.set_timer(loop.clock.now_ns() + 20 * MS, lambda: os.write(write_fd, b"key"))
    try:
        assert loop.run() == 4
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert got == [b"key"]
    assert loop.stats["sleeps"] <= 2


def test_power_off_ends_the_loop_with_its_status_and_a_shutdown_beats_a_reset() -> None:
    loop: MachineLoop
    cpu = ScriptedCpu([lambda c: loop.request_shutdown(3), lambda c: loop.request_reset()])
    loop, resets = make_loop(cpu)
    assert loop.run() == 3
    assert resets == [1]  # the power-on reset only


def test_a_guest_reset_restarts_the_machine() -> None:
    loop: MachineLoop
    cpu = ScriptedCpu([lambda c: loop.request_reset(), lambda c: loop.request_shutdown(0)])
    loop, resets = make_loop(cpu)
    assert loop.run() == 0
    assert resets == [1, 1]  # power-on, then the guest's reset
    assert cpu.position == 2


def test_no_reboot_turns_a_reset_into_an_exit() -> None:
    loop: MachineLoop
    cpu = ScriptedCpu([lambda c: loop.request_reset(), lambda c: loop.request_shutdown(9)])
    loop, resets = make_loop(cpu, no_reboot=True)
    assert loop.run() == 0
    assert resets == [1]


def test_posted_work_runs_on_the_loop_thread() -> None:
    import threading
    loop: MachineLoop
    threads: list[str] = []
    cpu = ScriptedCpu([lambda c: threading.Thread(
        target=lambda: loop.post(lambda: (threads.append(threading.current_thread().name),
                                          loop.request_shutdown(2)))).start()])
    loop, _ = make_loop(cpu)
    assert loop.run() == 2
    assert threads == [threading.current_thread().name]


class Frontend:
    def __init__(self, room: int) -> None:
        self.room = room
        self.received = b""

    def can_receive(self) -> int:
        return self.room

    def receive(self, data: bytes) -> None:
        assert len(data) <= self.room
        self.received += data
        self.room -= len(data)


def test_serial_input_waits_for_room_in_the_frontend() -> None:
    frontend = Frontend(room=2)
    serial = SerialInput(frontend)
    serial.push(b"hello")
    assert frontend.received == b"he" and serial.pending == 3
    frontend.room = 10
    serial.pump()
    assert frontend.received == b"hello" and serial.pending == 0
    SerialInput(None).push(b"dropped")  # no frontend: nothing is kept


def test_hart_lines_replay_levels_to_a_cpu_attached_later() -> None:
    lines = HartLines()
    lines.line(IrqBit.MTIP)(True)
    lines.line(IrqBit.MSIP)(False)
    cpu = ScriptedCpu()
    lines.attach(cpu)
    assert cpu.irqs == {IrqBit.MTIP: True, IrqBit.MSIP: False}
    lines.line(IrqBit.MEIP)(True)
    assert cpu.irqs[IrqBit.MEIP] is True


def test_stop_and_cont_pause_the_cpu_and_report_events() -> None:
    loop: MachineLoop
    events: list[tuple[str, object]] = []
    cpu = ScriptedCpu([lambda c: loop.post(loop.pause)])
    loop, _ = make_loop(cpu)
    loop.listeners.append(lambda name, data: events.append((name, data)))

    def later() -> None:
        time.sleep(0.2)
        assert loop.state is RunState.PAUSED
        runs = cpu.runs
        loop.post(lambda: events.append(("runs-while-paused", cpu.runs - runs)))
        loop.post(loop.resume)
        loop.post(lambda: loop.request_shutdown(0, "host-qmp-quit"))

    threading.Thread(target=later).start()
    assert loop.run() == 0
    assert events == [("STOP", None), ("runs-while-paused", 0), ("RESUME", None),
                      ("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})]


def test_start_paused_runs_nothing_until_resumed() -> None:
    cpu = ScriptedCpu()
    loop, resets = make_loop(cpu, start_paused=True)
    assert loop.state is RunState.PRELAUNCH

    def later() -> None:
        time.sleep(0.1)
        loop.post(lambda: loop.request_shutdown(3))

    threading.Thread(target=later).start()
    assert loop.run() == 3
    assert cpu.runs == 0 and resets == [1]


def test_no_shutdown_keeps_the_machine_and_a_reset_makes_it_prelaunch() -> None:
    loop: MachineLoop
    events: list[str] = []
    cpu = ScriptedCpu([lambda c: loop.request_shutdown(0)])  # the guest powers off
    loop, resets = make_loop(cpu, no_shutdown=True)
    loop.listeners.append(lambda name, data: events.append(f"{name} {data}"))

    def later() -> None:
        time.sleep(0.2)
        loop.post(lambda: events.append(loop.state.value))
        loop.request_reset("host-qmp-system-reset")
        time.sleep(0.2)
        loop.post(lambda: events.append(loop.state.value))
        loop.post(lambda: loop.request_shutdown(5, "host-qmp-quit"))

    threading.Thread(target=later).start()
    assert loop.run() == 5
    assert events[:4] == ["SHUTDOWN {'guest': True, 'reason': 'guest-shutdown'}", "STOP None",
                          "shutdown",
                          "RESET {'guest': False, 'reason': 'host-qmp-system-reset'}"]
    assert events[4] == "prelaunch" and len(resets) == 2


def test_no_reboot_turns_a_reset_into_a_shutdown_event() -> None:
    loop: MachineLoop
    events: list[object] = []
    cpu = ScriptedCpu([lambda c: loop.request_reset()])
    loop, _ = make_loop(cpu, no_reboot=True)
    loop.listeners.append(lambda name, data: events.append((name, data)))
    assert loop.run() == 0
    assert events == [("SHUTDOWN", {"guest": True, "reason": "guest-reset"})]
