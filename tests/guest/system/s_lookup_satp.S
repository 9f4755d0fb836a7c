# The native lookup across address-space switches: the virtual page 0x20000 holds two
# functions (at 0x20000 and 0x20100) and maps to physical P1 under root table A and to
# P3 under root table B; page 0x22000 (two functions, at 0x22000 and 0x22100) maps to
# P2 under both. Functions 8 KiB apart share a jump cache entry, so every call misses it
# and is served by the native lookup table or the run loop. The loop runs under A, B, A,
# B (each satp write flushes the TLB): an entry of an earlier generation may be taken
# only when the TLB maps its page to the physical page it was translated from, so each
# round must sum what its own mapping names. Results: the four sums.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define ROOT_A  0x80020000
#define L1_A    0x80021000
#define L0_A    0x80022000
#define ROOT_B  0x80023000
#define L1_B    0x80024000
#define L0_B    0x80025000
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

    .macro function addr, value   # at \addr: return \value
    li t0, \addr
    li t1, LI_A0(\value)
    sw t1, 0(t0)
    li t1, RET
    sw t1, 4(t0)
    .endm

    .macro root_table root, l1, l0, page20  # RAM and the HTIF identity-mapped
    li t0, \root
    li t1, LEAF(0x40000000, PTE_R | PTE_W | PTE_D)
    sd t1, 8(t0)
    li t1, LEAF(0x80000000, PTE_R | PTE_W | PTE_X | PTE_D)
    sd t1, 16(t0)
    li t1, ((\l1 >> 12) << 10) | PTE_V
    sd t1, 0(t0)
    li t0, \l1
    li t1, ((\l0 >> 12) << 10) | PTE_V
    sd t1, 0(t0)
    li t0, \l0
    li t1, LEAF(\page20, PTE_R | PTE_X)
    sd t1, 0x20 * 8(t0)
    li t1, LEAF(P2, PTE_R | PTE_X)
    sd t1, 0x22 * 8(t0)
    .endm

    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t6, RESULTS
    li t0, -1               # PMP: S may access everything
    csrw pmpaddr0, t0
    li t0, 0x1f             # NAPOT, RWX
    csrw pmpcfg0, t0
    function P1, 1
    function P1 + 0x100, 2
    function P2, 10
    function P2 + 0x100, 20
    function P3, 100
    function P3 + 0x100, 200
    fence.i
    root_table ROOT_A, L1_A, L0_A, P1
    root_table ROOT_B, L1_B, L0_B, P3
    li t0, 3 << 11          # MPP = S
    csrc mstatus, t0
    li t0, 1 << 11
    csrs mstatus, t0
    la t0, s_main
    csrw mepc, t0
    mret

s_main:
    li s6, (8 << 60) | (ROOT_A >> 12)
    li s7, (8 << 60) | (ROOT_B >> 12)
    csrw satp, s6
    sfence.vma
    call calls
    sd a0, 0(t6)            # [0] 100 * (1 + 2 + 10 + 20)
    csrw satp, s7
    sfence.vma
    call calls
    sd a0, 8(t6)            # [1] 100 * (100 + 200 + 10 + 20)
    csrw satp, s6
    sfence.vma
    call calls
    sd a0, 16(t6)           # [2] as [0]
    csrw satp, s7
    sfence.vma
    call calls
    sd a0, 24(t6)           # [3] as [1]
    ecall                   # from S: not delegated, M ends the test

calls:                      # a0 = the sum of CALLS calls of each function
    mv s2, ra
    li s1, 0
    li s3, CALLS
    li s4, 0x20000
    li s5, 0x22000
1:  jalr ra, 0(s4)
    add s1, s1, a0
    jalr ra, 0x100(s4)
    add s1, s1, a0
    jalr ra, 0(s5)
    add s1, s1, a0
    jalr ra, 0x100(s5)
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
2:  sd t0, 32(t6)           # [4] the unexpected cause
    li t0, TOHOST
    li t1, 3                # exit code 1
    sd t1, 0(t0)
3:  j 3b
