/* How fast the CUDA backend's products run at the routed experts' shapes,
 * by row count, through the same backend ops the transformer uses:
 *   gemm_sweep [REPEATS]
 * Prints one line per (N, K, M): ms a product and TFLOP/s; then the grouped
 * product of 4 experts over 16.6k and 33.3k slots whose split changes every
 * call, as routing makes it (the cache of product plans sees a new M each
 * time). Run it under MOEDIT_GEMM_CACHE=bucket|exact to compare the keys.
 * Built only with the CUDA backend; needs a GPU. */
#include "backend/backend.h"
#include "backend/cuda/backend_cuda.h"
#include "core/error.h"
#include "core/timer.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct shape {
    int64_t n, k;
    const char *what;
} shape;

static tensor device_matrix(backend *be, int64_t rows, int64_t cols, uint64_t stream)
{
    tensor t = tensor_make_2d(DTYPE_BF16, DEVICE_CUDA, rows, cols);
    t.data = be->ops->alloc(be, tensor_nbytes(&t));
    if (t.data) be->ops->fill_uniform(be, t, 7, stream, 0.05f, cols, 0, 0);
    return t;
}

/* Seconds a call of `product` takes, median of `repeats` after two warm calls. */
static double median_seconds(backend *be, int repeats, void (*product)(backend *, void *), void *arg)
{
    double times[64];
    if (repeats > 64) repeats = 64;
    for (int i = 0; i < repeats + 2; i++) {
        be->ops->synchronize(be);
        double start = timer_seconds();
        product(be, arg);
        be->ops->synchronize(be);
        if (i >= 2) times[i - 2] = timer_seconds() - start;
    }
    return timer_percentile(times, repeats, 50);
}

typedef struct plain_args {
    tensor y, x, w;
} plain_args;

static void plain_product(backend *be, void *arg)
{
    plain_args *p = arg;
    be->ops->linear(be, p->y, p->x, p->w, tensor_none());
}

typedef struct grouped_args {
    tensor y, x;
    tensor w[4];
    int64_t slots;
    unsigned seed;
} grouped_args;

/* Four experts' rows: a random split of the slots, a new one every call. */
static void grouped_product(backend *be, void *arg)
{
    grouped_args *g = arg;
    int64_t offsets[5] = {0};
    for (int e = 1; e < 4; e++) {
        g->seed = g->seed * 1103515245u + 12345u;
        offsets[e] = g->slots * e / 4 + (int64_t)((g->seed >> 8) % 2001) - 1000;
    }
    offsets[4] = g->slots;
    be->ops->linear_grouped(be, tensor_row_slice(g->y, 0, g->slots), tensor_row_slice(g->x, 0, g->slots), g->w,
                            offsets, 4);
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 10;
    backend *be = backend_cuda_create(0);
    if (!be) {
        fprintf(stderr, "gemm_sweep: %s\n", error_message());
        return 1;
    }
    const shape shapes[2] = {{6912, 2560, "expert gate/up"}, {2560, 6912, "expert down"}};
    const int64_t rows[] = {1024, 2048, 3072, 4096, 6144, 8192, 8320, 10240, 12288, 16384, 16640, 20480, 33280};
    const int64_t most = 33280;
    const char *keying = getenv("MOEDIT_GEMM_CACHE");
    for (int s = 0; s < 2; s++) {
        int64_t n = shapes[s].n, k = shapes[s].k;
        plain_args p = {device_matrix(be, most, n, 1), device_matrix(be, most, k, 2), device_matrix(be, n, k, 3)};
        if (!p.y.data || !p.x.data || !p.w.data) {
            fprintf(stderr, "gemm_sweep: %s\n", error_message());
            return 1;
        }
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            plain_args at = {tensor_row_slice(p.y, 0, rows[i]), tensor_row_slice(p.x, 0, rows[i]), p.w};
            double t = median_seconds(be, repeats, plain_product, &at);
            printf("{\"keying\":\"%s\",\"what\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"ms\":%.4f,\"tflops\":%.1f}\n",
                   keying ? keying : "bucket", shapes[s].what, (long long)rows[i], (long long)n, (long long)k, t * 1e3,
                   2.0 * (double)rows[i] * (double)n * (double)k / t / 1e12);
        }
        grouped_args g = {p.y, p.x, {p.w, p.w, p.w, p.w}, 0, 1};
        const int64_t slot_counts[2] = {16640, 33280};
        for (int c = 0; c < 2; c++) {
            g.slots = slot_counts[c];
            double t = median_seconds(be, repeats, grouped_product, &g);
            printf("{\"keying\":\"%s\",\"what\":\"%s, 4 experts, split changing\",\"m\":%lld,\"n\":%lld,\"k\":%lld,"
                   "\"ms\":%.4f,\"tflops\":%.1f}\n",
                   keying ? keying : "bucket", shapes[s].what, (long long)g.slots, (long long)n, (long long)k, t * 1e3,
                   2.0 * (double)g.slots * (double)n * (double)k / t / 1e12);
        }
        be->ops->free(be, p.y.data);
        be->ops->free(be, p.x.data);
        be->ops->free(be, p.w.data);
    }
    int status = be->ops->status(be);
    if (status) fprintf(stderr, "gemm_sweep: %s\n", error_message());
    backend_destroy(be);
    return status ? 1 : 0;
}
