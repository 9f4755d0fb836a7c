/* Threads race 128-bit updates of one pair of doublewords: LDXP/STXP loops and, built
   for Armv8.1, CASP loops, on the same 16 bytes. Each update adds 1 to the low word and
   3 to the high one, so a lost update shows in the totals, and a torn read by CASP
   (which returns the 16 bytes it compared, atomically) breaks high == 3 * low.
   usage: pair_race ldxp|casp|mixed [threads [iterations]] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t pair[2] __attribute__((aligned(16)));
static long iterations = 20000;
static int use_casp_for_odd, use_casp_for_even;
static long torn[64];

static void add_exclusive(void) {
    uint64_t lo, hi;
    uint32_t status;
    do {  /* (LDXP may read a torn pair: the STXP then fails) */
        __asm__ volatile("ldaxp %0, %1, [%2]" : "=&r"(lo), "=&r"(hi) : "r"(pair) : "memory");
        lo += 1;
        hi += 3;
        __asm__ volatile("stlxp %w0, %1, %2, [%3]" : "=&r"(status)
                         : "r"(lo), "r"(hi), "r"(pair) : "memory");
    } while (status);
}

static void add_casp(long *torn_count) {
    uint64_t old_lo = pair[0], old_hi = pair[1];
    for (;;) {
        register uint64_t exp_lo __asm__("x4") = old_lo;
        register uint64_t exp_hi __asm__("x5") = old_hi;
        register uint64_t new_lo __asm__("x6") = old_lo + 1;
        register uint64_t new_hi __asm__("x7") = old_hi + 3;
        __asm__ volatile("caspal x4, x5, x6, x7, [%2]" : "+r"(exp_lo), "+r"(exp_hi)
                         : "r"(pair), "r"(new_lo), "r"(new_hi) : "memory");
        if (exp_lo == old_lo && exp_hi == old_hi)
            return;
        if (exp_hi != 3 * exp_lo)  /* CASP returns the 16 bytes it compared: never torn */
            ++*torn_count;
        old_lo = exp_lo;
        old_hi = exp_hi;
    }
}

static void *worker(void *arg) {
    long id = (long)arg;
    int casp = id & 1 ? use_casp_for_odd : use_casp_for_even;
    for (long i = 0; i < iterations; i++) {
        if (casp)
            add_casp(&torn[id]);
        else
            add_exclusive();
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "mixed";
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    if (argc > 3)
        iterations = atol(argv[3]);
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "1..64 threads\n");
        return 2;
    }
    use_casp_for_even = !strcmp(mode, "casp");
    use_casp_for_odd = !strcmp(mode, "casp") || !strcmp(mode, "mixed");
    pthread_t tids[64];
    for (long t = 0; t < threads; t++)
        pthread_create(&tids[t], NULL, worker, (void *)t);
    long torn_total = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        torn_total += torn[t];
    }
    uint64_t want = (uint64_t)threads * iterations;
    int ok = pair[0] == want && pair[1] == 3 * want && torn_total == 0;
    printf("%s: low %llu high %llu (want %llu %llu), torn CASP reads %ld: %s\n", mode,
           (unsigned long long)pair[0], (unsigned long long)pair[1],
           (unsigned long long)want, (unsigned long long)3 * want, torn_total,
           ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
