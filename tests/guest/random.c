/* getrandom and AT_RANDOM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>

int main(void) {
    unsigned char a[32], b[32], zero[32] = {0};
    printf("getrandom=%ld\n", (long)getrandom(a, sizeof a, 0));
    printf("nonblock=%ld\n", (long)getrandom(b, sizeof b, GRND_NONBLOCK));
    printf("not zero=%d differ=%d\n", memcmp(a, zero, 32) != 0, memcmp(a, b, 32) != 0);
    printf("bad buffer: %ld errno=%d\n", (long)getrandom((void *)8, 16, 0), errno);
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
    printf("AT_RANDOM not zero=%d\n", r && memcmp(r, zero, 16) != 0);
    return 0;
}
