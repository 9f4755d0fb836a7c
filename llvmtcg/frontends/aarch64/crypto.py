"""The Armv8 cryptographic extension's AES, SHA-1 and SHA-256 instructions as pure
functions of 128-bit register values (Arm ARM pseudocode: AESSubBytes, AESMixColumns,
SHA1hash, SHA256hash, ...): the reference the native forms are tested against
(tests/aarch64/test_crypto.py). Guest code runs the vector ops of ir/lower/crypto.py
(trans_simd.py emits them); simd_lanes.py still names these for its lane table."""

from __future__ import annotations

M32 = 0xFFFF_FFFF
M128 = (1 << 128) - 1


def _gf_mul(a: int, b: int) -> int:
    """Product in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (AES's field)."""
    result = 0
    while b:
        if b & 1:
            result ^= a
        a = (a << 1) ^ (0x11B if a & 0x80 else 0)
        b >>= 1
    return result


def _make_sbox() -> tuple[bytes, bytes]:
    # Inverses from powers of the generator 3 (x = 3^i, so 1/x = 3^(255 - i)): 255
    # multiplications at import, where a search took 32k (~20 ms of every start-up).
    power, log = [0] * 255, [0] * 256
    p = 1
    for i in range(255):
        power[i], log[p] = p, i
        p = _gf_mul(p, 3)
    inverse = [0] + [power[(255 - log[x]) % 255] for x in range(1, 256)]
    sbox = bytearray(256)
    for x in range(256):
        b = inverse[x]
        s = b
        for shift in range(1, 5):
            s ^= ((b << shift) | (b >> (8 - shift))) & 0xFF
        sbox[x] = s ^ 0x63
    inv_sbox = bytearray(256)
    for x, s in enumerate(sbox):
        inv_sbox[s] = x
    return bytes(sbox), bytes(inv_sbox)


SBOX, INV_SBOX = _make_sbox()


def _bytes(value: int) -> list[int]:
    return list(value.to_bytes(16, "little"))


def _value(state: list[int]) -> int:
    return int.from_bytes(bytes(state), "little")


# The state's byte i is row i % 4 of column i // 4; row r rotates left by r.
_SHIFT_ROWS = [r + 4 * ((c + r) % 4) for c in range(4) for r in range(4)]
_INV_SHIFT_ROWS = [r + 4 * ((c - r) % 4) for c in range(4) for r in range(4)]


def aese(d: int, n: int) -> int:
    state = _bytes(d ^ n)
    return _value([SBOX[state[i]] for i in _SHIFT_ROWS])


def aesd(d: int, n: int) -> int:
    state = _bytes(d ^ n)
    return _value([INV_SBOX[state[i]] for i in _INV_SHIFT_ROWS])


def _mix(value: int, matrix: tuple[int, int, int, int]) -> int:
    state = _bytes(value)
    out = []
    for c in range(4):
        column = state[4 * c:4 * c + 4]
        for r in range(4):
            acc = 0
            for k in range(4):
                acc ^= _gf_mul(column[k], matrix[(k - r) % 4])
            out.append(acc)
    return _value(out)


def aesmc(n: int) -> int:
    return _mix(n, (2, 3, 1, 1))


def aesimc(n: int) -> int:
    return _mix(n, (14, 11, 13, 9))


# -- SHA ------------------------------------------------------------------------------------

def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & M32


def _ror(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & M32


def _word(x: int, e: int) -> int:
    return x >> (32 * e) & M32


def _choose(x: int, y: int, z: int) -> int:
    return ((y ^ z) & x) ^ z


def _parity(x: int, y: int, z: int) -> int:
    return x ^ y ^ z


def _majority(x: int, y: int, z: int) -> int:
    return (x & y) | ((x | y) & z)


def _sha1_hash(function):
    def run(d: int, n: int, m: int) -> int:
        x, y = d, n & M32
        for e in range(4):
            t = function(_word(x, 1), _word(x, 2), _word(x, 3))
            y = (y + _rol(_word(x, 0), 5) + t + _word(m, e)) & M32
            x = (x & ~(M32 << 32)) | _rol(_word(x, 1), 30) << 32
            x, y = ((x << 32) | y) & M128, x >> 96
        return x
    return run


sha1c = _sha1_hash(_choose)
sha1p = _sha1_hash(_parity)
sha1m = _sha1_hash(_majority)


def sha1h(n: int) -> int:
    return _rol(n & M32, 30)


def sha1su0(d: int, n: int, m: int) -> int:
    return ((n & ((1 << 64) - 1)) << 64 | d >> 64) ^ d ^ m


def sha1su1(d: int, n: int) -> int:
    t = d ^ (n >> 32)
    words = [_rol(_word(t, e), 1) for e in range(4)]
    words[3] ^= _rol(_word(t, 0), 2)
    return sum(w << (32 * e) for e, w in enumerate(words))


def _sigma0(x: int) -> int:
    return _ror(x, 2) ^ _ror(x, 13) ^ _ror(x, 22)


def _sigma1(x: int) -> int:
    return _ror(x, 6) ^ _ror(x, 11) ^ _ror(x, 25)


def _sha256_hash(x: int, y: int, w: int, part1: bool) -> int:
    for e in range(4):
        chs = _choose(_word(y, 0), _word(y, 1), _word(y, 2))
        maj = _majority(_word(x, 0), _word(x, 1), _word(x, 2))
        t = (_word(y, 3) + _sigma1(_word(y, 0)) + chs + _word(w, e)) & M32
        x = (x & ~(M32 << 96)) | ((t + _word(x, 3)) & M32) << 96
        y = (y & ~(M32 << 96)) | ((t + _sigma0(_word(x, 0)) + maj) & M32) << 96
        x, y = ((x << 32) | (y >> 96)) & M128, ((y << 32) | (x >> 96)) & M128
    return x if part1 else y


def sha256h(d: int, n: int, m: int) -> int:
    return _sha256_hash(d, n, m, True)


def sha256h2(d: int, n: int, m: int) -> int:
    return _sha256_hash(n, d, m, False)


def sha256su0(d: int, n: int) -> int:
    t = (n & M32) << 96 | d >> 32
    out = 0
    for e in range(4):
        elt = _word(t, e)
        elt = _ror(elt, 7) ^ _ror(elt, 18) ^ (elt >> 3)
        out |= ((elt + _word(d, e)) & M32) << (32 * e)
    return out


def sha256su1(d: int, n: int, m: int) -> int:
    t0 = (m & M32) << 96 | n >> 32
    result = [0] * 4
    for e in range(4):
        source = _word(m, 2 + e) if e < 2 else result[e - 2]
        elt = _ror(source, 17) ^ _ror(source, 19) ^ (source >> 10)
        result[e] = (elt + _word(d, e) + _word(t0, e)) & M32
    return sum(w << (32 * e) for e, w in enumerate(result))


def clmul(x: int, y: int) -> int:
    """Carry-less (polynomial) product: PMULL's reference, per lane pair."""
    result = 0
    while y:
        if y & 1:
            result ^= x
        x <<= 1
        y >>= 1
    return result
