/* Clocks and sleeping. Prints facts, not times. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    struct timespec a, b, res, rt;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec nap = { 0, 30 * 1000 * 1000 };
    printf("nanosleep=%d\n", nanosleep(&nap, NULL));
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("slept at least 30ms=%d\n", ns(b) - ns(a) >= 30000000LL);
    printf("slept less than 5s=%d\n", ns(b) - ns(a) < 5000000000LL);
    printf("clock_getres ok=%d\n", clock_getres(CLOCK_MONOTONIC, &res) == 0 && ns(res) > 0);
    clock_gettime(CLOCK_REALTIME, &rt);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long diff = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL - ns(rt);
    printf("gettimeofday agrees with CLOCK_REALTIME=%d\n", diff > -2000000000LL && diff < 2000000000LL);
    printf("after 2020=%d\n", time(NULL) > 1577836800);
    struct timespec cpu;
    printf("process cputime ok=%d\n", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0);
    return 0;
}
