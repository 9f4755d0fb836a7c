"""Debian's dynamic arm64 programs — coreutils and ``python3 -c`` — under llvmtcg-user
with ``-L`` a sysroot made from Debian's arm64 packages at test time
(tests/aarch64/debian.py), compared with qemu-aarch64 on the same sysroot: stdout,
stderr and the exit status must be the same. Skipped only when apt cannot download the
packages (no arm64 architecture, offline)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.aarch64.debian import DebianSysroot, SysrootUnavailable, debian_sysroot
from tests.aarch64.support import needs_qemu, run_qemu
from tests.user.support import Run, run_llvmtcg

pytestmark = [needs_qemu]

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "LANG": "C", "TZ": "UTC"}
# run_llvmtcg puts these in the emulator's environment; the guest must not see them.
EMULATOR_ONLY = ["-U", "PYTHONPATH", "-U", "LLVMTCG_CACHE_DIR"]
MTIME = 1_000_000_000  # 2001-09-09 01:46:40 UTC


@pytest.fixture(scope="module")
def sysroot() -> DebianSysroot:
    try:
        return debian_sysroot()
    except SysrootUnavailable as e:
        pytest.skip(f"no Debian arm64 sysroot: {e} (dpkg --add-architecture arm64; "
                    "apt-get update)")


def make_tree(root: Path) -> None:
    """A small tree with fixed contents and mtimes: files, a subdirectory, a symlink."""
    (root / "sub").mkdir()
    (root / "fruit.txt").write_text("pear\napple\nzoo\nbanana\napple\n")
    (root / "bytes.bin").write_bytes(bytes(range(256)) * 4)
    (root / "sub" / "note").write_text("x\n")
    (root / "link").symlink_to("fruit.txt")
    for path in ("fruit.txt", "bytes.bin", "sub/note", "sub", "."):
        os.utime(root / path, (MTIME, MTIME))
    os.utime(root / "link", (MTIME, MTIME), follow_symlinks=False)


def compare_debian(sysroot: DebianSysroot, prog: Path, args: list[str], cwd: Path,
                   stdin: bytes | None = None) -> Run:
    """Run ``prog`` under both emulators with ``-L sysroot`` in a fresh copy of the tree;
    stdout, stderr and the exit status must agree."""
    # Both trees first, so that each run sees the same parent directory (ls -la).
    for emulator in ("llvmtcg", "qemu"):
        (cwd / emulator).mkdir()
        make_tree(cwd / emulator)
    os.utime(cwd, (MTIME, MTIME))
    ours = run_llvmtcg(prog, args, options=["-L", str(sysroot.root), *EMULATOR_ONLY],
                       cwd=cwd / "llvmtcg", env=ENV, stdin=stdin)
    reference = run_qemu(prog, args, options=["-L", str(sysroot.root)], cwd=cwd / "qemu",
                         env=ENV, stdin=stdin)
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        reference.stdout, reference.stderr, reference.returncode), (
        f"{prog.name} {' '.join(args)}: llvmtcg-user and qemu-aarch64 differ\n"
        f"=== llvmtcg-user: {ours.describe()}\n=== qemu-aarch64: {reference.describe()}")
    return ours


COREUTILS = [
    ("ls", ["-l", "--time-style=+%Y-%m-%d %H:%M:%S", "-a"], None, b"link -> fruit.txt"),
    ("ls", ["-lRn", "--full-time", "--color=always"], None, b"./sub:"),
    ("sort", ["-t", "a", "-k", "2", "fruit.txt", "-"], b"cherry\nkiwi\n", b"banana"),
    ("sha256sum", ["fruit.txt", "bytes.bin"], None, b"  bytes.bin"),
    ("wc", ["fruit.txt", "bytes.bin", "-"], b"one two\nthree\n", b" total"),
    ("date", ["-d", "@0", "-u", "+%A %d %B %Y %T %Z %s"], None, b"Thursday 01 January 1970"),
    ("seq", ["-s", ",", "-w", "1", "3", "20"], None, b"01,04,"),
    ("cat", ["-nA", "fruit.txt", "no-such-file"], None, b"no-such-file"),
    ("head", ["-c", "40", "bytes.bin"], None, None),
    ("tr", ["-s", "a-z", "A-Z"], b"hello  wooorld\n", b"HELO  WORLD"),
    ("expr", ["7", "*", "6", "+", "1", ":", "4"], None, None),
    ("expr", ["substr", "coreutils", "5", "5"], None, b"utils"),
    ("stat", ["-c", "%n %s %a %F %Y %h", "fruit.txt", "sub", "link"], None, b"symbolic link"),
    ("factor", ["1234567890123", "18446744073709551557"], None, b"1234567890123: 3 3541 116216501"),
    ("printf", ["%.3f|%x|%-5s|%e\\n", "3.14159", "255", "ok", "1e-300"], None, b"3.142|ff"),
    ("du", ["-ab", "."], None, b"./sub/note"),
    ("od", ["-A", "x", "-t", "x1z", "-N", "32", "bytes.bin"], None, b"000020"),
    ("cut", ["-c", "2-4"], b"abcdef\n12345\n", b"bcd"),
    ("sort", ["-n", "-r"], b"10\n9\n-3\n100\n2.5\n", b"100\n10\n9\n2.5\n-3"),
    ("ls", ["-l", "no-such-file"], None, b"No such file"),
]


@pytest.mark.parametrize("name, args, stdin, expect", COREUTILS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(COREUTILS)])
def test_coreutils(sysroot, tmp_path, name, args, stdin, expect):
    out = compare_debian(sysroot, sysroot.bin(name), args, tmp_path, stdin)
    if expect is not None:
        assert expect in out.stdout + out.stderr


def test_coreutils_env(sysroot, tmp_path):
    """The guest's environment is the emulator's own, less what -U removes: exactly
    the variables qemu-aarch64 gives (it lists them in reverse order, Linux in order)."""
    prog = sysroot.bin("env")
    ours = run_llvmtcg(prog, [], options=["-L", str(sysroot.root), *EMULATOR_ONLY],
                       cwd=tmp_path, env=ENV)
    reference = run_qemu(prog, [], options=["-L", str(sysroot.root)], cwd=tmp_path, env=ENV)
    assert ours.returncode == reference.returncode == 0
    assert ours.stdout.splitlines() == [f"{k}={v}".encode() for k, v in ENV.items()]
    assert sorted(ours.stdout.splitlines()) == sorted(reference.stdout.splitlines())


# One python3 run (its start-up under emulation costs seconds) checking a bit of
# everything; it ends with an uncaught exception, so stderr and the exit status (1)
# are compared too.
PYTHON_PROGRAM = r'''
import sys, platform, hashlib, json, re, struct, zlib, math, os
print(sys.platform, platform.machine(), sys.byteorder, sys.maxsize, sys.version_info[:2])
print(2**200 // 3**50, pow(7, 10**6, 10**9 + 7), (-13) // 4, -13 % 4, divmod(-7, 2), 10**40 % 97)
print(1 / 3, 0.1 + 0.2, f"{math.pi:.15f} {1e300 * 10} {-0.0} {2.5e-310!r}", round(2.675, 2))
print(math.sqrt(2), math.exp(1), math.log(10), math.sin(1.0), math.fsum([0.1] * 10),
      float.hex(1 / 3), f"{12345.6789:,.2f} {1/7:.20e} {7.0:g}", float("nan") == float("nan"))
print(hashlib.sha256(b"abc" * 1000).hexdigest(), hashlib.md5(b"x").hexdigest(),
      hashlib.sha1(b"").hexdigest(), hashlib.blake2b(b"k", digest_size=8).hexdigest())
print(json.dumps({"b": [1, 2.5, None, True], "a": "\u00e9"}, sort_keys=True),
      json.loads('{"x": [1e3, "y"]}'))
print(re.findall(r"(\w+)@(\w+)\.com", "a@b.com, cc@dd.com x@y.org"),
      re.sub(r"\d+", lambda m: str(int(m.group()) * 2), "a1b22c333"))
data = [(i * 7919) % 1000 for i in range(2000)]
print(sorted(data)[::400], sorted(["pear", "Apple", "zoo", "banana"], key=str.lower))
print(struct.pack("<iqd3s", -2, 1 << 40, 1.5, b"ab").hex(),
      struct.unpack(">HI", bytes(range(1, 7))))
blob = zlib.compress(b"hello world " * 100, 9)
print(len(blob), zlib.crc32(blob), zlib.decompress(blob)[:11], zlib.adler32(b"abc"))
class Shape:
    def __init__(self, n): self.n = n
    def __repr__(self): return f"Shape({self.n})"
class Oops(Exception): pass
def gen(n):
    for i in range(n):
        if i == 5: raise Oops(f"at {i}")
        yield Shape(i * i)
try:
    list(gen(10))
except Oops as e:
    print("caught", e, type(e).__mro__[1].__name__)
print([s for s in gen(4)], {i: chr(65 + i) for i in range(3)}, sum(x for x in range(10**5)))
print(sorted(os.listdir(".")), os.path.getsize("fruit.txt"), open("link").read().split())
sys.stdout.flush()
raise Oops("the end")
'''


def test_python3(sysroot, tmp_path):
    out = compare_debian(sysroot, sysroot.python, ["-c", PYTHON_PROGRAM], tmp_path)
    assert out.returncode == 1
    assert out.stdout.startswith(b"linux aarch64 little 9223372036854775807")
    assert b"caught at 5 Exception" in out.stdout
    assert out.stderr.endswith(b"\nOops: the end\n")


# The process, thread and host-interface side of the runtime, in one python3 -I run:
# threads, fork, a child program, signals, sockets, mmap, pipes, ctypes calling glibc,
# the C extension modules of libpython3.X-stdlib (sqlite3, lzma, bz2, _hashlib),
# /proc/self, rlimits, sysconf, errno values and deep recursion.
PYTHON_SYSTEM_PROGRAM = r"""
import os, sys, threading, queue, subprocess, signal, select, socket, mmap, tempfile
import ctypes, sqlite3, lzma, bz2, hashlib, resource, platform, fcntl, errno, random
print(sys.argv, sys.flags.isolated, os.readlink("/proc/self/exe") == sys.executable)
print(open("/proc/self/cmdline", "rb").read().split(b"\0")[1:3], os.uname().machine)
r = []
def work(i): r.append(sum(range(i * 10000)))
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]; print(sorted(r))
q = queue.Queue(); threading.Thread(target=lambda: q.put("from thread")).start()
print(q.get(timeout=30))
print(subprocess.run(["/bin/echo", "child"], capture_output=True).stdout)
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitpid(pid, 0)[1] >> 8)
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s)); os.kill(os.getpid(), signal.SIGUSR1)
print("signal", got)
a, b = socket.socketpair(); a.sendall(b"ping")
print(select.select([b], [], [], 5)[0] == [b], b.recv(10))
with tempfile.TemporaryFile() as f:
    f.write(b"x" * 8192); f.flush()
    m = mmap.mmap(f.fileno(), 8192); print(m[:4], len(m)); m.close()
rd, wr = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
print("pipe2", os.get_blocking(rd), os.get_inheritable(wr))
try:
    os.read(rd, 1)
except BlockingIOError as e:
    print("EAGAIN", e.errno)
fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
print("dirfd", fcntl.fcntl(fd, fcntl.F_GETFD), sorted(os.listdir(fd)))
for path, mode in (("/nonexistent/x", "r"), (".", "w")):
    try:
        open(path, mode)
    except OSError as e:
        print("errno", e.errno, errno.errorcode[e.errno], e.strerror)
print("ctypes", ctypes.CDLL(None).strlen(b"hello"))
con = sqlite3.connect(":memory:"); con.execute("create table t(x)")
con.executemany("insert into t values (?)", [(i,) for i in range(100)])
print("sqlite", con.execute("select sum(x), avg(x) from t").fetchone())
print(lzma.decompress(lzma.compress(b"abc" * 100))[:6],
      bz2.decompress(bz2.compress(b"xyz" * 100))[:6])
print(hashlib.sha3_256(b"x").hexdigest()[:16], hashlib.new("sha512", b"x").hexdigest()[:16])
print(resource.getrlimit(resource.RLIMIT_NOFILE), platform.libc_ver(), platform.architecture())
print(os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK"))
random.seed(42); print(random.random(), random.sample(range(100), 5))
def rec(n): return rec(n + 1)
try:
    rec(0)
except RecursionError as e:
    print("recursion", e)
print(len(bytearray(50 * 1024 * 1024)), "done")
"""


def test_python3_system(sysroot, tmp_path):
    out = compare_debian(sysroot, sysroot.python, ["-I", "-c", PYTHON_SYSTEM_PROGRAM, "a1", "b 2"],
                         tmp_path)
    assert out.stdout.startswith(b"['-c', 'a1', 'b 2'] 1 True\n")
    for line in (b"from thread", b"b'child\\n'", b"fork 7", b"signal [10]", b"True b'ping'",
                 b"pipe2 False False", b"ctypes 5", b"sqlite (4950, 49.5)", b"done"):
        assert line in out.stdout
