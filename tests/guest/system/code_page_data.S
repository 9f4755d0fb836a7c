# Stores to data that shares a page with translated code take the slow path (the page
# holds code) but neither invalidate that code nor walk again: the TLB entry stays
# (QEMU's notdirty write); a store into the code itself still invalidates it.
# Results: [0] the sum of 200 calls (200 * 5), [1] the data word (200), [2] the call
# after the code was rewritten (7).
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define LI_A0(n) (((n) << 20) | 0x00000513)  /* addi a0, zero, n */
    .option norvc

    .globl _start
_start:
    li t6, RESULTS
    li s1, 0
    li s3, 200
    la s4, counter
1:  ld t0, 0(s4)            # data on the code page: load, add, store
    addi t0, t0, 1
    sd t0, 0(s4)
    call five
    add s1, s1, a0
    addi s3, s3, -1
    bnez s3, 1b
    sd s1, 0(t6)            # [0] 1000
    ld t0, 0(s4)
    sd t0, 8(t6)            # [1] 200
    la t0, five             # rewrite five's first instruction
    li t1, LI_A0(7)
    sw t1, 0(t0)
    fence.i
    call five
    sd a0, 16(t6)           # [2] 7
    li t0, TOHOST
    li t1, 1
    sd t1, 0(t0)
2:  j 2b

    .balign 64
five:
    li a0, 5
    ret
    .balign 8
counter:
    .dword 0
