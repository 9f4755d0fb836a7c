/* 128-bit loads and stores of SIMD&FP registers in every addressing mode: LDR/STR Q
 * (unsigned offset, unscaled, pre/post-index, register offset, literal), LDP/STP/LDNP/STNP
 * Q, LD1/ST1 of one to four whole registers (offset and post-index), LD2-LD4/ST2-ST4
 * (multiple structures); at every offset around a page boundary, and the faults of
 * accesses that run into a read-only or an inaccessible page (the fault address, for
 * stores what landed, for structure loads the registers at the fault). */
#include <asm/sigcontext.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static uint8_t *buf;  /* page 0, 1: read/write; page 2: read-only; page 3: no access */
static long page;
static sigjmp_buf env;
static volatile uintptr_t fault_addr;
static volatile uint64_t fault_v[8];  /* v0-v3 at the fault, from the signal frame */

static void on_segv(int sig, siginfo_t *info, void *uc) {
    (void)sig;
    struct fpsimd_context *f = (void *)((ucontext_t *)uc)->uc_mcontext.__reserved;
    for (int i = 0; i < 4; i++) {
        fault_v[2 * i] = f->head.magic == FPSIMD_MAGIC ? (uint64_t)f->vregs[i] : 0;
        fault_v[2 * i + 1] = f->head.magic == FPSIMD_MAGIC ? (uint64_t)(f->vregs[i] >> 64) : 0;
    }
    fault_addr = (uintptr_t)info->si_addr;
    siglongjmp(env, 1);
}

static void show(const char *what, long where, const uint8_t *p, int n) {
    printf("%s %ld:", what, where);
    for (int i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

static void fill(void) {
    for (long i = 0; i < 2 * page; i++) buf[i] = (uint8_t)(i * 13 + 7);
}

typedef struct { uint64_t d[8]; } Regs;  /* v0..v3, two doublewords each */

/* Every asm statement sets v0-v3 first and reads them back itself: nothing the compiler
 * or libc (whose routines differ by the CPU model the emulator reports) does between two
 * statements can show. */
#define CLOB "movi v0.16b, #0xa5\n movi v1.16b, #0x5a\n movi v2.16b, #0x3c\n" \
             "movi v3.16b, #0xc3\n"
#define READ "\n mov %[d0], v0.d[0]\n mov %[d1], v0.d[1]\n mov %[d2], v1.d[0]\n" \
             " mov %[d3], v1.d[1]\n mov %[d4], v2.d[0]\n mov %[d5], v2.d[1]\n" \
             " mov %[d6], v3.d[0]\n mov %[d7], v3.d[1]"
#define OUT(r) [d0] "=&r"(r.d[0]), [d1] "=&r"(r.d[1]), [d2] "=&r"(r.d[2]), \
               [d3] "=&r"(r.d[3]), [d4] "=&r"(r.d[4]), [d5] "=&r"(r.d[5]), \
               [d6] "=&r"(r.d[6]), [d7] "=&r"(r.d[7])
#define VREGS "v0", "v1", "v2", "v3", "memory"

static void show_regs(const char *what, long where, const Regs *r) {
    printf("%s %ld:", what, where);
    for (int i = 0; i < 8; i++) printf(" %016llx", (unsigned long long)r->d[i]);
    printf("\n");
}

static void single_registers(long k) {
    uint8_t *p = buf + page - k;  /* 16 bytes at k bytes before the page boundary */
    uint8_t *q = buf + page / 2;
    uint8_t *x;
    long idx = 1;
    Regs r;
    __asm__ volatile(CLOB "ldr q0, [%[p]]\n ldur q1, [%[p], #-3]\n ldr q2, [%[p], #32]\n"
                     "ldr q3, [%[m], %[i], lsl #4]" READ
                     : OUT(r) : [p] "r"(p), [m] "r"(p - 16), [i] "r"(idx) : VREGS);
    show_regs("ldr", k, &r);
    x = p - 16;
    __asm__ volatile(CLOB "ldr q0, [%[x], #16]!\n ldr q1, [%[x]], #-48" READ
                     : OUT(r), [x] "+r"(x) :: VREGS);
    show_regs("ldr-idx", (long)(x - p), &r);
    memset(q - 64, 0, 160);
    __asm__ volatile(CLOB "ldr q0, [%[p]]\n str q0, [%[q]]\n stur q0, [%[q], #-19]\n"
                     "str q0, [%[q], %w[i], sxtw #4]\n str q1, [%[q], #32]" READ
                     : OUT(r) : [p] "r"(p), [q] "r"(q), [i] "r"((int)-2) : VREGS);
    show("str", k, q - 64, 112);
    x = p;
    __asm__ volatile(CLOB "ldr q1, [%[q], #32]\n str q1, [%[x], #-16]!\n str q1, [%[x]], #48"
                     READ : OUT(r), [x] "+r"(x) : [q] "r"(q) : VREGS);
    show("str-idx", (long)(x - p), p - 16, 32);
}

static void pairs_and_ld1(long k) {
    uint8_t *p = buf + page - k;
    uint8_t *q = buf + page / 2;
    uint8_t *x = p - 16;
    long step = 48;
    Regs r;
    __asm__ volatile(CLOB "ldp q0, q1, [%[p], #-16]\n ldnp q2, q3, [%[p], #16]" READ
                     : OUT(r) : [p] "r"(p) : VREGS);
    show_regs("ldp", k, &r);
    __asm__ volatile(CLOB "ldp q2, q3, [%[x], #32]!\n ldp q0, q1, [%[x]], #-64" READ
                     : OUT(r), [x] "+r"(x) :: VREGS);
    show_regs("ldp-idx", (long)(x - p), &r);
    memset(q - 64, 0, 160);
    __asm__ volatile(CLOB "ldr q1, [%[p]]\n stp q0, q1, [%[q], #-32]\n"
                     "stnp q2, q3, [%[q], #32]\n stp q3, q1, [%[q], #-64]!" READ
                     : OUT(r) : [p] "r"(p), [q] "r"(q) : VREGS);
    show("stp", k, q - 64, 128);
    x = p - 32;
    __asm__ volatile(CLOB "ld1 {v0.16b}, [%[x]]\n ld1 {v1.4s, v2.4s}, [%[x]], #32\n"
                     "ld1 {v3.2d}, [%[x]], %[s]" READ
                     : OUT(r), [x] "+r"(x) : [s] "r"(step) : VREGS);
    show_regs("ld1", (long)(x - p), &r);
    x = p - 16;
    __asm__ volatile(CLOB "ld1 {v0.8h, v1.8h, v2.8h}, [%[x]]\n ld1 {v0.2d-v3.2d}, [%[x]], #64"
                     READ : OUT(r), [x] "+r"(x) :: VREGS);
    show_regs("ld1x4", (long)(x - p), &r);
    __asm__ volatile(CLOB "ld1 {v0.8b, v1.8b}, [%[p]]" READ : OUT(r) : [p] "r"(p) : VREGS);
    show_regs("ld1-d", k, &r);
    memset(q - 64, 0, 160);
    x = q - 64;
    __asm__ volatile(CLOB "ldr q0, [%[p]]\n ldr q1, [%[p], #-16]\n st1 {v0.16b}, [%[x]], #16\n"
                     "st1 {v0.2d, v1.2d}, [%[x]], %[s]\n st1 {v1.16b-v3.16b}, [%[x]]\n"
                     "st1 {v0.4s-v3.4s}, [%[x]]" READ
                     : OUT(r), [x] "+r"(x) : [p] "r"(p), [s] "r"(step) : VREGS);
    show("st1", (long)(x - q), q - 64, 144);
}

/* LD2-LD4 and ST2-ST4 of every register size, 8-byte and 16-byte registers, around the
 * page boundary (k bytes before it): crossing it for small k. */
static void structures(long k) {
    uint8_t *p = buf + page - k;
    uint8_t *q = buf + page / 2;
    uint8_t *x;
    Regs r;
    __asm__ volatile(CLOB "ld2 {v0.16b, v1.16b}, [%[p]]\n add x9, %[p], #8\n ld2 {v2.4h, v3.4h}, [x9]"
                     READ : OUT(r) : [p] "r"(p - 16) : VREGS, "x9");
    show_regs("ld2", k, &r);
    __asm__ volatile(CLOB "ld2 {v0.2d, v1.2d}, [%[p]]\n ld2 {v2.2s, v3.2s}, [%[p]]" READ
                     : OUT(r) : [p] "r"(p - 8) : VREGS);
    show_regs("ld2-d", k, &r);
    __asm__ volatile(CLOB "ld3 {v0.8h, v1.8h, v2.8h}, [%[p]]" READ
                     : OUT(r) : [p] "r"(p - 24) : VREGS);
    show_regs("ld3", k, &r);
    __asm__ volatile(CLOB "ld3 {v1.8b, v2.8b, v3.8b}, [%[p]]\n add x9, %[p], #3\n"
                     "ld3 {v0.4s-v2.4s}, [x9]" READ : OUT(r) : [p] "r"(p - 12) : VREGS, "x9");
    show_regs("ld3-b", k, &r);
    __asm__ volatile(CLOB "ld4 {v0.4s, v1.4s, v2.4s, v3.4s}, [%[p]]" READ
                     : OUT(r) : [p] "r"(p - 32) : VREGS);
    show_regs("ld4", k, &r);
    __asm__ volatile(CLOB "ld4 {v0.16b-v3.16b}, [%[p]]\n add x9, %[p], #5\n ld4 {v0.8b-v3.8b}, [x9]"
                     READ : OUT(r) : [p] "r"(p - 40) : VREGS, "x9");
    show_regs("ld4-b", k, &r);
    x = p - 16;
    __asm__ volatile(CLOB "ld2 {v0.8h, v1.8h}, [%[x]], #32\n ld4 {v0.4h-v3.4h}, [%[x]], %[s]"
                     READ : OUT(r), [x] "+r"(x) : [s] "r"(-40L) : VREGS);
    show_regs("ldn-idx", (long)(x - p), &r);
    memset(q - 64, 0, 160);
    __asm__ volatile(CLOB "ldr q0, [%[p], #-32]\n ldr q1, [%[p], #-16]\n ldr q2, [%[p]]\n"
                     "ldr q3, [%[p], #16]\n add x9, %[q], #-64\n st2 {v0.16b, v1.16b}, [x9]\n"
                     "add x9, %[q], #-30\n st3 {v1.4s-v3.4s}, [x9]\n"
                     "add x9, %[q], #19\n st4 {v0.8h-v3.8h}, [x9]\n"
                     "add x9, %[q], #85\n st3 {v0.8b-v2.8b}, [x9]\n"
                     "add x9, %[q], #64\n movi v4.16b, #0x77\n st4 {v1.2s-v4.2s}, [x9]" READ
                     : OUT(r) : [p] "r"(p), [q] "r"(q) : VREGS, "v4", "x9");
    show("stn", k, q - 64, 160);
    x = p - 16;
    __asm__ volatile(CLOB "st2 {v2.8h, v3.8h}, [%[x]]\n sub x9, %[x], #32\n st4 {v0.2d-v3.2d}, [x9]"
                     READ : OUT(r) : [x] "r"(x) : VREGS, "x9");
    show("stn-edge", k, p - 48, 96);
}

static void literal(void) {
    Regs r;
    __asm__ volatile(CLOB "b 2f\n .balign 16\n 1: .quad 0x0123456789abcdef\n"
                     " .quad 0xfedcba9876543210, 0x1111222233334444\n 2: ldr q0, 1b\n"
                     " adr x9, 1b\n ldr q1, [x9, #8]" READ : OUT(r) :: VREGS, "x9");
    show_regs("ldr-lit", 0, &r);
}

#define TRY(name, where, insn, addr)                                             \
    do {                                                                         \
        fault_addr = 0;                                                          \
        if (!sigsetjmp(env, 1)) {                                                \
            __asm__ volatile(CLOB insn :: "r"(addr) : VREGS);                    \
            printf("%s %ld: no fault\n", name, (long)(where));                   \
        } else {                                                                 \
            printf("%s %ld: fault at +%ld\n", name, (long)(where),              \
                   (long)(fault_addr - (uintptr_t)buf));                         \
        }                                                                        \
    } while (0)

#define TRY_V(name, where, insn, addr)                                           \
    do {                                                                         \
        TRY(name, where, insn, addr);                                            \
        printf("%s %ld regs:", name, (long)(where));                             \
        for (int i = 0; i < 8; i++)                                              \
            printf(" %016llx", fault_addr ? (unsigned long long)fault_v[i] : 0ULL); \
        printf("\n");                                                            \
    } while (0)

static void faults(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    static const long ks[] = {16, 12, 8, 5, 1, 0};
    for (unsigned i = 0; i < sizeof ks / sizeof *ks; i++) {
        long k = ks[i];
        uint8_t *none = buf + 4 * page - k, *ro = buf + 2 * page - k;
        TRY("ldr-none", k, "ldr q0, [%0]", none);
        TRY("ldp-none", k, "ldp q0, q1, [%0, #-16]", none);
        TRY("ld1-none", k, "ld1 {v0.16b, v1.16b}, [%0]", none - 16);
        TRY("str-ro", k, "str q0, [%0]", ro);
        TRY("stp-ro", k, "stp q0, q1, [%0, #-16]", ro);
        TRY("st1-ro", k, "st1 {v0.16b, v1.16b}, [%0]", ro - 16);
        show("ro-edge", k, buf + 2 * page - 32, 48);
    }
    /* Structures running from a readable page into an inaccessible one (loads) and
     * from a writable page into a read-only one (stores): a fault mid-structure. */
    for (long k = 0; k <= 33; k += 3) {
        uint8_t *end = buf + 3 * page - k, *ro = buf + 2 * page - k;
        TRY_V("ld2-none", k, "ld2 {v0.8h, v1.8h}, [%0]", end - 16);
        TRY_V("ld3-none", k, "ld3 {v0.16b-v2.16b}, [%0]", end - 24);
        TRY_V("ld4-none", k, "ld4 {v0.2s-v3.2s}, [%0]", end - 16);
        fill();
        TRY("st2-ro", k, "st2 {v0.4s, v1.4s}, [%0]", ro - 16);
        TRY("st4-ro", k, "st4 {v0.16b-v3.16b}, [%0]", ro - 48);
        TRY("st3-ro", k, "st3 {v1.8b-v3.8b}, [%0]", ro - 12);
        show("ro-structs", k, buf + 2 * page - 64, 64);
    }
}

int main(void) {
    page = sysconf(_SC_PAGESIZE);
    buf = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return 1;
    for (long i = 2 * page; i < 3 * page; i++) buf[i] = (uint8_t)(i * 5 + 1);
    mprotect(buf + 2 * page, page, PROT_READ);
    mprotect(buf + 3 * page, page, PROT_NONE);
    for (long k = 0; k <= 17; k++) {
        fill();
        single_registers(k);
        pairs_and_ld1(k);
        structures(k);
    }
    literal();
    faults();
    return 0;
}
