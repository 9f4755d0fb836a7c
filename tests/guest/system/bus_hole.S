# A load from a part of a device page no device decodes is a load access fault, whose
# tval is the load's address also when the page's TLB entry is cached (a decoded read
# of the page filled it first, and the second faulting load hits the same entry).
#define RESULTS 0x80010000
#define TOHOST  0x40000000
    .option norvc
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
    li s0, RESULTS
    li t1, TOHOST
    ld t2, 8(t1)            # fromhost: decoded (the entry of the device page)
    li t1, TOHOST + 0x100
load_at:
    ld t2, 0(t1)
    li t1, TOHOST + 0x208
load2_at:
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
    addi s0, s0, 24
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
