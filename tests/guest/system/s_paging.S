# Delegation to S-mode and Sv39 paging: identity gigapages for RAM and the HTIF, a
# remapped supervisor page, a page mapped by the S-mode handler after a page fault
# (and retried), a U page (needs SUM), an execute-only page (needs MXR), and
# self-modifying code written through a second virtual mapping of a code page.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define ROOT    0x80020000
#define L1      0x80021000
#define L0      0x80022000
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_A 0x40
#define PTE_D 0x80
#define LEAF(pa, bits) ((((pa) >> 12) << 10) | (bits) | PTE_V | PTE_A)
    .option norvc
    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t6, RESULTS
    li t0, -1               # PMP: S and U may access everything
    csrw pmpaddr0, t0
    li t0, 0x1f             # NAPOT, RWX
    csrw pmpcfg0, t0
    li t0, (1 << 2) | (1 << 12) | (1 << 13) | (1 << 15)
    csrw medeleg, t0        # illegal instruction and page faults go to S
    la t0, s_handler
    csrw stvec, t0
    # data the S-mode program reads through its mappings
    li t0, 0x80030000
    li t1, 0x1234
    sd t1, 0(t0)
    li t0, 0x80031000
    li t1, 0x5678
    sd t1, 0(t0)
    li t0, 0x80032000
    li t1, 0x9abc
    sd t1, 0(t0)
    li t0, 0x80033000
    li t1, 0xdef0
    sd t1, 0(t0)
    # page tables
    li t0, ROOT
    li t1, LEAF(0x40000000, PTE_R | PTE_W | PTE_D)
    sd t1, 8(t0)            # root[1]: 0x40000000 (HTIF)
    li t1, LEAF(0x80000000, PTE_R | PTE_W | PTE_X | PTE_D)
    sd t1, 16(t0)           # root[2]: 0x80000000 (RAM)
    li t1, ((L1 >> 12) << 10) | PTE_V
    sd t1, 0(t0)            # root[0] -> L1
    li t0, L1
    li t1, ((L0 >> 12) << 10) | PTE_V
    sd t1, 0(t0)            # L1[0] -> L0
    li t0, L0
    li t1, LEAF(0x80030000, PTE_R | PTE_W | PTE_D)
    sd t1, 0x10 * 8(t0)     # 0x10000: supervisor data
    li t1, LEAF(0x80032000, PTE_R | PTE_W | PTE_D | PTE_U)
    sd t1, 0x12 * 8(t0)     # 0x12000: a user page
    li t1, LEAF(0x80033000, PTE_X)
    sd t1, 0x13 * 8(t0)     # 0x13000: execute-only
    li t1, LEAF(0x80034000, PTE_R | PTE_X)
    sd t1, 0x14 * 8(t0)     # 0x14000: code ...
    li t1, LEAF(0x80034000, PTE_R | PTE_W | PTE_D)
    sd t1, 0x15 * 8(t0)     # 0x15000: ... and a writable alias of it
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
    li t5, 0x10000
    ld a0, 0(t5)
    sd a0, 0(t6)            # [0] 0x1234 through the remapped page
    li t5, 0x11000
    ld a1, 0(t5)            # faults; the handler maps the page; retried
    sd a1, 24(t6)           # [3] 0x5678
    li t5, 0x12000
    ld a2, 0(t5)            # faults without SUM; the handler sets SUM
    sd a2, 40(t6)           # [5] 0x9abc
    li t5, 0x13000
    ld a3, 0(t5)            # faults without MXR; the handler sets MXR
    sd a3, 56(t6)           # [7] 0xdef0
    # self-modifying code: write "li a0, 1; ret" via 0x15000, run it at 0x14000
    li t5, 0x15000
    li t0, 0x00100513       # addi a0, zero, 1
    sw t0, 0(t5)
    li t0, 0x00008067       # jalr zero, 0(ra)
    sw t0, 4(t5)
    fence.i
    li t4, 0x14000
    jalr ra, 0(t4)
    sd a0, 64(t6)           # [8] 1
    li t0, 0x00200513       # addi a0, zero, 2
    sw t0, 0(t5)
    fence.i
    jalr ra, 0(t4)
    sd a0, 72(t6)           # [9] 2
    csrr t0, satp
    sd t0, 80(t6)           # [10] S-mode reads satp
    ecall                   # from S: not delegated, M ends the test

    .balign 4
s_handler:
    csrr t0, scause
    csrr t1, stval
    li t2, 0x11000
    beq t1, t2, 1f
    li t2, 0x12000
    beq t1, t2, 2f
    li t2, 0x13000
    beq t1, t2, 3f
    j s_fail
1:  sd t0, 8(t6)            # [1] scause, [2] stval
    sd t1, 16(t6)
    li t3, L0 + 0x11 * 8
    li t4, LEAF(0x80031000, PTE_R | PTE_W | PTE_D)
    sd t4, 0(t3)
    sfence.vma t1
    sret
2:  sd t0, 32(t6)           # [4] scause without SUM
    li t3, 1 << 18
    csrs sstatus, t3
    sret
3:  sd t0, 48(t6)           # [6] scause without MXR
    li t3, 1 << 19
    csrs sstatus, t3
    sret
s_fail:
    sd t0, 96(t6)
    sd t1, 104(t6)
    csrr t0, sepc
    sd t0, 112(t6)
    li t0, TOHOST
    li t1, 5                # exit code 2
    sd t1, 0(t0)
4:  j 4b

    .balign 4
m_handler:
    csrr t0, mcause
    sd t0, 88(t6)           # [11] mcause of the final ecall (9)
    li t1, 9
    bne t0, t1, 5f
    li t0, TOHOST
    li t1, 1                # exit code 0
    sd t1, 0(t0)
5:  csrr t1, mepc
    sd t1, 96(t6)
    csrr t1, mtval
    sd t1, 104(t6)
    li t0, TOHOST
    li t1, 3                # exit code 1
    sd t1, 0(t0)
6:  j 6b
