"""QMP blockdev-add, blockdev-del and blockdev-snapshot, spoken with QEMU's own QMP
client (qemu.qmp) to llvmtcg-system-riscv64 and to qemu-system-riscv64 (7.2) with the
same command line: every reply, error texts included, is the same. Nodes added at run
time are listed by query-named-block-nodes and serve as the base of an external
snapshot, as an overlay put on top of a device's node, and as a backing node."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qemu.qmp import ExecuteError, QMPClient

from tests.machines.support import quit_qmp

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
MiB = 1 << 20


def _images(directory: Path) -> None:
    for name in ("hd.img", "disk0.img", "r.img", "f.img", "n.img", "plain.img"):
        (directory / name).write_bytes(bytes(MiB))
    for name in ("b.qcow2", "o.qcow2", "o2.qcow2"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(directory / name),
                        "1M"], check=True)


def _steps(d: Path) -> list[tuple[str, dict[str, object]]]:
    def file(name: str, **extra: object) -> dict[str, object]:
        return {"driver": "file", "filename": str(d / name), **extra}

    return [
        ("blockdev-add", {"driver": "qcow2", "node-name": "b", "file": file("b.qcow2")}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "b", "file": file("o.qcow2")}),
        ("blockdev-add", {"driver": "foo", "node-name": "c"}),
        ("blockdev-add", {"node-name": "c"}),
        ("blockdev-add", {"driver": "raw", "file": file("r.img")}),
        ("blockdev-add", {"driver": "raw", "node-name": "r", "bogus": 1, "file": file("r.img")}),
        ("blockdev-add", {"driver": "raw", "node-name": "r", "file": file("missing.img")}),
        ("blockdev-add", {"driver": "raw", "node-name": "disk0", "file": file("r.img")}),
        ("blockdev-add", {"driver": "raw", "node-name": "bad.name!", "file": file("r.img")}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "q", "file": file("plain.img")}),
        ("blockdev-add", {"driver": "raw", "node-name": "r", "read-only": True,
                          "file": file("r.img", **{"node-name": "rf"})}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "o", "backing": None,
                          "file": file("o.qcow2")}),
        ("query-named-block-nodes", {}),
        # An overlay added at run time goes on top of a node added at run time.
        ("blockdev-snapshot", {"node": "nope", "overlay": "o"}),
        ("blockdev-snapshot", {"node": "b", "overlay": "nope"}),
        ("blockdev-snapshot", {"node": "b", "overlay": "hd"}),
        ("blockdev-snapshot", {"node": "b", "overlay": "r"}),
        ("blockdev-snapshot", {"node": "o", "overlay": "o"}),
        ("blockdev-snapshot", {"node": "b", "overlay": "o"}),
        ("blockdev-snapshot", {"node": "b", "overlay": "o"}),
        ("blockdev-snapshot", {"node": "o", "overlay": "b"}),
        ("query-named-block-nodes", {}),
        # ... and on top of the node a device uses: the device writes to it now.
        ("blockdev-add", {"driver": "qcow2", "node-name": "o2", "backing": None,
                          "file": file("o2.qcow2")}),
        ("blockdev-snapshot", {"node": "hd", "overlay": "o2"}),
        ("query-block", {}),
        ("blockdev-del", {"node-name": "b"}),
        ("blockdev-del", {"node-name": "rf"}),
        ("blockdev-del", {"node-name": "nope"}),
        ("blockdev-del", {"node-name": "disk0"}),
        ("blockdev-del", {"node-name": "o2"}),
        ("blockdev-del", {"node-name": "hd"}),
        # A node referred to by name as another node's file child.
        ("blockdev-add", {"driver": "file", "node-name": "f", "filename": str(d / "f.img")}),
        ("blockdev-add", {"driver": "raw", "node-name": "rr", "file": "f"}),
        ("blockdev-del", {"node-name": "f"}),
        ("blockdev-del", {"node-name": "rr"}),
        ("blockdev-del", {"node-name": "f"}),
        ("blockdev-del", {"node-name": "r"}),
        ("blockdev-del", {"node-name": "rf"}),
        ("blockdev-del", {"node-name": "o"}),
        ("blockdev-del", {"node-name": "b"}),
        # A node added at run time as the base of blockdev-snapshot-sync, and as a
        # backing node by reference.
        ("blockdev-add", {"driver": "raw", "node-name": "n", "file": file("n.img")}),
        ("blockdev-snapshot-sync", {"node-name": "n", "snapshot-file": str(d / "s.qcow2"),
                                    "snapshot-node-name": "s"}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "b", "backing": "n",
                          "file": file("b.qcow2")}),
        ("query-named-block-nodes", {}),
        ("blockdev-del", {"node-name": "n"}),
        ("blockdev-del", {"node-name": "s"}),
        ("blockdev-del", {"node-name": "b"}),
        ("query-named-block-nodes", {}),
    ]


def _shape(command: str, reply: object, directory: Path) -> object:
    """The reply with what differs by design left out: automatic node names
    (QEMU's have random digits), sizes on disk, the temporary directory, and the
    filename of a node whose backing node was set at run time (QEMU's is a json:
    pseudo-filename there, which llvmtcg does not build)."""
    if command == "query-named-block-nodes":
        assert isinstance(reply, list)
        reply = [{key: node.get(key) for key in (
            "node-name", "drv", "ro", "backing_file", "backing_file_depth")}
            for node in reply]
    elif command == "query-block":  # QEMU's default empty drives (floppy0...) left out
        assert isinstance(reply, list)
        reply = [{"device": b["device"], "qdev": b.get("qdev"),
                  **{key: b["inserted"].get(key) for key in (
                      "node-name", "drv", "backing_file", "backing_file_depth")}}
                 for b in reply if "inserted" in b]
    text = (reply if isinstance(reply, str) else repr(reply)).replace(str(directory), "DIR")
    return re.sub(r"#block\d+", "#blockN", text)


def _run(directory: Path, qemu: bool) -> list[object]:
    socket_path = Path(f"/tmp/llvmtcg-bdadd-{os.getpid()}-{time.monotonic_ns()}.sock")
    program = (["qemu-system-riscv64"] if qemu else
               [sys.executable, "-m", "launcher.system_riscv64"])
    proc = subprocess.Popen(
        [*program, "-M", "virt", "-bios", "none", "-display", "none", "-S",
         "-serial", "null", "-monitor", "none",
         "-qmp", f"unix:{socket_path},server=on,wait=off",
         "-blockdev", f"driver=raw,node-name=hd,file.driver=file,"
                      f"file.filename={directory / 'hd.img'}",
         "-drive", f"if=none,id=disk0,format=raw,file={directory / 'disk0.img'}",
         "-device", "virtio-blk-device,drive=hd"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=ENV, cwd=directory)
    replies: list[object] = []

    async def talk() -> None:
        client = QMPClient("test")
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await client.connect(str(socket_path))
        for command, arguments in _steps(directory):
            try:
                reply = await client.execute(command, arguments)
            except ExecuteError as exc:
                reply = f"{exc.error_class}: {exc}"
            replies.append((command, _shape(command, reply, directory)))
        await quit_qmp(client)

    try:
        asyncio.run(talk())
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        socket_path.unlink(missing_ok=True)
    return replies


def test_blockdev_add_del_and_snapshot_as_qemu(tmp_path: Path) -> None:
    ours_dir, qemu_dir = tmp_path / "ours", tmp_path / "qemu"
    for directory in (ours_dir, qemu_dir):
        directory.mkdir()
        _images(directory)
    ours = _run(ours_dir, qemu=False)
    replies = dict(enumerate(ours))
    # What the sequence shows, asserted on our replies (QEMU's are compared below).
    assert replies[0] == ("blockdev-add", "{}")
    assert replies[1] == ("blockdev-add", "GenericError: Duplicate nodes with node-name='b'")
    assert replies[2][1] == "GenericError: Parameter 'driver' does not accept value 'foo'"
    assert replies[4][1] == "GenericError: 'node-name' must be specified for the root node"
    assert replies[7][1] == "GenericError: node-name=disk0 is conflicting with a device id"
    assert replies[18][1] == "{}"  # blockdev-snapshot b -> o
    assert "'node-name': 'o', 'drv': 'qcow2', 'ro': False, 'backing_file': 'DIR/b.qcow2'" \
        in str(replies[21][1])
    assert "'node-name': 'b', 'drv': 'qcow2', 'ro': True" in str(replies[21][1])
    assert "'device': '', 'qdev': '/machine/peripheral-anon/device[0]', " \
           "'node-name': 'o2'" in str(replies[24][1])
    assert replies[25][1] == "GenericError: Node 'b' is busy: node is used as backing hd " \
                             "of 'o'"
    assert replies[33][1] == "GenericError: Block device f is in use"
    assert "'node-name': 'b', 'drv': 'qcow2', 'ro': False, 'backing_file': 'DIR/n.img'" \
        in str(replies[43][1])
    for image in ("s.qcow2", "o.qcow2", "o2.qcow2", "b.qcow2"):
        assert subprocess.run(["qemu-img", "check", "-q", str(ours_dir / image)]).returncode == 0
    if shutil.which("qemu-system-riscv64") is None:
        pytest.skip("qemu-system-riscv64 (Debian qemu-system-misc) is not installed")
    assert ours == _run(qemu_dir, qemu=True)
