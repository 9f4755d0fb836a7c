# Address spaces and TLB maintenance, with M-mode loads translated as S (MPRV=1,
# MPP=S): two Sv39 roots with their own ASIDs map virtual 0x10000 to different pages;
# switching satp between them, and sfence.vma by ASID and by address after a PTE
# changes, always reads the current mapping. Then a 2 MiB megapage is unmapped and
# sfence.vma names only its first address: a load from another 4 KiB page of it must
# fault (the whole superpage's cached translations go).
#define RESULTS 0x80010000
#define TOHOST  0x40000000
#define ROOT1   0x80020000
#define ROOT2   0x80021000
#define L1A     0x80022000
#define L0A     0x80023000
#define L1B     0x80024000
#define L0B     0x80025000
#define P1      0x80030000
#define P2      0x80031000
#define P3      0x80032000
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_A 0x40
#define PTE_D 0x80
#define LEAF(pa, bits) ((((pa) >> 12) << 10) | (bits) | PTE_V | PTE_A)
#define TABLE(pa) ((((pa) >> 12) << 10) | PTE_V)
#define SATP(asid, root) ((8 << 60) | ((asid) << 44) | ((root) >> 12))
    .option norvc
    .globl _start
_start:
    la t0, m_handler
    csrw mtvec, t0
    li t6, RESULTS
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    li t0, P1
    li t1, 0x1111
    sd t1, 0(t0)
    li t0, P2
    li t1, 0x2222
    sd t1, 0(t0)
    li t0, P3
    li t1, 0x3333
    sd t1, 0(t0)
    # root 1 (ASID 1): 0x10000 -> P1, megapage 0x200000 -> 0x80000000, RAM identity
    li t0, ROOT1
    li t1, TABLE(L1A)
    sd t1, 0(t0)
    li t1, LEAF(0x80000000, PTE_R | PTE_W | PTE_D)
    sd t1, 16(t0)
    li t0, L1A
    li t1, TABLE(L0A)
    sd t1, 0(t0)
    li t1, LEAF(0x80000000, PTE_R | PTE_W | PTE_D)
    sd t1, 8(t0)            # L1A[1]: the megapage at 0x200000
    li t0, L0A
    li t0, L0A
    li t1, LEAF(P1, PTE_R | PTE_W | PTE_D)
    sd t1, 0x10 * 8(t0)
    # root 2 (ASID 2): 0x10000 -> P2, RAM identity
    li t0, ROOT2
    li t1, TABLE(L1B)
    sd t1, 0(t0)
    li t1, LEAF(0x80000000, PTE_R | PTE_W | PTE_D)
    sd t1, 16(t0)
    li t0, L1B
    li t1, TABLE(L0B)
    sd t1, 0(t0)
    li t0, L0B
    li t1, LEAF(P2, PTE_R | PTE_W | PTE_D)
    sd t1, 0x10 * 8(t0)
    # loads and stores from here are translated as S
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, (1 << 11) | (1 << 17)  # MPP = S, MPRV
    csrs mstatus, t0
    li s1, 0x10000

    li t0, SATP(1, ROOT1)
    csrw satp, t0
    sfence.vma
    ld a0, 0(s1)
    sd a0, 0(t6)            # r0: 0x1111
    li t0, SATP(2, ROOT2)
    csrw satp, t0
    ld a0, 0(s1)
    sd a0, 8(t6)            # r1: 0x2222 (another ASID, no sfence)
    li t0, SATP(1, ROOT1)
    csrw satp, t0
    ld a0, 0(s1)
    sd a0, 16(t6)           # r2: 0x1111 again
    li t0, L0A              # (through the identity gigapage)
    li t1, LEAF(P3, PTE_R | PTE_W | PTE_D)
    sd t1, 0x10 * 8(t0)
    li t0, 1
    sfence.vma zero, t0     # every address of ASID 1
    ld a0, 0(s1)
    sd a0, 24(t6)           # r3: 0x3333
    li t0, L0A
    li t1, LEAF(P1, PTE_R | PTE_W | PTE_D)
    sd t1, 0x10 * 8(t0)
    li t0, 1
    sfence.vma s1, t0       # one address of ASID 1
    ld a0, 0(s1)
    sd a0, 32(t6)           # r4: 0x1111

    li s2, 0x210000         # a later 4 KiB page of the megapage (RESULTS)
    ld a0, 0(s2)
    sd a0, 40(t6)           # r5: r0, read through the megapage
    li t0, L1A
    sd zero, 8(t0)          # L1A[1] = 0: the megapage is gone
    li t0, 0x200000
    sfence.vma t0           # its first address only
    li a0, 0
    ld a0, 0(s2)            # must fault: mcause 13, mtval 0x210000
    sd a0, 48(t6)           # r6: 0 (the handler skipped the load; MPRV now off)
    li t0, 1 << 17
    csrc mstatus, t0        # (in case no fault turned MPRV off)
    li t0, TOHOST
    li t1, 1
    sd t1, 0(t0)
1:  j 1b

    .balign 4
m_handler:                  # MPP is now M: these stores are not translated
    li t0, 1 << 17
    csrc mstatus, t0        # MPRV off (mret would leave MPP = U under it)
    csrr t0, mcause
    sd t0, 56(t6)           # r7: mcause
    csrr t0, mtval
    sd t0, 64(t6)           # r8: mtval
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
