/* Checks the initial stack as Linux builds it: sp 16-byte aligned, argc, argv[] ending
 * in NULL, envp[] ending in NULL, then an auxv with AT_PAGESZ = 4096 and AT_NULL last.
 * Prints "initial stack ok" and exits 0, or exits with the number of the failed check. */
    .text
    .globl _start
_start:
    li s11, 1
    andi t0, sp, 15
    bnez t0, fail                /* 1: sp aligned */
    li s11, 2
    ld s0, 0(sp)                 /* argc */
    blez s0, fail                /* 2: argc >= 1 */
    li s11, 3
    addi s1, sp, 8               /* argv */
    slli t0, s0, 3
    add t0, s1, t0
    ld t1, 0(t0)
    bnez t1, fail                /* 3: argv[argc] == NULL */
    li s11, 4
    ld t1, 0(s1)
    lbu t2, 0(t1)
    beqz t2, fail                /* 4: argv[0] is a non-empty string */
    addi t0, t0, 8               /* envp */
1:  ld t1, 0(t0)
    addi t0, t0, 8
    bnez t1, 1b
    li s11, 5                    /* t0 = auxv */
    li s2, 0                     /* AT_PAGESZ seen */
2:  ld t1, 0(t0)
    ld t2, 8(t0)
    addi t0, t0, 16
    beqz t1, 3f
    li t3, 6                     /* AT_PAGESZ */
    bne t1, t3, 2b
    li t3, 4096
    bne t2, t3, fail             /* 5: AT_PAGESZ == 4096 */
    li s2, 1
    j 2b
3:  li s11, 6
    beqz s2, fail                /* 6: AT_PAGESZ present */
    li a0, 1
    lla a1, ok
    li a2, 17                    /* strlen(ok) */
    li a7, 64
    ecall
    li a0, 0
    li a7, 93
    ecall
fail:
    mv a0, s11
    li a7, 93
    ecall

    .section .rodata
ok: .ascii "initial stack ok\n"
ok_end:
