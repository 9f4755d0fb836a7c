# A page of translated code overwritten in address order (as Linux clears or copies
# over a freed page): after a few of its blocks went store by store, the rest of the
# page is invalidated at once and its stores take the fast path. Data written in order
# beside live code on the page invalidates nothing. The code left after the overwritten
# part (invalidated too, unchanged) still runs as it is.
# Results: [0] the sum of the 64 functions (0 + 1 + ... + 63), [1] the same after the
# data beside them was written 20 times, [2] the sum after the first 48 were rewritten
# to return k + 100: (100 + ... + 147) + (48 + ... + 63) = 6816.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define NFUNCS  64
#define NREWRITE 48
    .option norvc

    .globl _start
_start:
    li t6, RESULTS
    call sum_funcs
    sd a0, 0(t6)            # [0] 2016
    li s2, 20               # data beside the code, written in order, 20 times
1:  la t0, buffer
    li t1, 64
2:  sd s2, 0(t0)
    addi t0, t0, 8
    addi t1, t1, -1
    bnez t1, 2b
    addi s2, s2, -1
    bnez s2, 1b
    call sum_funcs
    sd a0, 8(t6)            # [1] 2016
    la t0, funcs            # rewrite function k as "li a0, k + 100; ret", one sd each
    li t1, 0
    li t2, NREWRITE
    li t3, 0x00008067       # ret
    slli t3, t3, 32
3:  addi t4, t1, 100
    slli t4, t4, 20
    ori t4, t4, 0x513       # addi a0, zero, k + 100
    or t4, t4, t3
    sd t4, 0(t0)
    addi t0, t0, 8
    addi t1, t1, 1
    bne t1, t2, 3b
    fence.i
    call sum_funcs
    sd a0, 16(t6)           # [2] 6816
    li t0, TOHOST
    li t1, 1
    sd t1, 0(t0)
4:  j 4b

sum_funcs:                  # a0 = the sum of what the NFUNCS functions return
    mv s5, ra
    li s6, 0
    la s7, funcs
    li s8, NFUNCS
5:  jalr s7
    add s6, s6, a0
    addi s7, s7, 8
    addi s8, s8, -1
    bnez s8, 5b
    mv a0, s6
    mv ra, s5
    ret

    .balign 4096
funcs:                      # function k: li a0, k; ret (8 bytes)
    .set k, 0
    .rept NFUNCS
    li a0, k
    ret
    .set k, k + 1
    .endr
buffer:
    .space 512
