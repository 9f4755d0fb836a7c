# The time CSR (rdtime) read natively where it is legal and through the helper where it
# traps: M-mode reads around an mtime read of the CLINT (in order: one clock), an mtime
# write moving the time CSR with it, S-mode without and with mcounteren.TM, U-mode
# without and with scounteren.TM. Illegal reads trap to M, which logs (mcause, mtval)
# and skips the instruction; an ecall from S or U continues in M at s11.
#define RESULTS 0x80010000
#define TRAPLOG 0x80010080
#define TOHOST  0x40000000
#define MTIME   0x0200BFF8
#define TM      2
    .option norvc

    .macro enter mode, target, next   # run \target in \mode; its ecall continues at \next
    la s11, \next
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, \mode << 11
    csrs mstatus, t0
    la t0, \target
    csrw mepc, t0
    mret
    .endm

    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t6, RESULTS
    li s10, TRAPLOG
    li t0, -1               # PMP: S and U may access everything
    csrw pmpaddr0, t0
    li t0, 0x1f             # NAPOT, RWX
    csrw pmpcfg0, t0
    rdtime a0
    li t0, MTIME
    ld a1, 0(t0)
    rdtime a2
    sd a0, 0(t6)            # [0] <= [1] <= [2]
    sd a1, 8(t6)
    sd a2, 16(t6)
    li t1, 1 << 40          # mtime written: the time CSR follows
    sd t1, 0(t0)
    rdtime a0
    sd a0, 24(t6)           # [3] >= 1 << 40, a little
    csrw mcounteren, zero
    csrw scounteren, zero
    enter 1, s_no_tm, m_tm

s_no_tm:
    li a0, 0x55
    rdtime a0               # illegal: mcounteren.TM = 0
    sd a0, 32(t6)           # [4] 0x55
    ecall

m_tm:
    li t0, TM
    csrw mcounteren, t0
    enter 1, s_tm, m_u_tm

s_tm:
    rdtime a0
    sd a0, 40(t6)           # [5] >= [3]
    la t0, u_no_tm          # to U-mode (scounteren.TM = 0)
    csrw sepc, t0
    li t0, 1 << 8
    csrc sstatus, t0
    sret

u_no_tm:
    li a0, 0x66
    rdtime a0               # illegal: scounteren.TM = 0
    sd a0, 48(t6)           # [6] 0x66
    ecall

m_u_tm:
    li t0, TM
    csrw scounteren, t0
    enter 0, u_tm, m_end

u_tm:
    rdtime a0
    sd a0, 56(t6)           # [7] >= [5]
    ecall

m_end:
    rdtime a0
    sd a0, 64(t6)           # [8] >= [7]
    li t0, TOHOST
    li t1, 1                # exit code 0
    sd t1, 0(t0)
1:  j 1b

    .balign 4
m_handler:
    csrr t0, mcause
    li t1, 2                # illegal instruction: log it, skip it
    bne t0, t1, 2f
    sd t0, 0(s10)
    csrr t1, mtval
    sd t1, 8(s10)
    addi s10, s10, 16
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
2:  li t1, 8                # ecall from U or S: go on in M
    beq t0, t1, 3f
    li t1, 9
    beq t0, t1, 3f
    sd t0, 72(t6)           # [9] the unexpected cause
    li t0, TOHOST
    li t1, 3                # exit code 1
    sd t1, 0(t0)
4:  j 4b
3:  jr s11
