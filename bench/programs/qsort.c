/* libc qsort with a comparator: indirect calls into guest code from libc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int compare(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 300000;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    uint32_t *v = malloc(n * sizeof *v);
    uint64_t sum = 0;
    uint32_t seed = 42;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < n; i++) { seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5; v[i] = seed; }
        qsort(v, n, sizeof *v, compare);
        for (int i = 0; i < n; i += n / 16) sum = sum * 31 + v[i];
    }
    printf("qsort %d x%d: %llu\n", n, rounds, (unsigned long long)sum);
    return 0;
}
