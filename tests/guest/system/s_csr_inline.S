# The S-mode CSRs translated inline at S (and M) privilege — sepc, scause, stval,
# stvec, sscratch, sie reads and clears, sstatus reads — agree with the privileged
# model: values written inline are what traps and sret use, values traps write are
# what inline reads see, and each register's WARL rules hold.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
    .option norvc

    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t6, RESULTS
    li t0, -1               # PMP: S and U may access everything
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    li t0, (1 << 8)         # ecalls from U go to S
    csrw medeleg, t0
    li t0, 0x222            # SSIP, STIP, SEIP delegated
    csrw mideleg, t0
    li t0, 0xA22            # mie: the S ones and MEIE (none pending; SIE/MIE stay 0)
    csrw mie, t0
    li t0, 3 << 11          # to S-mode
    csrc mstatus, t0
    li t0, 1 << 11
    csrs mstatus, t0
    la t0, s_main
    csrw mepc, t0
    mret

s_main:
    li t0, 0x12345679       # sepc: bit 0 reads 0
    csrw sepc, t0
    csrr a0, sepc
    sd a0, 0(t6)            # [0] 0x12345678
    li t0, 0xF0
    csrrs a0, sepc, t0      # (old value to a0)
    csrr a1, sepc
    sd a1, 8(t6)            # [1] 0x123456F8
    li t0, 0x8000000000000005
    csrw scause, t0
    csrrc a0, scause, 1
    csrr a1, scause
    sd a1, 16(t6)           # [2] 0x8000000000000004
    csrrwi a0, stval, 7
    csrrsi a0, stval, 8
    csrr a1, stval
    sd a1, 24(t6)           # [3] 15
    la t0, s_trap
    csrw stvec, t0
    ori t1, t0, 2           # reserved MODE: stvec unchanged
    csrw stvec, t1
    csrr a1, stvec
    sd a1, 32(t6)           # [4] s_trap
    csrr a1, sie
    sd a1, 40(t6)           # [5] 0x222 (mie & mideleg)
    csrci sie, 2            # SSIE off
    li t0, 0x800            # MEIE: not delegated, read-only zero in sie
    csrc sie, t0
    csrr a1, sie
    sd a1, 48(t6)           # [6] 0x220
    csrr a1, sstatus
    sd a1, 56(t6)           # [7] sstatus
    csrw sscratch, t6
    la t0, u_code           # to U-mode; its ecall traps to s_trap
    csrw sepc, t0
    li t0, 1 << 8
    csrc sstatus, t0
    sret

u_code:
    li a7, 93
    ecall
1:  j 1b

    .balign 4
s_trap:
    csrr a0, scause
    sd a0, 64(t6)           # [8] 8: ecall from U (written by the trap, read inline)
    csrr a0, sepc
    sd a0, 72(t6)           # [9] the ecall's address
    csrr a0, stval
    sd a0, 80(t6)           # [10] 0
    csrr a0, sscratch
    sd a0, 88(t6)           # [11] RESULTS
    la t0, after            # sret goes where an inline write of sepc says
    csrw sepc, t0
    li t0, 1 << 8           # (to S)
    csrs sstatus, t0
    sret
after:
    csrr a0, sstatus
    sd a0, 120(t6)          # [15] after sret to S: SIE = SPIE (0), SPIE = 1, SPP = U
    li t0, 0x777
    csrw stval, t0          # the model sees inline writes: checked by the test
    ecall                   # from S: not delegated; M sets TSR and returns here:
tsr_test:
    sret                    # illegal with TSR: M ends the test

    .balign 4
m_handler:
    csrr t0, mcause
    li t1, 9                # ecall from S: set TSR, continue at tsr_test (in S)
    bne t0, t1, 2f
    li t0, 1 << 22
    csrs mstatus, t0
    la t0, tsr_test
    csrw mepc, t0
    mret
2:  li t1, 2                # the illegal sret
    bne t0, t1, 4f
    csrr t0, mtval
    sd t0, 104(t6)          # [13] sret's encoding
    csrr t0, mepc
    sd t0, 112(t6)          # [14] tsr_test
    li t0, TOHOST
    li t1, 1                # exit code 0
    sd t1, 0(t0)
3:  j 3b
4:  sd t0, 96(t6)           # [12] the unexpected cause
    li t0, TOHOST
    li t1, 3                # exit code 1
    sd t1, 0(t0)
5:  j 5b
