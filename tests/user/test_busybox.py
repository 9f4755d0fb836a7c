"""The static riscv64 BusyBox from ../shared/images/riscv64: applets and shell scripts
give the same output and exit status under llvmtcg-user as under qemu-riscv64.

Applets a script runs by name are found through PATH: for llvmtcg-user a directory of
symlinks to busybox (so the guest's execve re-enters the emulator); for qemu-riscv64,
which cannot follow a guest execve without binfmt_misc, wrapper scripts.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.user.support import BUSYBOX, assert_same, needs_qemu, qemu_wrapper, run_llvmtcg, run_qemu

pytestmark = [
    needs_qemu,
    pytest.mark.skipif(not BUSYBOX.exists(),
                       reason=f"BusyBox image not found at {BUSYBOX} (../shared/images)"),
]

APPLETS = ["cat", "sort", "uniq", "sed", "awk", "grep", "wc", "md5sum", "sha256sum", "find",
           "tar", "gzip", "gunzip", "ls", "echo", "printf", "tr", "head", "tail", "true",
           "false", "seq", "cut", "expr"]
FIXED_TIME = 1_000_000_000  # 2001-09-09 01:46:40 UTC

INPUT = "banana\napple\ncherry\napple\nBanana\ndate\n\nbanana\nx-ray\nzebra apple\n"
DATA = "alpha:1\nbeta:2\ngamma:3.5\ndelta:10\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Input files, a tree with fixed times, and the two PATH directories."""
    base = tmp_path_factory.mktemp("busybox")
    work = base / "work"
    work.mkdir()
    (work / "input.txt").write_text(INPUT)
    (work / "data.txt").write_text(DATA)
    tree = work / "tree"
    for rel, text in (("a.txt", "first\n"), ("b.bin", "\x00\x01\x02" * 100),
                      ("sub/c.txt", "nested\n"), ("sub/deeper/d.txt", "deepest\n" * 50)):
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tree / "link").symlink_to("a.txt")
    (tree / "a.txt").chmod(0o640)
    for dirpath, dirnames, filenames in os.walk(tree, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (FIXED_TIME, FIXED_TIME),
                     follow_symlinks=False)
        os.utime(dirpath, (FIXED_TIME, FIXED_TIME))
    ours_bin, qemu_bin = base / "bin-llvmtcg", base / "bin-qemu"
    ours_bin.mkdir()
    qemu_bin.mkdir()
    for applet in APPLETS + ["sh"]:
        (ours_bin / applet).symlink_to(BUSYBOX)
        wrapper = qemu_bin / applet
        qemu_wrapper(wrapper, BUSYBOX)
        wrapper.write_text(wrapper.read_text().replace(f'"{BUSYBOX}"', f'"{BUSYBOX}" {applet}'))
    return work, ours_bin, qemu_bin


def _env(bindir):
    return {"PATH": str(bindir), "TZ": "UTC", "LANG": "C", "HOME": "/nonexistent-home"}


def compare(world, args, stdin=None, name=None):
    work, ours_bin, qemu_bin = world
    ours = run_llvmtcg(BUSYBOX, args, cwd=work, env=_env(ours_bin), stdin=stdin)
    reference = run_qemu(BUSYBOX, args, cwd=work, env=_env(qemu_bin), stdin=stdin)
    assert_same(ours, reference, name or " ".join(args))
    return ours


AWK_PROGRAM = ('BEGIN { FS = ":" } { total += $2; printf "%-6s %5.2f %s\\n", $1, $2 * 1.5, '
               'toupper(substr($1, 1, 2)) } END { print "sum", total, "avg", total / NR }')
CASES = {
    "echo": (["echo", "hello", "world", "-n"], None),
    "cat": (["cat", "input.txt", "data.txt"], None),
    "cat-stdin": (["cat", "-n", "-"], INPUT.encode()),
    "sort": (["sort", "input.txt"], None),
    "sort-flags": (["sort", "-t:", "-k2", "-n", "-r", "data.txt"], None),
    "uniq": (["uniq", "-c"], "".join(sorted(INPUT.splitlines(True))).encode()),
    "sed": (["sed", "-e", "s/an/AN/g", "-e", "/^$/d", "-e", "3q", "input.txt"], None),
    "awk": (["awk", AWK_PROGRAM, "data.txt"], None),
    "grep": (["grep", "-n", "-i", "-e", "^b", "-e", "ray", "input.txt"], None),
    "grep-nomatch": (["grep", "-q", "nothing-like-this", "input.txt"], None),
    "wc": (["wc", "input.txt", "data.txt"], None),
    "md5sum": (["md5sum", "input.txt", "data.txt", "tree/b.bin"], None),
    "sha256sum": (["sha256sum", "input.txt", "tree/sub/deeper/d.txt"], None),
    "find": (["find", "tree", "-name", "*.txt", "-o", "-type", "d"], None),
    "ls-l": (["ls", "-l", "tree", "tree/sub"], None),
    "ls-la-full-time": (["ls", "-la", "--full-time", "tree/sub/deeper"], None),
    "seq": (["seq", "1", "3", "20"], None),
    "expr": (["expr", "7", "*", "6"], None),
    "missing-file": (["cat", "no-such-file"], None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_applet(world, case):
    args, stdin = CASES[case]
    compare(world, args, stdin, case)


def test_gzip_round_trip(world):
    data = INPUT.encode() * 100
    packed = compare(world, ["gzip", "-c"], data, "gzip").stdout
    unpacked = compare(world, ["gunzip", "-c"], packed, "gunzip").stdout
    assert unpacked == data


def test_tar_round_trip(world, tmp_path):
    work = world[0]
    archive = compare(world, ["tar", "-czf", "-", "tree"], None, "tar -czf").stdout
    shutil.copy(work / "input.txt", tmp_path / "input.txt")
    listing = compare(world, ["tar", "-tvzf", "-"], archive, "tar -tvzf")
    assert b"tree/sub/deeper/d.txt" in listing.stdout


SCRIPT_BUILTINS = r"""
set -e
sum=0
for i in 1 2 3 4 5 6 7 8 9 10; do sum=$((sum + i * i)); done
echo "sum of squares: $sum"
n=0
while [ $n -lt 5 ]; do n=$((n + 1)); done
echo "counted to $n"
greet() { printf '%s, %s!\n' "$1" "${2:-nobody}"; return 3; }
greet hello world || echo "greet returned $?"
case "banana" in b*a) echo "case matched";; *) echo "no match";; esac
s="The quick brown fox"
echo "${#s} ${s#The } ${s%fox} ${s/quick/slow}"
read -r first rest <<END
alpha beta gamma
END
echo "first=$first rest=$rest"
x=$(echo nested $(echo deeper))
echo "$x"
test -f input.txt && echo "input exists"
[ -d tree ] && echo "tree is a directory"
( exit 4 ) || echo "subshell exit $?"
echo done
"""

SCRIPT_PIPES = r"""
sort input.txt | uniq -c | sort -rn | head -n 3
for i in 1 2 3 4 5; do echo "line $i"; done | wc -l
cat input.txt | grep -c an
echo "a b c" | tr ' ' '\n' | tail -n 1
seq 1 10 | awk '{ s += $1 } END { print "awk sum", s }'
printf 'x\ny\n' | sed 's/^/> /'
false | true; echo "pipeline status $?"
cut -d: -f1 data.txt | sort -r
echo "expr says $(expr 2 + 3)"
exit 7
"""


def test_sh_builtins(world):
    compare(world, ["sh", "-c", SCRIPT_BUILTINS], None, "sh builtins")


def test_sh_pipelines(world):
    ours = compare(world, ["sh", "-c", SCRIPT_PIPES], None, "sh pipelines")
    assert ours.returncode == 7


def test_sh_from_stdin(world):
    compare(world, ["sh", "-s"], b"echo from stdin; ls tree | wc -l; exit 2\n", "sh -s")
