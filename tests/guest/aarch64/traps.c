/* SIGILL from UDF and SIGTRAP from BRK: a handler reads the faulting pc, a register
   and FPSIMD state from the arm64 signal frame, changes x0 and the pc and resumes after
   the instruction; without a handler the process dies of the signal. (SIGILL's si_code
   is not printed: Linux says ILL_ILLOPC, qemu-aarch64 ILL_ILLOPN.) */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

static void handler(int sig, siginfo_t *info, void *ctx) {
    ucontext_t *uc = ctx;
    struct _aarch64_ctx *head = (void *)uc->uc_mcontext.__reserved;
    struct fpsimd_context *fp = (void *)head;
    printf("sig %d code %d addr-pc %lld x0 %llx magic %x v1 %llx\n", sig,
           sig == SIGTRAP ? info->si_code : 0,
           (long long)((uintptr_t)info->si_addr - uc->uc_mcontext.pc),
           (unsigned long long)uc->uc_mcontext.regs[0], head->magic,
           (unsigned long long)(uint64_t)fp->vregs[1]);
    uc->uc_mcontext.regs[0] += 0x100;  /* visible after sigreturn */
    uc->uc_mcontext.pc += 4;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    if (argc == 1) {
        sigaction(SIGILL, &sa, NULL);
        sigaction(SIGTRAP, &sa, NULL);
    }
    uint64_t x0 = 0x1234, v1;
    __asm__ volatile("mov x0, %1\n fmov d1, x0\n udf #7\n mov %0, x0"
                     : "=r"(x0) : "r"(x0) : "x0", "v1");
    __asm__ volatile("fmov %0, d1" : "=r"(v1));
    printf("after udf x0 %llx v1 %llx\n", (unsigned long long)x0, (unsigned long long)v1);
    __asm__ volatile("mov x0, #5\n brk #3\n mov %0, x0" : "=r"(x0) :: "x0");
    printf("after brk x0 %llx\n", (unsigned long long)x0);
    return 0;
}
