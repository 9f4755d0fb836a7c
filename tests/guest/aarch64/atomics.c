/* Exclusives (LDXR/STXR, pairs, CLREX) and, built for Armv8.1, the LSE atomics GCC
   emits for the __atomic builtins (CAS, SWP, LDADD, LDCLR). */
#include <stdint.h>
#include <stdio.h>

static void exclusives(void) {
    static uint64_t word = 5;
    static uint32_t small = 7;
    uint64_t old, status;
    __asm__ volatile("1: ldaxr %0, [%2]\n add %0, %0, #3\n stlxr %w1, %0, [%2]\n cbnz %w1, 1b"
                     : "=&r"(old), "=&r"(status) : "r"(&word) : "memory");
    __asm__ volatile("ldxr %w0, [%2]\n clrex\n stxr %w1, %w0, [%2]"
                     : "=&r"(old), "=&r"(status) : "r"(&small) : "memory");
    printf("excl %llu %llu status after clrex %llu\n", (unsigned long long)word,
           (unsigned long long)small, (unsigned long long)status);
    uint64_t pair[2] __attribute__((aligned(16))) = {1, 2}, a, b;
    __asm__ volatile("1: ldxp %0, %1, [%3]\n add %0, %0, %1\n stxp %w2, %0, %1, [%3]\n"
                     " cbnz %w2, 1b" : "=&r"(a), "=&r"(b), "=&r"(status) : "r"(pair)
                     : "memory");
    printf("pair %llu %llu\n", (unsigned long long)pair[0], (unsigned long long)pair[1]);
    long counter = 10;
    long prev = __atomic_fetch_add(&counter, 5, __ATOMIC_SEQ_CST);
    long expected = 15;
    int ok = __atomic_compare_exchange_n(&counter, &expected, 99, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST);
    long swapped = __atomic_exchange_n(&counter, -1, __ATOMIC_ACQ_REL);
    unsigned char byte = 0xf0;
    unsigned char before = __atomic_fetch_and(&byte, 0x3c, __ATOMIC_RELAXED);
    printf("atomics %ld %d %ld %ld %u %u\n", prev, ok, swapped, counter, before, byte);
}

int main(void) {
    exclusives();
    return 0;
}
