# sscratch and sstatus set/clear in S-mode (translated inline; a write that changes FS,
# SUM or MXR also computes the new flags and ends the block through the jump cache):
# the old values csrrs/csrrc return (SD from FS), sources with SUM or FS bits, and
# interrupts unmasked by setting SIE: a
# software interrupt (sip.SSIP) and the Sstc timer (stimecmp in the past), each taken
# before the instruction after the unmasking one.
# Results at RESULTS (8 bytes each):
#   0 csrrci a0, sstatus, 2 after csrsi: a0      1 sstatus after csrs of FS and SUM
#   2 csrrci with FS Dirty: the old value         3 csrrc of SUM|SIE (register): old
#   4 sstatus after it                            5 count of instructions the handler
#   6.. per interrupt: scause, sepc                 saw run after unmasking (0)
#   16.. sscratch: csrrw's old value, csrrs's, csrrci's, the final value
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define SIE     (1 << 1)
#define SUM     (1 << 18)
#define FS      (3 << 13)
    .option norvc
    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t0, 0x222            # delegate SSIP, STIP, SEIP
    csrw mideleg, t0
    li t0, (1 << 63)        # menvcfg.STCE: Sstc on
    csrw menvcfg, t0
    li t0, 2                # mcounteren.TM: S may use stimecmp and time
    csrw mcounteren, t0
    li t0, -1
    csrw stimecmp, t0       # no timer yet
    li t0, 0x1f
    csrw pmpcfg0, t0        # PMP: S may reach everything (NAPOT, RWX)
    li t0, -1
    csrw pmpaddr0, t0
    li t0, (1 << 11)        # MPP = S
    csrw mstatus, t0
    la t0, s_entry
    csrw mepc, t0
    mret

    .balign 4
m_handler:                  # anything reaching M is a failure
    li t0, TOHOST
    li t1, 3                # exit code 1
    sd t1, 0(t0)
1:  j 1b

    .balign 4
s_entry:
    la t0, s_handler
    csrw stvec, t0
    li s0, RESULTS
    li s1, RESULTS + 48     # interrupt records
    li s2, 0                # instructions after an unmasking write that ran too early
    csrsi sstatus, SIE
    csrrci a0, sstatus, SIE
    sd a0, 0(s0)
    li t0, FS | SUM         # the flags change: the block ends, the next one goes on
    csrs sstatus, t0
    csrr t1, sstatus
    sd t1, 8(s0)
    csrrci a1, sstatus, SIE
    sd a1, 16(s0)
    li t0, SUM | SIE
    csrsi sstatus, SIE
    csrrc a2, sstatus, t0
    sd a2, 24(s0)
    csrr t1, sstatus
    sd t1, 32(s0)

    # A software interrupt pending while SIE is clear.
    li t0, 2
    csrs sie, t0            # SSIE
    csrs sip, t0            # SSIP
    li t0, SIE
unmask_reg:
    csrs sstatus, t0        # register source
after_reg:
    addi s2, s2, 1
    csrci sstatus, SIE
    li t0, 2
    csrs sip, t0
unmask_imm:
    csrsi sstatus, SIE      # immediate
after_imm:
    addi s2, s2, 1
    csrci sstatus, SIE
    li t0, 2
    csrs sip, t0
unmask_rs:
    csrrsi a3, sstatus, SIE # with rd
after_rs:
    addi s2, s2, 1

    # The Sstc timer: STIP pending (time >= stimecmp) while SIE is clear.
    csrci sstatus, SIE
    li t0, 1 << 5
    csrs sie, t0            # STIE
    csrw stimecmp, zero
unmask_timer:
    csrsi sstatus, SIE
after_timer:
    addi s2, s2, 1

    # sscratch (inline at S): a swap as at Linux's trap entry, set and clear bits.
    li t0, 0x1234
    csrw sscratch, t0
    li t1, 0x55
    csrrw t1, sscratch, t1
    sd t1, 128(s0)          # 0x1234
    li t2, 0xF00
    csrrs t2, sscratch, t2
    sd t2, 136(s0)          # 0x55
    csrrci t2, sscratch, 1
    sd t2, 144(s0)          # 0xF55
    csrr t2, sscratch
    sd t2, 152(s0)          # 0xF54

    # Setting SIE with nothing pending goes on in the same block.
    csrci sstatus, SIE
    csrsi sstatus, SIE
    sd s2, 40(s0)
    li t0, TOHOST
    li t1, 1                # exit code 0
    sd t1, 0(t0)
1:  j 1b

    .balign 4
s_handler:
    csrr t1, scause
    sd t1, 0(s1)
    csrr t1, sepc
    sd t1, 8(s1)
    addi s1, s1, 16
    li t1, 2
    csrc sip, t1            # SSIP off
    li t1, -1
    csrw stimecmp, t1       # STIP off
    # Skip the addi after the unmasking instruction (it must not have run).
    csrr t1, sepc
    addi t1, t1, 4
    csrw sepc, t1
    sret
