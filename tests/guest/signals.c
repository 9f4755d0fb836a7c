/* Signal delivery, one case per argument; each prints what it sees and exits 0 (or dies
 * of a signal on purpose). Run under llvmtcg-user and qemu-riscv64, outputs compared. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* linux/signal.h; glibc does not define it */
#endif

static sigjmp_buf jump;
static volatile sig_atomic_t count;
static volatile int last_code;
static volatile void *last_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    last_code = si->si_code;
    last_addr = si->si_addr;
    count++;
    siglongjmp(jump, sig);
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(2);
    }
}

/* SIGSEGV (unmapped: SEGV_MAPERR; read-only: SEGV_ACCERR), SIGILL, SIGTRAP, each left
 * with siglongjmp; the mask is restored by siglongjmp(…, 1). */
static int segv(void)
{
    install(SIGSEGV, on_fault, 0);
    install(SIGILL, on_fault, 0);
    install(SIGTRAP, on_fault, 0);
    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int sig;
    if ((sig = sigsetjmp(jump, 1)) == 0)
        *(volatile int *)16 = 1;
    printf("unmapped: sig %d code %d addr %p\n", sig, last_code, (void *)last_addr);
    if ((sig = sigsetjmp(jump, 1)) == 0)
        *(volatile char *)(page + 8) = 1;
    printf("read-only: sig %d code %d offset %ld\n", sig, last_code,
           (long)((char *)last_addr - page));
    if ((sig = sigsetjmp(jump, 1)) == 0)
        __asm__ volatile(".word 0xffffffff");
    printf("illegal: sig %d code %d\n", sig, last_code);
    if ((sig = sigsetjmp(jump, 1)) == 0)
        __asm__ volatile("ebreak");
    printf("ebreak: sig %d code %d\n", sig, last_code);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("segv blocked after longjmp: %d, count %d\n", sigismember(&now, SIGSEGV), count);
    return 0;
}

/* A handler that returns: skip the ebreak by editing the saved pc (uc_mcontext). */
static void skip_ebreak(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    (void)sig;
    uc->uc_mcontext.__gregs[REG_PC] = (uintptr_t)si->si_addr + 4;
    count++;
}

static int resume(void)
{
    install(SIGTRAP, skip_ebreak, 0);
    for (int i = 0; i < 3; i++)
        __asm__ volatile(".option push\n.option norvc\nebreak\n.option pop");
    printf("resumed after %d ebreaks\n", count);
    return 0;
}

/* Stack overflow caught on the alternate stack. */
static char *alt_base;
static volatile int on_alt;

static void on_overflow(int sig, siginfo_t *si, void *uc)
{
    char local;
    (void)si;
    (void)uc;
    on_alt = &local > alt_base && &local < alt_base + SIGSTKSZ * 4;
    stack_t now;
    sigaltstack(NULL, &now);
    printf("overflow handler: sig %d on alt stack %d ss_flags %d\n", sig, on_alt,
           now.ss_flags);
    siglongjmp(jump, 1);
}

static void show_altstack(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    char local;
    stack_t now;
    (void)si;
    sigaltstack(NULL, &now);
    printf("in handler %d: on alt %d ss_flags %d saved flags %#x\n", sig,
           &local > alt_base && &local < alt_base + SIGSTKSZ * 4, now.ss_flags,
           (unsigned)uc->uc_stack.ss_flags);
}

static int recurse(int n)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    return recurse(n + 1) + buf[0];
}

static int altstack(void)
{
    stack_t ss = {0};
    alt_base = malloc(SIGSTKSZ * 4);
    ss.ss_sp = alt_base;
    ss.ss_size = SIGSTKSZ * 4;
    if (sigaltstack(&ss, NULL) != 0) {
        perror("sigaltstack");
        return 2;
    }
    stack_t tiny = {.ss_sp = alt_base, .ss_size = 16};
    printf("tiny stack: %d errno %d\n", sigaltstack(&tiny, NULL), errno);
    install(SIGSEGV, on_overflow, SA_ONSTACK);
    if (sigsetjmp(jump, 1) == 0)
        recurse(0);
    stack_t old;
    sigaltstack(NULL, &old);
    printf("after: ss_flags %d size ok %d\n", old.ss_flags, old.ss_size == SIGSTKSZ * 4);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    sigaltstack(NULL, &old);
    printf("disabled: ss_flags %d\n", old.ss_flags);
    return 0;
}

/* SS_AUTODISARM (Linux 4.7; qemu 7.2 refuses it): disarmed while the handler runs,
 * restored from uc_stack by sigreturn. */
static int autodisarm(void)
{
    stack_t ss = {0}, old;
    alt_base = malloc(SIGSTKSZ * 4);
    ss.ss_sp = alt_base;
    ss.ss_size = SIGSTKSZ * 4;
    ss.ss_flags = SS_AUTODISARM;
    printf("autodisarm: %d\n", sigaltstack(&ss, NULL));
    install(SIGUSR1, show_altstack, SA_ONSTACK);
    raise(SIGUSR1);
    sigaltstack(NULL, &old);
    printf("after handler: ss_flags %#x\n", (unsigned)old.ss_flags);
    return 0;
}

static void on_alarm(int sig)
{
    count++;
    (void)sig;
}

static int alarm_pause(void)
{
    signal(SIGALRM, on_alarm);
    alarm(1);
    int r = pause();
    printf("pause returned %d errno %d count %d\n", r, errno, count);
    return 0;
}

/* A pipe read interrupted by a timer: EINTR without SA_RESTART; restarted with it (the
 * second handler writes the byte the restarted read then returns). */
static int restart_fds[2];

static void on_alarm_write(int sig)
{
    (void)sig;
    if (++count == 2)
        write(restart_fds[1], "x", 1);
}

static int restart(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm_write;
    sigaction(SIGALRM, &sa, NULL);
    pipe(restart_fds);
    struct itimerval t = {.it_value = {0, 200000}};
    setitimer(ITIMER_REAL, &t, NULL);
    char c;
    ssize_t n = read(restart_fds[0], &c, 1);
    printf("without SA_RESTART: read %zd errno %s count %d\n", n,
           errno == EINTR ? "EINTR" : "other", count);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &t, NULL);
    n = read(restart_fds[0], &c, 1);
    printf("with SA_RESTART: read %zd char %c count %d\n", n, n == 1 ? c : '?', count);
    return 0;
}

static void on_usr(int sig)
{
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("handler %d: usr1 blocked %d usr2 blocked %d\n", sig, sigismember(&now, SIGUSR1),
           sigismember(&now, SIGUSR2));
    count++;
}

static int masks(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_usr;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t block, old, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    sigpending(&pending);
    printf("pending usr1 %d, count %d\n", sigismember(&pending, SIGUSR1), count);
    sigset_t wait_mask = old;
    sigsuspend(&wait_mask);
    sigprocmask(SIG_BLOCK, NULL, &old);
    printf("after sigsuspend: count %d usr1 blocked again %d\n", count,
           sigismember(&old, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    raise(SIGUSR2);
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    printf("after SA_RESETHAND: count %d handler default %d\n", count,
           now.sa_handler == SIG_DFL);
    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    printf("ignored: count %d\n", count);
    return 0;
}

static volatile int queued_value;

static void on_queue(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    queued_value = si->si_value.sival_int;
    printf("sigqueue: sig %d code %d value %d pid ok %d\n", sig, si->si_code,
           si->si_value.sival_int, si->si_pid == getpid());
}

static int queue(void)
{
    install(SIGRTMIN + 1, on_queue, 0);
    union sigval v = {.sival_int = 4242};
    sigqueue(getpid(), SIGRTMIN + 1, v);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    v.sival_int = 77;
    sigqueue(getpid(), SIGUSR2, v);
    siginfo_t info;
    int got = sigwaitinfo(&set, &info);
    printf("sigwaitinfo: %d value %d code %d\n", got, info.si_value.sival_int, info.si_code);
    return queued_value == 4242 ? 0 : 1;
}

static volatile int reaped;

static void on_child(int sig, siginfo_t *si, void *uc)
{
    int status;
    (void)sig;
    (void)uc;
    (void)si;
    while (waitpid(-1, &status, WNOHANG) > 0)
        reaped += WEXITSTATUS(status);
}

static int sigchld(void)
{
    install(SIGCHLD, on_child, SA_RESTART);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    for (int i = 1; i <= 3; i++)
        if (fork() == 0)
            _exit(i);
    while (reaped < 6)
        sigsuspend(&old);
    printf("reaped exit statuses summing to %d\n", reaped);
    return 0;
}

/* FP registers and fcsr survive a handler that changes them; the frame holds them. */
static volatile double seen_fs0;
static volatile unsigned seen_fcsr;

static void clobber_fp(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    (void)sig;
    (void)si;
    seen_fs0 = uc->uc_mcontext.__fpregs.__d.__f[8];
    seen_fcsr = uc->uc_mcontext.__fpregs.__d.__fcsr;
    double junk = -1.0;
    __asm__ volatile("fmv.d fs0, %0\n fmv.d fs1, %0\n fmv.d ft0, %0\n fsrmi 3\n"
                     :: "f"(junk) : "fs0", "fs1", "ft0");
}

static int fpregs(void)
{
    install(SIGUSR1, clobber_fp, 0);
    double a = 1.5, b = 2.25, after0, after1;
    unsigned frm;
    pid_t pid = getpid();
    register long a0 __asm__("a0") = pid;
    register long a1 __asm__("a1") = SIGUSR1;
    register long a7 __asm__("a7") = 129; /* kill */
    __asm__ volatile("fmv.d fs0, %[a]\n fmv.d fs1, %[b]\n fsrmi 2\n ecall\n"
                     "fmv.d %[x], fs0\n fmv.d %[y], fs1\n frrm %[r]\n fsrmi 0\n"
                     : [x] "=&f"(after0), [y] "=&f"(after1), [r] "=&r"(frm), "+r"(a0)
                     : [a] "f"(a), [b] "f"(b), "r"(a1), "r"(a7)
                     : "fs0", "fs1", "memory");
    printf("kill returned %ld; in frame fs0 %g fcsr rm %u; after fs0 %g fs1 %g frm %u\n",
           (long)a0, seen_fs0, seen_fcsr >> 5, after0, after1, frm);
    return 0;
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    printf("timer: sig offset %d code %d value %d\n", sig - SIGRTMIN, si->si_code,
           si->si_value.sival_int);
    count++;
}

/* A POSIX timer's signal, then signals read through a signalfd. */
static int timers(void)
{
    install(SIGRTMIN + 2, on_timer, 0);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN + 2;
    ev.sigev_value.sival_int = 99;
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer) != 0) {
        perror("timer_create");
        return 2;
    }
    struct itimerspec its = {.it_value = {0, 100000000}};
    timer_settime(timer, 0, &its, NULL);
    while (!count)
        pause();
    timer_delete(timer);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, 0);
    raise(SIGUSR1);
    struct signalfd_siginfo ssi;
    ssize_t n = read(fd, &ssi, sizeof ssi);
    printf("signalfd: read %zd signo %u pid ok %d\n", n, ssi.ssi_signo,
           (pid_t)ssi.ssi_pid == getpid());
    return 0;
}

static int abort_default(void)
{
    printf("aborting\n");
    fflush(stdout);
    raise(SIGABRT);
    return 0;
}

static volatile sig_atomic_t host_signalled;

static void on_host(int sig)
{
    host_signalled = sig;
}

/* The test sends SIGUSR1 to the emulator while this spins in guest code. */
static int spin(void)
{
    signal(SIGUSR1, on_host);
    printf("ready\n");
    fflush(stdout);
    unsigned long n = 0;
    while (!host_signalled)
        n++;
    printf("spin: got signal %d\n", host_signalled);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(void);
    } cases[] = {
        {"segv", segv}, {"resume", resume}, {"altstack", altstack},
        {"alarm", alarm_pause}, {"restart", restart}, {"masks", masks},
        {"queue", queue}, {"sigchld", sigchld}, {"fpregs", fpregs},
        {"abort", abort_default}, {"spin", spin}, {"timers", timers},
        {"autodisarm", autodisarm},
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; argc > 1 && i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(argv[1], cases[i].name) == 0)
            return cases[i].fn();
    fprintf(stderr, "usage: signals CASE\n");
    return 2;
}
