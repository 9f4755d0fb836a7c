/* Prints a line, then executes an all-zero (illegal) instruction: SIGILL. */
    .text
    .globl _start
_start:
    li a0, 1
    lla a1, message
    li a2, 7
    li a7, 64
    ecall
    .4byte 0
    li a0, 0
    li a7, 93
    ecall
    .section .rodata
message: .ascii "before\n"
