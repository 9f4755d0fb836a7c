/* Bitwise and table-driven CRC-32 over a generated buffer: shifts, xors, table loads. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint32_t table[256];

static void make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
}

int main(int argc, char **argv) {
    int size = argc > 1 ? atoi(argv[1]) : 1 << 20;
    int rounds = argc > 2 ? atoi(argv[2]) : 480;
    uint8_t *buf = malloc(size);
    uint32_t seed = 12345;
    for (int i = 0; i < size; i++) { seed = seed * 1103515245u + 12345u; buf[i] = seed >> 16; }
    make_table();
    uint32_t acc = 0;
    for (int r = 0; r < rounds; r++) {
        uint32_t crc = 0xFFFFFFFFu ^ r;
        for (int i = 0; i < size; i++) crc = table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
        acc += ~crc;
    }
    printf("crc32 %d x%d: %08x\n", size, rounds, acc);
    return 0;
}
