/* A tiny freestanding C library for riscv64 Linux test programs.
 *
 * The "nolibc" build flavour links a test program with this file instead of glibc
 * (-nostdlib -static-pie): the program still includes the usual headers for types and
 * declarations, and gets these implementations. It has no floating point at all, and
 * relocates itself (R_RISCV_RELATIVE) so it runs as a static PIE.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long raw_syscall(long n, long a, long b, long c, long d, long e, long f) {
    register long a0 asm("a0") = a;
    register long a1 asm("a1") = b;
    register long a2 asm("a2") = c;
    register long a3 asm("a3") = d;
    register long a4 asm("a4") = e;
    register long a5 asm("a5") = f;
    register long a7 asm("a7") = n;
    asm volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7)
                 : "memory");
    return a0;
}

static int errno_value;
int *__errno_location(void) { return &errno_value; }

static long sys(long n, long a, long b, long c, long d, long e, long f) {
    long r = raw_syscall(n, a, b, c, d, e, f);
    if (r < 0 && r > -4096) {
        errno_value = (int)-r;
        return -1;
    }
    return r;
}
#define S0(n) sys(n, 0, 0, 0, 0, 0, 0)
#define S1(n, a) sys(n, (long)(a), 0, 0, 0, 0, 0)
#define S2(n, a, b) sys(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define S3(n, a, b, c) sys(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define S4(n, a, b, c, d) sys(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define S5(n, a, b, c, d, e) sys(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define S6(n, a, b, c, d, e, f) \
    sys(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* -- start-up ------------------------------------------------------------------------ */
char **environ;
static unsigned long *auxv_start;
extern int main(int, char **, char **);
extern const Elf64_Ehdr __ehdr_start __attribute__((visibility("hidden")));
extern Elf64_Dyn _DYNAMIC[] __attribute__((visibility("hidden")));

__attribute__((used)) static void start_c(long *sp) {
    /* Apply our own R_RISCV_RELATIVE relocations first (nothing before this may use a
       pointer stored in data). */
    uintptr_t base = (uintptr_t)&__ehdr_start;
    Elf64_Rela *rela = 0;
    unsigned long relasz = 0;
    for (Elf64_Dyn *d = _DYNAMIC; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_RELA) rela = (Elf64_Rela *)(base + d->d_un.d_ptr);
        if (d->d_tag == DT_RELASZ) relasz = d->d_un.d_val;
    }
    for (unsigned long i = 0; rela && i < relasz / sizeof(Elf64_Rela); i++)
        if (ELF64_R_TYPE(rela[i].r_info) == R_RISCV_RELATIVE)
            *(uintptr_t *)(base + rela[i].r_offset) = base + rela[i].r_addend;
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    environ = argv + argc + 1;
    char **e = environ;
    while (*e) e++;
    auxv_start = (unsigned long *)(e + 1);
    exit(main(argc, argv, environ));
}

asm(".section .text._start\n"
    ".global _start\n"
    "_start:\n"
    "  .option push\n"
    "  .option norelax\n"
    "  lla gp, __global_pointer$\n"
    "  .option pop\n"
    "  mv a0, sp\n"
    "  andi sp, sp, -16\n"
    "  call start_c\n");

unsigned long getauxval(unsigned long type) {
    for (unsigned long *a = auxv_start; a[0] != AT_NULL; a += 2)
        if (a[0] == type) return a[1];
    errno_value = ENOENT;
    return 0;
}

/* -- output -------------------------------------------------------------------------- */
static char outbuf[4096];
static size_t outlen;
FILE *stdout = (FILE *)1, *stderr = (FILE *)2, *stdin = (FILE *)0;

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        long r = S3(SYS_write, fd, p, n);
        if (r <= 0) return;
        p += r;
        n -= (size_t)r;
    }
}
int fflush(FILE *f) {
    (void)f;
    write_all(1, outbuf, outlen);
    outlen = 0;
    return 0;
}
static void out(int fd, const char *p, size_t n) {
    if (fd != 1) {
        write_all(fd, p, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (outlen == sizeof outbuf) fflush(stdout);
        outbuf[outlen++] = p[i];
    }
}

struct sink { int fd; char *buf; size_t cap, len; };
static void emit(struct sink *s, const char *p, size_t n) {
    if (s->buf) {
        for (size_t i = 0; i < n; i++) {
            if (s->len + 1 < s->cap) s->buf[s->len] = p[i];
            s->len++;
        }
    } else {
        out(s->fd, p, n);
        s->len += n;
    }
}

static void format(struct sink *s, const char *fmt, va_list ap) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(s, fmt, 1);
            continue;
        }
        fmt++;
        int left = 0, zero = 0, width = 0, lng = 0, alt = 0;
        for (;; fmt++) {
            if (*fmt == '-') left = 1;
            else if (*fmt == '#') alt = 1;
            else if (*fmt == '0') zero = 1;
            else break;
        }
        if (*fmt == '*') { width = va_arg(ap, int); fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') { lng++; fmt++; }
        char tmp[32];
        const char *p = tmp;
        size_t n = 0;
        unsigned long long u = 0;
        int neg = 0, base = 10;
        switch (*fmt) {
        case 'd': case 'i': {
            long long v = lng ? va_arg(ap, long) : va_arg(ap, int);
            if (v < 0) { neg = 1; u = (unsigned long long)-v; } else u = (unsigned long long)v;
            goto number;
        }
        case 'u': u = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned); goto number;
        case 'x': base = 16; u = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            if (alt && u) emit(s, "0x", 2);
            goto number;
        case 'o': base = 8; u = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            goto number;
        case 'p': base = 16; u = (unsigned long)va_arg(ap, void *);
            emit(s, "0x", 2);
            goto number;
        number: {
            char *q = tmp + sizeof tmp;
            do { *--q = "0123456789abcdef"[u % base]; u /= base; } while (u);
            if (neg) *--q = '-';
            p = q;
            n = (size_t)(tmp + sizeof tmp - q);
            break;
        }
        case 's': p = va_arg(ap, const char *); if (!p) p = "(null)"; n = strlen(p); break;
        case 'c': tmp[0] = (char)va_arg(ap, int); n = 1; break;
        case '%': tmp[0] = '%'; n = 1; break;
        default: tmp[0] = '?'; n = 1; break;
        }
        int pad = width > (int)n ? width - (int)n : 0;
        if (!left) while (pad-- > 0) emit(s, zero ? "0" : " ", 1);
        emit(s, p, n);
        if (left) while (pad-- > 0) emit(s, " ", 1);
    }
}

int vfprintf(FILE *f, const char *fmt, va_list ap) {
    struct sink s = { (int)(long)f, 0, 0, 0 };
    format(&s, fmt, ap);
    return (int)s.len;
}
int printf(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    int r = vfprintf(stdout, fmt, ap);
    va_end(ap);
    return r;
}
int fprintf(FILE *f, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    if (f == stderr) fflush(stdout);
    int r = vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}
int snprintf(char *buf, size_t cap, const char *fmt, ...) {
    struct sink s = { 0, buf, cap, 0 };
    va_list ap; va_start(ap, fmt);
    format(&s, fmt, ap);
    va_end(ap);
    if (cap) buf[s.len < cap ? s.len : cap - 1] = 0;
    return (int)s.len;
}
int puts(const char *str) { out(1, str, strlen(str)); out(1, "\n", 1); return 0; }
int putchar(int c) { char ch = (char)c; out(1, &ch, 1); return c; }
int fputs(const char *str, FILE *f) { out((int)(long)f, str, strlen(str)); return 0; }
size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
    out((int)(long)f, p, size * n);
    return n;
}
void perror(const char *msg) { fprintf(stderr, "%s: errno %d\n", msg, errno_value); }
int setvbuf(FILE *f, char *b, int mode, size_t size) { (void)f; (void)b; (void)mode; (void)size; return 0; }

/* -- strings and memory ------------------------------------------------------------------ */
size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return (unsigned char)*a - (unsigned char)*b;
}
int strncmp(const char *a, const char *b, size_t n) {
    for (; n; n--, a++, b++) {
        if (*a != *b || !*a) return (unsigned char)*a - (unsigned char)*b;
    }
    return 0;
}
char *strchr(const char *s, int c) {
    for (;; s++) {
        if (*s == (char)c) return (char *)s;
        if (!*s) return 0;
    }
}
char *strrchr(const char *s, int c) {
    const char *r = 0;
    for (;; s++) {
        if (*s == (char)c) r = s;
        if (!*s) return (char *)r;
    }
}
char *strcpy(char *d, const char *s) { char *r = d; while ((*d++ = *s++)) {} return r; }
void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *dp = d; const unsigned char *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}
void *memmove(void *d, const void *s, size_t n) {
    unsigned char *dp = d; const unsigned char *sp = s;
    if (dp < sp) while (n--) *dp++ = *sp++;
    else while (n--) dp[n] = sp[n];
    return d;
}
void *memset(void *d, int c, size_t n) { unsigned char *p = d; while (n--) *p++ = (unsigned char)c; return d; }
int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++) if (*x != *y) return *x - *y;
    return 0;
}
char *getenv(const char *name) {
    size_t n = strlen(name);
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=') return *e + n + 1;
    return 0;
}
int atoi(const char *s) {
    int v = 0, neg = 0;
    if (*s == '-') { neg = 1; s++; }
    while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
    return neg ? -v : v;
}
void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    char *b = base, tmp[512];
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp(b + (j - 1) * size, b + j * size) > 0; j--) {
            memcpy(tmp, b + j * size, size);
            memcpy(b + j * size, b + (j - 1) * size, size);
            memcpy(b + (j - 1) * size, tmp, size);
        }
}

/* -- malloc on brk -------------------------------------------------------------------- */
static char *heap_end;
int brk(void *addr) {
    long r = raw_syscall(SYS_brk, (long)addr, 0, 0, 0, 0, 0);
    heap_end = (char *)r;
    if ((char *)r < (char *)addr) { errno_value = ENOMEM; return -1; }
    return 0;
}
void *sbrk(intptr_t inc) {
    if (!heap_end) heap_end = (char *)raw_syscall(SYS_brk, 0, 0, 0, 0, 0, 0);
    char *old = heap_end;
    if (inc && brk(old + inc) < 0) return (void *)-1;
    return old;
}
void *malloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    size_t *p = sbrk((intptr_t)(n + 16));
    if (p == (void *)-1) return 0;
    p[0] = n;
    return p + 2;
}
void free(void *p) { (void)p; }
void *calloc(size_t a, size_t b) { void *p = malloc(a * b); if (p) memset(p, 0, a * b); return p; }
void *realloc(void *old, size_t n) {
    void *p = malloc(n);
    if (p && old) memcpy(p, old, ((size_t *)old)[-2] < n ? ((size_t *)old)[-2] : n);
    return p;
}

/* -- system calls ------------------------------------------------------------------------ */
void exit(int status) { fflush(stdout); S1(SYS_exit_group, status); for (;;) {} }
void _exit(int status) { S1(SYS_exit_group, status); for (;;) {} }
void abort(void) { fflush(stdout); raise(SIGABRT); _exit(127); }
ssize_t read(int fd, void *b, size_t n) { return S3(SYS_read, fd, b, n); }
ssize_t write(int fd, const void *b, size_t n) { return S3(SYS_write, fd, b, n); }
ssize_t pread(int fd, void *b, size_t n, off_t o) { return S4(SYS_pread64, fd, b, n, o); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { return S4(SYS_pwrite64, fd, b, n, o); }
ssize_t writev(int fd, const struct iovec *v, int n) { return S3(SYS_writev, fd, v, n); }
ssize_t readv(int fd, const struct iovec *v, int n) { return S3(SYS_readv, fd, v, n); }
int open(const char *p, int flags, ...) {
    va_list ap; va_start(ap, flags);
    int mode = va_arg(ap, int);
    va_end(ap);
    return (int)S4(SYS_openat, AT_FDCWD, p, flags, mode);
}
int openat(int dirfd, const char *p, int flags, ...) {
    va_list ap; va_start(ap, flags);
    int mode = va_arg(ap, int);
    va_end(ap);
    return (int)S4(SYS_openat, dirfd, p, flags, mode);
}
int close(int fd) { return (int)S1(SYS_close, fd); }
off_t lseek(int fd, off_t o, int w) { return S3(SYS_lseek, fd, o, w); }
int fstat(int fd, struct stat *st) { return (int)S2(SYS_fstat, fd, st); }
int stat(const char *p, struct stat *st) { return (int)S4(SYS_newfstatat, AT_FDCWD, p, st, 0); }
int lstat(const char *p, struct stat *st) {
    return (int)S4(SYS_newfstatat, AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW);
}
int mkdir(const char *p, mode_t m) { return (int)S3(SYS_mkdirat, AT_FDCWD, p, m); }
int rmdir(const char *p) { return (int)S3(SYS_unlinkat, AT_FDCWD, p, AT_REMOVEDIR); }
int unlink(const char *p) { return (int)S3(SYS_unlinkat, AT_FDCWD, p, 0); }
int rename(const char *a, const char *b) {
    return (int)S5(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 0);
}
int link(const char *a, const char *b) { return (int)S5(SYS_linkat, AT_FDCWD, a, AT_FDCWD, b, 0); }
int symlink(const char *a, const char *b) { return (int)S3(SYS_symlinkat, a, AT_FDCWD, b); }
ssize_t readlink(const char *p, char *b, size_t n) { return S4(SYS_readlinkat, AT_FDCWD, p, b, n); }
int chmod(const char *p, mode_t m) { return (int)S3(SYS_fchmodat, AT_FDCWD, p, m); }
int access(const char *p, int m) { return (int)S3(SYS_faccessat, AT_FDCWD, p, m); }
int ftruncate(int fd, off_t n) { return (int)S2(SYS_ftruncate, fd, n); }
int fsync(int fd) { return (int)S1(SYS_fsync, fd); }
int chdir(const char *p) { return (int)S1(SYS_chdir, p); }
int fchdir(int fd) { return (int)S1(SYS_fchdir, fd); }
char *getcwd(char *b, size_t n) { return S2(SYS_getcwd, b, n) < 0 ? 0 : b; }
int dup(int fd) { return (int)S1(SYS_dup, fd); }
int dup2(int a, int b) { return a == b ? b : (int)S3(SYS_dup3, a, b, 0); }
int pipe(int fds[2]) { return (int)S2(SYS_pipe2, fds, 0); }
int pipe2(int fds[2], int flags) { return (int)S2(SYS_pipe2, fds, flags); }
int fcntl(int fd, int cmd, ...) {
    va_list ap; va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    return (int)S3(SYS_fcntl, fd, cmd, arg);
}
int utimensat(int d, const char *p, const struct timespec t[2], int f) {
    return (int)S4(SYS_utimensat, d, p, t, f);
}
void *mmap(void *a, size_t n, int prot, int flags, int fd, off_t off) {
    long r = raw_syscall(SYS_mmap, (long)a, (long)n, prot, flags, fd, off);
    if (r < 0 && r > -4096) { errno_value = (int)-r; return MAP_FAILED; }
    return (void *)r;
}
int munmap(void *a, size_t n) { return (int)S2(SYS_munmap, a, n); }
int mprotect(void *a, size_t n, int p) { return (int)S3(SYS_mprotect, a, n, p); }
int madvise(void *a, size_t n, int adv) { return (int)S3(SYS_madvise, a, n, adv); }
int msync(void *a, size_t n, int f) { return (int)S3(SYS_msync, a, n, f); }
void *mremap(void *a, size_t o, size_t n, int flags, ...) {
    va_list ap; va_start(ap, flags);
    void *new_addr = va_arg(ap, void *);
    va_end(ap);
    long r = raw_syscall(SYS_mremap, (long)a, (long)o, (long)n, flags, (long)new_addr, 0);
    if (r < 0 && r > -4096) { errno_value = (int)-r; return MAP_FAILED; }
    return (void *)r;
}
pid_t fork(void) { fflush(stdout); return (pid_t)S5(SYS_clone, SIGCHLD, 0, 0, 0, 0); }
pid_t vfork(void) { fflush(stdout); return (pid_t)S5(SYS_clone, 0x100 | 0x4000 | SIGCHLD, 0, 0, 0, 0); }
pid_t wait4(pid_t p, int *st, int o, struct rusage *r) { return (pid_t)S4(SYS_wait4, p, st, o, r); }
pid_t waitpid(pid_t p, int *st, int o) { return (pid_t)S4(SYS_wait4, p, st, o, 0); }
pid_t wait(int *st) { return waitpid(-1, st, 0); }
int execve(const char *p, char *const a[], char *const e[]) {
    fflush(stdout);
    return (int)S3(SYS_execve, p, a, e);
}
int execv(const char *p, char *const a[]) { return execve(p, a, environ); }
pid_t getpid(void) { return (pid_t)S0(SYS_getpid); }
pid_t getppid(void) { return (pid_t)S0(SYS_getppid); }
uid_t getuid(void) { return (uid_t)S0(SYS_getuid); }
uid_t geteuid(void) { return (uid_t)S0(SYS_geteuid); }
gid_t getgid(void) { return (gid_t)S0(SYS_getgid); }
gid_t getegid(void) { return (gid_t)S0(SYS_getegid); }
int kill(pid_t p, int s) { return (int)S2(SYS_kill, p, s); }
int raise(int s) { return kill(getpid(), s); }
int uname(struct utsname *u) { return (int)S1(SYS_uname, u); }
int clock_gettime(clockid_t c, struct timespec *t) { return (int)S2(SYS_clock_gettime, c, t); }
int clock_getres(clockid_t c, struct timespec *t) { return (int)S2(SYS_clock_getres, c, t); }
int nanosleep(const struct timespec *a, struct timespec *b) { return (int)S2(SYS_nanosleep, a, b); }
int gettimeofday(struct timeval *tv, void *tz) { return (int)S2(SYS_gettimeofday, tv, tz); }
time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}
ssize_t getrandom(void *b, size_t n, unsigned f) { return S3(SYS_getrandom, b, n, f); }
sighandler_t signal(int sig, sighandler_t h) {
    unsigned long act[3] = { (unsigned long)h, 0, 0 }, old[3];
    if (S4(SYS_rt_sigaction, sig, act, old, 8) < 0) return SIG_ERR;
    return (sighandler_t)old[0];
}

struct __dirstream { int fd; long pos, len; char buf[4096]; struct dirent ent; };
static struct __dirstream dir_pool[4];
DIR *opendir(const char *p) {
    int fd = (int)S4(SYS_openat, AT_FDCWD, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return 0;
    for (int i = 0; i < 4; i++)
        if (dir_pool[i].fd == 0) {
            dir_pool[i].fd = fd;
            dir_pool[i].pos = dir_pool[i].len = 0;
            return &dir_pool[i];
        }
    close(fd);
    errno_value = EMFILE;
    return 0;
}
struct dirent *readdir(DIR *d) {
    if (d->pos >= d->len) {
        d->len = S3(SYS_getdents64, d->fd, d->buf, sizeof d->buf);
        d->pos = 0;
        if (d->len <= 0) return 0;
    }
    struct dirent *e = (struct dirent *)(d->buf + d->pos);
    d->pos += e->d_reclen;
    memcpy(&d->ent, e, e->d_reclen < sizeof d->ent ? e->d_reclen : sizeof d->ent);
    return &d->ent;
}
int closedir(DIR *d) { int r = close(d->fd); d->fd = 0; return r; }
int dprintf(int fd, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    if (fd == 1) fflush(stdout);
    int r = vfprintf((FILE *)(long)fd, fmt, ap);
    va_end(ap);
    return r;
}
int poll(struct pollfd *f, nfds_t n, int timeout) {
    struct timespec ts = { timeout / 1000, (timeout % 1000) * 1000000L };
    return (int)S5(SYS_ppoll, f, n, timeout < 0 ? 0 : &ts, 0, 8);
}
