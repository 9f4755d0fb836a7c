/* Prints the environment the program was started with, in order, one per line. */
#include <stdio.h>

extern char **environ;

int main(void)
{
    for (char **e = environ; *e; e++)
        puts(*e);
    return 0;
}
