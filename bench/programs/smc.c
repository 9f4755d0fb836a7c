/* Self-modifying code: rewrites a small function (x + k, a new k each time) in an
 * executable page and calls it, in a loop. Every rewrite invalidates the translation of
 * the old code, so what an emulator keeps per retired block (code, metadata, cache
 * entries) shows up as memory growing with the number of rewrites.
 *
 *     smc [REWRITES [CALLS_PER_REWRITE]]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef long (*fn_t)(long);

/* Write "return x + k" at code; returns the bytes written. */
static size_t emit(uint8_t *code, int32_t k) {
#if defined(__riscv)
    int32_t hi = (int32_t)(((uint32_t)k + 0x800u) >> 12), lo = k - (int32_t)((uint32_t)hi << 12);
    uint32_t insns[4] = {
        ((uint32_t)hi << 12) | (15u << 7) | 0x37u,                     /* lui  a5, hi      */
        (((uint32_t)lo & 0xfffu) << 20) | (15u << 15) | (15u << 7) | 0x13u, /* addi a5, a5, lo */
        (15u << 20) | (10u << 15) | (10u << 7) | 0x33u,                /* add  a0, a0, a5  */
        0x00008067u,                                                   /* ret              */
    };
    memcpy(code, insns, sizeof insns);
    __asm__ volatile("fence.i" ::: "memory");
    return sizeof insns;
#elif defined(__x86_64__)
    uint8_t insns[8] = {0x48, 0x8d, 0x87, 0, 0, 0, 0, 0xc3}; /* lea rax, [rdi + k]; ret */
    memcpy(insns + 3, &k, 4);
    memcpy(code, insns, sizeof insns);
    return sizeof insns;
#else
#error "smc: no encoder for this architecture"
#endif
}

int main(int argc, char **argv) {
    long rewrites = argc > 1 ? atol(argv[1]) : 100000;
    long calls = argc > 2 ? atol(argv[2]) : 1;
    uint8_t *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    fn_t fn = (fn_t)(void *)code;
    long total = 0;
    for (long i = 0; i < rewrites; i++) {
        emit(code, (int32_t)(i * 7919 % 1000003));
        for (long c = 0; c < calls; c++) total = fn(total) & 0xffffffffffL;
    }
    printf("smc %ld rewrites x%ld calls: %ld\n", rewrites, calls, total);
    return 0;
}
