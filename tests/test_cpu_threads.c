/* The CPU backend gives the same bits for any number of OpenMP threads: its
 * products are cut into chunks chosen from the shape alone, one BLAS call
 * each, and threads take whole chunks (backend/cpu/cpu_gemm.c). Products and
 * attention of awkward shapes (one chunk, 2, 4 and 8 of them, by rows and by
 * columns), 1 thread against 2, 3 and 5 (this machine may have fewer cores:
 * bits, not speed, are checked). */
#include "backend/backend.h"
#include "core/error.h"
#include "test_util.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static backend *be;

static tensor filled(int64_t rows, int64_t cols, unsigned seed)
{
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, rows, cols);
    t.data = be->ops->alloc(be, tensor_nbytes(&t));
    float *host = malloc(tensor_nbytes(&t));
    srand(seed);
    for (int64_t i = 0; i < rows * cols; i++) host[i] = (float)rand() / RAND_MAX - 0.5f;
    be->ops->upload(be, t, host);
    free(host);
    return t;
}

static float *fetch(tensor t)
{
    float *host = malloc(tensor_nbytes(&t));
    be->ops->download(be, host, t);
    return host;
}

/* linear y = x w^T (+ bias) and attention of q, k, v, under `threads`. */
static void run(int threads, int64_t m, int64_t n, int64_t k, float **linear_out, float **attention_out)
{
    omp_set_num_threads(threads);
    tensor x = filled(m, k, 1), w = filled(n, k, 2), bias = filled(1, n, 3), y = tensor_make_2d(DTYPE_F32, DEVICE_CPU, m, n);
    y.data = be->ops->alloc(be, tensor_nbytes(&y));
    be->ops->linear(be, y, x, w, bias);
    *linear_out = fetch(y);
    int heads = 2;
    tensor q = filled(m, 64, 4), kk = filled(m + 7, 64, 5), v = filled(m + 7, 64, 6);
    tensor out = tensor_make_2d(DTYPE_F32, DEVICE_CPU, m, 64);
    out.data = be->ops->alloc(be, tensor_nbytes(&out));
    be->ops->attention(be, out, tensor_none(), q, kk, v, heads);
    *attention_out = fetch(out);
    tensor all[7] = {x, w, bias, y, q, kk, v};
    for (int i = 0; i < 7; i++) be->ops->free(be, all[i].data);
    be->ops->free(be, out.data);
}

int main(void)
{
    be = backend_cpu_create();
    CHECK(be != NULL);
    if (!be) return test_finish("test_cpu_threads");
    const int64_t shapes[][3] = {{301, 257, 96}, {45, 600, 128}, {7, 1000, 64}, {130, 35, 300}, {4100, 64, 32}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *lin1, *att1;
        run(1, m, n, k, &lin1, &att1);
        const int counts[3] = {2, 3, 5};
        for (int c = 0; c < 3; c++) {
            float *lin, *att;
            run(counts[c], m, n, k, &lin, &att);
            CHECK_MSG(memcmp(lin, lin1, (size_t)(m * n) * sizeof(float)) == 0,
                      "linear %lldx%lldx%lld: %d threads give other bits than 1", (long long)m, (long long)n,
                      (long long)k, counts[c]);
            CHECK_MSG(memcmp(att, att1, (size_t)(m * 64) * sizeof(float)) == 0,
                      "attention of %lld queries: %d threads give other bits than 1", (long long)m, counts[c]);
            free(lin);
            free(att);
        }
        free(lin1);
        free(att1);
    }
    backend_destroy(be);
    return test_finish("test_cpu_threads");
}
