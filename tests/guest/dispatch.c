/* Many indirect branches whose targets conflict in a direct-mapped jump cache:
 * NGROUPS * 256 functions (default 4096) called through a pointer table in a
 * pseudo-random order, each calling further functions through the table (call/return
 * chains of depth DEPTH), so calls and returns reach thousands of distinct targets.
 *
 *     dispatch [ITERATIONS] [DEPTH] [THREADS]
 *
 * Prints a checksum and the number of indirect branches executed (a call through the
 * table and its return are two). Build with -DNGROUPS=N for N * 256 functions. With THREADS > 0, that many threads run ITERATIONS
 * each (seeded apart) and the checksums are summed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef NGROUPS
#define NGROUPS 16
#endif
#define NFUNCS (NGROUPS * 256)
/* -DSPREAD=8192 places the functions 8 KiB apart, so that all of them (and all their
 * return sites) fall on the same entry of a jump cache indexed by pc bits 1-12. */
#ifdef SPREAD
#define PLACE __attribute__((aligned(SPREAD)))
#else
#define PLACE
#endif

typedef unsigned long (*fn_t)(unsigned long, int);
static fn_t table[NFUNCS];

#define F(n)                                                                     \
    __attribute__((noinline)) PLACE static unsigned long f##n(unsigned long x, int d) { \
        if (d > 0)                                                               \
            x = table[(x >> 33) % NFUNCS](x * 6364136223846793005ul + 0x##n, d - 1); \
        return x ^ (0x##n * 0x9e3779b97f4a7c15ul);                                \
    }
#define T(n) if (0x##n < NFUNCS) table[0x##n] = f##n;
#define X16(M, p)                                                                \
    M(p##0) M(p##1) M(p##2) M(p##3) M(p##4) M(p##5) M(p##6) M(p##7)              \
    M(p##8) M(p##9) M(p##a) M(p##b) M(p##c) M(p##d) M(p##e) M(p##f)
#define X256(M, p)                                                               \
    X16(M, p##0) X16(M, p##1) X16(M, p##2) X16(M, p##3) X16(M, p##4)             \
    X16(M, p##5) X16(M, p##6) X16(M, p##7) X16(M, p##8) X16(M, p##9)             \
    X16(M, p##a) X16(M, p##b) X16(M, p##c) X16(M, p##d) X16(M, p##e) X16(M, p##f)
#define GROUPS(M)                                                                \
    X256(M, 0) X256(M, 1) X256(M, 2) X256(M, 3) X256(M, 4) X256(M, 5)            \
    X256(M, 6) X256(M, 7) X256(M, 8) X256(M, 9) X256(M, a) X256(M, b)            \
    X256(M, c) X256(M, d) X256(M, e) X256(M, f)

GROUPS(F)

static long iterations;
static int depth;

static unsigned long run(unsigned long seed) {
    unsigned long x = seed, sum = 0;
    for (long i = 0; i < iterations; i++) {
        x = x * 2862933555777941757ul + 3037000493ul;
        sum += table[(x >> 40) % NFUNCS](x, depth);
    }
    return sum;
}

static void *thread_main(void *arg) {
    unsigned long *result = arg;
    *result = run(*result);
    return NULL;
}

int main(int argc, char **argv) {
    iterations = argc > 1 ? atol(argv[1]) : 100000;
    depth = argc > 2 ? atoi(argv[2]) : 4;
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    GROUPS(T)
    unsigned long sum = 0;
    if (threads <= 0) {
        sum = run(1);
    } else {
        pthread_t ids[64];
        unsigned long results[64];
        if (threads > 64)
            threads = 64;
        for (int i = 0; i < threads; i++) {
            results[i] = i + 1;
            if (pthread_create(&ids[i], NULL, thread_main, &results[i]) != 0)
                return 1;
        }
        for (int i = 0; i < threads; i++) {
            pthread_join(ids[i], NULL);
            sum += results[i];
        }
    }
    printf("checksum %016lx\n", sum);
    printf("indirect branches %ld\n", iterations * (depth + 1) * 2 * (threads > 0 ? threads : 1));
    return 0;
}
