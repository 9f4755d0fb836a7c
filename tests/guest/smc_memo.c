/* Self-modifying code whose bytes come back: code rewritten in place, then back to an
 * earlier version, many times (what an emulator may serve from a memo of earlier
 * translations, which is only right if the bytes are the same, all of them, at the
 * same pc). Every call must run the code as it is now:
 *
 *   toggle   a function switched between two versions (whole instructions differ);
 *   partial  one byte of one instruction in the middle of a block changes;
 *   tail     only the last instruction before the ret changes;
 *   moved    pc-relative code (auipc) with the same bytes at two pcs, alternately,
 *            the other pc overwritten with other code meanwhile;
 *   fresh    new bytes on every round (never seen before), between seen ones.
 *
 *     smc_memo [ROUNDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef long (*fn_t)(long);

#define ADDI(rd, rs, imm) (((uint32_t)(imm) & 0xfffu) << 20 | (rs) << 15 | (rd) << 7 | 0x13u)
#define ADD(rd, rs1, rs2) ((rs2) << 20 | (rs1) << 15 | (rd) << 7 | 0x33u)
#define AUIPC(rd, imm) ((uint32_t)(imm) << 12 | (rd) << 7 | 0x17u)
#define RET 0x00008067u
#define A0 10
#define A1 11

static void put(uint8_t *code, const uint32_t *insns, size_t n) {
    memcpy(code, insns, 4 * n);
    __asm__ volatile("fence.i" ::: "memory");
}

static long call(uint8_t *code, long x) {
    return ((fn_t)(void *)code)(x);
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 200;
    uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    uint8_t *toggle = page, *partial = page + 0x100, *tail = page + 0x200;
    uint8_t *here = page + 0x300, *there = page + 0x400, *fresh = page + 0x500;
    const uint32_t one[] = {ADDI(A0, A0, 1), RET};
    const uint32_t two[] = {ADDI(A0, 0, 2), ADD(A0, A0, A0), RET};
    uint32_t middle[] = {ADDI(A0, A0, 5), ADDI(A0, A0, 7), ADDI(A0, A0, 11), RET};
    uint32_t last[] = {ADDI(A1, 0, 3), ADD(A0, A0, A1), ADDI(A0, A0, 100), RET};
    const uint32_t where[] = {AUIPC(A0, 0), RET};
    const uint32_t other[] = {ADDI(A0, 0, -1), RET};
    long toggles = 0, partials = 0, tails = 0, moved = 0, news = 0;
    for (long i = 0; i < rounds; i++) {
        put(toggle, i % 2 ? one : two, i % 2 ? 2 : 3);
        toggles = toggles * 3 + call(toggle, i);

        /* byte 2 of the middle instruction: its immediate's low bits (7 or 9) */
        uint8_t *byte = &((uint8_t *)&middle[1])[2];
        *byte = (uint8_t)((*byte & 0x0f) | (i % 3 == 0 ? 9 : 7) << 4);
        put(partial, middle, 4);
        partials = partials * 5 + call(partial, i);

        last[2] = ADDI(A0, A0, i % 2 ? 100 : 200);
        put(tail, last, 4);
        tails = tails * 7 + call(tail, i);

        /* the same bytes at here and at there: each call returns its own pc */
        uint8_t *at = i % 2 ? here : there, *away = i % 2 ? there : here;
        put(at, where, 2);
        put(away, other, 2);
        moved += (call(at, 0) - (long)(uintptr_t)page) * (i + 1) + call(away, 0);

        uint32_t new_code[] = {ADDI(A0, A0, (int32_t)(i & 0x7ff)), RET};
        put(fresh, new_code, 2);
        news += call(fresh, i);
    }
    printf("toggle %ld\npartial %ld\ntail %ld\nmoved %ld\nfresh %ld\n", toggles, partials,
           tails, moved, news);
    return 0;
}
