/* A64 integer edge cases: each line prints a result and NZCV, compared with qemu-aarch64. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t V[] = {0, 1, 0xffffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff,
                             0x80000000, 0x7fffffff, 0xffffffff, 2, 0x7f, 0x80, 0xff,
                             0x100000000, 0xfffffffffffffffe, 0x123456789abcdef0};
#define N (sizeof V / sizeof V[0])

static uint64_t nzcv(void) { uint64_t f; __asm__ volatile("mrs %0, nzcv" : "=r"(f)); return f; }
static void setc(int c) { uint64_t f = c ? 0x20000000 : 0; __asm__ volatile("msr nzcv, %0" :: "r"(f)); }

#define FLAG_OP2(name, insn, w)                                                         \
    static void name(uint64_t a, uint64_t b, int c) {                                   \
        uint64_t r, f;                                                                  \
        setc(c);                                                                        \
        __asm__ volatile(insn "\n mrs %1, nzcv" : "=&r"(r), "=r"(f) : "r"(a), "r"(b) : "cc"); \
        printf(#name " %016llx %016llx %d -> %016llx %llx\n", (unsigned long long)a,   \
               (unsigned long long)b, c, (unsigned long long)r, (unsigned long long)(f >> 28)); \
    }
FLAG_OP2(adds64, "adds %0, %2, %3", 1)
FLAG_OP2(subs64, "subs %0, %2, %3", 1)
FLAG_OP2(adcs64, "adcs %0, %2, %3", 1)
FLAG_OP2(sbcs64, "sbcs %0, %2, %3", 1)
FLAG_OP2(adds32, "adds %w0, %w2, %w3", 0)
FLAG_OP2(subs32, "subs %w0, %w2, %w3", 0)
FLAG_OP2(adcs32, "adcs %w0, %w2, %w3", 0)
FLAG_OP2(sbcs32, "sbcs %w0, %w2, %w3", 0)
FLAG_OP2(ands64, "ands %0, %2, %3", 1)
FLAG_OP2(bics32, "bics %w0, %w2, %w3", 0)
FLAG_OP2(ccmp_eq, "cmp %2, #1\n ccmp %2, %3, #5, eq\n cset %0, gt", 1)
FLAG_OP2(ccmn_lt, "cmp %2, %3\n ccmn %2, #3, #2, lt\n cset %0, hi", 1)
FLAG_OP2(csel_cc, "cmp %2, %3\n csinc %0, %2, %3, cc", 1)
FLAG_OP2(csneg_le, "cmp %w2, %w3\n csneg %w0, %w2, %w3, le", 1)
FLAG_OP2(csinv_vs, "adds xzr, %2, %3\n csinv %0, %2, %3, vs", 1)
FLAG_OP2(udiv64, "udiv %0, %2, %3", 1)
FLAG_OP2(sdiv64, "sdiv %0, %2, %3", 1)
FLAG_OP2(udiv32, "udiv %w0, %w2, %w3", 1)
FLAG_OP2(sdiv32, "sdiv %w0, %w2, %w3", 1)
FLAG_OP2(lsl64, "lsl %0, %2, %3", 1)
FLAG_OP2(lsr32, "lsr %w0, %w2, %w3", 1)
FLAG_OP2(asr32, "asr %w0, %w2, %w3", 1)
FLAG_OP2(ror32, "ror %w0, %w2, %w3", 1)
FLAG_OP2(ror64, "ror %0, %2, %3", 1)
FLAG_OP2(smulh, "smulh %0, %2, %3", 1)
FLAG_OP2(umulh, "umulh %0, %2, %3", 1)
FLAG_OP2(smaddl, "smaddl %0, %w2, %w3, %2", 1)
FLAG_OP2(umsubl, "umsubl %0, %w2, %w3, %3", 1)
FLAG_OP2(madd32, "madd %w0, %w2, %w3, %w2", 1)
FLAG_OP2(extr64, "extr %0, %2, %3, #13", 1)
FLAG_OP2(extr32, "extr %w0, %w2, %w3, #7", 1)
FLAG_OP2(add_ext, "add %0, %2, %w3, sxtb #2", 1)
FLAG_OP2(sub_ext, "subs %0, %2, %w3, uxth #1", 1)
FLAG_OP2(add_sxtw, "add %0, %2, %w3, sxtw", 1)
FLAG_OP2(neg_shift, "negs %w0, %w3, asr #5", 1)
FLAG_OP2(orn_ror, "orn %0, %2, %3, ror #17", 1)
FLAG_OP2(eon_lsr, "eon %w0, %w2, %w3, lsr #31", 1)
FLAG_OP2(crc32b, ".arch_extension crc\n crc32b %w0, %w2, %w3", 1)
FLAG_OP2(crc32h, ".arch_extension crc\n crc32h %w0, %w2, %w3", 1)
FLAG_OP2(crc32cw, ".arch_extension crc\n crc32cw %w0, %w2, %w3", 1)
FLAG_OP2(crc32x, ".arch_extension crc\n crc32x %w0, %w2, %3", 1)
FLAG_OP2(crc32cx, ".arch_extension crc\n crc32cx %w0, %w2, %3", 1)

#define UN(name, insn)                                                                   \
    static void name(uint64_t a) {                                                      \
        uint64_t r;                                                                     \
        __asm__ volatile(insn : "=r"(r) : "r"(a));                                      \
        printf(#name " %016llx -> %016llx\n", (unsigned long long)a, (unsigned long long)r); \
    }
UN(clz64, "clz %0, %1")
UN(clz32, "clz %w0, %w1")
UN(cls64, "cls %0, %1")
UN(cls32, "cls %w0, %w1")
UN(rbit64, "rbit %0, %1")
UN(rbit32, "rbit %w0, %w1")
UN(rev64, "rev %0, %1")
UN(rev32w, "rev %w0, %w1")
UN(rev32x, "rev32 %0, %1")
UN(rev16x, "rev16 %0, %1")
UN(rev16w, "rev16 %w0, %w1")
UN(sbfx, "sbfx %0, %1, #3, #9")
UN(sbfiz32, "sbfiz %w0, %w1, #5, #7")
UN(ubfx32, "ubfx %w0, %w1, #28, #4")
UN(ubfiz, "ubfiz %0, %1, #60, #4")
UN(sxtb, "sxtb %0, %w1")
UN(sxth32, "sxth %w0, %w1")
UN(sxtw, "sxtw %0, %w1")
UN(asr_imm, "asr %0, %1, #63")
UN(lsl_w, "lsl %w0, %w1, #31")
UN(movk, "mov %0, %1\n movk %0, #0xbeef, lsl #32")
UN(movn32, "movn %w0, #0x1234, lsl #16")
UN(and_imm, "and %0, %1, #0x00ff00ff00ff00ff")
UN(orr_imm32, "orr %w0, %w1, #0xf0f0f0f0")
UN(eor_imm, "eor %0, %1, #0x5555555555555555")
UN(ands_imm, "ands %w0, %w1, #0x1\n cset %w0, eq")

static void bfm(uint64_t a, uint64_t b) {
    uint64_t r1 = a, r2 = a, r3 = a;
    __asm__("bfi %0, %1, #8, #12" : "+r"(r1) : "r"(b));
    __asm__("bfxil %0, %1, #40, #20" : "+r"(r2) : "r"(b));
    __asm__("bfi %w0, %w1, #31, #1" : "+r"(r3) : "r"(b));
    printf("bfm %016llx %016llx -> %016llx %016llx %016llx\n", (unsigned long long)a,
           (unsigned long long)b, (unsigned long long)r1, (unsigned long long)r2,
           (unsigned long long)r3);
}

static void memory_modes(void) {
    uint64_t buf[8] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777, 0x8888};
    uint64_t *p = buf, x, y;
    int64_t idx = 3;
    __asm__ volatile("ldr %0, [%2, #8]!" : "=r"(x), "+r"(p) : "r"(p));
    __asm__ volatile("ldr %0, [%1], #16" : "=r"(y), "+r"(p));
    printf("pre/post %llx %llx %td\n", (unsigned long long)x, (unsigned long long)y, p - buf);
    __asm__ volatile("ldr %0, [%1, %2, lsl #3]" : "=r"(x) : "r"(buf), "r"(idx));
    __asm__ volatile("ldrsh %0, [%1, %w2, sxtw #1]" : "=r"(y) : "r"(buf), "r"(-1 + 9));
    printf("roff %llx %llx\n", (unsigned long long)x, (unsigned long long)y);
    int32_t neg = -5;
    int64_t sw;
    __asm__ volatile("ldrsw %0, [%1]" : "=r"(sw) : "r"(&neg));
    uint64_t ldp1, ldp2;
    __asm__ volatile("ldp %0, %1, [%2, #-16]" : "=r"(ldp1), "=r"(ldp2) : "r"(buf + 4));
    printf("ldrsw %lld ldp %llx %llx\n", (long long)sw, (unsigned long long)ldp1,
           (unsigned long long)ldp2);
}

int main(int argc, char **argv) {
    /* argv[1]: how many of the edge values to combine (default: all) */
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : N;
    if (n > N) n = N;
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++)
            for (int c = 0; c < 2; c++) {
                uint64_t a = V[i], b = V[j];
                adds64(a, b, c); subs64(a, b, c); adcs64(a, b, c); sbcs64(a, b, c);
                adds32(a, b, c); subs32(a, b, c); adcs32(a, b, c); sbcs32(a, b, c);
                if (c) continue;
                ands64(a, b, c); bics32(a, b, c); ccmp_eq(a, b, c); ccmn_lt(a, b, c);
                csel_cc(a, b, c); csneg_le(a, b, c); csinv_vs(a, b, c);
                udiv64(a, b, c); sdiv64(a, b, c); udiv32(a, b, c); sdiv32(a, b, c);
                lsl64(a, b, c); lsr32(a, b, c); asr32(a, b, c); ror32(a, b, c); ror64(a, b, c);
                smulh(a, b, c); umulh(a, b, c); smaddl(a, b, c); umsubl(a, b, c);
                madd32(a, b, c); extr64(a, b, c); extr32(a, b, c); add_ext(a, b, c);
                sub_ext(a, b, c); add_sxtw(a, b, c); neg_shift(a, b, c); orn_ror(a, b, c);
                eon_lsr(a, b, c); bfm(a, b); crc32b(a, b, c); crc32h(a, b, c);
                crc32cw(a, b, c); crc32x(a, b, c); crc32cx(a, b, c);
            }
    for (unsigned i = 0; i < N; i++) {
        uint64_t a = V[i];
        clz64(a); clz32(a); cls64(a); cls32(a); rbit64(a); rbit32(a); rev64(a); rev32w(a);
        rev32x(a); rev16x(a); rev16w(a); sbfx(a); sbfiz32(a); ubfx32(a); ubfiz(a); sxtb(a);
        sxth32(a); sxtw(a); asr_imm(a); lsl_w(a); movk(a); movn32(a); and_imm(a);
        orr_imm32(a); eor_imm(a); ands_imm(a);
    }
    memory_modes();
    char text[200];
    strcpy(text, "The quick brown fox jumps over the lazy dog");
    printf("%zu %s %d %p\n", strlen(text), strchr(text, 'q'), memcmp(text, "The", 3),
           (void *)memchr(text, 'z', 5));
    return 0;
}
