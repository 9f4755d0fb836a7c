"""docs/managing.md's examples run: its HMP session over a socket and its QMP
conversation, against the real launcher running OpenSBI."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from pexpect.fdpexpect import fdspawn

from tests.machines.support import needs_images
from tests.system.test_monitor import OURS, RawQmp, run_dir, start, wait_for_path

DOC = Path(__file__).resolve().parents[2] / "docs" / "managing.md"
__all__ = ["run_dir"]  # the fixture, imported for the tests below


def block(language: str) -> list[str]:
    match = re.search(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"no ```{language} block in {DOC}"
    return match.group(1).splitlines()


def test_the_examples_are_there() -> None:
    assert block("hmp")[0] == "(qemu) info status"
    assert block("qmp")[1] == '-> {"execute": "qmp_capabilities"}'


@needs_images
def test_hmp_session(run_dir: Path) -> None:
    sock_path = run_dir / "mon.sock"
    proc = start(OURS, "-serial", "null", "-monitor", f"unix:{sock_path},server=on,wait=off")
    try:
        wait_for_path(sock_path, proc)
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(sock_path))
        mon = fdspawn(sock.fileno(), timeout=30)
        mon.expect_exact("(qemu) ")
        for line in block("hmp"):
            if line.startswith("(qemu) "):
                mon.send(line[len("(qemu) "):] + "\r")
                mon.expect_exact(line[len("(qemu) "):] + "\r\n")  # the echo
            else:
                mon.expect_exact(line + "\r\n")
        mon.expect_exact("(qemu) ")
        sock.close()
    finally:
        proc.kill()
        proc.wait()


def _normal(message: dict) -> dict:
    if "timestamp" in message:
        message = {**message, "timestamp": {"seconds": 0, "microseconds": 0}}
    return message


@needs_images
def test_qmp_conversation(run_dir: Path) -> None:
    sock = run_dir / "qmp.sock"
    proc = start(OURS, "-serial", "null", "-qmp", f"unix:{sock},server=on,wait=off")
    try:
        wait_for_path(sock, proc)
        client = RawQmp(sock)
        lines = block("qmp")
        index = 0
        while index < len(lines):
            line = lines[index]
            if line.startswith("-> "):
                client.send(line[3:].encode())
                index += 1
                continue
            # The replies and events up to the next request, in any order between them.
            expected = []
            while index < len(lines) and lines[index].startswith("<- "):
                expected.append(_normal(json.loads(lines[index][3:])))
                index += 1
            got = [_normal(client.message()) for _ in expected]
            assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, expected))
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
