# A load from a part of a device page no device decodes is a load access fault.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
    .option norvc
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
    li s0, RESULTS
    li t1, TOHOST + 0x100
load_at:
    ld t2, 0(t1)
    li t0, TOHOST
    li t1, 1
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
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
