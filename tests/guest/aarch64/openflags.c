/* arm64's open flags differ from the asm-generic ones x86-64 and riscv64 use:
 * O_DIRECTORY 040000, O_NOFOLLOW 0100000, O_DIRECT 0200000, O_LARGEFILE 0400000.
 * Each one must mean what it means on arm64: opendir (O_DIRECTORY) works on a
 * directory and fails with ENOTDIR on a file, O_NOFOLLOW refuses a symlink, F_GETFL
 * reports no host bit as an arm64 one, pipe2(O_DIRECT) makes a packet
 * pipe and F_SETFL/F_GETFL round-trip O_NONBLOCK|O_APPEND.
 * F_GETFL values are printed without O_LARGEFILE: a 64-bit arm64 kernel sets it on
 * every file (force_o_largefile) and llvmtcg-user reports it as arm64 Linux does;
 * qemu-aarch64 on an x86-64 host drops it (its host O_LARGEFILE is 0). The host's
 * O_LARGEFILE (0100000) passed through untranslated would still show, as O_NOFOLLOW.
 * Run in a scratch directory; it removes what it made, for the next run. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LARGEFILE 0400000 /* arm64's O_LARGEFILE (glibc's is 0 on LP64) */

static void check_open(const char *what, const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0) {
        printf("%s: errno %s\n", what, strerror(errno));
        return;
    }
    int got = fcntl(fd, F_GETFL);
    printf("%s: fd ok, F_GETFL %#o\n", what, got & ~LARGEFILE);
    close(fd);
}

int main(void)
{
    printf("O_DIRECTORY %#o O_NOFOLLOW %#o O_DIRECT %#o O_LARGEFILE %#o\n",
           O_DIRECTORY, O_NOFOLLOW, O_DIRECT, LARGEFILE);
    if (mkdir("d", 0755) != 0 || mkdir("d/sub", 0755) != 0)
        return 1;
    FILE *f = fopen("d/file", "w");
    fputs("text\n", f);
    fclose(f);
    if (symlink("file", "d/link") != 0)
        return 1;

    DIR *dir = opendir("d");
    int entries = 0;
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL)
            entries++;
        closedir(dir);
    }
    printf("opendir d: %s, %d entries\n", dir ? "ok" : strerror(errno), entries);

    check_open("O_DIRECTORY on a directory", "d", O_RDONLY | O_DIRECTORY);
    check_open("O_DIRECTORY on a file", "d/file", O_RDONLY | O_DIRECTORY);
    check_open("O_NOFOLLOW on a symlink", "d/link", O_RDONLY | O_NOFOLLOW);
    check_open("O_NOFOLLOW on a file", "d/file", O_RDONLY | O_NOFOLLOW);
    check_open("O_PATH|O_NOFOLLOW on a symlink", "d/link", O_PATH | O_NOFOLLOW);
    check_open("O_APPEND", "d/file", O_WRONLY | O_APPEND);

    int fds[2];
    if (pipe2(fds, O_DIRECT) != 0) {
        printf("pipe2 O_DIRECT: errno %s\n", strerror(errno));
    } else {
        /* a packet pipe: each write is one read however large the buffer */
        char buf[64];
        write(fds[1], "ab", 2);
        write(fds[1], "cde", 3);
        ssize_t a = read(fds[0], buf, sizeof buf);
        ssize_t b = read(fds[0], buf, sizeof buf);
        printf("pipe2 O_DIRECT: reads %zd %zd, F_GETFL has O_DIRECT %d\n", a, b,
               (fcntl(fds[1], F_GETFL) & O_DIRECT) != 0);
        close(fds[0]);
        close(fds[1]);
    }

    int fd = open("d/file", O_RDONLY);
    fcntl(fd, F_SETFL, O_NONBLOCK | O_APPEND);
    printf("F_SETFL O_NONBLOCK|O_APPEND: F_GETFL %#o\n", fcntl(fd, F_GETFL) & ~LARGEFILE);
    close(fd);
    unlink("d/link");
    unlink("d/file");
    rmdir("d/sub");
    return rmdir("d") != 0;
}
