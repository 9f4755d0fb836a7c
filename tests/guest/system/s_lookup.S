# Indirect jumps in S-mode with Sv39 paging, served by the native lookup table: two
# functions at virtual 0x20000 and 0x22000 (8 KiB apart, so they share a jump cache
# entry and every call misses it) are called alternately in a loop. Then 0x20000 is
# remapped to another physical page and the loop runs again after `sfence.vma addr`,
# then once more after mapping it back and a full `sfence.vma`: each loop must run the
# code the current mapping names. Results: the three sums.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define ROOT    0x80020000
#define L1      0x80021000
#define L0      0x80022000
#define P1      0x80030000
#define P2      0x80031000
#define P3      0x80032000
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_A 0x40
#define PTE_D 0x80
#define LEAF(pa, bits) ((((pa) >> 12) << 10) | (bits) | PTE_V | PTE_A)
#define RET 0x00008067      /* jalr zero, 0(ra) */
#define LI_A0(n) (((n) << 20) | 0x00000513)  /* addi a0, zero, n */
#define CALLS 100
    .option norvc
    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t6, RESULTS
    li t0, -1               # PMP: S may access everything
    csrw pmpaddr0, t0
    li t0, 0x1f             # NAPOT, RWX
    csrw pmpcfg0, t0
    # the functions: P1 returns 1, P2 10, P3 100
    li t0, P1
    li t1, LI_A0(1)
    sw t1, 0(t0)
    li t1, RET
    sw t1, 4(t0)
    li t0, P2
    li t1, LI_A0(10)
    sw t1, 0(t0)
    li t1, RET
    sw t1, 4(t0)
    li t0, P3
    li t1, LI_A0(100)
    sw t1, 0(t0)
    li t1, RET
    sw t1, 4(t0)
    fence.i
    # page tables: RAM and the HTIF identity-mapped, 0x20000 -> P1, 0x22000 -> P2
    li t0, ROOT
    li t1, LEAF(0x40000000, PTE_R | PTE_W | PTE_D)
    sd t1, 8(t0)
    li t1, LEAF(0x80000000, PTE_R | PTE_W | PTE_X | PTE_D)
    sd t1, 16(t0)
    li t1, ((L1 >> 12) << 10) | PTE_V
    sd t1, 0(t0)
    li t0, L1
    li t1, ((L0 >> 12) << 10) | PTE_V
    sd t1, 0(t0)
    li t0, L0
    li t1, LEAF(P1, PTE_R | PTE_X)
    sd t1, 0x20 * 8(t0)
    li t1, LEAF(P2, PTE_R | PTE_X)
    sd t1, 0x22 * 8(t0)
    li t0, (8 << 60) | (ROOT >> 12)
    csrw satp, t0
    sfence.vma
    li t0, 3 << 11          # MPP = S
    csrc mstatus, t0
    li t0, 1 << 11
    csrs mstatus, t0
    la t0, s_main
    csrw mepc, t0
    mret

s_main:
    call calls
    sd a0, 0(t6)            # [0] 100 * (1 + 10)
    li t0, L0
    li t1, LEAF(P3, PTE_R | PTE_X)
    sd t1, 0x20 * 8(t0)     # 0x20000 -> P3
    li t0, 0x20000
    sfence.vma t0
    call calls
    sd a0, 8(t6)            # [1] 100 * (100 + 10)
    li t0, L0
    li t1, LEAF(P1, PTE_R | PTE_X)
    sd t1, 0x20 * 8(t0)     # 0x20000 -> P1 again
    sfence.vma
    call calls
    sd a0, 16(t6)           # [2] 100 * (1 + 10)
    ecall                   # from S: not delegated, M ends the test

calls:                      # a0 = the sum of CALLS calls of each function
    mv s2, ra
    li s1, 0
    li s3, CALLS
    li s4, 0x20000
    li s5, 0x22000
1:  jalr ra, 0(s4)
    add s1, s1, a0
    jalr ra, 0(s5)
    add s1, s1, a0
    addi s3, s3, -1
    bnez s3, 1b
    mv a0, s1
    mv ra, s2
    ret

    .balign 4
m_handler:
    csrr t0, mcause
    li t1, 9                # ecall from S
    bne t0, t1, 2f
    li t0, TOHOST
    li t1, 1                # exit code 0
    sd t1, 0(t0)
2:  sd t0, 24(t6)           # [3] the unexpected cause
    li t0, TOHOST
    li t1, 3                # exit code 1
    sd t1, 0(t0)
3:  j 3b
