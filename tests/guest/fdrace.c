/* Guest descriptor numbers with the emulator's own files in play: one thread opens and
 * closes /dev/null over and over, as long as the others run, and checks that open() returns the lowest free number
 * (3), as Linux gives it, while the other threads run many distinct hot loops, so that
 * their run loops read and write the emulator's code cache meanwhile (hot regions,
 * region plans). Prints how many opens did not get 3 (0 on Linux). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WORKERS 3
#define ROUNDS 6

static volatile int running = WORKERS;
static volatile unsigned long sink;

/* 48 different hot loops: each turns hot on its own and becomes a region. */
#define LOOP(n)                                                           \
    static __attribute__((noinline)) unsigned long loop##n(unsigned long x) { \
        for (int i = 0; i < 200; i++)                                     \
            x = x * (2 * n + 3) + (x >> (n % 7 + 1)) + i;                 \
        return x;                                                         \
    }
#define LOOP8(a) LOOP(a##0) LOOP(a##1) LOOP(a##2) LOOP(a##3) LOOP(a##4) LOOP(a##5) \
    LOOP(a##6) LOOP(a##7)
LOOP8(1) LOOP8(2) LOOP8(3) LOOP8(4) LOOP8(5) LOOP8(6)

typedef unsigned long (*loop_fn)(unsigned long);
#define REF8(a) loop##a##0, loop##a##1, loop##a##2, loop##a##3, loop##a##4, loop##a##5, \
    loop##a##6, loop##a##7
static loop_fn loops[] = {REF8(1), REF8(2), REF8(3), REF8(4), REF8(5), REF8(6)};
#define NLOOPS (int)(sizeof loops / sizeof loops[0])

static void *worker(void *arg) {
    unsigned long x = (unsigned long)arg;
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < NLOOPS; k++) {
            int f = (k + (int)(unsigned long)arg * 16) % NLOOPS;
            for (int r = 0; r < 30; r++)
                x = loops[f](x);
        }
    sink += x;
    __atomic_fetch_sub(&running, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

int main(void) {
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        if (pthread_create(&threads[i], NULL, worker, (void *)i) != 0)
            return 2;
    int wrong = 0;
    for (int i = 0; __atomic_load_n(&running, __ATOMIC_SEQ_CST); i++) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0)
            return 3;
        if (fd != 3) {
            if (wrong < 5)
                fprintf(stderr, "open %d: fd %d\n", i, fd);
            wrong++;
        }
        close(fd);
        if (i % 64 == 0)
            usleep(100); /* let the workers' run loops get the lock in between */
    }
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    printf("opens not given the lowest free descriptor: %d\n", wrong);
    return 0;
}
