/* The smallest test: stdout, stderr and the exit status. */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello, world from riscv64\n");
    fprintf(stderr, "a line on stderr\n");
    return argc == 1 ? 0 : argc;
}
