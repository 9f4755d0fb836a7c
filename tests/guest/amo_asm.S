/* A misaligned atomic: SIGBUS (Linux does not emulate misaligned AMOs). */
    .text
    .globl _start
_start:
    lla a0, word
    addi a0, a0, 1
    li a1, 1
    amoadd.w a2, a1, (a0)
    li a0, 0
    li a7, 93
    ecall
    .data
    .balign 8
word: .dword 0
