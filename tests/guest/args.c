/* argv, the environment and the auxiliary vector as the program sees them. Only
 * values that do not depend on where things were loaded are printed; addresses are
 * checked for consistency instead. */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern const Elf64_Ehdr __ehdr_start __attribute__((weak, visibility("hidden")));
extern char _start[];

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int main(int argc, char **argv, char **envp) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]=\"%s\"\n", i, argv[i]);
    if (argv[argc] != NULL) printf("argv not NULL-terminated\n");
    /* Sorted: qemu-riscv64 passes the environment in reverse order (Linux keeps it). */
    const char *vars[64];
    int n = 0;
    for (char **e = envp; *e && n < 64; e++)
        if (!strncmp(*e, "T_", 2)) vars[n++] = *e;
    qsort(vars, n, sizeof vars[0], by_name);
    for (int i = 0; i < n; i++) printf("env %s\n", vars[i]);
    printf("AT_PAGESZ=%lu\n", getauxval(AT_PAGESZ));
    printf("AT_HWCAP=%#lx\n", getauxval(AT_HWCAP));
    printf("AT_CLKTCK=%lu\n", getauxval(AT_CLKTCK));
    printf("AT_PHENT=%lu\n", getauxval(AT_PHENT));
    printf("AT_FLAGS=%lu\n", getauxval(AT_FLAGS));
    printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
    printf("AT_UID ok=%d\n", getauxval(AT_UID) == getuid() && getauxval(AT_EUID) == geteuid());
    printf("AT_GID ok=%d\n", getauxval(AT_GID) == getgid() && getauxval(AT_EGID) == getegid());
    printf("AT_ENTRY is _start=%d\n", getauxval(AT_ENTRY) == (unsigned long)_start);
    const Elf64_Phdr *ph = (const Elf64_Phdr *)getauxval(AT_PHDR);
    unsigned long phnum = getauxval(AT_PHNUM);
    int load = 0;
    for (unsigned long i = 0; i < phnum; i++) load += ph[i].p_type == PT_LOAD;
    printf("AT_PHDR has %d PT_LOAD\n", load);
    if (&__ehdr_start)
        printf("AT_PHNUM matches e_phnum=%d\n", phnum == __ehdr_start.e_phnum);
    printf("AT_BASE nonzero=%d\n", getauxval(AT_BASE) != 0);
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    int nonzero = 0;
    for (int i = 0; i < 16; i++) nonzero |= rnd[i];
    printf("AT_RANDOM readable, nonzero=%d\n", nonzero != 0);
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    const char *slash = execfn ? strrchr(execfn, '/') : NULL;
    printf("AT_EXECFN basename=%s\n", slash ? slash + 1 : execfn);
    if (getenv("T_SHOW_PLATFORM")) {
        const char *platform = (const char *)getauxval(AT_PLATFORM);
        printf("AT_PLATFORM=%s\n", platform ? platform : "(none)");
    }
    return 0;
}
