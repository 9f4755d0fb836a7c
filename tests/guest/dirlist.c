/* Directories: mkdir, listing (sorted), cwd, rmdir, inside argv[1]. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static void list(const char *path) {
    DIR *d = opendir(path);
    if (!d) { printf("opendir %s failed errno=%d\n", path, errno); return; }
    static char names[64][64];
    char *sorted[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        snprintf(names[n], sizeof names[n], "%s%s", e->d_name,
                 e->d_type == DT_DIR ? "/" : e->d_type == DT_LNK ? "@" : "");
        sorted[n] = names[n];
        n++;
    }
    closedir(d);
    qsort(sorted, n, sizeof sorted[0], cmp);
    printf("%s:", path);
    for (int i = 0; i < n; i++) printf(" %s", sorted[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) != 0) return 2;
    mkdir("tree", 0755);
    mkdir("tree/sub", 0700);
    printf("mkdir existing: %d errno=%d\n", mkdir("tree", 0755), errno);
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "tree/file%02d", i);
        int fd = open(name, O_CREAT | O_WRONLY, 0644);
        write(fd, name, strlen(name));
        close(fd);
    }
    symlink("file00", "tree/link");
    list("tree");
    list("tree/sub");
    printf("opendir file: %p errno=%d\n", (void *)opendir("tree/file00"), errno);
    char cwd[4096];
    int fd = open("tree", O_RDONLY | O_DIRECTORY);
    printf("O_DIRECTORY fd ok=%d\n", fd >= 0);
    if (fchdir(fd) != 0) return 3;
    close(fd);
    getcwd(cwd, sizeof cwd);
    printf("cwd ends with /tree=%d\n", strlen(cwd) > 5 && !strcmp(cwd + strlen(cwd) - 5, "/tree"));
    if (chdir("sub") != 0) return 4;
    getcwd(cwd, sizeof cwd);
    printf("cwd ends with /tree/sub=%d\n", !strcmp(cwd + strlen(cwd) - 9, "/tree/sub"));
    chdir("../..");
    printf("rmdir non-empty: %d errno=%d\n", rmdir("tree"), errno);
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "tree/file%02d", i);
        unlink(name);
    }
    unlink("tree/link");
    printf("rmdir sub=%d\n", rmdir("tree/sub"));
    printf("rmdir tree=%d\n", rmdir("tree"));
    list(".");
    printf("getcwd small buffer: %p errno=%d\n", (void *)getcwd(cwd, 2), errno);
    return 0;
}
