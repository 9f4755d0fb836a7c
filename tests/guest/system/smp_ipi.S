# -M virt -smp NHARTS -bios none -kernel smp_ipi.elf: the harts start together in the boot
# ROM with a0 = mhartid. Hart 0 wakes the others one by one with a CLINT software
# interrupt (MSIP) while they wait in WFI; each woken hart prints "hart N: <f()>" on the
# UART, where f is code hart 0 rewrote after every hart had run it once (so a hart sees
# new code another hart stored, after its own fence.i), then sets its flag. Hart 0
# prints "all harts" and powers off through the sifive_test device.
#define UART      0x10000000
#define CLINT     0x02000000
#define TEST      0x00100000
    .option norvc
    .globl _start
_start:
    csrr a0, mhartid
    la sp, stacks
    addi t0, a0, 1
    slli t0, t0, 10
    add sp, sp, t0          # 1 KiB of stack per hart
    bnez a0, secondary

    # -- hart 0 ------------------------------------------------------------------------
    li s1, NHARTS - 1
1:  la t0, arrived          # wait until every other hart has run f and is in WFI
    lw t1, 0(t0)
    bne t1, s1, 1b
    la t0, f                # f: "li a0, 1" becomes "li a0, 7"
    la t1, patched
    lw t1, 0(t1)
    sw t1, 0(t0)
    fence.i
    li s0, 1                # wake hart s0, wait for its flag, next one
2:  li t0, NHARTS
    beq s0, t0, 4f
    li t0, CLINT
    slli t1, s0, 2
    add t0, t0, t1
    li t1, 1
    sw t1, 0(t0)            # msip[s0] = 1
    la t0, flags
    add t0, t0, s0
3:  lb t1, 0(t0)
    beqz t1, 3b
    addi s0, s0, 1
    j 2b
4:  la a1, done_msg
    call puts
    li t0, TEST
    li t1, 0x5555           # FINISHER_PASS
    sw t1, 0(t0)
5:  j 5b

    # -- the other harts ---------------------------------------------------------------
secondary:
    mv s0, a0
    call f                  # translate and run f's old code
    li t0, 8
    csrw mie, t0            # MSIE only: WFI wakes on MSIP, no trap is taken (MIE = 0)
    la t0, arrived
    li t1, 1
    amoadd.w zero, t1, (t0)
6:  wfi
    csrr t0, mip
    andi t0, t0, 8
    beqz t0, 6b
    li t0, CLINT
    slli t1, s0, 2
    add t0, t0, t1
    sw zero, 0(t0)          # msip[hartid] = 0
    fence.i
    la a1, hart_msg
    call puts
    addi a0, s0, '0'
    call putc
    la a1, colon_msg
    call puts
    call f
    addi a0, a0, '0'
    call putc
    li a0, '\n'
    call putc
    la t0, flags
    add t0, t0, s0
    li t1, 1
    sb t1, 0(t0)
7:  wfi
    j 7b

f:  li a0, 1
    ret
patched:
    li a0, 7

putc:                       # a0: the byte (the UART accepts bytes at once)
    li t0, UART
    sb a0, 0(t0)
    ret
puts:                       # a1: the string
    mv t2, ra
8:  lbu a0, 0(a1)
    beqz a0, 9f
    call putc
    addi a1, a1, 1
    j 8b
9:  mv ra, t2
    ret

hart_msg:  .asciz "hart "
colon_msg: .asciz ": "
done_msg:  .asciz "all harts\n"

    .data
    .balign 8
arrived: .word 0
flags:   .space 64
    .balign 16
stacks:  .space 1024 * 16
