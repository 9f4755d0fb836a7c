# A block that runs onto a second page is looked up by that page's mapping too (QEMU's
# tb_lookup_cmp compares a TB's second physical page). Virtual page 0x20000 maps to P1
# under both root tables; page 0x21000 maps to P2 under root A and to P3 under root B.
# P1 ends with `c.j +2` at 0xFFC and the first half of `addi a0, zero, IMM` at 0xFFE; the
# other half (IMM) is at offset 0 of P2 (IMM = 10) and P3 (IMM = 100), each followed by
# `ret`. So the block at 0x20FFE has the same pc, flags and physical pc under both
# mappings and must still be translated for each; the block at 0x20FFC jumps to it
# directly (a link that must not survive the remap). The loop runs under A, B, A, B,
# then under A with the second page's PTE rewritten to P3 and only that page flushed
# (sfence.vma with its address). Results: the five sums.
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
#define CJ_2    0xA009      /* c.j +2 */
#define ADDI_A0 0x0513      /* addi a0, zero, ...: the low half */
#define CRET    0x8082      /* c.jr ra */
#define CALLS 50
    .option norvc

    .macro root_table root, l1, l0, page21  # RAM and the HTIF identity-mapped
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
    li t1, LEAF(P1, PTE_R | PTE_X)
    sd t1, 0x20 * 8(t0)
    li t1, LEAF(\page21, PTE_R | PTE_X)
    sd t1, 0x21 * 8(t0)
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
    li t0, P1 + 0xFFC
    li t1, (ADDI_A0 << 16) | CJ_2
    sw t1, 0(t0)
    li t0, P2
    li t1, (CRET << 16) | (10 << 4)     # addi's upper half: imm[11:0] at bits 31:20
    sw t1, 0(t0)
    li t0, P3
    li t1, (CRET << 16) | (100 << 4)
    sw t1, 0(t0)
    fence.i
    root_table ROOT_A, L1_A, L0_A, P2
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
    sd a0, 0(t6)            # [0] 50 * (10 + 10)
    csrw satp, s7
    sfence.vma
    call calls
    sd a0, 8(t6)            # [1] 50 * (100 + 100)
    csrw satp, s6
    sfence.vma
    call calls
    sd a0, 16(t6)           # [2] as [0]
    csrw satp, s7
    sfence.vma
    call calls
    sd a0, 24(t6)           # [3] as [1]
    csrw satp, s6
    sfence.vma
    call calls              # (A's blocks again, in the TLB)
    li t0, L0_A + 0x21 * 8  # A's second page now maps to P3: flush only that page
    li t1, LEAF(P3, PTE_R | PTE_X)
    sd t1, 0(t0)
    li t0, 0x21000
    sfence.vma t0
    call calls
    sd a0, 32(t6)           # [4] as [1]
    ecall                   # from S: not delegated, M ends the test

calls:                      # a0 = the sum of CALLS calls of each entry point
    mv s2, ra
    li s1, 0
    li s3, CALLS
    li s4, 0x20FFC
1:  jalr ra, 0(s4)          # c.j +2, then the block across the page boundary
    add s1, s1, a0
    jalr ra, 2(s4)          # the block across the page boundary
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
2:  sd t0, 40(t6)           # [5] the unexpected cause
    li t0, TOHOST
    li t1, 3                # exit code 1
    sd t1, 0(t0)
3:  j 3b
