/* pipes between processes, dup2 redirection, EOF, EPIPE and poll. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        for (int i = 0; i < 1000; i++) printf("line %04d from the child\n", i);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    long total = 0, lines = 0;
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) {
        total += n;
        for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
    }
    printf("read %ld bytes, %ld lines, then EOF=%ld\n", total, lines, (long)n);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    printf("writer exited=%d\n", WIFEXITED(status));

    if (pipe(fds) != 0) return 1;
    struct pollfd pfd = { fds[0], POLLIN, 0 };
    printf("poll empty pipe=%d\n", poll(&pfd, 1, 0));
    write(fds[1], "ping", 4);
    printf("poll with data=%d revents&POLLIN=%d\n", poll(&pfd, 1, 100), (pfd.revents & POLLIN) != 0);
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    printf("write to closed pipe: %ld errno=%d\n", (long)write(fds[1], "x", 1), errno);
    close(fds[1]);

    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
    printf("O_NONBLOCK empty read: %ld errno=%d\n", (long)read(fds[0], buf, 1), errno);
    printf("FD_CLOEXEC=%d\n", fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    return 0;
}
