"""The crypto extension's functions (frontends/aarch64/crypto.py) used the way Linux's
arm64 aes-ce and sha2-ce code uses the instructions, checked against FIPS-197's example
and hashlib; the random-instruction test compares the instructions with qemu-aarch64."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest

from llvmtcg.frontends.aarch64 import crypto
from llvmtcg.ir import Builder, IRError
from llvmtcg.ir.lower import crypto as crypto_rules
from llvmtcg.ir.ops import OPS
from llvmtcg.runtime.native import baseline
from tests.aarch64 import random_insns
from tests.aarch64.support import build, needs_cc, needs_qemu, run_qemu
from tests.core.support import make_cpu
from tests.core.test_fp_ops import TIERS, FpFrontend
from tests.core.test_vector_ops import Q, kernel
from tests.user.support import TEST_ENV, run_llvmtcg

M128 = (1 << 128) - 1


def _expand_key(key: bytes) -> list[int]:
    """AES-128 round keys (FIPS-197 5.2), as 128-bit little-endian register values."""
    words = [key[i:i + 4] for i in range(0, 16, 4)]
    rcon = 1
    for i in range(4, 44):
        t = words[i - 1]
        if i % 4 == 0:
            t = bytes(crypto.SBOX[b] for b in t[1:] + t[:1])
            t = bytes([t[0] ^ rcon]) + t[1:]
            rcon = crypto._gf_mul(rcon, 2)
        words.append(bytes(a ^ b for a, b in zip(words[i - 4], t, strict=True)))
    return [int.from_bytes(b"".join(words[4 * r:4 * r + 4]), "little") for r in range(11)]


def test_aes128_encrypts_and_decrypts_the_fips197_example():
    keys = _expand_key(bytes(range(16)))
    plain = int.from_bytes(bytes.fromhex("00112233445566778899aabbccddeeff"), "little")
    state = plain
    for r in range(9):  # AESE (AddRoundKey, ShiftRows, SubBytes) then AESMC
        state = crypto.aesmc(crypto.aese(state, keys[r]))
    state = crypto.aese(state, keys[9]) ^ keys[10]
    assert state.to_bytes(16, "little").hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"
    # The equivalent inverse cipher: AESD then AESIMC, with AESIMC'd round keys.
    state = crypto.aesimc(crypto.aesd(state, keys[10]))
    for r in range(9, 1, -1):
        state = crypto.aesimc(crypto.aesd(state, crypto.aesimc(keys[r])))
    state = crypto.aesd(state, crypto.aesimc(keys[1])) ^ keys[0]
    assert state == plain


def _sha256_block(block: bytes, digest: list[int]) -> list[int]:
    """One SHA-256 compression with SHA256H/H2/SU0/SU1 (as Linux's sha2-ce-core.S)."""
    k = [int(x, 16) for x in (
        "428a2f98 71374491 b5c0fbcf e9b5dba5 3956c25b 59f111f1 923f82a4 ab1c5ed5 "
        "d807aa98 12835b01 243185be 550c7dc3 72be5d74 80deb1fe 9bdc06a7 c19bf174 "
        "e49b69c1 efbe4786 0fc19dc6 240ca1cc 2de92c6f 4a7484aa 5cb0a9dc 76f988da "
        "983e5152 a831c66d b00327c8 bf597fc7 c6e00bf3 d5a79147 06ca6351 14292967 "
        "27b70a85 2e1b2138 4d2c6dfc 53380d13 650a7354 766a0abb 81c2c92e 92722c85 "
        "a2bfe8a1 a81a664b c24b8b70 c76c51a3 d192e819 d6990624 f40e3585 106aa070 "
        "19a4c116 1e376c08 2748774c 34b0bcb5 391c0cb3 4ed8aa4a 5b9cca4f 682e6ff3 "
        "748f82ee 78a5636f 84c87814 8cc70208 90befffa a4506ceb bef9a3f7 c67178f2").split()]
    pack = lambda ws: sum(w << (32 * i) for i, w in enumerate(ws))  # noqa: E731
    w = [pack(struct.unpack(">4I", block[16 * i:16 * i + 16])) for i in range(4)]
    abcd, efgh = pack(digest[:4]), pack(digest[4:])
    for group in range(16):
        t = sum(((w[0] >> (32 * i) & 0xFFFF_FFFF) + k[4 * group + i] & 0xFFFF_FFFF)
                << (32 * i) for i in range(4))
        saved = abcd
        abcd = crypto.sha256h(abcd, efgh, t)
        efgh = crypto.sha256h2(efgh, saved, t)
        if group < 12:
            w = w[1:] + [crypto.sha256su1(crypto.sha256su0(w[0], w[1]), w[2], w[3])]
        else:
            w = w[1:] + [0]
    abcd0, efgh0 = pack(digest[:4]), pack(digest[4:])
    out = [((abcd >> (32 * i)) + (abcd0 >> (32 * i))) & 0xFFFF_FFFF for i in range(4)]
    out += [((efgh >> (32 * i)) + (efgh0 >> (32 * i))) & 0xFFFF_FFFF for i in range(4)]
    return out


def test_sha256_instructions_hash_abc():
    block = b"abc" + b"\x80" + bytes(52) + struct.pack(">Q", 24)
    iv = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C,
          0x1F83D9AB, 0x5BE0CD19]
    digest = _sha256_block(block, iv)
    assert struct.pack(">8I", *digest) == hashlib.sha256(b"abc").digest()


def test_sha1_instructions_hash_abc():
    block = b"abc" + b"\x80" + bytes(52) + struct.pack(">Q", 24)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    k = (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)
    pack = lambda ws: sum(x << (32 * i) for i, x in enumerate(ws))  # noqa: E731
    w = [pack(struct.unpack(">4I", block[16 * i:16 * i + 16])) for i in range(4)]
    abcd, e = pack(h[:4]), h[4]
    for group in range(20):
        t = sum(((w[0] >> (32 * i) & 0xFFFF_FFFF) + k[group // 5] & 0xFFFF_FFFF) << (32 * i)
                for i in range(4))
        function = (crypto.sha1c, crypto.sha1p, crypto.sha1m, crypto.sha1p)[group // 5]
        next_e = crypto.sha1h(abcd)
        abcd = function(abcd, e, t)
        e = next_e
        w = w[1:] + [crypto.sha1su1(crypto.sha1su0(w[0], w[1], w[2]), w[3])]
    out = [((abcd >> (32 * i)) + h[i]) & 0xFFFF_FFFF for i in range(4)]
    out.append((e + h[4]) & 0xFFFF_FFFF)
    assert struct.pack(">5I", *out) == hashlib.sha1(b"abc").digest()


# -- the crypto vector ops, native, against crypto.py -----------------------------------------

_REFERENCE = {
    "vaese": crypto.aese, "vaesd": crypto.aesd, "vaesmc": crypto.aesmc,
    "vaesimc": crypto.aesimc, "vsha1c": crypto.sha1c, "vsha1p": crypto.sha1p,
    "vsha1m": crypto.sha1m, "vsha1su1": crypto.sha1su1, "vsha256h": crypto.sha256h,
    "vsha256h2": crypto.sha256h2, "vsha256su0": crypto.sha256su0,
    "vsha256su1": crypto.sha256su1,
}


def _pmull_reference(vece: int, high: int, n: int, m: int) -> int:
    n, m = n >> (64 * high) & (1 << 64) - 1, m >> (64 * high) & (1 << 64) - 1
    if vece == 3:
        return crypto.clmul(n, m)
    return sum(crypto.clmul(n >> (8 * i) & 0xFF, m >> (8 * i) & 0xFF) << (16 * i)
               for i in range(8))


def _operands(seed: int, count: int) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    edges = [0, M128, 0x8000_0000_8000_0000_8000_0000_8000_0000,
             0x7FFF_FFFF_7FFF_FFFF_7FFF_FFFF_7FFF_FFFF]
    cases = [(a, b, c) for a in edges for b in edges[:2] for c in edges[1:3]]
    cases += [tuple(rng.getrandbits(128) for _ in range(3)) for _ in range(count)]
    return cases


@pytest.fixture(scope="module", params=["native", "portable"])
def host(request):
    """The host's crypto instructions (if it has them), or the portable lowering."""
    saved = crypto_rules.FEATURES
    if request.param == "portable":
        crypto_rules.FEATURES = crypto_rules.HostCrypto(False, False, False)
    elif not (saved.aes or saved.pclmul or saved.sha):
        pytest.skip("the host has no AES-NI, PCLMULQDQ or SHA-NI")
    yield request.param
    crypto_rules.FEATURES = saved


@pytest.fixture(scope="module", params=list(TIERS))
def machine(request, host):
    # The portable stencils go to a library of their own (in memory: these CPUs have
    # no stencil directory), not the process's library of the host's instructions.
    saved = baseline._LIBRARIES
    if host == "portable":
        baseline._LIBRARIES = {}
    frontend = FpFrontend()
    yield frontend, make_cpu(frontend, **TIERS[request.param])
    baseline._LIBRARIES = saved


@pytest.mark.parametrize("name", sorted(_REFERENCE))
def test_crypto_op_matches_reference(machine, name: str) -> None:
    n_in = OPS[name].n_in
    run = kernel(machine, lambda b: b.vector(name, Q[0], tuple(Q[1:1 + n_in]), 0, 16))
    for operands in _operands(sorted(_REFERENCE).index(name), 40):
        got, _ = run(*operands[:n_in])
        want = _REFERENCE[name](*operands[:n_in])
        assert got == want, f"{name}{tuple(hex(v) for v in operands[:n_in])}: {got:#x}"


@pytest.mark.parametrize("vece", [0, 3])
@pytest.mark.parametrize("high", [0, 1])
def test_pmull_matches_reference(machine, vece: int, high: int) -> None:
    run = kernel(machine, lambda b: b.vector("vpmull", Q[0], (Q[1], Q[2]), vece, 16, high))
    for n, m, _ in _operands(vece * 2 + high, 40):
        got, _ = run(n, m)
        assert got == _pmull_reference(vece, high, n, m), f"{n:#x} {m:#x}"


def test_crypto_op_results_reach_the_destination_only(machine) -> None:
    """In-place use (Vd also an input), as every AESE/AESMC chain does it."""
    def emit(b):
        b.vector("vaese", Q[1], (Q[1], Q[2]), 0, 16)
        b.vector("vaesmc", Q[1], (Q[1],), 0, 16)
        b.vector("vmov", Q[0], (Q[1],), 0, 16)
    run = kernel(machine, emit)
    for d, n, _ in _operands(5, 10):
        got, _ = run(d, n)
        assert got == crypto.aesmc(crypto.aese(d, n))


def test_lowering_sboxes_are_the_reference() -> None:
    assert crypto_rules.sboxes() == (crypto.SBOX, crypto.INV_SBOX)


def test_builder_checks_crypto_lanes() -> None:
    b = Builder(0x1000)
    with pytest.raises(IRError):
        b.vector("vaese", Q[0], (Q[1], Q[2]), 2, 16)
    with pytest.raises(IRError):
        b.vector("vpmull", Q[0], (Q[1], Q[2]), 1, 16, 0)
    with pytest.raises(IRError):
        b.vector("vpmull", Q[0], (Q[1], Q[2]), 3, 16, 2)


# -- the instructions against qemu-aarch64 ----------------------------------------------------

CRYPTO_PATTERNS = ("aese", "aesd", "aesmc", "aesimc", "sha1c", "sha1p", "sha1m", "sha1su0",
                   "sha256h", "sha256h2", "sha256su1", "sha1h", "sha1su1", "sha256su0",
                   "pmull_v")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build(tmp_path_factory.mktemp("aarch64-crypto"), "insn_harness.c")


@needs_cc
@needs_qemu
@pytest.mark.parametrize("tier", ["baseline", "llvm"])
def test_crypto_instructions_match_qemu(harness, tmp_path, tier) -> None:
    """Random register states and encodings (unallocated sizes included) of every
    crypto instruction, on the baseline tier and on LLVM's block tier."""
    known = {p.name: p for p in random_insns.candidate_patterns()}
    cases = random_insns.generate(15, 30 * len(CRYPTO_PATTERNS),
                                  patterns=[known[name] for name in CRYPTO_PATTERNS])
    tests = tmp_path / "tests.bin"
    tests.write_bytes(b"".join(case.packed for case in cases))
    options = ["-cpu", random_insns.REFERENCE_CPU]
    env = dict(TEST_ENV, LLVMTCG_BASELINE="0" if tier == "llvm" else "1")
    ours = run_llvmtcg(harness, [str(tests)], options=options, env=env)
    reference = run_qemu(harness, [str(tests)], options=options)
    assert reference.returncode == 0, reference.describe()
    assert ours.returncode == 0, ours.describe()
    size = random_insns.RESULT.size
    assert len(ours.stdout) == len(reference.stdout) == size * len(cases)
    differences = [random_insns.describe_difference(case, ours.stdout[i * size:(i + 1) * size],
                                                    reference.stdout[i * size:(i + 1) * size])
                   for i, case in enumerate(cases)
                   if ours.stdout[i * size:(i + 1) * size]
                   != reference.stdout[i * size:(i + 1) * size]]
    assert not differences, (f"{len(differences)} of {len(cases)} differ:\n"
                             + "\n".join(differences[:20]))


# -- a guest program: SHA-256, SHA-1, AES-CTR, GHASH and PMULL (bytes) via intrinsics ----------

def _guest_buffer(n: int) -> bytes:
    return bytes((i * 131 + (i >> 8)) & 0xFF for i in range(n))


def _ghash_reference(data: bytes) -> bytes:
    h = 0x884CFA59CA342B2E << 64 | 0x66E94BD4EF8A2C3B
    x = 0
    for i in range(0, len(data) - 15, 16):
        p = crypto.clmul(x ^ int.from_bytes(data[i:i + 16], "little"), h)
        for bit in range(255, 127, -1):
            if p >> bit & 1:
                p ^= (1 << 128 | 0x87) << (bit - 128)
        x = p
    return x.to_bytes(16, "little")


def _pmull8_reference(data: bytes) -> bytes:
    acc = [0] * 8
    for i in range(0, len(data) - 15, 16):
        v = data[i:i + 16]
        w = v[3:] + b"\x5b" * 3
        acc = [a ^ crypto.clmul(v[j], w[j]) for j, a in enumerate(acc)]
        acc = [(a + crypto.clmul(v[8 + j], w[8 + j])) & 0xFFFF for j, a in enumerate(acc)]
    return b"".join(a.to_bytes(2, "little") for a in acc)


def _aes_ctr_reference(data: bytes) -> bytes:
    keys = _expand_key(bytes(range(16)))
    out = bytearray()
    for i in range(len(data) // 16):
        state = 0x0123456789ABCDEF | i << 64
        for r in range(9):
            state = crypto.aesmc(crypto.aese(state, keys[r]))
        stream = (crypto.aese(state, keys[9]) ^ keys[10]).to_bytes(16, "little")
        out += bytes(a ^ b for a, b in zip(data[16 * i:16 * i + 16], stream, strict=True))
    return hashlib.sha256(bytes(out)).digest()


@needs_cc
@needs_qemu
def test_crypto_guest_program_matches_qemu_and_references(tmp_path) -> None:
    from tests.aarch64.support import compare
    prog = build(tmp_path, "crypto.c", "-march=armv8-a+crypto")
    size = 4096 + 37  # (a partial last block for the hashes)
    lines = dict(line.split(" ", 1) for line in
                 compare(prog, ["all", str(size)]).stdout.decode().splitlines())
    data = _guest_buffer(size)
    assert lines["sha256"] == hashlib.sha256(data).hexdigest()
    assert lines["sha1"] == hashlib.sha1(data).hexdigest()
    assert lines["aes-fips197"] == "69c4e0d86a7b0430d8cdb78070b4c55a"
    assert lines["aes-fips197-back"] == "00112233445566778899aabbccddeeff"
    assert lines["aes-ctr-sha256"] == _aes_ctr_reference(data).hex()
    assert lines["aes-roundtrip"] == "ok"
    assert lines["ghash"] == _ghash_reference(data).hex()
    assert lines["pmull8"] == _pmull8_reference(data).hex()


@needs_cc
@needs_qemu
def test_sha256_of_a_megabyte_matches_hashlib(tmp_path) -> None:
    """The OpenSSL-style workload: 1 MB through SHA256H/H2/SU0/SU1 (hot: LLVM regions)."""
    prog = build(tmp_path, "crypto.c", "-march=armv8-a+crypto")
    size = 1 << 20
    out = run_llvmtcg(prog, ["sha256", str(size)], env=TEST_ENV)
    assert out.returncode == 0, out.describe()
    assert out.stdout.decode() == f"sha256 {hashlib.sha256(_guest_buffer(size)).hexdigest()}\n"


@needs_qemu
@pytest.mark.slow
def test_debian_openssl_hashes_through_the_crypto_extension() -> None:
    """Debian's Python hashlib (OpenSSL's libcrypto, which takes its SHA-1/SHA-256
    instruction paths from HWCAP) hashes a megabyte as the host does."""
    from tests.aarch64.debian import SysrootUnavailable, debian_sysroot
    from tests.aarch64.test_debian import EMULATOR_ONLY, ENV
    try:
        sysroot = debian_sysroot()
    except SysrootUnavailable as e:
        pytest.skip(f"no Debian arm64 sysroot: {e}")
    script = ("import hashlib\n"
              "data = bytes(range(256)) * 4096\n"
              "for name in ('sha256', 'sha1', 'sha224'):\n"
              "    print(name, hashlib.new(name, data).hexdigest())\n")
    out = run_llvmtcg(sysroot.python, ["-c", script],
                      options=["-L", str(sysroot.root), *EMULATOR_ONLY], env=ENV)
    assert out.returncode == 0, out.describe()
    data = bytes(range(256)) * 4096
    assert out.stdout.decode().splitlines() == [
        f"{name} {hashlib.new(name, data).hexdigest()}" for name in ("sha256", "sha1", "sha224")]
