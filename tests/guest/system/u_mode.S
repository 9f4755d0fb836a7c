# U-mode under S-mode without paging: an S CSR read from U is illegal and an ecall
# from U, both delegated to S (medeleg); S then calls M (not delegated) to finish.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
    .option norvc
    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t6, RESULTS
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    li t0, (1 << 2) | (1 << 8)
    csrw medeleg, t0        # illegal instruction and ecall from U go to S
    la t0, s_handler
    csrw stvec, t0
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, 1 << 11          # MPP = S
    csrs mstatus, t0
    la t0, s_entry
    csrw mepc, t0
    mret

s_entry:
    li t0, 1 << 8           # SPP = U
    csrc sstatus, t0
    la t0, u_main
    csrw sepc, t0
    sret

u_main:
u_illegal_at:
    csrr t0, sstatus        # U may not read sstatus
u_ecall_at:
    ecall
1:  j 1b

    .balign 4
s_handler:
    csrr t0, scause
    li t1, 8
    beq t0, t1, 2f
    sd t0, 0(t6)            # [0] scause (2)
    csrr t1, stval
    sd t1, 8(t6)            # [1] stval (the instruction)
    csrr t1, sepc
    sd t1, 16(t6)           # [2] sepc
    addi t1, t1, 4
    csrw sepc, t1
    sret
2:  sd t0, 24(t6)           # [3] scause (8: ecall from U)
    csrr t1, sepc
    sd t1, 32(t6)           # [4] sepc
    csrr t1, sstatus
    sd t1, 40(t6)           # [5] sstatus (SPP = U)
    ecall                   # to M

    .balign 4
m_handler:
    csrr t0, mcause
    sd t0, 48(t6)           # [6] mcause (9: ecall from S)
    li t0, TOHOST
    li t1, 1
    sd t1, 0(t0)
3:  j 3b
