"""Linux 6.1 (BusyBox initramfs) on virtio-net with user-mode networking: udhcpc gets
10.0.2.15 from slirp's DHCP server, the guest pings the gateway and fetches a page from
an HTTP server on the host's loopback through 10.0.2.2, and the test fetches a page
from the guest's busybox httpd through a hostfwd port. Slow (a Linux boot)."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pexpect
import pytest

from tests.machines.support import IMAGES, needs_images
from tests.net.test_net_options import needs_slirp
from tests.system.console import spawn_llvmtcg

pytestmark = [pytest.mark.slow, needs_images, needs_slirp]
BOOT_TIMEOUT = 3600  # per step, as tests/system/test_linux.py: minutes when loaded
PROMPT = r"[#$] "
# udhcpc runs this script with the lease in its environment.
DHCP_SCRIPT = ("printf '#!/bin/sh\\n[ \"$1\" = bound ] && ifconfig $interface $ip netmask "
               "$subnet && route add default gw $router && echo LEASE-$ip\\n' > /tmp/s; "
               "chmod +x /tmp/s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def host_server() -> Iterator[int]:
    """An HTTP server on the host's 127.0.0.1 answering every GET with a known page."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
            body = b"page-from-the-host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, timeout: float) -> bytes:
    """GET ``url``, retrying while the guest's server is not answering yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return reply.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_dhcp_ping_wget_and_hostfwd(host_server: int) -> None:
    port = free_port()
    console = spawn_llvmtcg(
        "-M", "virt", "-m", "256M", "-nographic", "-bios", str(IMAGES / "fw_jump.bin"),
        "-kernel", str(IMAGES / "Image"), "-append", "console=ttyS0",
        "-initrd", str(IMAGES / "initramfs.cpio.gz"),
        "-netdev", f"user,id=unet,hostfwd=tcp:127.0.0.1:{port}-:8080",
        "-device", "virtio-net-device,netdev=unet", timeout=BOOT_TIMEOUT)
    console.logfile_read = sys.stdout  # the console, shown when the test fails
    try:
        console.expect("BOOT-OK")
        console.expect(PROMPT)
        console.sendline(f"{DHCP_SCRIPT}; ifconfig eth0 up; udhcpc -i eth0 -s /tmp/s -q -t 20")
        console.expect("LEASE-10.0.2.15")
        console.expect(PROMPT)
        console.sendline("ping -c 2 10.0.2.2")
        console.expect("2 packets received")
        console.expect(PROMPT)
        console.sendline(f"wget -q -O - http://10.0.2.2:{host_server}/ && echo WGET-OK")
        console.expect("page-from-the-host")
        console.expect("WGET-OK")
        console.expect(PROMPT)
        console.sendline("mkdir -p /www && echo page-from-the-guest > /www/index.html && "
                         "httpd -p 8080 -h /www && echo HTTPD-UP")
        console.expect("HTTPD-UP")
        assert fetch(f"http://127.0.0.1:{port}/index.html", 600) == b"page-from-the-guest\n"
        console.sendline("poweroff -f")
        console.expect(pexpect.EOF, timeout=600)
    finally:
        console.close(force=True)


def test_host_mtu_mq_and_guestfwd() -> None:
    """Linux takes virtio-net's MTU from host_mtu, probes the device with mq=on (one
    pair and the control queue: VQ_PAIRS_SET is answered) and reaches a guestfwd
    command through 10.0.2.100."""
    console = spawn_llvmtcg(
        "-M", "virt", "-m", "256M", "-nographic", "-bios", str(IMAGES / "fw_jump.bin"),
        "-kernel", str(IMAGES / "Image"), "-append", "console=ttyS0",
        "-initrd", str(IMAGES / "initramfs.cpio.gz"),
        "-netdev", "user,id=unet,guestfwd=tcp:10.0.2.100:1234-cmd:/bin/echo from-guestfwd",
        "-device", "virtio-net-device,netdev=unet,host_mtu=1400,mq=on", timeout=BOOT_TIMEOUT)
    console.logfile_read = sys.stdout  # the console, shown when the test fails
    try:
        console.expect("BOOT-OK")
        console.expect(PROMPT)
        console.sendline("echo MTU-$(cat /sys/class/net/eth0/mtu) "
                         "QUEUES-$(ls /sys/class/net/eth0/queues | tr '\\n' ' ')")
        console.expect(r"MTU-1400 QUEUES-rx-0 tx-0")
        console.expect(PROMPT)
        console.sendline("ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && "
                         "nc 10.0.2.100 1234 </dev/null")
        console.expect("from-guestfwd")
        console.expect(PROMPT)
        console.sendline("poweroff -f")
        console.expect(pexpect.EOF, timeout=600)
    finally:
        console.close(force=True)
