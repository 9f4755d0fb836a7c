/* Raw syscalls only: write to stdout, exit with 3. Builds as static and static-pie. */
    .text
    .globl _start
_start:
    li a0, 1
    lla a1, message
    li a2, 20           /* strlen(message) */
    li a7, 64           /* write */
    ecall
    li a0, 3
    li a7, 93           /* exit */
    ecall

    .section .rodata
message:
    .ascii "hello from assembly\n"
message_end:
