/* Hot AdvSIMD loops (run often enough to become hot regions): FMLA/FMUL/FADD on
 * doubles and floats with NaNs, infinities and subnormals in the data, under FPCR.FZ
 * clear and set and under each rounding mode; integer add/compare/min/max, table
 * lookups of one to four registers, saturating adds and shifts. Prints checksums and
 * FPSR after each loop, so the vector paths and their lane fallbacks are compared with
 * qemu-aarch64 as compiled code, not single instructions. */
#include <arm_neon.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 256
#define ROUNDS 200

static uint64_t fpsr_take(void) {
    uint64_t v;
    __asm__ volatile("mrs %0, fpsr" : "=r"(v));
    __asm__ volatile("msr fpsr, %0" ::"r"(0UL));
    return v;
}

static void fpcr_set(uint64_t v) { __asm__ volatile("msr fpcr, %0" ::"r"(v)); }

static uint64_t checksum(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static double dv[N], dw[N], dacc[N];
static float fv[N], fw[N], facc[N];

static void fill(unsigned seed) {
    const uint64_t dspecial[] = {0x7ff8000000000001ULL, 0x7ff0000000000001ULL,
                                 0x7ff0000000000000ULL, 0x0000000000000003ULL,
                                 0x8000000000000000ULL, 0x0010000000000001ULL};
    const uint32_t fspecial[] = {0x7fc00001, 0x7f800001, 0xff800000, 0x00000005,
                                 0x80000000, 0x00800001};
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        dv[i] = (double)(int)(seed >> 8) / 65536.0;
        dw[i] = (double)(seed % 1000) / 7.0 + 0.5;
        fv[i] = (float)dv[i];
        fw[i] = (float)dw[i];
        if (seed % 61 == 0) memcpy(&dv[i], &dspecial[seed % 6], 8);
        if (seed % 67 == 0) memcpy(&fw[i], &fspecial[seed % 6], 4);
        dacc[i] = facc[i] = 0;
    }
}

static void fp_loops(const char *name) {
    for (int r = 0; r < ROUNDS; r++) {
        float64x2_t k = vdupq_n_f64(1.0 / (r + 3));
        for (int i = 0; i < N; i += 2) {
            float64x2_t a = vld1q_f64(&dv[i]), b = vld1q_f64(&dw[i]);
            float64x2_t c = vld1q_f64(&dacc[i]);
            c = vfmaq_f64(c, a, b);
            c = vfmsq_laneq_f64(c, a, k, 1);
            c = vaddq_f64(c, vmulq_f64(a, k));
            vst1q_f64(&dacc[i], vdivq_f64(c, vaddq_f64(b, k)));
        }
        float32x4_t fk = vdupq_n_f32(1.0f / (r + 5));
        for (int i = 0; i < N; i += 4) {
            float32x4_t a = vld1q_f32(&fv[i]), b = vld1q_f32(&fw[i]);
            float32x4_t c = vld1q_f32(&facc[i]);
            c = vfmaq_laneq_f32(c, a, fk, 2);
            c = vmlsq_f32(c, a, b);
            c = vsubq_f32(c, vmulq_laneq_f32(b, fk, 0));
            float32x2_t lo = vfma_f32(vget_low_f32(c), vget_low_f32(a), vget_high_f32(b));
            vst1q_f32(&facc[i], vcombine_f32(lo, vget_high_f32(c)));
        }
    }
    printf("%s %016llx %016llx fpsr %08llx\n", name,
           (unsigned long long)checksum(dacc, sizeof dacc),
           (unsigned long long)checksum(facc, sizeof facc), (unsigned long long)fpsr_take());
}

static uint8_t bytes[N + 64], out[N + 64];

static void int_loops(void) {
    for (int i = 0; i < N + 64; i++) bytes[i] = (uint8_t)(i * 37 + (i >> 3));
    const uint8x16_t rev = {15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    const uint8x16_t wide = {0, 17, 34, 51, 63, 5, 200, 40, 20, 33, 47, 62, 1, 16, 32, 48};
    uint64_t acc = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint8x16_t sum = vdupq_n_u8(r), hi = vdupq_n_u8(0);
        for (int i = 0; i < N; i += 16) {
            uint8x16_t x = vld1q_u8(&bytes[i]), y = vld1q_u8(&bytes[i + 16]);
            uint8x16x4_t t4 = {{x, y, vld1q_u8(&bytes[i + 32]), vld1q_u8(&bytes[i + 48])}};
            uint8x16_t z = vqtbl1q_u8(x, rev);
            z = veorq_u8(z, vqtbl4q_u8(t4, vaddq_u8(wide, vdupq_n_u8(r))));
            z = vqtbx2q_u8(z, (uint8x16x2_t){{y, x}}, vshrq_n_u8(x, 2));
            sum = vqaddq_u8(sum, vandq_u8(z, vcgtq_u8(x, y)));
            hi = vmaxq_u8(hi, vminq_u8(x, vceqq_u8(y, z)));
            int16x8_t s = vqsubq_s16(vreinterpretq_s16_u8(x), vreinterpretq_s16_u8(y));
            s = vmlaq_s16(s, vshlq_n_s16(s, 3), vreinterpretq_s16_u8(z));
            uint32x4_t w = vpaddq_u32(vreinterpretq_u32_s16(s), vreinterpretq_u32_u8(sum));
            w = vsraq_n_u32(w, vreinterpretq_u32_u8(hi), 7);
            vst1q_u8(&out[i], vreinterpretq_u8_u32(vzip1q_u32(w, vuzp2q_u32(w, w))));
        }
        acc = acc * 31 + checksum(out, N) + vmaxvq_u8(hi) + vaddvq_u8(sum);
    }
    printf("int %016llx fpsr %08llx\n", (unsigned long long)acc,
           (unsigned long long)fpsr_take());
}

int main(void) {
    static const struct { const char *name; uint64_t fpcr; } modes[] = {
        {"rne", 0}, {"rup", 1 << 22}, {"rdn", 2 << 22}, {"rtz", 3 << 22},
        {"fz", 1 << 24}, {"dn", 1 << 25}, {"fz-dn-rup", (1 << 24) | (1 << 25) | (1 << 22)},
    };
    for (unsigned m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        fill(m + 1);
        fpcr_set(modes[m].fpcr);
        fpsr_take();
        fp_loops(modes[m].name);
    }
    fpcr_set(0);
    int_loops();
    return 0;
}
