/* Runs single A64 instructions from a file, each from a given register state, and writes
   the state after it: the random-instruction differential test (tests/aarch64/
   test_random_insns.py) runs this under llvmtcg-user and qemu-aarch64 and compares.

   Each test is three words in an executable page: UDF, the instruction, UDF. The first
   UDF's SIGILL handler loads the test's state into the signal frame (x0-x30, NZCV,
   FPSR, FPCR, V0-V31; SP points into a scratch buffer) and returns to the instruction;
   the second UDF's handler (or any signal the instruction raises) records the frame
   and siglongjmps back to the loop. Handlers run on an alternate stack, so an
   instruction may leave any value in SP. The CPU must not have SVE: with it, sigreturn
   takes V0-V31 from the frame's SVE record, not from the fpsimd one written here.

   Input (argv[1]): records of struct test. Output (stdout): one struct result each. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define CODE_ADDRESS 0x10000000UL
#define SCRATCH_SIZE 40960 /* SP + [-4096, +36864): every immediate offset */

struct test {
    uint32_t insn, nzcv, fpsr, fpcr;
    uint64_t x[31];
    uint64_t sp_offset; /* SP = scratch + sp_offset */
    uint64_t v[64];
};

struct result {
    uint32_t insn, signal;
    uint64_t pc_offset; /* of the trap, from the test's first word */
    uint64_t x[31], sp, nzcv, fpsr, fpcr;
    uint64_t v[64];
    uint64_t scratch_hash; /* FNV-1a (of words) of the scratch buffer */
};

struct fpsimd {
    uint32_t magic, size, fpsr, fpcr;
    uint64_t v[64];
};

static uint64_t scratch[SCRATCH_SIZE / 8] __attribute__((aligned(16)));
static volatile uint32_t *code;
static const struct test *current;
static struct result out;
static volatile int running;
static sigjmp_buf back;

static void handler(int sig, siginfo_t *info, void *ctx) {
    (void)info;
    ucontext_t *uc = ctx;
    mcontext_t *mc = &uc->uc_mcontext;
    struct fpsimd *fp = (void *)mc->__reserved;
    uint64_t offset = mc->pc - (uint64_t)code;
    if (!running && sig == SIGILL && offset == 0) {
        memcpy(mc->regs, current->x, sizeof current->x);
        mc->sp = (uint64_t)scratch + current->sp_offset;
        mc->pstate = (mc->pstate & ~0xF0000000UL) | current->nzcv;
        fp->fpsr = current->fpsr;
        fp->fpcr = current->fpcr;
        memcpy(fp->v, current->v, sizeof fp->v);
        mc->pc += 4;
        running = 1;
        return;
    }
    out.signal = sig == SIGILL && offset == 8 ? 0 : (uint32_t)sig;
    out.pc_offset = offset;
    memcpy(out.x, mc->regs, sizeof out.x);
    out.sp = mc->sp - (uint64_t)scratch;
    out.nzcv = mc->pstate & 0xF0000000UL;
    out.fpsr = fp->fpsr;
    out.fpcr = fp->fpcr;
    memcpy(out.v, fp->v, sizeof out.v);
    siglongjmp(back, 1);
}

static void run(const struct test *t) {
    memset(&out, 0, sizeof out);
    out.insn = t->insn;
    for (int i = 0; i < SCRATCH_SIZE / 8; i++)
        scratch[i] = (uint64_t)i * 0x0123456789abcdefULL;
    code[0] = 0;  /* UDF #0 */
    code[1] = t->insn;
    code[2] = 0;
    __builtin___clear_cache((char *)code, (char *)(code + 3));
    current = t;
    running = 0;
    if (sigsetjmp(back, 1) == 0)
        ((void (*)(void))code)();
    __asm__ volatile("msr fpcr, xzr");  /* the test's FPCR stays after siglongjmp */
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (int i = 0; i < SCRATCH_SIZE / 8; i++)
        hash = (hash ^ scratch[i]) * 0x100000001b3ULL;
    out.scratch_hash = hash;
    fwrite(&out, sizeof out, 1, stdout);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s TESTS\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    code = mmap((void *)CODE_ADDRESS, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (code == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    static uint8_t altstack[65536];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    int signals[] = {SIGILL, SIGSEGV, SIGBUS, SIGTRAP, SIGFPE};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++)
        sigaction(signals[i], &sa, NULL);
    struct test t;
    while (fread(&t, sizeof t, 1, f) == 1)
        run(&t);
    fflush(stdout);
    return 0;
}
