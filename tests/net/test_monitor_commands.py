"""The monitors' block and network commands on the real launcher (paused with -S):
query-block, query-named-block-nodes and info block as QEMU 7.2 shapes them;
info network, hostfwd_add and hostfwd_remove on a user network."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net.test_net_options import needs_slirp

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


class Qmp:
    def __init__(self, path: Path) -> None:
        deadline = time.monotonic() + 60
        while True:  # the socket file appears just before the server listens
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(60)
            try:
                self.sock.connect(str(path))
                break
            except ConnectionRefusedError:
                self.sock.close()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        self.file = self.sock.makefile("rw")
        assert "QMP" in json.loads(self.file.readline())
        assert self.execute("qmp_capabilities") == {}

    def execute(self, command: str, **arguments: object) -> object:
        message: dict[str, object] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self.file.write(json.dumps(message) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "event" not in reply:
                assert "return" in reply, reply
                return reply["return"]

    def hmp(self, line: str) -> str:
        text = self.execute("human-monitor-command", **{"command-line": line})
        assert isinstance(text, str)
        return text.replace("\r\n", "\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[tuple[Qmp, Path, int]]:
    run_dir = Path(f"/tmp/llvmtcg-net-{os.getpid()}-{time.monotonic_ns()}")
    run_dir.mkdir()
    qmp_path = run_dir / "qmp.sock"
    raw, qcow2 = tmp_path / "d.img", tmp_path / "d.qcow2"
    raw.write_bytes(bytes(1 << 20))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "2M"], check=True)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.system_riscv64", "-M", "virt", "-bios", "none",
         "-display", "none", "-S", "-serial", "null",
         "-qmp", f"unix:{qmp_path},server=on,wait=off",
         "-drive", f"file={raw},format=raw,if=none,id=d0",
         "-device", "virtio-blk-device,drive=d0",
         "-blockdev", f"driver=qcow2,node-name=hd,file.driver=file,file.filename={qcow2}",
         "-device", "virtio-blk-device,drive=hd",
         "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
         "-device", "virtio-net-device,netdev=n0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while not qmp_path.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield Qmp(qmp_path), tmp_path, port
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
        qmp_path.unlink(missing_ok=True)
        run_dir.rmdir()


@needs_slirp
def test_block_queries(vm: tuple[Qmp, Path, int]) -> None:
    qmp, tmp_path, _ = vm
    blocks = qmp.execute("query-block")
    assert isinstance(blocks, list)
    by_device = {b["device"]: b for b in blocks}
    d0 = by_device["d0"]
    assert d0["qdev"] == "/machine/peripheral-anon/device[0]"
    assert d0["inserted"]["drv"] == "raw" and d0["inserted"]["ro"] is False
    assert d0["inserted"]["file"] == str(tmp_path / "d.img")
    assert d0["inserted"]["cache"] == {"writeback": True, "direct": False, "no-flush": False}
    hd = by_device[""]
    assert hd["inserted"]["node-name"] == "hd" and hd["inserted"]["drv"] == "qcow2"
    assert hd["inserted"]["image"]["virtual-size"] == 2 << 20
    assert hd["inserted"]["image"]["cluster-size"] == 65536
    assert hd["qdev"] == "/machine/peripheral-anon/device[1]"
    nodes = qmp.execute("query-named-block-nodes")
    assert isinstance(nodes, list)
    assert {(n["node-name"], n["drv"]) for n in nodes} >= {("hd", "qcow2")}
    assert {n["drv"] for n in nodes} >= {"raw", "qcow2", "file"}

    text = qmp.hmp("info block")
    node = d0["inserted"]["node-name"]
    assert text == (
        f"d0 ({node}): {tmp_path / 'd.img'} (raw)\n"
        "    Attached to:      /machine/peripheral-anon/device[0]\n"
        "    Cache mode:       writeback\n"
        "\n"
        f"hd: {tmp_path / 'd.qcow2'} (qcow2)\n"
        "    Attached to:      /machine/peripheral-anon/device[1]\n"
        "    Cache mode:       writeback\n")
    named = qmp.hmp("info block -n")
    assert f"hd: {tmp_path / 'd.qcow2'} (qcow2)\n    Cache mode:       writeback\n" in named
    assert f"({'file'})" in named


@needs_slirp
def test_hostfwd_add_and_remove(vm: tuple[Qmp, Path, int]) -> None:
    qmp, _, port = vm
    assert qmp.hmp("info network") == (
        "n0: index=0,type=user,net=10.0.2.0,restrict=off\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30):
        pass  # the -netdev hostfwd port listens
    added = free_port()
    assert qmp.hmp(f"hostfwd_add n0 tcp:127.0.0.1:{added}-:80") == ""
    deadline = time.monotonic() + 30
    while True:  # slirp listens at once; the loop just has to be serving
        try:
            socket.create_connection(("127.0.0.1", added), timeout=30).close()
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert qmp.hmp(f"hostfwd_remove n0 tcp:127.0.0.1:{added}") == (
        f"host forwarding rule for tcp:127.0.0.1:{added} removed\n")
    assert qmp.hmp(f"hostfwd_remove tcp:127.0.0.1:{added}") == (
        f"host forwarding rule for tcp:127.0.0.1:{added} not found\n")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", added), timeout=30)
    assert qmp.hmp("hostfwd_add n1 tcp::1-:2") == "unrecognized netdev id 'n1'\n"
    assert qmp.hmp("hostfwd_add foo") == "Invalid host forwarding rule 'foo' (No : separators)\n"
    assert qmp.hmp("hostfwd_remove n0 bad") == "invalid format\n"
    assert qmp.hmp(f"hostfwd_add tcp:127.0.0.1:{port}-:22") == (
        f"Could not set up host forwarding rule 'tcp:127.0.0.1:{port}-:22'\n")


@needs_slirp
def test_blockdev_snapshot_sync_puts_an_overlay_on_top(vm: tuple[Qmp, Path, int]) -> None:
    qmp, tmp_path, _ = vm
    overlay = tmp_path / "overlay.qcow2"
    assert qmp.execute("blockdev-snapshot-sync", device="d0", **{
        "snapshot-file": str(overlay), "snapshot-node-name": "ov"}) == {}
    blocks = {b["device"]: b for b in qmp.execute("query-block")}  # type: ignore[union-attr]
    inserted = blocks["d0"]["inserted"]
    assert (inserted["node-name"], inserted["drv"], inserted["file"]) == (
        "ov", "qcow2", str(overlay))
    assert inserted["backing_file"] == str(tmp_path / "d.img")
    assert inserted["backing_file_depth"] == 1
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "--force-share", "--output=json", str(overlay)],
        capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(tmp_path / "d.img")
    assert info["backing-filename-format"] == "raw"
    assert info["virtual-size"] == 1 << 20
    error = qmp_error(qmp, "blockdev-snapshot-sync", device="nope",
                      **{"snapshot-file": str(tmp_path / "x.qcow2")})
    assert error == "Cannot find device='nope' nor node-name=''"


def qmp_error(qmp: Qmp, command: str, **arguments: object) -> str:
    qmp.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
    qmp.file.flush()
    while True:
        reply = json.loads(qmp.file.readline())
        if "event" not in reply:
            return reply["error"]["desc"]


@needs_slirp
def test_the_networking_example_in_docs_managing(vm: tuple[Qmp, Path, int]) -> None:
    qmp, _, _ = vm
    text = (REPO / "docs" / "managing.md").read_text()
    session = text.split("```hmp-network\n", 1)[1].split("```", 1)[0]
    port = str(free_port())
    steps: list[tuple[str, list[str]]] = []  # a command and the lines it prints
    for line in session.replace("unet", "n0").replace("5555", port).splitlines():
        if line.startswith("(qemu) "):
            steps.append((line.removeprefix("(qemu) "), []))
        else:
            steps[-1][1].append(line)
    for command, lines in steps:
        assert qmp.hmp(command) == "".join(f"{line}\n" for line in lines), command
    assert "hostfwd_add" in session


@needs_slirp
def test_set_link(vm: tuple[Qmp, Path, int]) -> None:
    qmp, _, _ = vm
    assert qmp.hmp("set_link n0 off") == ""
    assert qmp.hmp("set_link n0 on") == ""
    assert qmp.hmp("set_link nope off") == "Error: Device 'nope' not found\n"
