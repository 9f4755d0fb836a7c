# A store to ROM is discarded without a trap, as QEMU's ROM regions do; the ROM still
# reads its own bytes, and code in it still runs.
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define ROM     0x00001000
    .option norvc
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
    li t6, RESULTS
    li t0, ROM
    ld a0, 8(t0)
    sd a0, 0(t6)            # r0: the ROM's word
    li t1, 0x5555
    sd t1, 8(t0)            # discarded
    sw t1, 12(t0)           # discarded
    ld a0, 8(t0)
    sd a0, 8(t6)            # r1: the same word
    jalr t0                 # the ROM's code: li a0, 42; ret
    sd a0, 16(t6)           # r2: 42
    li t0, TOHOST
    li t1, 1
    sd t1, 0(t0)
1:  j 1b

    .balign 4
handler:
    csrr t0, mcause
    sd t0, 24(t6)           # r3: a trap's cause (there must be none)
    li t0, TOHOST
    li t1, 3
    sd t1, 0(t0)
2:  j 2b
