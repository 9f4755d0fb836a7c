/* Scalar FP edge cases: every line is a result's bit pattern and FPSR's cumulative
   flags, in each rounding mode; compared with qemu-aarch64. */
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fpsr_take(void) {
    uint64_t f;
    __asm__ volatile("mrs %0, fpsr\n msr fpsr, xzr" : "=r"(f));
    return f;
}
static uint64_t bits_d(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static uint32_t bits_s(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static double from_d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static float from_s(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static const uint64_t D[] = {0, 0x8000000000000000, 0x3ff0000000000000, 0x7ff0000000000000,
                             0x7ff8000000000001, 0x7ff0000000000002, 0xbff8000000000000,
                             0x0000000000000001, 0x4004000000000000, 0xfff0000000000000,
                             0xfff4000000000003, 0x7fefffffffffffff, 0x3fe0000000000000,
                             0x4330000000000001, 0xc3e0000000000000, 0x43f0000000000000,
                             0x3fd5555555555555, 0x4000000000000001};
static const uint32_t S[] = {0, 0x80000000, 0x3f800000, 0x7f800000, 0x7fc00001, 0x7f800005,
                             0xbfc00000, 0x00000001, 0xff800000, 0xffa00003, 0x7f7fffff,
                             0x3f000000, 0x4b000001, 0xcf000000, 0x4f800000, 0x3eaaaaab};
#define ND (sizeof D / sizeof D[0])
#define NS (sizeof S / sizeof S[0])

#define D2(name, insn)                                                                   \
    static void name(double a, double b) {                                              \
        double r;                                                                       \
        __asm__ volatile(insn : "=w"(r) : "w"(a), "w"(b) : "x9");                          \
        printf(#name " %016llx %016llx %llx\n", (unsigned long long)bits_d(r),         \
               (unsigned long long)bits_d(a), (unsigned long long)fpsr_take());         \
    }
D2(faddd, "fadd %d0, %d1, %d2")
D2(fsubd, "fsub %d0, %d1, %d2")
D2(fmuld, "fmul %d0, %d1, %d2")
D2(fdivd, "fdiv %d0, %d1, %d2")
D2(fmaxd, "fmax %d0, %d1, %d2")
D2(fminnmd, "fminnm %d0, %d1, %d2")
D2(fnmuld, "fnmul %d0, %d1, %d2")
D2(fmaddd, "fmadd %d0, %d1, %d2, %d1")
D2(fnmsubd, "fnmsub %d0, %d2, %d1, %d2")
D2(fsqrtd, "fsqrt %d0, %d1")
D2(frintad, "frinta %d0, %d1")
D2(frintxd, "frintx %d0, %d1")
D2(frintmd, "frintm %d0, %d1")
D2(fcvtsd, "fcvt %s0, %d1\n fcvt %d0, %s0")
D2(fcmpd, "fcmp %d1, %d2\n mrs x9, nzcv\n fmov %d0, x9\n mov x9, xzr")
D2(fcmped, "fcmpe %d1, #0.0\n fccmp %d1, %d2, #3, ge\n fcsel %d0, %d1, %d2, lt")

#define S2(name, insn)                                                                   \
    static void name(float a, float b) {                                                \
        float r;                                                                        \
        __asm__ volatile(insn : "=w"(r) : "w"(a), "w"(b) : "x9");                          \
        printf(#name " %08x %08x %llx\n", bits_s(r), bits_s(a),                         \
               (unsigned long long)fpsr_take());                                        \
    }
S2(fadds, "fadd %s0, %s1, %s2")
S2(fmuls, "fmul %s0, %s1, %s2")
S2(fdivs, "fdiv %s0, %s1, %s2")
S2(fmins, "fmin %s0, %s1, %s2")
S2(fmaxnms, "fmaxnm %s0, %s1, %s2")
S2(fmsubs, "fmsub %s0, %s1, %s2, %s2")
S2(frintns, "frintn %s0, %s1")
S2(frintzs, "frintz %s0, %s1")
S2(fabss, "fabs %s0, %s1\n fneg %s0, %s0")

static void conversions(double d, float s) {
    int64_t x; uint64_t u; int32_t w; uint32_t uw;
    __asm__ volatile("fcvtzs %0, %d1" : "=r"(x) : "w"(d));
    __asm__ volatile("fcvtzu %0, %d1" : "=r"(u) : "w"(d));
    __asm__ volatile("fcvtns %w0, %d1" : "=r"(w) : "w"(d));
    __asm__ volatile("fcvtau %w0, %s1" : "=r"(uw) : "w"(s));
    uint64_t f = fpsr_take();
    int64_t m, p;
    __asm__ volatile("fcvtms %0, %s1" : "=r"(m) : "w"(s));
    __asm__ volatile("fcvtpu %0, %s1" : "=r"(p) : "w"(s));
    printf("cvt %016llx %08x -> %lld %llu %d %u %lld %lld %llx %llx\n",
           (unsigned long long)bits_d(d), bits_s(s), (long long)x, (unsigned long long)u, w,
           uw, (long long)m, (long long)p, (unsigned long long)f,
           (unsigned long long)fpsr_take());
    double sd, ud; float ss;
    __asm__ volatile("scvtf %d0, %1" : "=w"(sd) : "r"(x * 3 + 1));
    __asm__ volatile("ucvtf %d0, %1" : "=w"(ud) : "r"(u | 0x8000000000000001ull));
    __asm__ volatile("scvtf %s0, %w1" : "=w"(ss) : "r"(w * 7 + 3));
    printf("int->fp %016llx %016llx %08x %llx\n", (unsigned long long)bits_d(sd),
           (unsigned long long)bits_d(ud), bits_s(ss), (unsigned long long)fpsr_take());
}

int main(int argc, char **argv) {
    /* argv[1]: how many of the edge values to combine (default: all) */
    unsigned nd = argc > 1 ? (unsigned)atoi(argv[1]) : ND, ns = nd < NS ? nd : NS;
    if (nd > ND) nd = ND;
    static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    for (int k = 0; k < 4; k++) {
        fesetround(modes[k]);
        fpsr_take();
        for (unsigned i = 0; i < nd; i++) {
            for (unsigned j = 0; j < nd; j++) {
                double a = from_d(D[i]), b = from_d(D[j]);
                faddd(a, b); fsubd(a, b); fmuld(a, b); fdivd(a, b); fmaxd(a, b);
                fminnmd(a, b); fnmuld(a, b); fmaddd(a, b); fnmsubd(a, b); fcmpd(a, b);
                fcmped(a, b);
            }
            double a = from_d(D[i]);
            fsqrtd(a, a); frintad(a, a); frintxd(a, a); frintmd(a, a); fcvtsd(a, a);
            conversions(a, from_s(S[i % NS]));
        }
        for (unsigned i = 0; i < ns; i++) {
            for (unsigned j = 0; j < ns; j++) {
                float a = from_s(S[i]), b = from_s(S[j]);
                fadds(a, b); fmuls(a, b); fdivs(a, b); fmins(a, b); fmaxnms(a, b);
                fmsubs(a, b);
            }
            float a = from_s(S[i]);
            frintns(a, a); frintzs(a, a); fabss(a, a);
        }
    }
    fesetround(FE_TONEAREST);
    printf("%.17g %.9g %g %s\n", sqrt(2.0), (float)(1 / 3.0), pow(2.5, 3.5), "libm");
    return 0;
}
