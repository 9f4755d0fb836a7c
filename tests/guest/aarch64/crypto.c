/* The crypto extension as OpenSSL-style code uses it (arm_neon.h intrinsics, built with
 * -march=armv8-a+crypto): SHA-256 and SHA-1 of a buffer, AES-128 in CTR mode (AESE/AESMC)
 * and back (AESD/AESIMC, the equivalent inverse cipher), a GHASH-style carry-less
 * multiply-accumulate with PMULL/PMULL2 (64x64) and a PMULL (bytes) checksum.
 *
 *   crypto <sha256|sha1|aes|ghash|pmull8|all> [bytes] [rounds]
 *
 * The buffer is bytes of i * 131 + (i >> 8) (mod 256). Each mode prints one line; the
 * test compares them with qemu-aarch64 and with hashlib / crypto.py. */
#include <arm_neon.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *make_buffer(size_t n) {
    uint8_t *buf = malloc(n + 128);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 131 + (i >> 8));
    return buf;
}

static void print_hex(const char *label, const uint8_t *p, size_t n) {
    printf("%s ", label);
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

/* -- SHA-256 ---------------------------------------------------------------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static void sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    uint32x4_t abcd = vld1q_u32(state), efgh = vld1q_u32(state + 4);
    while (blocks--) {
        uint32x4_t abcd0 = abcd, efgh0 = efgh, w[4];
        for (int i = 0; i < 4; i++)
            w[i] = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(data + 16 * i)));
        for (int g = 0; g < 16; g++) {
            uint32x4_t wk = vaddq_u32(w[g & 3], vld1q_u32(K256 + 4 * g));
            uint32x4_t saved = abcd;
            abcd = vsha256hq_u32(abcd, efgh, wk);
            efgh = vsha256h2q_u32(efgh, saved, wk);
            if (g < 12)
                w[g & 3] = vsha256su1q_u32(vsha256su0q_u32(w[g & 3], w[(g + 1) & 3]),
                                           w[(g + 2) & 3], w[(g + 3) & 3]);
        }
        abcd = vaddq_u32(abcd, abcd0);
        efgh = vaddq_u32(efgh, efgh0);
        data += 64;
    }
    vst1q_u32(state, abcd);
    vst1q_u32(state + 4, efgh);
}

static void sha256(const uint8_t *data, size_t n, uint8_t out[32]) {
    uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    sha256_blocks(state, data, n / 64);
    uint8_t tail[128] = {0};
    size_t rest = n % 64;
    memcpy(tail, data + n - rest, rest);
    tail[rest] = 0x80;
    size_t len = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) tail[len - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha256_blocks(state, tail, len / 64);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(state[i] >> (24 - 8 * j));
}

/* -- SHA-1 ------------------------------------------------------------------------------ */

static void sha1_blocks(uint32_t state[5], const uint8_t *data, size_t blocks) {
    static const uint32_t K[4] = {0x5a827999, 0x6ed9eba1, 0x8f1bbcdc, 0xca62c1d6};
    uint32x4_t abcd = vld1q_u32(state);
    uint32_t e = state[4];
    while (blocks--) {
        uint32x4_t abcd0 = abcd, w[4];
        uint32_t e0 = e;
        for (int i = 0; i < 4; i++)
            w[i] = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(data + 16 * i)));
        for (int g = 0; g < 20; g++) {
            uint32x4_t wk = vaddq_u32(w[g & 3], vdupq_n_u32(K[g / 5]));
            uint32_t next_e = vsha1h_u32(vgetq_lane_u32(abcd, 0));
            if (g < 5) abcd = vsha1cq_u32(abcd, e, wk);
            else if (g < 10 || g >= 15) abcd = vsha1pq_u32(abcd, e, wk);
            else abcd = vsha1mq_u32(abcd, e, wk);
            e = next_e;
            w[g & 3] = vsha1su1q_u32(vsha1su0q_u32(w[g & 3], w[(g + 1) & 3], w[(g + 2) & 3]),
                                     w[(g + 3) & 3]);
        }
        abcd = vaddq_u32(abcd, abcd0);
        e += e0;
        data += 64;
    }
    vst1q_u32(state, abcd);
    state[4] = e;
}

static void sha1(const uint8_t *data, size_t n, uint8_t out[20]) {
    uint32_t state[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    sha1_blocks(state, data, n / 64);
    uint8_t tail[128] = {0};
    size_t rest = n % 64;
    memcpy(tail, data + n - rest, rest);
    tail[rest] = 0x80;
    size_t len = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) tail[len - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha1_blocks(state, tail, len / 64);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(state[i] >> (24 - 8 * j));
}

/* -- AES-128 ---------------------------------------------------------------------------- */

/* SubWord with AESE: all four columns hold the word, so ShiftRows moves nothing. */
static uint32_t sub_word(uint32_t w) {
    uint8x16_t t = vaeseq_u8(vreinterpretq_u8_u32(vdupq_n_u32(w)), vdupq_n_u8(0));
    return vgetq_lane_u32(vreinterpretq_u32_u8(t), 0);
}

static void expand_key(const uint8_t key[16], uint8x16_t rk[11], uint8x16_t dk[11]) {
    uint32_t w[44];
    memcpy(w, key, 16);
    uint32_t rcon = 1;
    for (int i = 4; i < 44; i++) {
        uint32_t t = w[i - 1];
        if (i % 4 == 0) {
            t = sub_word((t >> 8) | (t << 24)) ^ rcon;
            rcon = (rcon << 1) ^ ((rcon & 0x80) ? 0x11b : 0);
        }
        w[i] = w[i - 4] ^ t;
    }
    for (int r = 0; r < 11; r++) rk[r] = vld1q_u8((const uint8_t *)(w + 4 * r));
    dk[0] = rk[10];
    for (int r = 1; r < 10; r++) dk[r] = vaesimcq_u8(rk[10 - r]);
    dk[10] = rk[0];
}

static uint8x16_t encrypt_block(uint8x16_t s, const uint8x16_t rk[11]) {
    for (int r = 0; r < 9; r++) s = vaesmcq_u8(vaeseq_u8(s, rk[r]));
    return veorq_u8(vaeseq_u8(s, rk[9]), rk[10]);
}

static uint8x16_t decrypt_block(uint8x16_t s, const uint8x16_t dk[11]) {
    for (int r = 0; r < 9; r++) s = vaesimcq_u8(vaesdq_u8(s, dk[r]));
    return veorq_u8(vaesdq_u8(s, dk[9]), dk[10]);
}

static void aes(const uint8_t *data, size_t n) {
    uint8x16_t rk[11], dk[11];
    uint8_t key[16], block[16];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
    expand_key(key, rk, dk);
    static const uint8_t plain[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    uint8x16_t c = encrypt_block(vld1q_u8(plain), rk);
    vst1q_u8(block, c);
    print_hex("aes-fips197", block, 16);
    vst1q_u8(block, decrypt_block(c, dk));
    print_hex("aes-fips197-back", block, 16);
    /* CTR mode over the buffer (the counter in the last 8 bytes), then decrypt every
     * ciphertext block with the inverse cipher and compare with the keystream. */
    uint8_t *out = malloc(n + 16);
    uint64_t ok = 1;
    for (size_t i = 0; i < n / 16; i++) {
        uint64x2_t ctr = vcombine_u64(vdup_n_u64(0x0123456789abcdefULL), vdup_n_u64(i));
        uint8x16_t ks = encrypt_block(vreinterpretq_u8_u64(ctr), rk);
        uint8x16_t ct = veorq_u8(vld1q_u8(data + 16 * i), ks);
        vst1q_u8(out + 16 * i, ct);
        if ((i & 63) == 0) {
            uint8x16_t back = decrypt_block(ks, dk);
            ok &= vgetq_lane_u64(vreinterpretq_u64_u8(back), 1) == i;
        }
    }
    uint8_t digest[32];
    sha256(out, n / 16 * 16, digest);
    print_hex("aes-ctr-sha256", digest, 32);
    printf("aes-roundtrip %s\n", ok ? "ok" : "BAD");
    free(out);
}

/* -- GHASH-style: PMULL/PMULL2 of doublewords ------------------------------------------- */

/* X = (X ^ block) * H in GF(2)[x] reduced modulo x^128 + x^7 + x^2 + x + 1, in the
 * plain (not bit-reflected) order: the 256-bit product from four PMULLs, folded twice
 * with PMULL by the reduction constant 0x87. */
static uint64x2_t gf128_mul(uint64x2_t a, uint64x2_t b) {
    poly64_t a0 = vgetq_lane_u64(a, 0), a1 = vgetq_lane_u64(a, 1);
    poly64_t b0 = vgetq_lane_u64(b, 0), b1 = vgetq_lane_u64(b, 1);
    uint64x2_t lo = vreinterpretq_u64_p128(vmull_p64(a0, b0));
    uint64x2_t hi = vreinterpretq_u64_p128(
        vmull_high_p64(vreinterpretq_p64_u64(a), vreinterpretq_p64_u64(b)));
    uint64x2_t mid = veorq_u64(vreinterpretq_u64_p128(vmull_p64(a0, b1)),
                               vreinterpretq_u64_p128(vmull_p64(a1, b0)));
    lo = veorq_u64(lo, vcombine_u64(vdup_n_u64(0), vget_low_u64(mid)));
    hi = veorq_u64(hi, vcombine_u64(vget_high_u64(mid), vdup_n_u64(0)));
    /* hi * x^128 = hi * (x^7 + x^2 + x + 1) mod P, twice (the first fold overflows by
     * at most 7 bits). */
    uint64x2_t f1 = vreinterpretq_u64_p128(vmull_p64(vgetq_lane_u64(hi, 1), 0x87));
    uint64x2_t f0 = vreinterpretq_u64_p128(vmull_p64(vgetq_lane_u64(hi, 0), 0x87));
    lo = veorq_u64(lo, f0);
    lo = veorq_u64(lo, vcombine_u64(vdup_n_u64(0), vget_low_u64(f1)));
    uint64x2_t f2 = vreinterpretq_u64_p128(vmull_p64(vgetq_lane_u64(f1, 1), 0x87));
    return veorq_u64(lo, f2);
}

static void ghash(const uint8_t *data, size_t n) {
    uint64x2_t h = vcombine_u64(vdup_n_u64(0x66e94bd4ef8a2c3bULL),
                                vdup_n_u64(0x884cfa59ca342b2eULL));
    uint64x2_t x = vdupq_n_u64(0);
    for (size_t i = 0; i < n / 16; i++)
        x = gf128_mul(veorq_u64(x, vreinterpretq_u64_u8(vld1q_u8(data + 16 * i))), h);
    uint8_t out[16];
    vst1q_u8(out, vreinterpretq_u8_u64(x));
    print_hex("ghash", out, 16);
}

/* -- PMULL of bytes ---------------------------------------------------------------------- */

static void pmull8(const uint8_t *data, size_t n) {
    uint16x8_t acc = vdupq_n_u16(0);
    for (size_t i = 0; i + 16 <= n; i += 16) {
        poly8x16_t v = vreinterpretq_p8_u8(vld1q_u8(data + i));
        poly8x16_t w = vreinterpretq_p8_u8(vextq_u8(vld1q_u8(data + i), vdupq_n_u8(0x5b), 3));
        acc = veorq_u16(acc, vreinterpretq_u16_p16(vmull_p8(vget_low_p8(v), vget_low_p8(w))));
        acc = vaddq_u16(acc, vreinterpretq_u16_p16(vmull_high_p8(v, w)));
    }
    uint8_t out[16];
    vst1q_u8(out, vreinterpretq_u8_u16(acc));
    print_hex("pmull8", out, 16);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    size_t n = argc > 2 ? strtoul(argv[2], 0, 0) : 4096;
    int rounds = argc > 3 ? atoi(argv[3]) : 1;
    uint8_t *buf = make_buffer(n);
    int all = !strcmp(mode, "all");
    for (int r = 0; r < rounds; r++) {
        if (all || !strcmp(mode, "sha256")) {
            uint8_t d[32];
            sha256(buf, n, d);
            print_hex("sha256", d, 32);
        }
        if (all || !strcmp(mode, "sha1")) {
            uint8_t d[20];
            sha1(buf, n, d);
            print_hex("sha1", d, 20);
        }
        if (all || !strcmp(mode, "aes")) aes(buf, n);
        if (all || !strcmp(mode, "ghash")) ghash(buf, n);
        if (all || !strcmp(mode, "pmull8")) pmull8(buf, n);
    }
    free(buf);
    return 0;
}
