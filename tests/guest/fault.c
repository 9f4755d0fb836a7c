/* Ways to die: argv[1] picks one; the exit status must be what Linux gives. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "null";
    printf("about to fault: %s\n", how);
    fflush(stdout);
    if (!strcmp(how, "null")) *(volatile int *)0 = 1;
    if (!strcmp(how, "readonly")) {
        char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        *(volatile char *)p = 1;
    }
    if (!strcmp(how, "noexec")) {
        char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ((void (*)(void))p)();
    }
    if (!strcmp(how, "unmapped")) *(volatile long *)0x123456789000 = 1;
    if (!strcmp(how, "abort")) abort();
    if (!strcmp(how, "term")) kill(getpid(), SIGTERM);
    if (!strcmp(how, "exit")) exit(42);
    printf("still alive\n");
    return 1;
}
