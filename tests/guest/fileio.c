/* File I/O inside the directory given as argv[1]. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHECK(expr) do { if (!(expr)) { printf("FAIL line %d: %s (errno %d)\n", __LINE__, #expr, errno); return 1; } } while (0)

int main(int argc, char **argv) {
    CHECK(argc == 2 && chdir(argv[1]) == 0);
    int fd = open("data.txt", O_CREAT | O_EXCL | O_RDWR, 0640);
    CHECK(fd >= 0);
    printf("first fd=%d\n", fd);
    CHECK(write(fd, "hello, file\n", 12) == 12);
    struct iovec iov[2] = { { "second ", 7 }, { "line\n", 5 } };
    CHECK(writev(fd, iov, 2) == 12);
    CHECK(pwrite(fd, "H", 1, 0) == 1);
    CHECK(lseek(fd, 0, SEEK_CUR) == 24);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    char buf[64] = {0};
    CHECK(read(fd, buf, sizeof buf) == 24);
    printf("content: %s", buf);
    memset(buf, 0, sizeof buf);
    CHECK(pread(fd, buf, 6, 13) == 6);
    printf("pread: %s\n", buf);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    printf("size=%ld mode=%o regular=%d nlink=%lu\n", (long)st.st_size, st.st_mode & 0777,
           S_ISREG(st.st_mode), (unsigned long)st.st_nlink);
    CHECK(ftruncate(fd, 5) == 0 && fstat(fd, &st) == 0);
    printf("after ftruncate size=%ld\n", (long)st.st_size);
    CHECK(fsync(fd) == 0);
    CHECK(close(fd) == 0);
    printf("close again: %d errno=%d\n", close(fd), errno);
    printf("open missing: %d errno=%d\n", open("missing", O_RDONLY), errno);
    printf("O_EXCL again: %d errno=%d\n", open("data.txt", O_CREAT | O_EXCL | O_RDWR, 0600), errno);
    CHECK(rename("data.txt", "renamed.txt") == 0);
    CHECK(link("renamed.txt", "hard.txt") == 0);
    CHECK(stat("hard.txt", &st) == 0);
    printf("nlink after link=%lu\n", (unsigned long)st.st_nlink);
    CHECK(symlink("renamed.txt", "soft.txt") == 0);
    char target[64] = {0};
    CHECK(readlink("soft.txt", target, sizeof target) == 11);
    printf("readlink: %s\n", target);
    CHECK(lstat("soft.txt", &st) == 0);
    printf("lstat symlink=%d\n", S_ISLNK(st.st_mode));
    CHECK(chmod("renamed.txt", 0600) == 0 && stat("renamed.txt", &st) == 0);
    printf("mode after chmod=%o\n", st.st_mode & 0777);
    struct timespec times[2] = { { 1000000000, 0 }, { 1234567890, 500 } };
    CHECK(utimensat(AT_FDCWD, "renamed.txt", times, 0) == 0 && stat("renamed.txt", &st) == 0);
    printf("mtime=%ld atime=%ld\n", (long)st.st_mtime, (long)st.st_atime);
    printf("access R_OK=%d, missing=%d errno=%d\n", access("renamed.txt", R_OK),
           access("nope", F_OK), errno);
    fd = open("renamed.txt", O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "+tail", 5) == 5 && close(fd) == 0);
    fd = open("renamed.txt", O_RDONLY);
    memset(buf, 0, sizeof buf);
    CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 10);
    printf("after append: %s\n", buf);
    printf("read at EOF=%ld\n", (long)read(fd, buf, 4));
    printf("write to O_RDONLY: %ld errno=%d\n", (long)write(fd, "x", 1), errno);
    close(fd);
    int dupfd = dup(1);
    printf("dup(1) > 2: %d\n", dupfd > 2);
    CHECK(dup2(dupfd, 9) == 9);
    dprintf(9, "written through fd 9\n");
    close(9);
    close(dupfd);
    printf("bad fd write: %ld errno=%d\n", (long)write(77, "x", 1), errno);
    printf("EFAULT read: %ld errno=%d\n", (long)read(0, (void *)16, 1), errno);
    CHECK(unlink("soft.txt") == 0 && unlink("hard.txt") == 0 && unlink("renamed.txt") == 0);
    printf("unlink missing: %d errno=%d\n", unlink("renamed.txt"), errno);
    return 0;
}
