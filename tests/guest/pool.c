/* The pattern of xz -T2 / zstd -T2 in a small program: a pool of worker threads fed
 * through a job queue (a mutex and condition variables), each compressing one block,
 * while the main thread hands out blocks and collects the results in order, waiting
 * on each block's own condition. Then the pool decompresses every block back and the
 * main thread checks the round trip. Output is deterministic (compared with qemu).
 * Usage: pool [THREADS] [BLOCKS] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 16384
enum { COMPRESS, DECOMPRESS };

struct job {
    int kind, done;
    const uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len;
    uint32_t crc;
    pthread_cond_t finished;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;
static struct job **queue;
static int q_head, q_tail, q_cap, stopping;

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c >> 1 ^ (0xEDB88320u & -(c & 1));
    }
    return ~c;
}

/* Run-length + literal runs: [n<128: n+1 literals] [n>=128: byte repeated n-125 times] */
static size_t rle_compress(const uint8_t *in, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        size_t run = 1;
        while (i + run < n && run < 130 && in[i + run] == in[i])
            run++;
        if (run >= 3) {
            out[o++] = (uint8_t)(run + 125);
            out[o++] = in[i];
            i += run;
            continue;
        }
        size_t start = i, lits = 0;
        while (i < n && lits < 128) {
            if (i + 2 < n && in[i] == in[i + 1] && in[i] == in[i + 2])
                break;
            i++, lits++;
        }
        out[o++] = (uint8_t)(lits - 1);
        memcpy(out + o, in + start, lits);
        o += lits;
    }
    return o;
}

static size_t rle_decompress(const uint8_t *in, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t c = in[i++];
        if (c >= 128) {
            memset(out + o, in[i++], c - 125);
            o += c - 125;
        } else {
            memcpy(out + o, in + i, c + 1u);
            i += c + 1u, o += c + 1u;
        }
    }
    return o;
}

static void *worker(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (q_head == q_tail && !stopping)
            pthread_cond_wait(&work_ready, &lock);
        if (q_head == q_tail)
            break;
        struct job *job = queue[q_head++ % q_cap];
        pthread_mutex_unlock(&lock);
        if (job->kind == COMPRESS)
            job->out_len = rle_compress(job->in, job->in_len, job->out);
        else
            job->out_len = rle_decompress(job->in, job->in_len, job->out);
        job->crc = crc32(job->out, job->out_len);
        pthread_mutex_lock(&lock);
        job->done = 1;
        pthread_cond_signal(&job->finished);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void submit(struct job *job) {
    pthread_mutex_lock(&lock);
    queue[q_tail++ % q_cap] = job;
    pthread_cond_signal(&work_ready);
    pthread_mutex_unlock(&lock);
}

static void wait_for(struct job *job) {
    pthread_mutex_lock(&lock);
    while (!job->done)
        pthread_cond_wait(&job->finished, &lock);
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, blocks = argc > 2 ? atoi(argv[2]) : 24;
    size_t size = (size_t)blocks * BLOCK;
    uint8_t *data = malloc(size), *packed = malloc(size * 2), *back = malloc(size);
    uint32_t seed = 12345;
    for (size_t i = 0; i < size; i++) {  /* text-like data with runs, as files have */
        seed = seed * 1103515245 + 12345;
        data[i] = (seed >> 16) % 7 == 0 ? data[i ? i - 1 : 0] : "abcdefgh  \n"[(seed >> 20) % 11];
    }
    struct job *jobs = calloc((size_t)blocks * 2, sizeof *jobs);
    q_cap = blocks * 2;
    queue = calloc((size_t)q_cap, sizeof *queue);
    pthread_t *pool = malloc(sizeof *pool * (size_t)threads);
    for (int t = 0; t < threads; t++)
        pthread_create(&pool[t], NULL, worker, NULL);
    for (int b = 0; b < blocks; b++) {
        struct job *job = &jobs[b];
        *job = (struct job){COMPRESS, 0, data + (size_t)b * BLOCK, BLOCK,
                            packed + (size_t)b * BLOCK * 2, 0, 0, PTHREAD_COND_INITIALIZER};
        submit(job);
    }
    size_t total = 0;
    uint32_t combined = 0;
    for (int b = 0; b < blocks; b++) {  /* in order, like a compressor's output stream */
        wait_for(&jobs[b]);
        total += jobs[b].out_len;
        combined = combined * 31 + jobs[b].crc;
        struct job *job = &jobs[blocks + b];
        *job = (struct job){DECOMPRESS, 0, jobs[b].out, jobs[b].out_len,
                            back + (size_t)b * BLOCK, 0, 0, PTHREAD_COND_INITIALIZER};
        submit(job);
    }
    int same = 1;
    for (int b = 0; b < blocks; b++) {
        wait_for(&jobs[blocks + b]);
        same &= jobs[blocks + b].out_len == BLOCK;
    }
    same &= memcmp(data, back, size) == 0;
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_broadcast(&work_ready);
    pthread_mutex_unlock(&lock);
    for (int t = 0; t < threads; t++)
        pthread_join(pool[t], NULL);
    printf("pool: %d threads, %d blocks, %zu -> %zu bytes, crc %08x, round trip %s\n",
           threads, blocks, size, total, combined, same ? "ok" : "FAILED");
    return same ? 0 : 1;
}
