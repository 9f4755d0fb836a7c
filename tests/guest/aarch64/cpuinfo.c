/* What a program learns about the CPU: AT_HWCAP/AT_HWCAP2 and, through HWCAP_CPUID
   (Linux emulates the MRS), MIDR_EL1 and ID_AA64ISAR0_EL1; then it uses what the
   HWCAP bits promise (AES, SHA-256 and PMULL when advertised, CRC32). */
#include <stdint.h>
#include <stdio.h>
#include <sys/auxv.h>

int main(void) {
    unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    uint64_t midr, isar0;
    __asm__ volatile("mrs %0, midr_el1" : "=r"(midr));
    __asm__ volatile("mrs %0, id_aa64isar0_el1" : "=r"(isar0));
    printf("hwcap %#lx hwcap2 %#lx midr %#llx isar0 %#llx\n", hwcap, hwcap2,
           (unsigned long long)midr, (unsigned long long)isar0);
    if (hwcap & (1 << 3)) { /* AES */
        uint64_t lo = 0x0123456789abcdefULL, hi = 0xfedcba9876543210ULL, out_lo, out_hi;
        __asm__ volatile("fmov d0, %2\n fmov v0.d[1], %3\n movi v1.16b, #0x5a\n"
                         "aese v0.16b, v1.16b\n aesmc v0.16b, v0.16b\n"
                         "aesd v0.16b, v1.16b\n aesimc v0.16b, v0.16b\n"
                         "fmov %0, d0\n mov %1, v0.d[1]"
                         : "=r"(out_lo), "=r"(out_hi) : "r"(lo), "r"(hi) : "v0", "v1");
        printf("aes %016llx%016llx\n", (unsigned long long)out_hi, (unsigned long long)out_lo);
    }
    if (hwcap & (1 << 6)) { /* SHA2 */
        uint64_t a, b;
        __asm__ volatile("movi v0.4s, #1\n movi v1.4s, #2\n movi v2.4s, #3\n"
                         "sha256h q0, q1, v2.4s\n sha256su0 v1.4s, v0.4s\n"
                         "sha256su1 v1.4s, v0.4s, v2.4s\n eor v0.16b, v0.16b, v1.16b\n"
                         "fmov %0, d0\n mov %1, v0.d[1]" : "=r"(a), "=r"(b) :: "v0", "v1", "v2");
        printf("sha256 %016llx%016llx\n", (unsigned long long)b, (unsigned long long)a);
    }
    if (hwcap & (1 << 4)) { /* PMULL */
        uint64_t a, b;
        __asm__ volatile("mov x9, #0x87\n fmov d0, x9\n movz x9, #0xf00d, lsl #48\n"
                         "fmov d1, x9\n pmull v2.1q, v0.1d, v1.1d\n"
                         "fmov %0, d2\n mov %1, v2.d[1]" : "=r"(a), "=r"(b) :: "x9", "v0", "v1", "v2");
        printf("pmull %016llx%016llx\n", (unsigned long long)b, (unsigned long long)a);
    }
    uint32_t crc;
    __asm__ volatile("mov w0, #-1\n mov x1, #0x1234\n crc32cx %w0, w0, x1" : "=r"(crc) :: "x0", "x1");
    printf("crc %08x\n", crc);
    return 0;
}
