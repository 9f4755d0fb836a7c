/* A threaded program for the user-mode gdb tests (tests/gdbstub/test_user_gdb.py):
   main starts two workers one after the other (the second once the first is joined),
   each calls work() with its own argument; a third worker spins in spin() until main,
   blocked in pthread_join meanwhile, is released. -O0 -g -pthread. */
#include <pthread.h>
#include <stdio.h>

int results[2];
volatile int spinning = 1;

int work(int value)
{
    int doubled = value * 2;
    return doubled;
}

void *worker(void *arg)
{
    int index = (int)(long)arg;
    results[index] = work(index + 20);
    return NULL;
}

void *spinner(void *arg)
{
    (void)arg;
    while (spinning)
        ;
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t thread;
    for (long i = 0; i < 2; i++) {
        pthread_create(&thread, NULL, worker, (void *)i);
        pthread_join(thread, NULL);
    }
    if (argc > 1) {  /* "spin": gdb interrupts, then clears spinning */
        pthread_create(&thread, NULL, spinner, NULL);
        pthread_join(thread, NULL);
    }
    printf("results %d %d\n", results[0], results[1]);
    return results[0] + results[1] - 80;
}
