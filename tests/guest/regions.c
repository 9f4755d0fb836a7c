/* Hot code of several shapes for region formation (runtime/tiering.py): a bytecode
 * interpreter dispatching through a switch (a jump table: an indirect jump with many
 * targets), an insertion sort (nested loops), a string hash called through a function
 * pointer, and a recursive function (calls and returns).
 *
 *     regions [ROUNDS]
 *
 * Prints one checksum line per part; the same for the same ROUNDS. */
#include <stdio.h>
#include <stdlib.h>

enum { PUSH, ADD, MUL, DUP, SWAP, DROP, JNZ, DEC, HALT };

static long interpret(const unsigned char *code, long x) {
    long stack[16];
    int sp = 0, pc = 0;
    stack[sp++] = x;
    for (;;) {
        switch (code[pc++]) {
        case PUSH: stack[sp++] = code[pc++]; break;
        case ADD: sp--; stack[sp - 1] += stack[sp]; break;
        case MUL: sp--; stack[sp - 1] = stack[sp - 1] * stack[sp] % 1000003; break;
        case DUP: stack[sp] = stack[sp - 1]; sp++; break;
        case SWAP: { long t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; break; }
        case DROP: sp--; break;
        case DEC: stack[sp - 1]--; break;
        case JNZ: { int to = code[pc++]; if (stack[sp - 1]) pc = to; break; }
        case HALT: return stack[0];
        default: abort();
        }
    }
}

static void sort(int *a, int n) {
    for (int i = 1; i < n; i++) {
        int v = a[i], j = i - 1;
        while (j >= 0 && a[j] > v) { a[j + 1] = a[j]; j--; }
        a[j + 1] = v;
    }
}

static unsigned long fnv(const char *s) {
    unsigned long h = 1469598103934665603UL;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211UL;
    return h;
}

static unsigned long djb(const char *s) {
    unsigned long h = 5381;
    while (*s) h = h * 33 + (unsigned char)*s++;
    return h;
}

static long ackermann_ish(long depth, long n) {
    if (depth == 0) return n + 1;
    return ackermann_ish(depth - 1, n) + ackermann_ish(depth - 1, n + 1) % 7;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    /* acc = x; counter = 20; loop: acc = acc * 3 + 1 ... (stack: acc counter) */
    static const unsigned char program[] = {
        PUSH, 20,               /* acc counter */
        SWAP, PUSH, 3, MUL, PUSH, 1, ADD, DUP, DROP, SWAP, DEC, JNZ, 2,
        DROP, HALT};
    long total = 0;
    for (int r = 0; r < rounds * 40; r++) total += interpret(program, r);
    printf("interpret %ld\n", total);

    int a[300];
    unsigned seed = 7;
    long sorted = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 300; i++) { seed = seed * 1103515245 + 12345; a[i] = seed >> 8; }
        sort(a, 300);
        sorted += a[r % 300] % 1000;
    }
    printf("sort %ld\n", sorted);

    unsigned long (*hashes[2])(const char *) = {fnv, djb};
    char word[32];
    unsigned long hashed = 0;
    for (int r = 0; r < rounds * 200; r++) {
        snprintf(word, sizeof word, "word%d-%d", r, r * 7);
        hashed ^= hashes[r & 1](word);
    }
    printf("hash %lu\n", hashed);

    long rec = 0;
    for (int r = 0; r < rounds; r++) rec += ackermann_ish(10, r);
    printf("recursion %ld\n", rec);
    return 0;
}
