/* Dense double-precision matrix multiply: FP multiply-add throughput. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 500;
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n);
    double *c = calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n * n; i++) { a[i] = (i % 17) * 0.25 - 1.5; b[i] = (i % 13) * 0.5 + 0.125; }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double aik = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
    double trace = 0, sum = 0;
    for (int i = 0; i < n; i++) trace += c[i * n + i];
    for (int i = 0; i < n * n; i++) sum += c[i];
    printf("matmul %d: %.6f %.6f\n", n, trace, sum);
    return 0;
}
