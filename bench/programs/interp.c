/* A bytecode interpreter loop: indirect jumps through a dispatch table (computed goto). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { PUSH, ADD, SUB, MUL, DUP, SWAP, JNZ, DEC, POP, XOR, HALT };

static int64_t run(const int *code, int64_t arg) {
    static void *ops[] = {&&push, &&add, &&sub, &&mul, &&dup, &&swap, &&jnz, &&dec, &&pop,
                          &&xor, &&halt};
    int64_t stack[64];
    int sp = 0;
    const int *pc = code;
    stack[sp++] = arg;
#define NEXT goto *ops[*pc++]
    NEXT;
push: stack[sp++] = *pc++; NEXT;
add: sp--; stack[sp - 1] += stack[sp]; NEXT;
sub: sp--; stack[sp - 1] -= stack[sp]; NEXT;
mul: sp--; stack[sp - 1] *= stack[sp]; NEXT;
dup: stack[sp] = stack[sp - 1]; sp++; NEXT;
swap: { int64_t t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; } NEXT;
jnz: { int target = *pc++; if (stack[sp - 1]) pc = code + target; } NEXT;
dec: stack[sp - 1]--; NEXT;
pop: sp--; NEXT;
xor: sp--; stack[sp - 1] ^= stack[sp]; NEXT;
halt: return stack[sp - 1] ^ (sp > 1 ? stack[sp - 2] : 0);
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atol(argv[1]) : 10000000;
    /* acc = 0; counter = n; loop: acc = (acc * 3 + 7) ^ K; counter--; while counter */
    const int code[] = {
        PUSH, 0, SWAP,                      /* [acc=0, counter=n] */
        /* 3: */ SWAP,                      /* [counter, acc] */
        PUSH, 3, MUL, PUSH, 7, ADD,         /* [counter, acc*3+7] */
        PUSH, 0x5bd1e995, XOR,              /* [counter, (acc*3+7)^K] */
        SWAP, DEC, JNZ, 3,                  /* [acc', counter-1] */
        HALT};
    printf("interp %ld: %ld\n", (long)n, (long)run(code, n));
    return 0;
}
