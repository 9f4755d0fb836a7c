# Code at one virtual page on another physical page every run (as a kernel loads a
# program wherever it finds free memory): M copies `snippet` to physical page
# CODE + PARAM[0] * 0x1000, optionally with its second instruction replaced by
# PARAM[1], and maps it at virtual 0x14000 (R|X) and 0x15000 (R|W, an alias). S calls
# it, then rewrites its loop step through the alias and calls it again.
#define RESULTS 0x80010000
#define PARAM   0x80011000
#define TOHOST  0x40000000
#define ROOT    0x80020000
#define L1      0x80021000
#define L0      0x80022000
#define CODE    0x80040000
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_A 0x40
#define PTE_D 0x80
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
    # the code's physical page: CODE + PARAM[0] pages
    li t0, PARAM
    ld s0, 0(t0)
    slli s0, s0, 12
    li t1, CODE
    add s0, s0, t1
    la t1, snippet
    la t2, snippet_end
    mv t3, s0
1:  lw t4, 0(t1)
    sw t4, 0(t3)
    addi t1, t1, 4
    addi t3, t3, 4
    bltu t1, t2, 1b
    ld t4, 8(t0)            # PARAM[1]: another second instruction (0: none)
    beqz t4, 2f
    sw t4, 4(s0)
2:  fence.i
    # page tables: RAM and the HTIF identity-mapped, the code at 0x14000 and 0x15000
    li t0, ROOT
    li t1, (((0x40000000 >> 12) << 10) | PTE_R | PTE_W | PTE_A | PTE_D | PTE_V)
    sd t1, 8(t0)
    li t1, (((0x80000000 >> 12) << 10) | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_V)
    sd t1, 16(t0)
    li t1, ((L1 >> 12) << 10) | PTE_V
    sd t1, 0(t0)
    li t0, L1
    li t1, ((L0 >> 12) << 10) | PTE_V
    sd t1, 0(t0)
    li t0, L0
    srli t2, s0, 12
    slli t2, t2, 10
    ori t1, t2, PTE_R | PTE_X | PTE_A | PTE_V
    sd t1, 0x14 * 8(t0)
    ori t1, t2, PTE_R | PTE_W | PTE_A | PTE_D | PTE_V
    sd t1, 0x15 * 8(t0)
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
    li t4, 0x14000
    li a1, 1000
    jalr ra, 0(t4)
    sd a0, 0(t6)            # [0] 1000 * the step
    li t5, 0x15000
    li t0, 0x00750513       # addi a0, a0, 7
    sw t0, 4(t5)
    fence.i
    li a1, 10
    jalr ra, 0(t4)
    sd a0, 8(t6)            # [1] 70
    ecall                   # from S: M ends the test

    .balign 4
snippet:                    # (position-independent)
    li a0, 0
3:  addi a0, a0, 3
    addi a1, a1, -1
    bnez a1, 3b
    ret
snippet_end:

    .balign 4
m_handler:
    csrr t0, mcause
    li t1, 9                # ecall from S: the end
    li t2, 3                # exit code 1
    bne t0, t1, 4f
    li t2, 1                # exit code 0
4:  sd t0, 16(t6)           # [2] mcause
    li t0, TOHOST
    sd t2, 0(t0)
5:  j 5b
