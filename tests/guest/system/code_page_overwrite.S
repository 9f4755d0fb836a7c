# A page of translated code overwritten in address order (as Linux clears or copies
# over a freed page): after a few of its blocks went store by store, the rest of the
# page is invalidated at once and its stores take the fast path. Data written in order
# beside live code on the page invalidates nothing. The code left after the overwritten
# part (invalidated too, unchanged) still runs as it is.
# A run that cleaned a page goes on into the next page at once: that page's blocks,
# at its end, go with its first store (not after a slow store per 8 bytes before them).
# Results: [0] the sum of the 64 functions (0 + 1 + ... + 63), [1] the same after the
# data beside them was written 20 times, [2] the sum after the first 48 were rewritten
# to return k + 100: (100 + ... + 147) + (48 + ... + 63) = 6816; [3] the 16 functions
# at the end of the next page (0 + ... + 15 = 120), then both pages overwritten in
# order with "li a0, 7; ret": [4] the 64 functions (448), [5] the 16 (112).
# A loop that overwrites 32 functions before it on its own page (as "li a0, 9; ret"),
# after one that stays, sweeps the rest of the page once, not at every store (its own
# block is translated again after the sweep): [6] the 32 and the one that stays before
# (0 + ... + 31 + 1 = 497), [7] after (288 + 1).
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
    la s7, tail_funcs
    li s8, 16
    call sum_n
    sd a0, 24(t6)           # [3] 120
    la t0, funcs            # both pages, in order: "li a0, 7; ret" in every dword
    li t1, 1024
    li t4, 0x0000806700700513
6:  sd t4, 0(t0)
    addi t0, t0, 8
    addi t1, t1, -1
    bnez t1, 6b
    fence.i
    call sum_funcs
    sd a0, 32(t6)           # [4] 448
    la s7, tail_funcs
    li s8, 16
    call sum_n
    sd a0, 40(t6)           # [5] 112
    la s7, self_funcs
    li s8, 32
    call sum_n
    mv s9, a0
    call self_keep
    add a0, a0, s9
    sd a0, 48(t6)           # [6] 497
    call overwrite_self
    la s7, self_funcs
    li s8, 32
    call sum_n
    mv s9, a0
    call self_keep
    add a0, a0, s9
    sd a0, 56(t6)           # [7] 289
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

sum_n:                      # a0 = the sum of what the s8 functions from s7 return
    mv s5, ra
    li s6, 0
7:  jalr s7
    add s6, s6, a0
    addi s7, s7, 8
    addi s8, s8, -1
    bnez s8, 7b
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
    .balign 4096            # the next page: untranslated bytes, then 16 functions
    .space 4096 - 16 * 8
tail_funcs:
    .set k, 0
    .rept 16
    li a0, k
    ret
    .set k, k + 1
    .endr

    .balign 4096            # a page of 32 functions and the loop that rewrites them
self_keep:                  # (stays: the page keeps code while the loop runs)
    li a0, 1
    ret
self_funcs:
    .set k, 0
    .rept 32
    li a0, k
    ret
    .set k, k + 1
    .endr
overwrite_self:
    la t0, self_funcs
    li t1, 32
    li t4, 0x0000806700900513
8:  sd t4, 0(t0)
    addi t0, t0, 8
    addi t1, t1, -1
    bnez t1, 8b
    fence.i
    ret
