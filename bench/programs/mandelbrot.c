/* Mandelbrot set: FP compare-and-branch inner loop. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int size = argc > 1 ? atoi(argv[1]) : 1000;
    long inside = 0, iterations = 0;
    for (int py = 0; py < size; py++)
        for (int px = 0; px < size; px++) {
            double cr = 2.0 * px / size - 1.5, ci = 2.0 * py / size - 1.0;
            double zr = 0, zi = 0;
            int i = 0;
            while (i < 100 && zr * zr + zi * zi <= 4.0) {
                double t = zr * zr - zi * zi + cr;
                zi = 2 * zr * zi + ci;
                zr = t;
                i++;
            }
            iterations += i;
            inside += i == 100;
        }
    printf("mandelbrot %d: %ld %ld\n", size, inside, iterations);
    return 0;
}
