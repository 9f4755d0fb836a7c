/* String processing: strlen/strchr/memcpy/strcmp and byte loops over generated text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int lines = argc > 1 ? atoi(argv[1]) : 600000;
    static const char *words[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta",
                                  "eta", "theta", "iota", "kappa", "lambda", "mu"};
    char line[256], rev[256];
    unsigned long hash = 5381, vowels = 0, matches = 0;
    unsigned seed = 7;
    for (int i = 0; i < lines; i++) {
        line[0] = 0;
        int nw = 3 + i % 7;
        for (int w = 0; w < nw; w++) {
            seed = seed * 1664525u + 1013904223u;
            strcat(line, words[(seed >> 24) % 12]);
            strcat(line, w + 1 < nw ? " " : "");
        }
        size_t len = strlen(line);
        for (size_t k = 0; k < len; k++) rev[k] = line[len - 1 - k];
        rev[len] = 0;
        for (const char *p = line; (p = strpbrk(p, "aeiou")); p++) vowels++;
        if (strstr(line, "theta iota") || strcmp(line, rev) == 0) matches++;
        for (size_t k = 0; k < len; k++) hash = hash * 33 ^ (unsigned char)rev[k];
    }
    printf("strings %d: %lu %lu %lu\n", lines, hash, vowels, matches);
    return 0;
}
