/* Open-addressing hash table: multiplications, unpredictable loads and branches. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 18;
    size_t cap = 1;
    while (cap < (size_t)n * 2) cap <<= 1;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint32_t *vals = calloc(cap, sizeof *vals);
    uint64_t x = 88172645463325252ull, hits = 0;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            uint64_t key = (x % (uint64_t)(n / 2 + 1)) + 1;
            size_t h = (key * 0x9E3779B97F4A7C15ull) >> 20 & (cap - 1);
            while (keys[h] && keys[h] != key) h = (h + 1) & (cap - 1);
            if (keys[h]) hits++; else keys[h] = key;
            vals[h] += i;
        }
    }
    uint64_t check = hits;
    for (size_t i = 0; i < cap; i++) check = check * 1000003 + vals[i];
    printf("hashtable %d: %llu %llu\n", n, (unsigned long long)hits, (unsigned long long)check);
    return 0;
}
