"""Linux user-mode emulation: run foreign ELF programs (``llvmtcg-user``).

:mod:`.elf` parses and loads ELF files, :mod:`.loader` builds the initial process image,
:mod:`.mm` is the address-space policy, :mod:`.process` the run loop, :mod:`.syscalls`
the Linux system call table (written against :mod:`.guest`'s ``GuestProcess``),
:mod:`.signals` dispositions and death by signal, :mod:`.arch` each guest
architecture's Linux ABI (one module per ISA), and :mod:`.cli` the command line.
"""
