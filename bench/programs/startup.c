/* Startup-dominated: touches a lot of distinct libc code once (stdio formatting, string,
 * time, locale-free conversions, qsort, bsearch, strtod) and exits. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    char buf[512];
    const char *names[] = {"pear", "apple", "fig", "kiwi", "date", "lime", "plum", "nut"};
    qsort(names, 8, sizeof names[0], cmp);
    const char *key = "kiwi";
    const char **found = bsearch(&key, names, 8, sizeof names[0], cmp);
    double d = strtod("3.14159e2", NULL) + atof("2.5");
    long l = strtol("-0x7f", NULL, 16) + atol("12345");
    unsigned long long u = strtoull("18446744073709551615", NULL, 10);
    snprintf(buf, sizeof buf, "%s|%5.2f|%-8ld|%llx|%e|%g|%c|%o|%%|%10s|%p", names[0], d, l, u,
             d * 1e10, d / 7, 'x', 511, found ? *found : "?", (void *)0);
    for (char *p = buf; *p; p++) *p = isalpha((unsigned char)*p) ? toupper((unsigned char)*p) : *p;
    struct tm tm = {.tm_year = 124, .tm_mon = 1, .tm_mday = 29, .tm_hour = 12};
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %a %b %j", &tm);
    char *dup = strdup(buf);
    char *tok = strtok(dup, "|");
    int fields = 0;
    while (tok) { fields++; tok = strtok(NULL, "|"); }
    printf("%s\n%s\nfields=%d argc=%d\n", buf, date, fields, argc);
    free(dup);
    return 0;
}
