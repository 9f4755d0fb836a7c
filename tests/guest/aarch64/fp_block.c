/* One basic block of vector FMLAs: their NaN/FZ lane fallbacks make it more block
   locals than the baseline tier holds, so it goes to the LLVM block tier (and, on the
   next run, comes from the code cache). Prints a checksum of the results. */
#include <stdio.h>
#include <string.h>

int main(void) {
    double a[2] = {1.5, -2.25}, b[2] = {0.5, 3.0}, acc[16] = {0};
    for (int i = 0; i < 1000; i++) {
        __asm__ volatile(
            "ldr q16, [%[a]]\n\tldr q17, [%[b]]\n\t"
            "ldp q0, q1, [%[acc]]\n\tldp q2, q3, [%[acc], #32]\n\t"
            "ldp q4, q5, [%[acc], #64]\n\tldp q6, q7, [%[acc], #96]\n\t"
            "fmla v0.2d, v16.2d, v17.2d\n\tfmla v1.2d, v17.2d, v16.2d\n\t"
            "fmla v2.2d, v16.2d, v16.2d\n\tfmla v3.2d, v17.2d, v17.2d\n\t"
            "fmla v4.2d, v16.2d, v17.2d\n\tfmla v5.2d, v17.2d, v16.2d\n\t"
            "fmla v6.2d, v16.2d, v16.2d\n\tfmla v7.2d, v17.2d, v17.2d\n\t"
            "stp q0, q1, [%[acc]]\n\tstp q2, q3, [%[acc], #32]\n\t"
            "stp q4, q5, [%[acc], #64]\n\tstp q6, q7, [%[acc], #96]\n\t"
            : : [a] "r"(a), [b] "r"(b), [acc] "r"(acc)
            : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "memory");
    }
    unsigned long sum = 0;
    for (int i = 0; i < 16; i++) {
        unsigned long bits;
        memcpy(&bits, &acc[i], 8);
        sum = sum * 31 + bits;
    }
    printf("%lx\n", sum);
    return 0;
}
