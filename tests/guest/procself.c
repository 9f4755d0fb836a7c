/* The process's own /proc files show the guest, never the emulator: maps lists guest
 * mappings only, mem reads and writes guest memory by guest address (EIO outside), exe
 * names the program, cmdline/auxv come from the initial stack. Argument: the path of
 * a host maps file taken before the run, whose addresses must not be writable here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

static char secret[] = "guest memory read through /proc/self/mem";

int main(int argc, char **argv)
{
    char buf[4096];
    /* maps: every line is one of ours; no python, no libLLVM */
    FILE *f = fopen("/proc/self/maps", "r");
    int lines = 0, foreign = 0, has_stack = 0, has_self = 0;
    unsigned long secret_in_map = 0, addr = (unsigned long)secret;
    while (f && fgets(buf, sizeof buf, f)) {
        unsigned long lo, hi;
        lines++;
        if (strstr(buf, "python") || strstr(buf, "LLVM") || strstr(buf, "qemu"))
            foreign++;
        has_stack |= strstr(buf, "[stack]") != NULL;
        has_self |= strstr(buf, "procself") != NULL;
        if (sscanf(buf, "%lx-%lx", &lo, &hi) == 2 && lo <= addr && addr < hi)
            secret_in_map = 1;
    }
    if (f)
        fclose(f);
    printf("maps: lines>0 %d foreign %d stack %d program %d secret mapped %lu\n",
           lines > 0, foreign, has_stack, has_self, secret_in_map);

    /* mem: read and write our own data by its guest address */
    int fd = open("/proc/self/mem", O_RDWR);
    ssize_t n = pread(fd, buf, sizeof secret, (off_t)addr);
    printf("mem read: %zd same %d\n", n, n > 0 && memcmp(buf, secret, sizeof secret) == 0);
    n = pwrite(fd, "GUEST", 5, (off_t)addr);
    printf("mem write: %zd now %.12s\n", n, secret);
    errno = 0;
    n = pread(fd, buf, 16, 16);
    printf("mem at 16: %zd errno %s\n", n, errno == EIO ? "EIO" : strerror(errno));
    lseek(fd, (off_t)addr, SEEK_SET);
    n = read(fd, buf, 5);
    printf("mem lseek+read: %zd %.5s\n", n, buf);
    int dupfd = dup(fd);
    n = pread(dupfd, buf, 5, (off_t)addr);
    printf("mem dup: %zd\n", n);

    /* host addresses from the emulator's own maps (taken before the run): never ours */
    int host_writes = 0, host_tries = 0;
    FILE *h = argc > 1 ? fopen(argv[1], "r") : NULL;
    while (h && fgets(buf, sizeof buf, h) && host_tries < 64) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(buf, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[1] != 'w')
            continue;
        host_tries++;
        static const char junk[64];
        errno = 0;
        if (pwrite(fd, junk, sizeof junk, (off_t)lo) > 0)
            host_writes++;
    }
    if (h)
        fclose(h);
    printf("host addresses written: %d\n", host_writes);
    close(fd);
    close(dupfd);

    /* exe, cmdline, auxv, stat */
    char exe[PATH_MAX];
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    printf("exe ends with procself.*: %d\n", strstr(exe, "/procself.") != NULL);
    char pidpath[64];
    snprintf(pidpath, sizeof pidpath, "/proc/%d/exe", getpid());
    char exe2[PATH_MAX];
    n = readlink(pidpath, exe2, sizeof exe2 - 1);
    exe2[n > 0 ? n : 0] = 0;
    printf("pid exe same: %d\n", strcmp(exe, exe2) == 0);
    int dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
    n = readlinkat(dir, "exe", exe2, sizeof exe2 - 1);
    exe2[n > 0 ? n : 0] = 0;
    printf("dirfd exe same: %d\n", strcmp(exe, exe2) == 0);
    int cfd = openat(dir, "cmdline", O_RDONLY);
    n = read(cfd, buf, sizeof buf);
    printf("cmdline:");
    for (char *p = buf; p < buf + n; p += strlen(p) + 1)
        printf(" [%s]", strrchr(p, '/') ? strrchr(p, '/') + 1 : p);
    printf("\n");
    close(cfd);
    int afd = open("/proc/thread-self/auxv", O_RDONLY);
    unsigned long av[512];
    n = read(afd, av, sizeof av);
    unsigned long pagesz = 0;
    for (int i = 0; i + 1 < n / 8; i += 2)
        if (av[i] == AT_PAGESZ)
            pagesz = av[i + 1];
    printf("auxv pagesz %lu matches %d\n", pagesz, pagesz == getauxval(AT_PAGESZ));
    close(afd);
    f = fopen("/proc/self/stat", "r");
    int pid = 0;
    char comm[64] = "";
    if (f && fscanf(f, "%d (%63[^)])", &pid, comm) == 2)
        printf("stat: pid ok %d comm %s\n", pid == getpid(), comm);
    if (f)
        fclose(f);
    return 0;
}
