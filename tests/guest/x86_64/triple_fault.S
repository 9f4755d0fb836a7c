/* A 64 KiB x86 firmware image (-bios) that triple-faults: each start increments a
 * counter in RAM (which a reset keeps), prints it on COM1, and then enters protected mode and
 * raises int3 with an IDT limit of 0 (#GP, then #DF, then shutdown). On the third start it leaves through
 * isa-debug-exit at 0xf4 with 0x10 (exit status 33). Linked at 0: the image is the
 * segment 0xf000, which the reset vector at offset 0xfff0 jumps into. */
        .code16
        .text
start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        incb    0x500
        movb    0x500, %al
        addb    $'0', %al
        movw    $0x3f8, %dx
        outb    %al, %dx
        cmpb    $3, 0x500
        jae     done
        /* protected mode, flat 32-bit code: the IDT limit is checked there */
        lgdtl   %cs:gdt_pointer
        movl    %cr0, %eax
        orb     $1, %al
        movl    %eax, %cr0
        ljmpl   $8, $0xf0000 + protected
done:
        movb    $0x10, %al
        outb    %al, $0xf4
1:      hlt
        jmp     1b
        .code32
protected:
        lidt    0xf0000 + idt_empty
        int3
idt_empty:
        .word   0
        .long   0
        .p2align 3
gdt:
        .quad   0
        .quad   0x00cf9b000000ffff  /* flat code, 32-bit, accessed */
gdt_pointer:
        .word   15
        .long   0xf0000 + gdt
        .code16

        .org    0xfff0
        ljmp    $0xf000, $start
        .org    0x10000, 0xf4
