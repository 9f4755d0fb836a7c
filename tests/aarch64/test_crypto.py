"""The crypto extension's functions (frontends/aarch64/crypto.py) used the way Linux's
arm64 aes-ce and sha2-ce code uses the instructions, checked against FIPS-197's example
and hashlib; the random-instruction test compares the instructions with qemu-aarch64."""

from __future__ import annotations

import hashlib
import struct

from llvmtcg.frontends.aarch64 import crypto

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
