"""Internal VM snapshots end to end on the virt machine: a bare-metal guest
(tests/guest/system/virt_ticks.S) counts in RAM and in an FP register, sleeps in WFI on
the CLINT timer and prints "tick N" on the UART; ``savevm`` / ``loadvm`` / ``delvm`` /
``info snapshots`` through the monitor and ``-loadvm`` at start must bring it back to
the saved count exactly, with ``qemu-img`` as the judge of the image. The error cases
run against qemu-system-riscv64 too where it is installed, and must read the same."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.machines.support import QEMU
from tests.net.test_monitor_commands import Qmp

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
GUEST = REPO / "tests" / "guest" / "system" / "virt_ticks.S"
COUNTER = 0x80001000  # the guest's count (its data page)
OURS = [sys.executable, "-m", "launcher.system_riscv64"]

pytestmark = [
    pytest.mark.skipif(shutil.which("riscv64-linux-gnu-gcc") is None,
                       reason="needs the riscv64 cross compiler"),
    pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-utils"),
]


@pytest.fixture(scope="module")
def ticks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The guest as a flat image for -bios (linked at the start of RAM)."""
    out = tmp_path_factory.mktemp("ticks")
    elf, image = out / "ticks.elf", out / "ticks.bin"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-march=rv64gc", "-mabi=lp64d",
                    "-static", "-Wl,--build-id=none", "-Wl,-Ttext=0x80000000", "-o", str(elf),
                    str(GUEST)], check=True)
    subprocess.run(["riscv64-linux-gnu-objcopy", "-O", "binary", str(elf), str(image)],
                   check=True)
    return image


class Emulator:
    """An emulator with a QMP socket (HMP through human-monitor-command) and its serial
    output in a file."""

    def __init__(self, program: list[str], run_dir: Path, *args: str) -> None:
        self.qmp_path = run_dir / f"qmp-{time.monotonic_ns()}.sock"
        self.serial = run_dir / f"serial-{time.monotonic_ns()}.txt"
        self.proc = subprocess.Popen(
            [*program, "-M", "virt", "-display", "none", "-serial", f"file:{self.serial}",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=ENV)
        deadline = time.monotonic() + 60
        while not self.qmp_path.exists():
            assert self.proc.poll() is None, self.proc.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        self.qmp = Qmp(self.qmp_path)

    def hmp(self, line: str) -> str:
        return self.qmp.hmp(line)

    def output(self) -> str:
        return self.serial.read_text() if self.serial.exists() else ""

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            assert self.proc.poll() is None, "the emulator exited"
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never came: {self.output()[-300:]!r}")

    def counter(self) -> int:
        line = self.hmp(f"xp /1g {COUNTER:#x}")
        return int(line.split()[-1], 16)

    def quit(self) -> None:
        self.qmp.execute("quit")
        self.proc.wait(timeout=60)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(f"/tmp/llvmtcg-svm-{os.getpid()}-{time.monotonic_ns()}")  # short: sockets
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def qcow2(path: Path, size: str = "16M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def snapshot_list(image: Path) -> list[list[str]]:
    out = subprocess.run(["qemu-img", "snapshot", "-l", str(image)], check=True,
                         capture_output=True, text=True).stdout
    return [line.split() for line in out.splitlines()[2:]]


def test_savevm_loadvm_bring_the_guest_back(ticks: Path, run_dir: Path) -> None:
    disk = qcow2(run_dir / "d.qcow2")
    vm = Emulator(OURS, run_dir, "-bios", str(ticks),
                  "-drive", f"file={disk},if=none,id=d0")
    try:
        vm.wait_for("tick 3\n")
        assert vm.hmp("stop") == ""
        saved = vm.counter()
        # The stop may fall inside a line: the guest counts, then prints "tick N" byte
        # by byte. What it printed of that line before the stop is in the file once the
        # chardev has written it (read until two reads 0.2 s apart agree).
        printed = vm.output()
        while (time.sleep(0.2), vm.output())[1] != printed:
            printed = vm.output()
        partial = printed[printed.rfind("\n") + 1:]
        assert f"tick {saved}\n".startswith(partial), partial
        assert vm.hmp("savevm s1") == ""
        assert vm.hmp("info status") == "VM status: paused\n"  # (savevm kept it stopped)
        assert vm.hmp("cont") == ""
        vm.wait_for(f"tick {saved + 5}\n")
        assert vm.counter() >= saved + 5
        assert vm.hmp("loadvm s1") == ""
        assert vm.hmp("info status") == "VM status: running\n"
        # The guest goes on from the saved count: "tick saved+1" comes again, after the
        # later ticks.
        out = vm.wait_for(f"tick {saved + 5}\n")
        later = out[out.index(f"tick {saved + 5}\n"):]
        vm.wait_for(f"tick {saved + 5}\ntick ")  # (the next line after it)
        deadline = time.monotonic() + 60
        while f"tick {saved + 1}\n" not in later and time.monotonic() < deadline:
            time.sleep(0.05)
            out = vm.output()
            later = out[out.index(f"tick {saved + 5}\n"):]
        assert f"tick {saved + 1}\n" in later
        assert "does not match" not in out  # fa0 came back with the count
        info = vm.hmp("info snapshots").splitlines()
        assert info[:2] == ["List of snapshots present on all disks:",
                            "ID        TAG               VM SIZE                DATE     "
                            "VM CLOCK     ICOUNT"]
        assert re.fullmatch(r"--        s1 +[0-9.]+ KiB \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                            r"\d\d:\d\d:\d\d\.\d{3} {11}", info[2]), info[2]
        assert vm.hmp("savevm s2") == ""
        assert [row.split()[1] for row in vm.hmp("info snapshots").splitlines()[2:]] == ["s1", "s2"]
        assert vm.hmp("delvm s2") == ""
        vm.quit()
    finally:
        vm.close()
    rows = snapshot_list(disk)
    assert [(row[0], row[1]) for row in rows] == [("1", "s1")]
    assert len(rows[0]) == 7  # (no ICOUNT: not recorded)
    check = subprocess.run(["qemu-img", "check", str(disk)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No errors were found" in check.stdout

    # A fresh start from the snapshot prints saved+1 first.
    vm = Emulator(OURS, run_dir, "-bios", str(ticks),
                  "-drive", f"file={disk},if=none,id=d0", "-loadvm", "s1")
    try:
        # (the rest of a line the stop cut, then the next count)
        first = f"tick {saved}\n"[len(partial):] if partial else ""
        first += f"tick {saved + 1}\n"
        out = vm.wait_for(first)
        assert out.startswith(first), out[:100]
        vm.quit()
    finally:
        vm.close()


ERROR_CASES = [
    # (drives, HMP lines) -- what each line prints is compared with QEMU's
    ([], ["info snapshots", "savevm s1", "loadvm s1", "loadvm"]),
    (["qcow2"], ["info snapshots", "loadvm nope", "delvm nope", "savevm s1", "delvm s1",
                 "info snapshots"]),
    (["qcow2", "raw"], ["savevm s1", "loadvm s1", "delvm s1", "info snapshots"]),
    (["qcow2-readonly"], ["savevm s1", "info snapshots"]),
    (["qcow2-disk-only", "qcow2-readonly"], ["loadvm disk", "info snapshots"]),
]


def _drive_args(kinds: list[str], run_dir: Path) -> list[str]:
    args = []
    for i, kind in enumerate(kinds):
        if kind == "raw":
            path = run_dir / f"d{i}.raw"
            path.write_bytes(bytes(1 << 20))
            args += ["-drive", f"file={path},format=raw,if=none,id=d{i}"]
            continue
        path = qcow2(run_dir / f"d{i}.qcow2")
        if kind == "qcow2-disk-only":
            subprocess.run(["qemu-img", "snapshot", "-c", "disk", str(path)], check=True)
        readonly = ",readonly=on" if kind == "qcow2-readonly" else ""
        args += ["-drive", f"file={path},if=none,id=d{i}{readonly}"]
    return args


def _session(program: list[str], kinds: list[str], lines: list[str], base: Path) -> list[str]:
    run_dir = base / ("qemu" if program[0] == QEMU else "ours")
    run_dir.mkdir()
    vm = Emulator(program, run_dir, "-bios", "none", "-S", *_drive_args(kinds, run_dir))
    try:
        out = [vm.hmp(line) for line in lines]
        vm.quit()
    finally:
        vm.close()
    # Dates and sizes differ between the two runs: compare the rest of a snapshot row.
    return [re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "DATE",
                   re.sub(r" +[0-9.]+ [KM]iB ", " SIZE ", text)) for text in out]


@pytest.mark.parametrize(("kinds", "lines"), ERROR_CASES)
def test_messages_are_qemus(kinds: list[str], lines: list[str], run_dir: Path) -> None:
    ours = _session(OURS, kinds, lines, run_dir)
    expected = {
        "info snapshots": None, "loadvm": 'loadvm: string expected\nTry "help loadvm" for '
        'more information\n',
    }
    if QEMU is not None:
        assert ours == _session([QEMU], kinds, lines, run_dir)
    else:  # (the words QEMU 7.2 prints, checked where it is installed)
        for line, text in zip(lines, ours, strict=True):
            if expected.get(line):
                assert text == expected[line]


def test_no_snapshot_disk_at_start(ticks: Path, run_dir: Path) -> None:
    disk = qcow2(run_dir / "d.qcow2")
    proc = subprocess.run([*OURS, "-M", "virt", "-bios", str(ticks), "-display", "none",
                           "-drive", f"file={disk},if=none,id=d0", "-loadvm", "nope"],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == ("llvmtcg-system-riscv64: Snapshot 'nope' does not exist in one "
                           "or more devices\n")


JOB_SCRIPT = [
    ("snapshot-save", {"job-id": "j1", "tag": "s1", "vmstate": "hd", "devices": ["hd"]}),
    ("query-jobs", {}),
    ("job-dismiss", {"id": "j1"}),
    ("snapshot-save", {"job-id": "j2", "tag": "s1", "vmstate": "hd", "devices": ["hd"]}),
    ("query-jobs", {}),
    ("job-dismiss", {"id": "j2"}),
    ("snapshot-save", {"job-id": "j3", "tag": "s2", "vmstate": "nope", "devices": ["hd"]}),
    ("snapshot-save", {"job-id": "j4", "tag": "s2", "vmstate": "hd", "devices": ["nope"]}),
    ("snapshot-save", {"job-id": "j5", "tag": "s2", "vmstate": "rw", "devices": ["rw"]}),
    ("snapshot-save", {"job-id": "j6", "tag": "s2", "vmstate": "hd", "devices": []}),
    ("snapshot-load", {"job-id": "j7", "tag": "nope", "vmstate": "hd", "devices": ["hd"]}),
    ("snapshot-load", {"job-id": "j8", "tag": "s1", "vmstate": "hd", "devices": ["hd"]}),
    ("query-jobs", {}),
    ("snapshot-delete", {"job-id": "j9", "tag": "s1", "devices": ["hd"]}),
    ("snapshot-delete", {"job-id": "j9", "tag": "s1", "devices": ["hd"]}),
    ("job-dismiss", {"id": "zz"}),
    ("query-jobs", {}),
]


def _job_conversation(program: list[str], base: Path) -> list[object]:
    """Every message of JOB_SCRIPT's conversation, timestamps left out: each reply and
    the job events that follow it (until the job concludes)."""
    import json
    import select
    import socket

    run_dir = base / ("qemu" if program[0] == QEMU else "ours")
    run_dir.mkdir()
    image, raw = qcow2(run_dir / "hd.qcow2"), run_dir / "rw.raw"
    raw.write_bytes(bytes(1 << 20))
    path = run_dir / "qmp.sock"
    proc = subprocess.Popen(
        [*program, "-M", "virt", "-bios", "none", "-display", "none", "-S",
         "-qmp", f"unix:{path},server=on,wait=off",
         "-blockdev", f"driver=qcow2,node-name=hd,file.driver=file,file.filename={image}",
         "-blockdev", f"driver=raw,node-name=rw,file.driver=file,file.filename={raw}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=ENV)
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        buffer = b""

        def receive() -> dict:
            nonlocal buffer
            while b"\n" not in buffer:
                assert select.select([sock], [], [], 60)[0], "no answer"
                buffer += sock.recv(65536)
            line, buffer = buffer.split(b"\n", 1)
            message = json.loads(line)
            message.pop("timestamp", None)
            return message

        def send(command: str, arguments: dict) -> list[object]:
            sock.sendall(json.dumps({"execute": command, "arguments": arguments}).encode()
                         + b"\n")
            messages = [receive()]
            while "return" not in messages[-1] and "error" not in messages[-1]:
                messages.append(receive())
            job = arguments.get("job-id")
            if job is not None and "return" in messages[-1]:
                while messages[-1] != {"event": "JOB_STATUS_CHANGE",
                                       "data": {"status": "concluded", "id": job}}:
                    messages.append(receive())
            return messages

        receive()  # the greeting
        send("qmp_capabilities", {})
        conversation: list[object] = []
        for command, arguments in JOB_SCRIPT:
            conversation += send(command, arguments)
        send("quit", {})
        sock.close()
        proc.wait(timeout=60)
        return conversation
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.skipif(QEMU is None, reason="qemu-system-riscv64 not installed")
def test_snapshot_jobs_are_qemus(run_dir: Path) -> None:
    """QMP snapshot-save/-load/-delete, query-jobs and job-dismiss: the same replies,
    events and errors as qemu-system-riscv64, message for message."""
    ours = _job_conversation(OURS, run_dir)
    assert ours == _job_conversation([QEMU], run_dir)
    assert {"return": {}} in ours
