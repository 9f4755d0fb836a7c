/* mmap, munmap, mprotect, mremap, madvise, brk, and file mappings in argv[1]. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECK(expr) do { if (!(expr)) { printf("FAIL line %d: %s (errno %d)\n", __LINE__, #expr, errno); return 1; } } while (0)
#define PAGE 4096

static unsigned sum(const unsigned char *p, size_t n) {
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

int main(int argc, char **argv) {
    CHECK(argc == 2 && chdir(argv[1]) == 0);
    size_t size = 1 << 20;
    unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    printf("anonymous page aligned=%d zero=%d\n", ((uintptr_t)p & (PAGE - 1)) == 0,
           p[0] == 0 && p[size - 1] == 0);
    for (size_t i = 0; i < size; i++) p[i] = (unsigned char)(i * 7);
    printf("checksum=%u\n", sum(p, size));
    CHECK(munmap(p + PAGE, PAGE) == 0);
    CHECK(mmap(p + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p + PAGE);
    printf("refilled page zero=%d neighbours kept=%d\n", p[PAGE] == 0 && p[2 * PAGE - 1] == 0,
           p[PAGE - 1] == (unsigned char)((PAGE - 1) * 7) && p[2 * PAGE] == (unsigned char)(2 * PAGE * 7));
    CHECK(mprotect(p, PAGE, PROT_READ) == 0);
    printf("read after mprotect RO=%d\n", p[1] == 7);
    CHECK(mprotect(p, PAGE, PROT_READ | PROT_WRITE) == 0);
    p[0] = 42;
    unsigned char *q = mremap(p, size, 4 * size, MREMAP_MAYMOVE);
    CHECK(q != MAP_FAILED);
    printf("mremap kept data=%d new tail zero=%d\n", q[0] == 42 && q[size - 1] == (unsigned char)((size - 1) * 7),
           q[4 * size - 1] == 0);
    q = mremap(q, 4 * size, PAGE, 0);
    CHECK(q != MAP_FAILED);
    printf("mremap shrink ok=%d\n", q[0] == 42);
    q[1] = 9;
    CHECK(madvise(q, PAGE, MADV_DONTNEED) == 0);
    printf("MADV_DONTNEED zeroed=%d\n", q[0] == 0 && q[1] == 0);
    CHECK(munmap(q, PAGE) == 0);

    unsigned char *r = mmap(NULL, 8 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(r != MAP_FAILED);
    CHECK(mprotect(r + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0);
    r[2 * PAGE + 5] = 1;
    printf("PROT_NONE reservation then RW page ok=%d\n", r[2 * PAGE + 5] == 1);
    CHECK(munmap(r, 8 * PAGE) == 0);

    printf("mmap len 0: %p errno=%d\n", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? NULL : (void *)1, errno);
    printf("munmap unaligned: %d errno=%d\n", munmap((char *)r + 1, PAGE), errno);
    printf("mprotect unmapped: %d errno=%d\n", mprotect(r, PAGE, PROT_READ), errno);
    printf("mmap bad fd: %d errno=%d\n", mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 99, 0) == MAP_FAILED, errno);
    void *fixed = mmap((void *)0x200000000, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("MAP_FIXED_NOREPLACE at hint=%d\n", fixed == (void *)0x200000000);
    /* A second MAP_FIXED_NOREPLACE there fails with EEXIST on Linux (and llvmtcg);
       qemu-riscv64 7.2 does not refuse it, so it is not compared here. */

    int fd = open("mapped.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0);
    char text[3 * PAGE];
    for (size_t i = 0; i < sizeof text; i++) text[i] = 'a' + i % 26;
    CHECK(write(fd, text, sizeof text) == (ssize_t)sizeof text);
    char *priv = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PAGE);
    CHECK(priv != MAP_FAILED);
    printf("private file map offset ok=%d\n", priv[0] == text[PAGE] && priv[PAGE + 3] == text[2 * PAGE + 3]);
    priv[0] = '#';
    char *shared = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(shared != MAP_FAILED);
    printf("private write not in file=%d\n", shared[PAGE] == text[PAGE]);
    shared[5] = '!';
    CHECK(msync(shared, PAGE, MS_SYNC) == 0);
    char c = 0;
    CHECK(pread(fd, &c, 1, 5) == 1);
    printf("shared write reached file=%d\n", c == '!');
    CHECK(pwrite(fd, "@", 1, 7) == 1);
    printf("file write seen in shared map=%d\n", shared[7] == '@');
    CHECK(munmap(priv, 2 * PAGE) == 0 && munmap(shared, 3 * PAGE) == 0);
    close(fd);
    int ro = open("mapped.bin", O_RDONLY);
    char *rom = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    CHECK(rom != MAP_FAILED);
    printf("mprotect RW of read-only shared file: %d errno=%d\n", mprotect(rom, PAGE, PROT_READ | PROT_WRITE), errno);
    printf("shared writable map of O_RDONLY fd fails=%d errno=%d\n",
           mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED, errno);
    close(ro);
    unlink("mapped.bin");

    char *b0 = sbrk(0);
    CHECK(sbrk(256 * 1024) == b0);
    memset(b0, 0x5a, 256 * 1024);
    printf("brk grew and is writable=%d\n", b0[256 * 1024 - 1] == 0x5a);
    CHECK(sbrk(-128 * 1024) != (void *)-1);
    printf("brk shrank=%d\n", (char *)sbrk(0) == b0 + 128 * 1024);
    return 0;
}
