# For savevm/loadvm on the virt machine (-bios none -kernel): counts in RAM and prints
# "tick N" on the UART every 20 ms of virtual time, sleeping in WFI on the CLINT timer
# in between (interrupts enabled in mie only: WFI wakes, no trap is taken). The FP
# register fa0 carries the count too, so a restore must bring FP state back.
#define UART     0x10000000
#define MTIMECMP 0x02004000
#define MTIME    0x0200bff8
#define PERIOD   200000           /* mtime ticks (10 MHz): 20 ms */
    .globl _start
_start:
    li t0, 0x2000                 /* mstatus.FS = Initial */
    csrs mstatus, t0
    li t0, 0x80                   /* mie.MTIE */
    csrw mie, t0
    la sp, stack_top
    la s0, counter
    li s1, MTIME
    li s2, MTIMECMP
    li s3, UART
    fmv.d.x fa0, zero
    li t0, 1
    fcvt.d.l fa1, t0
loop:
    ld t1, 0(s0)
    addi t1, t1, 1
    sd t1, 0(s0)
    fadd.d fa0, fa0, fa1          /* fa0 == counter */
    fcvt.l.d t2, fa0
    bne t1, t2, mismatch
    la a1, tick
    call puts
    mv a0, t1
    call putdec
    li t0, '\n'
    sb t0, 0(s3)
    ld t2, 0(s1)
    li t3, PERIOD
    add t2, t2, t3
    sd t2, 0(s2)
wait:
    wfi
    csrr t4, mip
    andi t4, t4, 0x80
    beqz t4, wait
    j loop
mismatch:
    la a1, bad
    call puts
1:  j 1b

puts:                             /* a1: NUL-terminated string */
    lbu t0, 0(a1)
    beqz t0, 2f
    sb t0, 0(s3)
    addi a1, a1, 1
    j puts
2:  ret

putdec:                           /* a0: unsigned value, in decimal */
    addi sp, sp, -32
    mv t5, sp
    li t6, 10
3:  remu t0, a0, t6
    addi t0, t0, '0'
    sb t0, 0(t5)
    addi t5, t5, 1
    divu a0, a0, t6
    bnez a0, 3b
4:  addi t5, t5, -1
    lbu t0, 0(t5)
    sb t0, 0(s3)
    bne t5, sp, 4b
    addi sp, sp, 32
    ret

tick: .asciz "tick "
bad:  .asciz "fa0 does not match the counter\n"
    .balign 4096                  /* data on its own page, away from the code */
counter: .dword 0
    .balign 16
    .space 4096
stack_top:
