# A machine timer interrupt from the CLINT wakes WFI: mtimecmp = mtime + 20000
# (2 ms at 10 MHz), MTIE and MIE on, then WFI in a loop until the handler has run.
#define RESULTS  0x80010000
#define TOHOST   0x40000000
#define MTIMECMP 0x02004000
#define MTIME    0x0200bff8
    .option norvc
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
    li s0, RESULTS
    li s1, 0                # interrupts taken
    li s2, 0                # WFI executed
    li t0, MTIME
    ld t1, 0(t0)
    li t2, 20000
    add t1, t1, t2
    li t0, MTIMECMP
    sd t1, 0(t0)
    li t0, 1 << 7           # MTIE
    csrs mie, t0
    csrsi mstatus, 1 << 3   # MIE
1:  addi s2, s2, 1
    wfi
    beqz s1, 1b
    sd s1, 0(s0)            # [0] interrupts taken
    sd s2, 8(s0)            # [1] WFIs executed
    li t0, TOHOST
    li t1, 1
    sd t1, 0(t0)
2:  j 2b

    .balign 4
handler:
    csrr t0, mcause
    sd t0, 16(s0)           # [2] mcause
    csrr t0, mip
    sd t0, 24(s0)           # [3] mip (MTIP set)
    li t0, MTIMECMP         # quiet the timer: mtimecmp = all ones
    li t1, -1
    sd t1, 0(t0)
    addi s1, s1, 1
    mret
