/* glibc's string and memory routines (AdvSIMD in their arm64 versions) over many
   lengths and alignments, plus signals with a handler (the arm64 signal frame). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t got;

static void handler(int sig, siginfo_t *info, void *uc) {
    got = sig + (info->si_signo == sig) * 100;
}

int main(void) {
    static char a[512], b[512];
    unsigned long hash = 0;
    for (int align = 0; align < 16; align++) {
        for (int len = 0; len < 200; len += 7) {
            memset(a, 'x', sizeof a);
            memset(a + align, 'a' + len % 26, len);
            a[align + len] = 0;
            hash = hash * 31 + strlen(a + align);
            memcpy(b, a + align, len + 1);
            hash = hash * 31 + (unsigned)memcmp(a + align, b, len + 1);
            hash = hash * 31 + (strchr(b, 'x') != NULL);
            const char *last = strrchr(a, 'x');  /* NULL for an empty string */
            hash = hash * 31 + (last ? (unsigned long)(last - a) : 999);
            b[len / 2] = 'Q';
            hash = hash * 31 + (unsigned)(strcmp(a + align, b) > 0);
            hash = hash * 31 + (unsigned long)((char *)memchr(b, 'Q', len + 1) - b);
            memmove(a + 1, a, 100);
            hash = hash * 31 + (unsigned char)a[50];
        }
    }
    printf("hash %lx\n", hash);
    char line[64];
    snprintf(line, sizeof line, "%s-%d-%05x", "fmt", -42, 0xbeef);
    printf("%s %zu\n", line, strnlen(line, 5));
    struct sigaction sa = {0};
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("signal %d\n", got);
    qsort(a, 100, 1, (int (*)(const void *, const void *))strcmp);
    return 0;
}
