/* A program for the gdbstub tests (tests/gdbstub): a loop over a function with a
   global, a double, and on request a fault or an endless loop. Built -O0 -g so every
   source line has its own instructions. */
#include <stdio.h>
#include <string.h>

int counter;
volatile int spin_forever = 1;
double scale = 1.5;

int add(int a, int b)
{
    int sum = a + b;
    return sum;
}

double scaled(int value)
{
    return value * scale;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 0; i < 5; i++) {
        total = add(total, i);
        counter++;
    }
    if (argc > 1 && strcmp(argv[1], "segv") == 0)
        *(volatile int *)16 = total;
    if (argc > 1 && strcmp(argv[1], "spin") == 0)
        while (spin_forever)
            counter++;
    printf("total %d scaled %.1f\n", total, scaled(total));
    return total;
}
