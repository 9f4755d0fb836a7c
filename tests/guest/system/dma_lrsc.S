# -M virt -bios none -kernel dma_lrsc.elf -drive file=DISK,format=raw,if=none,id=d0
#     -device virtio-blk-device,drive=d0
# A device's DMA write to the address a hart holds a reservation on makes the hart's SC
# fail, even when it writes the bytes memory already holds (the spec's reservation-set
# rule; a compare-and-swap against the value LR read cannot see such a write).
# The test's disk holds the 512-byte pattern `buffer` starts with. The hart sets up a
# virtio-blk read of sector 0 into `buffer` (virtio-mmio version 2, one queue), takes a
# reservation on buffer's first doubleword, notifies the device (which completes the
# read inside that store), then tries SC: it must fail. A retried LR/SC succeeds. The
# hart prints both results and the request's status, and powers off.
#define UART      0x10000000
#define TEST      0x00100000
#define VIRTIO    0x10008000    /* the last slot: QEMU plugs -device there first */
#define MAGIC          0x000
#define VERSION        0x004
#define DEVICE_ID      0x008
#define DEV_FEAT_SEL   0x014
#define DRV_FEATURES   0x020
#define DRV_FEAT_SEL   0x024
#define QUEUE_SEL      0x030
#define QUEUE_NUM      0x038
#define QUEUE_READY    0x044
#define QUEUE_NOTIFY   0x050
#define STATUS         0x070
#define DESC_LOW       0x080
#define DESC_HIGH      0x084
#define DRIVER_LOW     0x090
#define DRIVER_HIGH    0x094
#define DEVICE_LOW     0x0a0
#define DEVICE_HIGH    0x0a4
#define QSIZE          4
    .option norvc
    .globl _start
_start:
    li s2, VIRTIO
    lw t0, DEVICE_ID(s2)
    li t1, 2                # virtio-blk
    bne t0, t1, fail
    lw t0, VERSION(s2)
    li t1, 2
    bne t0, t1, fail
    # -- driver initialisation (virtio 1.1 §3.1.1) ---------------------------------------
    sw zero, STATUS(s2)     # reset
    li t0, 1                # ACKNOWLEDGE
    sw t0, STATUS(s2)
    li t0, 3                # | DRIVER
    sw t0, STATUS(s2)
    li t0, 1                # features 63:32: VERSION_1 (bit 32)
    sw t0, DRV_FEAT_SEL(s2)
    sw t0, DRV_FEATURES(s2)
    sw zero, DRV_FEAT_SEL(s2)
    sw zero, DRV_FEATURES(s2)
    li t0, 11               # | FEATURES_OK
    sw t0, STATUS(s2)
    lw t1, STATUS(s2)
    bne t0, t1, fail        # the device refused the features
    sw zero, QUEUE_SEL(s2)
    li t0, QSIZE
    sw t0, QUEUE_NUM(s2)
    la t0, desc
    sw t0, DESC_LOW(s2)
    sw zero, DESC_HIGH(s2)
    la t0, avail
    sw t0, DRIVER_LOW(s2)
    sw zero, DRIVER_HIGH(s2)
    la t0, used
    sw t0, DEVICE_LOW(s2)
    sw zero, DEVICE_HIGH(s2)
    li t0, 1
    sw t0, QUEUE_READY(s2)
    li t0, 15               # | DRIVER_OK
    sw t0, STATUS(s2)
    # -- one request: read sector 0 into buffer ------------------------------------------
    la t0, desc             # desc[0]: the header, device-readable
    la t1, header
    sd t1, 0(t0)
    li t1, 16
    sw t1, 8(t0)
    li t1, 1                # NEXT
    sh t1, 12(t0)
    li t1, 1
    sh t1, 14(t0)
    la t1, buffer           # desc[1]: the data, device-writable
    sd t1, 16(t0)
    li t1, 512
    sw t1, 24(t0)
    li t1, 3                # NEXT | WRITE
    sh t1, 28(t0)
    li t1, 2
    sh t1, 30(t0)
    la t1, status           # desc[2]: the status byte, device-writable
    sd t1, 32(t0)
    li t1, 1
    sw t1, 40(t0)
    li t1, 2                # WRITE
    sh t1, 44(t0)
    la t0, avail            # ring[0] = chain 0, then idx = 1
    sh zero, 4(t0)
    fence w, w
    li t1, 1
    sh t1, 2(t0)
    fence w, w
    # -- the reservation, the device's write, the SC -------------------------------------
    la s0, buffer
    lr.d t1, (s0)           # reservation on buffer's first doubleword
    sw zero, QUEUE_NOTIFY(s2)   # the device reads sector 0 into buffer (the same bytes)
    li t3, 42
    sc.d s1, t3, (s0)       # must fail: the device wrote there since the LR
    la a1, msg_sc
    call puts
    addi a0, s1, '0'        # '1': failed (right); '0': succeeded (wrong)
    call putc
    li a0, '\n'
    call putc
2:  lr.d t1, (s0)           # retried without interference: succeeds
    li t3, 42
    sc.d s1, t3, (s0)
    bnez s1, 2b
    ld t1, 0(s0)
    la a1, msg_retry
    call puts
    addi a0, t1, -42 + '0'  # '0': the doubleword holds 42
    call putc
    li a0, '\n'
    call putc
    la a1, msg_status       # the request completed: used.idx 1, status 0 (OK)
    call puts
    la t0, used
    lhu a0, 2(t0)
    addi a0, a0, '0'
    call putc
    li a0, ' '
    call putc
    la t0, status
    lbu a0, 0(t0)
    addi a0, a0, '0'
    call putc
    li a0, '\n'
    call putc
    li t0, TEST
    li t1, 0x5555           # FINISHER_PASS
    sw t1, 0(t0)
3:  j 3b

fail:
    la a1, msg_fail
    call puts
    li t0, TEST
    li t1, 0x13333          # FINISHER_FAIL, code 1
    sw t1, 0(t0)
4:  j 4b

putc:                       # a0: the byte (the UART accepts bytes at once)
    li t0, UART
    sb a0, 0(t0)
    ret
puts:                       # a1: the string
    mv t2, ra
6:  lbu a0, 0(a1)
    beqz a0, 7f
    call putc
    addi a1, a1, 1
    j 6b
7:  mv ra, t2
    ret

msg_sc:     .asciz "sc after the device's write: "
msg_retry:  .asciz "retried lr/sc: "
msg_status: .asciz "request used/status: "
msg_fail:   .asciz "no virtio-blk version 2 device in the last slot\n"

    .data
    .balign 16
desc:   .zero 16 * QSIZE
avail:  .zero 4 + 2 * QSIZE + 2
    .balign 4
used:   .zero 4 + 8 * QSIZE + 2
    .balign 16
header: .word 0             # VIRTIO_BLK_T_IN
        .word 0
        .dword 0            # sector 0
status: .byte 0xff
    .balign 512
buffer:                     # what the test's disk holds in sector 0
    .rept 64
    .dword 0x1122334455667788
    .endr
