/* execve of a guest program: argv[1] is the program to run (this one, or a wrapper). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "child")) {
        printf("child args:");
        for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]);
        printf("\nchild env T_EXEC=%s HOME=%s\n", getenv("T_EXEC") ? getenv("T_EXEC") : "-",
               getenv("HOME") ? "set" : "unset");
        return 5;
    }
    if (argc < 2) return 2;
    char *args[] = { "renamed", "child", "two words", "", "last", NULL };
    char *env[] = { "T_EXEC=yes", NULL };
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execve(argv[1], args, env);
        printf("execve failed errno=%d\n", errno);
        _exit(99);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child exit status=%d\n", WEXITSTATUS(status));
    printf("missing: %d errno=%d\n", execve("/nonexistent/prog", args, env), errno);
    printf("directory: %d errno=%d\n", execve("/", args, env), errno);
    fflush(stdout);
    execve(argv[1], args, env);  /* replaces this process: its status is ours */
    return 98;
}
