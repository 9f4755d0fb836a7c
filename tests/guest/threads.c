/* Guest threads (tests/user/test_threads.py): each case is run under llvmtcg-user and
 * qemu-riscv64 and must print the same and exit with the same status.
 * Built with -static -pthread. Output is deterministic: threads report through shared
 * memory and main prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(x) do { int e_ = (x); if (e_) { printf("%s: %s\n", #x, strerror(e_)); exit(1); } } while (0)

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

/* -- condvar: 8 producers and 8 consumers through a bounded queue --------------------- */
#define QSIZE 4
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER, not_empty = PTHREAD_COND_INITIALIZER;
static long queue[QSIZE];
static int qhead, qcount;

static void *producer(void *arg) {
    long base = (long)arg * 1000;
    for (long i = 0; i < 500; i++) {
        pthread_mutex_lock(&qlock);
        while (qcount == QSIZE)
            pthread_cond_wait(&not_full, &qlock);
        queue[(qhead + qcount++) % QSIZE] = base + i;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&qlock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    long sum = 0;
    (void)arg;
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&qlock);
        while (qcount == 0)
            pthread_cond_wait(&not_empty, &qlock);
        sum += queue[qhead];
        qhead = (qhead + 1) % QSIZE;
        qcount--;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&qlock);
    }
    return (void *)sum;
}

static int case_condvar(void) {
    pthread_t p[8], c[8];
    for (long i = 0; i < 8; i++) {
        CHECK(pthread_create(&p[i], NULL, producer, (void *)i));
        CHECK(pthread_create(&c[i], NULL, consumer, NULL));
    }
    long total = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        CHECK(pthread_join(p[i], NULL));
        CHECK(pthread_join(c[i], &r));
        total += (long)r;
    }
    printf("condvar: total %ld (expected %ld)\n", total, 8L * 499 * 500 / 2 + 1000L * 500 * 28);
    return 0;
}

/* -- atomics: AMOs and LR/SC loops from every thread ----------------------------------- */
static atomic_long amo_counter;
static long lrsc_counter;
static atomic_int spin;
static long spin_protected;

static void *hammer(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        atomic_fetch_add(&amo_counter, 1);  /* amoadd.d */
        long old = __atomic_load_n(&lrsc_counter, __ATOMIC_RELAXED);
        /* A compare-and-swap loop: lr.d/sc.d */
        while (!__atomic_compare_exchange_n(&lrsc_counter, &old, old + 2, 1,
                                            __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            ;
        while (atomic_exchange(&spin, 1))  /* amoswap.w spinlock */
            ;
        spin_protected += 3;
        atomic_store(&spin, 0);
    }
    return NULL;
}

static int case_atomic(void) {
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        CHECK(pthread_create(&t[i], NULL, hammer, NULL));
    for (int i = 0; i < 6; i++)
        CHECK(pthread_join(t[i], NULL));
    printf("atomic: amo %ld lrsc %ld spin %ld\n", (long)amo_counter, lrsc_counter,
           spin_protected);
    return 0;
}

/* -- thread-local storage, join values, barrier ---------------------------------------- */
static __thread long tls_var = 7;
static __thread char tls_buf[64];
static pthread_barrier_t barrier;
static int barrier_serial;

static void *tls_worker(void *arg) {
    long id = (long)arg;
    if (tls_var != 7)
        return (void *)-1L;
    tls_var = id;
    snprintf(tls_buf, sizeof tls_buf, "thread %ld", id);
    if (pthread_barrier_wait(&barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
        __atomic_add_fetch(&barrier_serial, 1, __ATOMIC_SEQ_CST);
    /* Everyone is past the barrier: each still sees its own values. */
    char expect[64];
    snprintf(expect, sizeof expect, "thread %ld", id);
    return (void *)(tls_var * 10 + (strcmp(tls_buf, expect) == 0));
}

static int case_tls(void) {
    pthread_t t[5];
    CHECK(pthread_barrier_init(&barrier, NULL, 5));
    for (long i = 0; i < 5; i++)
        CHECK(pthread_create(&t[i], NULL, tls_worker, (void *)(i + 1)));
    for (int i = 0; i < 5; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r));
        printf("tls: thread %d returned %ld\n", i + 1, (long)r);
    }
    printf("tls: main tls_var %ld, serial threads %d\n", tls_var, barrier_serial);
    return 0;
}

/* -- many threads, in waves, some detached --------------------------------------------- */
static atomic_int finished;

static void *short_lived(void *arg) {
    atomic_fetch_add(&finished, (int)(long)arg);
    return arg;
}

static int case_many(void) {
    long joined = 0;
    for (int wave = 0; wave < 4; wave++) {
        pthread_t t[32];
        for (long i = 0; i < 32; i++)
            CHECK(pthread_create(&t[i], NULL, short_lived, (void *)1L));
        for (int i = 0; i < 32; i++) {
            void *r;
            CHECK(pthread_join(t[i], &r));
            joined += (long)r;
        }
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 16; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, &attr, short_lived, (void *)100L));
    }
    while (atomic_load(&finished) < 128 + 1600)
        sched_yield();
    printf("many: joined %ld, finished %d\n", joined, atomic_load(&finished));
    return 0;
}

/* -- exit_group from a thread while main waits ------------------------------------------ */
static void *exiter(void *arg) {
    (void)arg;
    printf("exit: thread calls exit(3)\n");
    fflush(stdout);
    exit(3);
}

static int case_exit(void) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, exiter, NULL));
    pthread_join(t, NULL);
    printf("exit: not reached\n");
    return 0;
}

/* -- the main thread exits first (pthread_exit); the process lives on ------------------ */
static void *survivor(void *arg) {
    (void)arg;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    printf("mainexit: the other thread still runs\n");
    fflush(stdout);
    return NULL;  /* the last thread: the process exits with status 0 */
}

static int case_mainexit(void) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, survivor, NULL));
    printf("mainexit: main calls pthread_exit\n");
    fflush(stdout);
    pthread_exit(NULL);
}

/* -- signals to a given thread, per-thread masks --------------------------------------- */
static volatile pid_t handled_on[65];
static volatile sig_atomic_t handled_count;

static void on_signal(int sig) {
    handled_on[sig] = gettid_();
    handled_count++;
}

static pid_t worker_tid;
static atomic_int worker_ready, worker_stop;

static void *signal_worker(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);  /* main blocks SIGUSR2, this one not */
    worker_tid = gettid_();
    atomic_store(&worker_ready, 1);
    while (!atomic_load(&worker_stop))
        ;  /* spins in guest code: the signal must stop the chain of blocks */
    return NULL;
}

static int case_signal(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, signal_worker, NULL));
    while (!atomic_load(&worker_ready))
        ;
    CHECK(pthread_kill(t, SIGUSR1));  /* tgkill: that thread */
    while (handled_count < 1)
        ;
    kill(getpid(), SIGUSR2);  /* the process: only the worker does not block it */
    while (handled_count < 2)
        ;
    atomic_store(&worker_stop, 1);
    CHECK(pthread_join(t, NULL));
    printf("signal: SIGUSR1 on the worker: %d, SIGUSR2 on the worker: %d\n",
           handled_on[SIGUSR1] == worker_tid, handled_on[SIGUSR2] == worker_tid);
    sigset_t pending;
    sigpending(&pending);
    printf("signal: main's mask still blocks SIGUSR2: %d\n",
           pthread_sigmask(SIG_SETMASK, NULL, &set) == 0 && sigismember(&set, SIGUSR2));
    return 0;
}

/* -- a signal interrupting a thread blocked in a futex wait ---------------------------- */
static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wcond = PTHREAD_COND_INITIALIZER;
static int wflag;

static void *waiter(void *arg) {
    (void)arg;
    worker_tid = gettid_();
    pthread_mutex_lock(&wlock);
    atomic_store(&worker_ready, 1);
    while (!wflag)
        pthread_cond_wait(&wcond, &wlock);
    pthread_mutex_unlock(&wlock);
    return (void *)(long)handled_count;
}

static int case_futexsig(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    atomic_store(&worker_ready, 0);
    CHECK(pthread_create(&t, NULL, waiter, NULL));
    while (!atomic_load(&worker_ready))
        ;
    pthread_mutex_lock(&wlock);  /* the waiter is in pthread_cond_wait now */
    pthread_mutex_unlock(&wlock);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(pthread_kill(t, SIGUSR1));
    while (handled_count < 1)
        ;
    pthread_mutex_lock(&wlock);
    wflag = 1;
    pthread_cond_signal(&wcond);
    pthread_mutex_unlock(&wlock);
    void *r;
    CHECK(pthread_join(t, &r));
    printf("futexsig: handled on the waiter %d, waiter saw %ld\n",
           handled_on[SIGUSR1] == worker_tid, (long)r);
    return 0;
}

/* -- timeouts: a condition nobody signals ---------------------------------------------- */
static int case_timeout(void) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 50 * 1000 * 1000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&wlock);
    int r = pthread_cond_timedwait(&wcond, &wlock, &deadline);
    pthread_mutex_unlock(&wlock);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int late = now.tv_sec > deadline.tv_sec
               || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
    printf("timeout: %s, after the deadline %d\n", r == ETIMEDOUT ? "ETIMEDOUT" : strerror(r),
           late);
    return 0;
}

/* -- a robust mutex whose owner thread died -------------------------------------------- */
static pthread_mutex_t robust;

static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;  /* exits with the lock held */
}

static int case_robust(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    CHECK(pthread_mutex_init(&robust, &attr));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, die_holding, NULL));
    CHECK(pthread_join(t, NULL));
    int r = pthread_mutex_lock(&robust);
    printf("robust: lock after the owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(&robust);
        pthread_mutex_unlock(&robust);
    }
    return 0;
}

/* -- fork from a threaded program ------------------------------------------------------- */
static void *busy(void *arg) {
    (void)arg;
    while (!atomic_load(&worker_stop))
        atomic_fetch_add(&amo_counter, 1);
    return NULL;
}

static int case_fork(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, busy, NULL));
    for (int round = 0; round < 10; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* Only the forking thread exists here; threads can be made again. */
            pthread_t c;
            if (pthread_create(&c, NULL, short_lived, (void *)5L) != 0)
                _exit(100);
            void *r;
            pthread_join(c, &r);
            _exit((int)(long)r + round);
        }
        int status;
        waitpid(pid, &status, 0);
        printf("fork: child %d exited %d\n", round, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    atomic_store(&worker_stop, 1);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(t[i], NULL));
    return 0;
}

/* -- /proc/self/task lists the guest's threads, thread-self is the calling thread ------- */
#include <dirent.h>
static pid_t task_tids[3];
static int thread_self_ok[3];
static pthread_barrier_t task_barrier;

static void *task_worker(void *arg) {
    long i = (long)arg;
    char link[64], want[64];
    task_tids[i] = gettid_();
    ssize_t n = readlink("/proc/thread-self", link, sizeof link - 1);
    snprintf(want, sizeof want, "%d/task/%d", getpid(), gettid_());
    thread_self_ok[i] = n > 0 && (link[n] = 0, strcmp(link, want) == 0);
    pthread_barrier_wait(&task_barrier);  /* listed by main meanwhile */
    pthread_barrier_wait(&task_barrier);
    return NULL;
}

static int maps_is_guest(const char *path) {
    char line[512];
    FILE *f = fopen(path, "r");
    int lines = 0, foreign = 0;
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        foreign |= strstr(line, "python") != NULL || strstr(line, "LLVM") != NULL;
    }
    if (f)
        fclose(f);
    return lines > 0 && !foreign;
}

static int case_task(void) {
    pthread_t t[3];
    CHECK(pthread_barrier_init(&task_barrier, NULL, 4));
    for (long i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, task_worker, (void *)i));
    pthread_barrier_wait(&task_barrier);
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int entries = 0, known = 0, maps_ok = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        pid_t tid = atoi(e->d_name);
        entries++;
        known += tid == getpid() || tid == task_tids[0] || tid == task_tids[1]
                 || tid == task_tids[2];
        char path[96];
        snprintf(path, sizeof path, "/proc/self/task/%d/maps", tid);
        maps_ok += maps_is_guest(path);
    }
    if (d)
        closedir(d);
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/maps", task_tids[1]);  /* /proc/TID works too */
    int tid_dir_maps = maps_is_guest(path);
    printf("task: entries %d known %d maps %d thread-self %d %d %d /proc/tid/maps %d\n",
           entries, known, maps_ok, thread_self_ok[0], thread_self_ok[1], thread_self_ok[2],
           tid_dir_maps);
    pthread_barrier_wait(&task_barrier);
    for (int i = 0; i < 3; i++)
        CHECK(pthread_join(t[i], NULL));
    return 0;
}

int main(int argc, char **argv) {
    static const struct { const char *name; int (*run)(void); } cases[] = {
        {"condvar", case_condvar}, {"atomic", case_atomic}, {"tls", case_tls},
        {"many", case_many}, {"exit", case_exit}, {"mainexit", case_mainexit},
        {"signal", case_signal}, {"futexsig", case_futexsig}, {"timeout", case_timeout},
        {"robust", case_robust}, {"fork", case_fork}, {"task", case_task},
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (argc > 1 && strcmp(argv[1], cases[i].name) == 0)
            return cases[i].run();
    fprintf(stderr, "usage: threads CASE\n");
    return 2;
}
