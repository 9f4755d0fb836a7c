"""Rules for the crypto extension's vector ops (semantics in ir/ops.py, reference
``frontends/aarch64/crypto.py``): AES-NI, PCLMULQDQ and SHA-NI when the host has them,
portable LLVM IR otherwise — native code either way, on every tier (the baseline's
stencils are these rules compiled once).

The choice is made per process from /proc/cpuinfo (``FEATURES``); code made under it
is only ever reused on the same host, since the code cache and stencil library
fingerprints cover the host CPU's flags (``jit.code_identity``). Tests set
``FEATURES`` to exercise the portable forms on a host with the instructions.

Lane orders: Arm numbers SHA's words from the low end (AESE's state byte i is
register byte i, as x86's); x86's SHA instructions keep A in the *high* word, so
the SHA-NI forms reverse or gather the words around the instruction (derived in each
rule). AArch64's AESE is AddRoundKey, ShiftRows, SubBytes — x86's AESENCLAST with a
zero key after an XOR; AESMC (MixColumns alone) is AESDECLAST then AESENC, both with a
zero key (the inverse ShiftRows/SubBytes of one cancel the other's).
"""

from __future__ import annotations

from functools import cache

from llvmtcg.ir.block import Op
from llvmtcg.ir.lower.emitter import Emitter
from llvmtcg.ir.lower.rule import RuleSet

RULES = RuleSet("crypto")
rule = RULES.rule

V128 = "<2 x i64>"
B16 = "<16 x i8>"
W4 = "<4 x i32>"


class HostCrypto:
    """Which x86 crypto instructions the lowering may use. (A plain class: this module
    is imported at every start, where making a dataclass costs about a millisecond.)"""

    __slots__ = ("aes", "pclmul", "sha")

    def __init__(self, aes: bool, pclmul: bool, sha: bool) -> None:
        self.aes = aes  # AES-NI
        self.pclmul = pclmul  # PCLMULQDQ
        self.sha = sha  # SHA-NI (with SSE4.1's pshufd/pblendw, which every SHA-NI CPU has)

    def __repr__(self) -> str:
        return f"HostCrypto(aes={self.aes}, pclmul={self.pclmul}, sha={self.sha})"

    @classmethod
    def detect(cls) -> HostCrypto:
        flags: set[str] = set()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
                        break
        except OSError:
            pass
        return cls("aes" in flags, "pclmulqdq" in flags, "sha_ni" in flags)


FEATURES = HostCrypto.detect()


# -- helpers -------------------------------------------------------------------------------

def _as(em: Emitter, value: str, ty: str) -> str:
    return em.value(f"bitcast {V128} {value} to {ty}")


def _back(em: Emitter, value: str, ty: str) -> str:
    return em.value(f"bitcast {ty} {value} to {V128}")


def _inputs(em: Emitter, op: Op, ty: str = V128) -> list[str]:
    values = [em.read(t) for t in op.inputs]
    return values if ty == V128 else [_as(em, v, ty) for v in values]


def _shuffle(em: Emitter, ty: str, a: str, b: str, mask: list[int]) -> str:
    indexes = ", ".join(f"i32 {i}" for i in mask)
    return em.value(f"shufflevector {ty} {a}, {ty} {b}, <{len(mask)} x i32> <{indexes}>")


def _splat(ty: str, value: int) -> str:
    count, lane = ty[1:-1].split(" x ")
    return f"<{', '.join([f'{lane} {value}'] * int(count))}>"


def _call(em: Emitter, ret: str, fn: str, *args: str) -> str:
    return em.value(f"call {ret} @{fn}({', '.join(args)}){em.call_attrs}")


def _rotl(em: Emitter, ty: str, x: str, n: int) -> str:
    """x rotated left by n in each lane (i32 or <4 x i32>)."""
    suffix = "v4i32" if ty == W4 else "i32"
    amount = _splat(ty, n) if ty == W4 else str(n)
    return _call(em, ty, f"llvm.fshl.{suffix}", f"{ty} {x}", f"{ty} {x}", f"{ty} {amount}")


def _xor(em: Emitter, ty: str, *values: str) -> str:
    acc = values[0]
    for v in values[1:]:
        acc = em.value(f"xor {ty} {acc}, {v}")
    return acc


def _add(em: Emitter, ty: str, *values: str) -> str:
    acc = values[0]
    for v in values[1:]:
        acc = em.value(f"add {ty} {acc}, {v}")
    return acc


_REVERSE = [3, 2, 1, 0]


# -- AES -----------------------------------------------------------------------------------

# ShiftRows as a byte gather: state byte i is row i % 4 of column i // 4; row r rotates
# left by r (crypto._SHIFT_ROWS).
_SHIFT_ROWS = [r + 4 * ((c + r) % 4) for c in range(4) for r in range(4)]
_INV_SHIFT_ROWS = [r + 4 * ((c - r) % 4) for c in range(4) for r in range(4)]


@cache
def sboxes() -> tuple[bytes, bytes]:
    """AES's S-box and its inverse (FIPS-197 5.1.1: the inverse in GF(2^8), then the
    affine map), made here so the IR layer does not reach into a frontend; on first use
    (only the portable rules need them)."""
    def times3(a: int) -> int:
        return a ^ ((a << 1) ^ (0x11B if a & 0x80 else 0))
    power, log = [0] * 255, [0] * 256
    p = 1
    for i in range(255):
        power[i], log[p] = p, i
        p = times3(p)
    sbox = bytearray(256)
    for x in range(256):
        b = power[(255 - log[x]) % 255] if x else 0
        s = b
        for shift in range(1, 5):
            s ^= ((b << shift) | (b >> (8 - shift))) & 0xFF
        sbox[x] = s ^ 0x63
    inverse = bytearray(256)
    for x, s in enumerate(sbox):
        inverse[s] = x
    return bytes(sbox), bytes(inverse)


def _sub_bytes(em: Emitter, state: str, table: bytes) -> str:
    """Each byte of ``state`` (<16 x i8>) looked up in ``table``: one element of a
    constant <256 x i8> per byte (LLVM makes it a constant pool: the baseline places
    it as a stencil's pool)."""
    constant = f"<{', '.join(f'i8 {_i8(b)}' for b in table)}>"
    result = "poison"
    for i in range(16):
        byte = em.value(f"extractelement {B16} {state}, i32 {i}")
        index = em.value(f"zext i8 {byte} to i32")
        sub = em.value(f"extractelement <256 x i8> {constant}, i32 {index}")
        result = em.value(f"insertelement {B16} {result}, i8 {sub}, i32 {i}")
    return result


def _i8(b: int) -> int:
    return b - 256 if b > 127 else b


def _xtime(em: Emitter, v: str) -> str:
    """Each byte times x in GF(2^8): (v << 1) ^ (0x1b where the top bit was set)."""
    doubled = em.value(f"shl {B16} {v}, {_splat(B16, 1)}")
    top = em.value(f"ashr {B16} {v}, {_splat(B16, 7)}")
    return _xor(em, B16, doubled, em.value(f"and {B16} {top}, {_splat(B16, 0x1B)}"))


def _rotate_columns(em: Emitter, v: str, k: int) -> str:
    """Byte 4c + r = byte 4c + (r + k) % 4 of ``v``: each column's rows moved up by k."""
    return _shuffle(em, B16, v, "poison", [4 * (i // 4) + (i + k) % 4 for i in range(16)])


def _mix_columns(em: Emitter, a: str) -> str:
    """out[r] = 2 a[r] ^ 3 a[r+1] ^ a[r+2] ^ a[r+3] = xtime(a[r] ^ a[r+1]) ^ a[r+1] ^
    a[r+2] ^ a[r+3] (rows within each column)."""
    r1, r2, r3 = (_rotate_columns(em, a, k) for k in (1, 2, 3))
    return _xor(em, B16, _xtime(em, _xor(em, B16, a, r1)), r1, r2, r3)


@rule("vaese", "vaesd")
def _aes_round(em: Emitter, op: Op) -> None:
    d, n = _inputs(em, op)
    state = em.value(f"xor {V128} {d}, {n}")
    encrypt = op.name == "vaese"
    if FEATURES.aes:
        fn = "llvm.x86.aesni.aesenclast" if encrypt else "llvm.x86.aesni.aesdeclast"
        result = _call(em, V128, fn, f"{V128} {state}", f"{V128} zeroinitializer")
    else:
        rows = _shuffle(em, B16, _as(em, state, B16), "poison",
                        _SHIFT_ROWS if encrypt else _INV_SHIFT_ROWS)
        result = _back(em, _sub_bytes(em, rows, sboxes()[0 if encrypt else 1]), B16)
    em.write(op.outputs[0], result)


@rule("vaesmc", "vaesimc")
def _aes_mix(em: Emitter, op: Op) -> None:
    (n,) = _inputs(em, op)
    if FEATURES.aes:
        if op.name == "vaesimc":
            result = _call(em, V128, "llvm.x86.aesni.aesimc", f"{V128} {n}")
        else:
            zero = f"{V128} zeroinitializer"
            undone = _call(em, V128, "llvm.x86.aesni.aesdeclast", f"{V128} {n}", zero)
            result = _call(em, V128, "llvm.x86.aesni.aesenc", f"{V128} {undone}", zero)
        em.write(op.outputs[0], result)
        return
    a = _as(em, n, B16)
    if op.name == "vaesimc":
        # InvMixColumns = MixColumns after a[r] ^= 4 (a[r] ^ a[r+2]) (the matrix
        # (14, 11, 13, 9) is (2, 3, 1, 1) times (5, 0, 4, 0)).
        w = _xtime(em, _xtime(em, _xor(em, B16, a, _rotate_columns(em, a, 2))))
        a = _xor(em, B16, a, w)
    em.write(op.outputs[0], _back(em, _mix_columns(em, a), B16))


# -- PMULL ---------------------------------------------------------------------------------

@rule("vpmull")
def _pmull(em: Emitter, op: Op) -> None:
    vece, _, high = op.args
    a, b = _inputs(em, op)
    if vece == 3:
        if FEATURES.pclmul:
            imm = 0x11 if high else 0x00
            result = _call(em, V128, "llvm.x86.pclmulqdq", f"{V128} {a}", f"{V128} {b}",
                           f"i8 {imm}")
        else:
            wide = []
            for v in (a, b):
                lane = em.value(f"extractelement {V128} {v}, i32 {high}")
                wide.append(em.value(f"zext i64 {lane} to i128"))
            product = _call(em, "i128", "llvm.clmul.i128", f"i128 {wide[0]}",
                            f"i128 {wide[1]}")
            result = em.value(f"bitcast i128 {product} to {V128}")
        em.write(op.outputs[0], result)
        return
    # Bytes: the half's eight bytes widened to 16-bit lanes, multiplied carry-less (the
    # product of two bytes fits in 15 bits). LLVM expands the vector clmul into
    # shifts, ands and xors of the whole vector.
    wide = []
    for v in (a, b):
        half = _shuffle(em, B16, _as(em, v, B16), "poison", [8 * high + i for i in range(8)])
        wide.append(em.value(f"zext <8 x i8> {half} to <8 x i16>"))
    product = _call(em, "<8 x i16>", "llvm.clmul.v8i16", f"<8 x i16> {wide[0]}",
                    f"<8 x i16> {wide[1]}")
    em.write(op.outputs[0], _back(em, product, "<8 x i16>"))


# -- SHA-1 ---------------------------------------------------------------------------------

# (sha1rnds4's function immediate, the round constant it adds)
_SHA1_ROUNDS = {"vsha1c": (0, 0x5A827999), "vsha1p": (1, 0x6ED9EBA1),
                "vsha1m": (2, 0x8F1BBCDC)}


def _sha1_function(em: Emitter, name: str, x: str, y: str, z: str) -> str:
    if name == "vsha1c":  # choose: ((y ^ z) & x) ^ z
        return _xor(em, "i32", em.value(f"and i32 {_xor(em, 'i32', y, z)}, {x}"), z)
    if name == "vsha1p":  # parity
        return _xor(em, "i32", x, y, z)
    # majority: (x & y) | ((x | y) & z)
    both = em.value(f"and i32 {x}, {y}")
    either = em.value(f"and i32 {em.value(f'or i32 {x}, {y}')}, {z}")
    return em.value(f"or i32 {both}, {either}")


def _words(em: Emitter, v: str) -> list[str]:
    return [em.value(f"extractelement {W4} {v}, i32 {i}") for i in range(4)]


def _gather(em: Emitter, words: list[str]) -> str:
    result = "poison"
    for i, w in enumerate(words):
        result = em.value(f"insertelement {W4} {result}, i32 {w}, i32 {i}")
    return result


@rule(*_SHA1_ROUNDS)
def _sha1_hash(em: Emitter, op: Op) -> None:
    d, n, m = _inputs(em, op, W4)
    if FEATURES.sha:
        # sha1rnds4 holds A..D in words 3..0 and W0+E, W1..W3 in words 3..0, and adds
        # the round constant of its function itself: the reversed m, less that
        # constant, plus E in the word of W0 gives the guest's sums.
        imm, k = _SHA1_ROUNDS[op.name]
        e = _shuffle(em, W4, n, "zeroinitializer", [4, 4, 4, 0])
        wk = _add(em, W4, _shuffle(em, W4, m, "poison", _REVERSE), e,
                  _splat(W4, (-k) & 0xFFFF_FFFF))
        abcd = _shuffle(em, W4, d, "poison", _REVERSE)
        out = _call(em, W4, "llvm.x86.sha1rnds4", f"{W4} {abcd}", f"{W4} {wk}", f"i8 {imm}")
        em.write(op.outputs[0], _back(em, _shuffle(em, W4, out, "poison", _REVERSE), W4))
        return
    x = _words(em, d)
    y = em.value(f"extractelement {W4} {n}, i32 0")
    w = _words(em, m)
    for e in range(4):  # crypto._sha1_hash, a round at a time
        t = _sha1_function(em, op.name, x[1], x[2], x[3])
        y = _add(em, "i32", y, _rotl(em, "i32", x[0], 5), t, w[e])
        x, y = [y, x[0], _rotl(em, "i32", x[1], 30), x[2]], x[3]
    em.write(op.outputs[0], _back(em, _gather(em, x), W4))


@rule("vsha1su1")
def _sha1su1(em: Emitter, op: Op) -> None:
    d, n = _inputs(em, op, W4)
    if FEATURES.sha:
        # sha1msg2 reads W16..W19's inputs from the high word down: both reversed.
        out = _call(em, W4, "llvm.x86.sha1msg2", f"{W4} {_shuffle(em, W4, d, 'poison', _REVERSE)}",
                    f"{W4} {_shuffle(em, W4, n, 'poison', _REVERSE)}")
        em.write(op.outputs[0], _back(em, _shuffle(em, W4, out, "poison", _REVERSE), W4))
        return
    # t = d ^ (n >> 32); each word rotated by 1; word 3 also ^= t[0] rotated by 2.
    t = _xor(em, W4, d, _shuffle(em, W4, n, "zeroinitializer", [1, 2, 3, 4]))
    twice = _shuffle(em, W4, _rotl(em, W4, t, 2), "zeroinitializer", [4, 4, 4, 0])
    em.write(op.outputs[0], _back(em, _xor(em, W4, _rotl(em, W4, t, 1), twice), W4))


# -- SHA-256 -------------------------------------------------------------------------------

def _sigma(em: Emitter, ty: str, x: str, rotations: tuple[int, ...], shift: int = 0) -> str:
    """XOR of x rotated right by each of ``rotations`` (and shifted right by shift)."""
    terms = [_rotl(em, ty, x, 32 - r) for r in rotations]
    if shift:
        amount = _splat(ty, shift) if ty == W4 else str(shift)
        terms.append(em.value(f"lshr {ty} {x}, {amount}"))
    return _xor(em, ty, *terms)


def _sha256_rounds(em: Emitter, x: list[str], y: list[str], w: list[str]
                   ) -> tuple[list[str], list[str]]:
    """crypto._sha256_hash's four rounds: x = A..D, y = E..H (word 0 first)."""
    for e in range(4):
        chs = _sha1_function(em, "vsha1c", y[0], y[1], y[2])
        maj = _sha1_function(em, "vsha1m", x[0], x[1], x[2])
        t = _add(em, "i32", y[3], _sigma(em, "i32", y[0], (6, 11, 25)), chs, w[e])
        new_x3 = _add(em, "i32", t, x[3])
        new_y3 = _add(em, "i32", t, _sigma(em, "i32", x[0], (2, 13, 22)), maj)
        x, y = [new_y3, x[0], x[1], x[2]], [new_x3, y[0], y[1], y[2]]
    return x, y


@rule("vsha256h", "vsha256h2")
def _sha256_hash(em: Emitter, op: Op) -> None:
    d, n, m = _inputs(em, op, W4)
    first = op.name == "vsha256h"
    abcd, efgh = (d, n) if first else (n, d)
    if FEATURES.sha:
        # sha256rnds2 does two rounds on ABEF (words 3..0: A B E F) and CDGH, with the
        # two W+K sums in words 0 and 1 of its third operand; two of them are the four
        # rounds, the first's result being the second's CDGH.
        abef = _shuffle(em, W4, abcd, efgh, [5, 4, 1, 0])
        cdgh = _shuffle(em, W4, abcd, efgh, [7, 6, 3, 2])
        low = _call(em, W4, "llvm.x86.sha256rnds2", f"{W4} {cdgh}", f"{W4} {abef}",
                    f"{W4} {m}")
        m_high = _shuffle(em, W4, m, "poison", [2, 3, 2, 3])
        high = _call(em, W4, "llvm.x86.sha256rnds2", f"{W4} {abef}", f"{W4} {low}",
                     f"{W4} {m_high}")
        # ABEF = high, CDGH = low: A B C D = high[3] high[2] low[3] low[2], E F G H =
        # high[1] high[0] low[1] low[0].
        mask = [3, 2, 7, 6] if first else [1, 0, 5, 4]
        em.write(op.outputs[0], _back(em, _shuffle(em, W4, high, low, mask), W4))
        return
    x, y = _sha256_rounds(em, _words(em, abcd), _words(em, efgh), _words(em, m))
    em.write(op.outputs[0], _back(em, _gather(em, x if first else y), W4))


@rule("vsha256su0")
def _sha256su0(em: Emitter, op: Op) -> None:
    d, n = _inputs(em, op, W4)
    if FEATURES.sha:  # sha256msg1: W0..W3 + sigma0(W1..W4), W4 = n[0]
        result = _call(em, W4, "llvm.x86.sha256msg1", f"{W4} {d}", f"{W4} {n}")
    else:
        t = _shuffle(em, W4, d, n, [1, 2, 3, 4])
        result = _add(em, W4, _sigma(em, W4, t, (7, 18), 3), d)
    em.write(op.outputs[0], _back(em, result, W4))


@rule("vsha256su1")
def _sha256su1(em: Emitter, op: Op) -> None:
    d, n, m = _inputs(em, op, W4)
    # s = d + (m[0]:n[3..1]); words 0 and 1 add sigma1 of m[2], m[3], words 2 and 3
    # sigma1 of the new words 0 and 1.
    s = _add(em, W4, d, _shuffle(em, W4, n, m, [1, 2, 3, 4]))
    if FEATURES.sha:  # sha256msg2: W16..W19 from W14, W15 = m[2], m[3]
        result = _call(em, W4, "llvm.x86.sha256msg2", f"{W4} {s}", f"{W4} {m}")
    else:
        low = _add(em, W4, s, _sigma(em, W4, _shuffle(em, W4, m, "poison", [2, 3, 2, 3]),
                                     (17, 19), 10))
        high = _add(em, W4, s, _sigma(em, W4, _shuffle(em, W4, low, "poison", [0, 1, 0, 1]),
                                      (17, 19), 10))
        result = _shuffle(em, W4, low, high, [0, 1, 6, 7])
    em.write(op.outputs[0], _back(em, result, W4))
