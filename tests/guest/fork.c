/* fork, wait4/waitpid statuses, vfork, and memory being copied, not shared. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int counter = 100;

int main(void) {
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        counter = 1;
        printf("child: ppid matches=%d counter=%d\n", getppid() == parent, counter);
        exit(7);
    }
    int status = 0;
    printf("wait4 returns child=%d\n", wait4(pid, &status, 0, NULL) == pid);
    printf("exited=%d status=%d counter=%d\n", WIFEXITED(status), WEXITSTATUS(status), counter);

    pid = fork();
    if (pid == 0) {
        kill(getpid(), SIGTERM);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf("signaled=%d sig=%d\n", WIFSIGNALED(status), WTERMSIG(status));

    int pipefd[2];
    pipe(pipefd);
    pid = fork();
    if (pid == 0) {
        char c;
        read(pipefd[0], &c, 1);  /* wait for the parent's WNOHANG probe */
        _exit(3);
    }
    printf("WNOHANG on running child=%d\n", waitpid(pid, &status, WNOHANG));
    write(pipefd[1], "x", 1);
    waitpid(pid, &status, 0);
    printf("then exit status=%d\n", WEXITSTATUS(status));

    for (int i = 0; i < 3; i++) {
        fflush(stdout);
        if (fork() == 0) _exit(10 + i);
    }
    int total = 0;
    for (int i = 0; i < 3; i++) {
        wait(&status);
        total += WEXITSTATUS(status);
    }
    printf("three children total=%d\n", total);
    printf("no more children: %d errno=%d\n", wait(&status), errno);

    fflush(stdout);
    pid = vfork();
    if (pid == 0) _exit(21);
    waitpid(pid, &status, 0);
    printf("vfork child status=%d\n", WEXITSTATUS(status));
    return 0;
}
