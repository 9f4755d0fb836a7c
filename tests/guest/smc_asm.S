/* Self-modifying code: copy "li a0, 1; ret" into an RWX page, call it, patch the
 * immediate to 2 (with fence.i), call it again. Exits with 1 * 10 + 2 = 12. */
    .text
    .globl _start
_start:
    li a0, 0
    li a1, 4096
    li a2, 7                      /* PROT_READ|PROT_WRITE|PROT_EXEC */
    li a3, 0x22                   /* MAP_PRIVATE|MAP_ANONYMOUS */
    li a4, -1
    li a5, 0
    li a7, 222                    /* mmap */
    ecall
    mv s0, a0
    li t0, 0x00100513             /* li a0, 1 (addi a0, zero, 1) */
    sw t0, 0(s0)
    li t0, 0x00008067             /* ret */
    sw t0, 4(s0)
    fence.i
    jalr s0
    li t1, 10
    mul s1, a0, t1
    li t0, 0x00200513             /* li a0, 2 */
    sw t0, 0(s0)
    fence.i
    jalr s0
    add a0, s1, a0
    li a7, 93
    ecall
