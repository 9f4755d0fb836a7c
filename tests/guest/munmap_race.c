/* A guest access racing another thread's munmap (tests/user/test_threads.py): one
 * thread reads a page in a loop while another maps and unmaps it over and over. Each
 * read either sees the page (before the munmap) or takes SIGSEGV (after), which the
 * handler turns into a siglongjmp; the emulator itself must never crash. Prints only
 * what does not depend on timing. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define ROUNDS 400
static volatile char *page;
static sigjmp_buf jump;
static atomic_int done;
static long faults, reads;

static void on_segv(int sig) { (void)sig; siglongjmp(jump, 1); }

static void *reader(void *arg) {
    (void)arg;
    struct sigaction sa = {.sa_handler = on_segv};
    sigaction(SIGSEGV, &sa, NULL);
    while (!atomic_load(&done)) {
        if (sigsetjmp(jump, 1)) {
            faults++;
            continue;
        }
        volatile char *p = page;
        for (int i = 0; i < 64; i++)
            reads += p[i * 64] == 7;
    }
    return NULL;
}

int main(void) {
    /* a fixed address: the page is mapped at the same place every round */
    void *where = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page = where;
    ((char *)where)[0] = 7;
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    int remapped = 0;
    for (int round = 0; round < ROUNDS; round++) {
        munmap(where, 4096);
        for (volatile int spin = 0; spin < 2000; spin++)
            ;
        void *again = mmap(where, 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        remapped += again == where;
        for (int i = 0; i < 4096; i += 64)
            ((char *)where)[i] = 7;
        for (volatile int spin = 0; spin < 2000; spin++)
            ;
    }
    atomic_store(&done, 1);
    pthread_join(t, NULL);
    printf("munmap race: %d of %d remapped, reader finished\n", remapped, ROUNDS);
    return 0;
}
