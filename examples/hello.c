/* The default guest of `make run`: a riscv64 Linux program, run on x86-64 by llvmtcg-user.
 *
 * Rebuild the committed binary with:
 *     riscv64-linux-gnu-gcc -static -O2 -o hello-riscv64 hello.c
 */
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

static unsigned long fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("Hello, world! I am a %s Linux program (%s).\n", u.machine, argv[0]);
    printf("My instructions were translated to LLVM IR and compiled to x86-64 code.\n");
    printf("fib(30) = %lu, computed by the guest; pid %d; %d argument(s).\n", fib(30),
           (int)getpid(), argc - 1);
    for (int i = 1; i < argc; i++) printf("  argv[%d] = %s\n", i, argv[i]);
    return 0;
}
