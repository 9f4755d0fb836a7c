/* A bare-metal loop for the system-mode gdbstub tests (-bios at 0x80000000): counts in
   a doubleword in RAM, which the tests watch, and reads another one. */
    .section .text
    .globl _start
_start:
    li      t0, 0x80001000      /* the counter */
    li      t1, 0
    li      t3, 0x80001008      /* a value that is only read */
loop:
    addi    t1, t1, 1
    sd      t1, 0(t0)
    ld      t2, 0(t3)
    j       loop
