# -M virt -smp 2 -bios none -kernel smp_lrsc.elf: a store by another hart to the address
# a hart holds a reservation on makes that hart's SC fail, even when the store writes
# the value memory already held (the spec's reservation-set rule; a compare-and-swap
# against the value LR read cannot see such a store). Hart 0 takes a reservation on
# `word` (0), lets hart 1 store 0 there with a plain sw, then tries SC: it must fail.
# A retried LR/SC then succeeds. Hart 0 prints both results and powers off.
#define UART      0x10000000
#define TEST      0x00100000
    .option norvc
    .globl _start
_start:
    csrr a0, mhartid
    bnez a0, secondary

    # -- hart 0 ------------------------------------------------------------------------
    la s0, word
    lr.w t1, (s0)           # reservation on word (holds 0)
    la t0, go
    li t2, 1
    sw t2, 0(t0)            # hart 1 may store now
    la t0, stored
1:  lw t2, 0(t0)            # (spins until hart 1 gets its turn and stores)
    beqz t2, 1b
    li t3, 42
    sc.w s1, t3, (s0)       # must fail: hart 1 stored to word since the LR
    la a1, msg_sc
    call puts
    addi a0, s1, '0'        # '1': failed (right); '0': succeeded (wrong)
    call putc
    li a0, '\n'
    call putc
2:  lr.w t1, (s0)           # retried without interference: succeeds
    li t3, 42
    sc.w s1, t3, (s0)
    bnez s1, 2b
    lw t1, 0(s0)
    la a1, msg_retry
    call puts
    addi a0, t1, -42 + '0'  # '0': word holds 42
    call putc
    li a0, '\n'
    call putc
    li t0, TEST
    li t1, 0x5555           # FINISHER_PASS
    sw t1, 0(t0)
3:  j 3b

    # -- hart 1 ------------------------------------------------------------------------
secondary:
    la t0, go
4:  lw t1, 0(t0)
    beqz t1, 4b
    la t0, word
    sw zero, 0(t0)          # the same value word holds: still a store
    la t0, stored
    li t1, 1
    sw t1, 0(t0)
5:  wfi
    j 5b

putc:                       # a0: the byte (the UART accepts bytes at once)
    li t0, UART
    sb a0, 0(t0)
    ret
puts:                       # a1: the string
    mv t2, ra
6:  lbu a0, 0(a1)
    beqz a0, 7f
    call putc
    addi a1, a1, 1
    j 6b
7:  mv ra, t2
    ret

msg_sc:    .asciz "sc after another hart's store: "
msg_retry: .asciz "retried lr/sc: "

    .data
    .balign 8
word:   .word 0
go:     .word 0
stored: .word 0
