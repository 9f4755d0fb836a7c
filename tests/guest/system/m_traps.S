# M-mode traps: an illegal instruction, an ecall, FP instructions with mstatus.FS Off.
# The handler records mcause/mepc/mtval at RESULTS and skips the instruction.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
    .option norvc
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
    li s0, RESULTS          # s0: where the next trap record goes
illegal_at:
    .word 0x7c001073        # 1: csrw 0x7c0, zero: no such CSR, illegal
ecall_at:
    ecall                   # 2: environment call from M-mode
fp_off_at:
    fmv.d.x f1, zero        # 3: FP with FS = Off: illegal
    li t0, 1 << 13          # FS = Initial
    csrs mstatus, t0
    li t0, 0x4004
    fmv.d.x f1, t0          # now legal; FS becomes Dirty
    fmv.x.d t1, f1
    li s1, RESULTS + 0x100
    sd t1, 0(s1)
    csrr t1, mstatus
    sd t1, 8(s1)
    csrr t1, 0x3a0          # pmpcfg0: M-mode may read it
    li t0, TOHOST
    li t1, 1                # exit code 0
    sd t1, 0(t0)
1:  j 1b

    .balign 4
handler:
    csrr t0, mcause
    sd t0, 0(s0)
    csrr t0, mepc
    sd t0, 8(s0)
    csrr t0, mtval
    sd t0, 16(s0)
    addi s0, s0, 24
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
