/* Many indirect branches whose targets conflict in a direct-mapped jump cache:
 * 4096 functions called through a pointer table in a pseudo-random order, each
 * calling further functions through the table (call/return chains of depth DEPTH),
 * so calls and returns reach thousands of distinct targets.
 *
 *     dispatch [ITERATIONS] [DEPTH]
 *
 * Prints a checksum and the number of indirect branches executed (a call through the
 * table and its return are two). */
#include <stdio.h>
#include <stdlib.h>

typedef unsigned long (*fn_t)(unsigned long, int);
static fn_t table[4096];

#define F(n)                                                                     \
    __attribute__((noinline)) static unsigned long f##n(unsigned long x, int d) { \
        if (d > 0)                                                               \
            x = table[(x >> 7) & 4095](x * 6364136223846793005ul + 0x##n, d - 1); \
        return x ^ (0x##n * 0x9e3779b97f4a7c15ul);                                \
    }
#define F16(p)                                                                   \
    F(p##0) F(p##1) F(p##2) F(p##3) F(p##4) F(p##5) F(p##6) F(p##7)              \
    F(p##8) F(p##9) F(p##a) F(p##b) F(p##c) F(p##d) F(p##e) F(p##f)
#define F256(p)                                                                  \
    F16(p##0) F16(p##1) F16(p##2) F16(p##3) F16(p##4) F16(p##5) F16(p##6)        \
    F16(p##7) F16(p##8) F16(p##9) F16(p##a) F16(p##b) F16(p##c) F16(p##d)        \
    F16(p##e) F16(p##f)
F256(0) F256(1) F256(2) F256(3) F256(4) F256(5) F256(6) F256(7)
F256(8) F256(9) F256(a) F256(b) F256(c) F256(d) F256(e) F256(f)

#define T(n) table[0x##n] = f##n;
#define T16(p)                                                                   \
    T(p##0) T(p##1) T(p##2) T(p##3) T(p##4) T(p##5) T(p##6) T(p##7)              \
    T(p##8) T(p##9) T(p##a) T(p##b) T(p##c) T(p##d) T(p##e) T(p##f)
#define T256(p)                                                                  \
    T16(p##0) T16(p##1) T16(p##2) T16(p##3) T16(p##4) T16(p##5) T16(p##6)        \
    T16(p##7) T16(p##8) T16(p##9) T16(p##a) T16(p##b) T16(p##c) T16(p##d)        \
    T16(p##e) T16(p##f)

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 100000;
    int depth = argc > 2 ? atoi(argv[2]) : 4;
    T256(0) T256(1) T256(2) T256(3) T256(4) T256(5) T256(6) T256(7)
    T256(8) T256(9) T256(a) T256(b) T256(c) T256(d) T256(e) T256(f)
    unsigned long x = 1, sum = 0;
    for (long i = 0; i < iterations; i++) {
        x = x * 2862933555777941757ul + 3037000493ul;
        sum += table[(x >> 40) & 4095](x, depth);
    }
    printf("checksum %016lx\n", sum);
    printf("indirect branches %ld\n", iterations * (depth + 1) * 2);
    return 0;
}
