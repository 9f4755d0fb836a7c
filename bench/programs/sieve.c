/* Sieve of Eratosthenes, repeated: loads, stores, tight loops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 120;
    char *composite = malloc(n + 1);
    long total = 0;
    for (int r = 0; r < rounds; r++) {
        memset(composite, 0, n + 1);
        int count = 0;
        for (long i = 2; i <= n; i++) {
            if (composite[i]) continue;
            count++;
            for (long j = i * i; j <= n; j += i) composite[j] = 1;
        }
        total += count;
    }
    printf("sieve %d x%d: %ld\n", n, rounds, total);
    return 0;
}
