/* Self-modifying code reached through function pointers: 64 small functions
 * ("li a0, imm; ret") in an RWX page are called through a table many times (so their
 * translations are in the jump cache and the lookup table), then some are rewritten
 * (with fence.i) and called again: every call must run the code as it is now. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#define NFUNCS 64

static void write_function(uint32_t *code, int imm) {
    code[0] = 0x00000513u | ((uint32_t)(imm & 0x7ff) << 20); /* addi a0, zero, imm */
    code[1] = 0x00008067u;                                  /* ret */
}

int main(void) {
    uint32_t *page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 1;
    long (*table[NFUNCS])(void);
    for (int i = 0; i < NFUNCS; i++) {
        write_function(page + 4 * i, i);
        table[i] = (long (*)(void))(page + 4 * i);
    }
    __asm__ volatile("fence.i" ::: "memory");
    unsigned long sum = 0;
    for (int round = 0; round < 50; round++) {
        for (int call = 0; call < 2000; call++)
            sum = sum * 31 + table[(call * 7 + round) % NFUNCS]();
        /* Rewrite a few functions; the next calls must see the new immediates. */
        for (int k = 0; k < 4; k++)
            write_function(page + 4 * ((round * 5 + k * 17) % NFUNCS), 100 + round + k);
        __asm__ volatile("fence.i" ::: "memory");
        printf("round %d: %lu\n", round, sum);
    }
    return 0;
}
