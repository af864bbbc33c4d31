/* CPU backend: F32 activations and weights, BLAS sgemm for matrix products,
 * OpenMP for elementwise work. It is the reference every other backend is
 * tested against, so each op is written for clarity first.
 *
 * One thread pool: the products are cut into chunks shared by OpenMP threads
 * (cpu_gemm.c: the same chunks, so the same bits, for any number of threads)
 * and BLAS runs single-threaded inside each. A BLAS with its own thread pool
 * (OpenBLAS's pthread build, Debian's default) fights OpenMP's spinning
 * threads for the cores between ops: the demo model's 256x256 picture took
 * 7.2 s that way on 2 cores, 2.4 s with OpenBLAS single-threaded and 1.8 s
 * with the products split here. */
#include "backend/alloc_count.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_exp.h"
#include "backend/cpu/cpu_fp8.h"
#include "backend/cpu/cpu_gemm.h"
#include "backend/cpu/cpu_moe.h"
#include "core/error.h"
#include "core/host_parallel.h"
#include "core/philox.h"

#include <assert.h>
#include <omp.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Attention scores are computed for a block of queries at a time so the
 * [queries, keys] score matrix stays small. */
#define ATTENTION_SCORE_BYTES ((size_t)16 << 20)

typedef struct cpu_state {
    float *scratch; /* reused for attention scores and im2col columns */
    size_t scratch_capacity;
    alloc_count allocations; /* what alloc handed out (weights, arenas); the scratch is not counted */
} cpu_state;

static float *f32(tensor t) { return (float *)t.data; }

static void *cpu_alloc(backend *be, size_t bytes)
{
    void *ptr = NULL;
    if (posix_memalign(&ptr, 64, bytes ? bytes : 1) != 0) {
        error_set("out of memory: cannot allocate %zu MiB on the CPU", bytes >> 20);
        return NULL;
    }
    alloc_count_add(&((cpu_state *)be->impl)->allocations, ptr, bytes);
    return ptr;
}

static void cpu_free(backend *be, void *ptr)
{
    alloc_count_remove(&((cpu_state *)be->impl)->allocations, ptr);
    free(ptr);
}

/* The device's total: the host's RAM (every CPU backend of the process shares it). */
static void cpu_memory(backend *be, backend_memory_use *use)
{
    alloc_count_read(&((cpu_state *)be->impl)->allocations, &use->in_use, &use->peak);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    use->total = pages > 0 && page > 0 ? (int64_t)pages * page : -1;
    snprintf(use->device, sizeof use->device, "cpu");
}

/* Host-resident weights (backend.h): the device is the host, so the
 * streamed copy is a memcpy, finished before upload_async returns. */
static void *cpu_host_alloc(backend *be, size_t bytes) { return cpu_alloc(be, bytes); }

static void cpu_download_raw(backend *be, void *host, const void *device, size_t bytes) { memcpy(host, device, bytes); }

static void cpu_upload_async(backend *be, int slot, void *device, const void *host, size_t bytes)
{
    (void)slot;
    memcpy(device, host, bytes);
}

static void cpu_upload_wait(backend *be, int slot) { (void)be, (void)slot; }

static void cpu_upload(backend *be, tensor dst, const float *src) { memcpy(dst.data, src, tensor_nbytes(&dst)); }

static void cpu_download(backend *be, float *dst, tensor src) { memcpy(dst, src.data, tensor_nbytes(&src)); }

static void cpu_copy(backend *be, tensor dst, tensor src)
{
    assert(tensor_nbytes(&dst) == tensor_nbytes(&src));
    memmove(dst.data, src.data, tensor_nbytes(&src));
}

static void cpu_fill(backend *be, tensor dst, float value)
{
    float *y = f32(dst);
    int64_t n = tensor_numel(&dst);
    for (int64_t i = 0; i < n; i++) y[i] = value;
}

/* Rows of dst are runs of consecutive Philox indices; philox_fill_uniform
 * starts anywhere, so each row is one call, and rows go to the threads. */
static void cpu_fill_uniform(backend *be, tensor dst, uint64_t seed, uint64_t stream, float scale, int64_t full_cols,
                             int64_t row0, int64_t col0)
{
    int64_t rows = dst.ndim == 2 ? dst.shape[0] : tensor_numel(&dst), cols = dst.ndim == 2 ? dst.shape[1] : 1;
    float *y = f32(dst);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        philox_fill_uniform(seed, stream, (uint64_t)((row0 + r) * full_cols + col0), cols, row);
        for (int64_t c = 0; c < cols; c++) row[c] *= scale;
    }
}

static void cpu_copy_rows(backend *be, tensor y, int64_t y_row, tensor x, int64_t x_row, int64_t rows)
{
    int64_t channels = x.shape[0], width = x.shape[2];
    assert(y.ndim == 3 && x.ndim == 3 && y.shape[0] == channels && y.shape[2] == width);
    assert(y_row + rows <= y.shape[1] && x_row + rows <= x.shape[1]);
#pragma omp parallel for if (channels * rows * width > HOST_PARALLEL_MIN_VALUES)
    for (int64_t c = 0; c < channels; c++)
        memcpy(f32(y) + (c * y.shape[1] + y_row) * width, f32(x) + (c * x.shape[1] + x_row) * width,
               (size_t)(rows * width) * sizeof(float));
}

static void cpu_synchronize(backend *be) {}

static int cpu_status(backend *be) { return 0; /* CPU ops cannot fail after their arguments are checked */ }

static void cpu_destroy(backend *be)
{
    cpu_state *state = be->impl;
    free(state->scratch);
    alloc_count_free(&state->allocations);
    free(state);
    free(be);
}

static float *cpu_scratch(cpu_state *state, size_t floats);

static void cpu_linear(backend *be, tensor y, tensor x, tensor w, tensor bias)
{
    int64_t m = tensor_rows(&x), k = tensor_cols(&x), n = tensor_rows(&w);
    assert(tensor_cols(&w) == k && tensor_rows(&y) == m && tensor_cols(&y) == n);
    if (m == 0) return;
    if (w.dtype == DTYPE_F8_E4M3) {
        float *scratch = cpu_scratch(be->impl, cpu_fp8_scratch_floats(m, k));
        assert(scratch != NULL); /* as the attention scores: an op has no way to report it */
        cpu_fp8_linear(y, x, w, bias, scratch);
        return;
    }
    float beta = 0.0f;
    if (bias.data) {
        float *out = f32(y);
        const float *b = f32(bias);
#pragma omp parallel for
        for (int64_t i = 0; i < m; i++) memcpy(out + i * n, b, (size_t)n * sizeof(float));
        beta = 1.0f;
    }
    cpu_gemm(CblasTrans, m, n, k, 1.0f, f32(x), k, f32(w), k, beta, f32(y), n);
}

static void cpu_linear_grouped(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups)
{
    for (int g = 0; g < groups; g++) {
        int64_t rows = offsets[g + 1] - offsets[g];
        if (rows == 0) continue;
        cpu_linear(be, tensor_row_slice(y, offsets[g], rows), tensor_row_slice(x, offsets[g], rows), w[g],
                   tensor_none());
    }
}

static void cpu_row_abs_max(backend *be, tensor amax, tensor x) { cpu_fp8_row_abs_max(amax, x); }

static void cpu_quantize_rows(backend *be, tensor q, tensor x, tensor amax) { cpu_fp8_quantize_rows(q, x, amax); }

static void cpu_add(backend *be, tensor y, tensor a, tensor b)
{
    int64_t n = tensor_numel(&y);
    float *out = f32(y);
    const float *pa = f32(a), *pb = f32(b);
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) out[i] = pa[i] + pb[i];
}

#define SILU_CHUNK 256

/* In parallel over chunks, or on this thread inside a parallel region (the
 * GroupNorm's loop over channels). */
static void silu_all(float *out, const float *in, const float *up, int64_t n)
{
#pragma omp parallel for if (!omp_in_parallel())
    for (int64_t first = 0; first < n; first += SILU_CHUNK)
        cpu_silu_times(out + first, in + first, up ? up + first : NULL, n - first < SILU_CHUNK ? n - first : SILU_CHUNK);
}

static void cpu_silu(backend *be, tensor y, tensor x) { silu_all(f32(y), f32(x), NULL, tensor_numel(&y)); }

static void cpu_swiglu(backend *be, tensor y, tensor gate, tensor up)
{
    silu_all(f32(y), f32(gate), f32(up), tensor_numel(&y));
}

static void cpu_gated_residual(backend *be, tensor x, tensor gate, tensor y)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    float *px = f32(x);
    const float *pg = f32(gate), *py = f32(y);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < cols; c++) px[i * cols + c] += pg[c] * py[i * cols + c];
}

static void cpu_scale_rows(backend *be, tensor x, tensor row_scale)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    float *px = f32(x);
    const float *s = f32(row_scale);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < cols; c++) px[i * cols + c] *= s[i];
}

/* A row's mean and 1 / sqrt(variance + eps), in double (both layer norms). */
static void row_moments(const float *row, int64_t cols, float eps, double *mean, double *inv_std)
{
    double sum = 0, var = 0;
    for (int64_t c = 0; c < cols; c++) sum += row[c];
    *mean = sum / (double)cols;
    for (int64_t c = 0; c < cols; c++) var += (row[c] - *mean) * (row[c] - *mean);
    *inv_std = 1.0 / sqrt(var / (double)cols + eps);
}

static void cpu_layer_norm_modulate(backend *be, tensor y, tensor x, tensor shift, tensor scale, float eps)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    float *out = f32(y);
    const float *in = f32(x), *sh = f32(shift), *sc = f32(scale);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
        const float *row = in + i * cols;
        double mean, inv_std;
        row_moments(row, cols, eps, &mean, &inv_std);
        float inv = (float)inv_std;
        for (int64_t c = 0; c < cols; c++) {
            float normed = (float)(row[c] - mean) * inv;
            out[i * cols + c] = normed * (1.0f + (sc ? sc[c] : 0.0f)) + (sh ? sh[c] : 0.0f);
        }
    }
}

/* nn.LayerNorm with weight and bias; statistics in double. */
static void cpu_layer_norm(backend *be, tensor y, tensor x, tensor weight, tensor bias, float eps)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    float *out = f32(y);
    const float *in = f32(x), *w = f32(weight), *b = f32(bias);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
        const float *row = in + i * cols;
        double mean, inv;
        row_moments(row, cols, eps, &mean, &inv);
        for (int64_t c = 0; c < cols; c++)
            out[i * cols + c] = (float)((row[c] - mean) * inv * w[c] + (b ? b[c] : 0.0));
    }
}

/* One activation value, in double (backend.h's formulas). */
static double activation_value(double x, backend_activation act)
{
    switch (act) {
    case BACKEND_GELU_TANH: return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case BACKEND_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    default: return 0.5 * x * (1.0 + erf(x * 0.7071067811865476));
    }
}

static void cpu_activation(backend *be, tensor y, tensor x, tensor up, backend_activation act)
{
    int64_t n = tensor_numel(&y);
    float *out = f32(y);
    const float *in = f32(x), *u = f32(up);
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        double value = activation_value(in[i], act);
        out[i] = (float)(u ? value * u[i] : value);
    }
}

static void cpu_rms_norm(backend *be, tensor y, tensor x, tensor weight, float eps)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    float *out = f32(y);
    const float *in = f32(x), *w = f32(weight);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
        const float *row = in + i * cols;
        double sum = 0;
        for (int64_t c = 0; c < cols; c++) sum += (double)row[c] * row[c];
        float inv = (float)(1.0 / sqrt(sum / (double)cols + eps));
        for (int64_t c = 0; c < cols; c++) out[i * cols + c] = row[c] * inv * w[c];
    }
}

static void cpu_row_sum_squares(backend *be, tensor sums, tensor x)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    const float *in = f32(x);
    float *out = f32(sums);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
        double sum = 0;
        for (int64_t c = 0; c < cols; c++) sum += (double)in[i * cols + c] * in[i * cols + c];
        out[i] = (float)sum;
    }
}

static void cpu_rms_norm_with_sums(backend *be, tensor y, tensor x, tensor sums, int64_t count, tensor weight, float eps)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    const float *in = f32(x), *s = f32(sums), *w = f32(weight);
    float *out = f32(y);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
        float inv = (float)(1.0 / sqrt((double)s[i] / (double)count + eps));
        for (int64_t c = 0; c < cols; c++) out[i * cols + c] = in[i * cols + c] * inv * w[c];
    }
}

/* y[p * M + r, j] <-> x[r, p * w + j] for w = C / parts; `split` picks the direction. */
static void column_blocks(tensor y, tensor x, int parts, int split)
{
    tensor wide = split ? x : y;
    int64_t rows = tensor_rows(&wide), cols = tensor_cols(&wide), width = cols / parts;
    float *py = f32(y);
    const float *px = f32(x);
#pragma omp parallel for
    for (int64_t r = 0; r < rows; r++)
        for (int p = 0; p < parts; p++) {
            float *narrow_row = split ? py + (p * rows + r) * width : (float *)px + (p * rows + r) * width;
            float *wide_row = split ? (float *)px + r * cols + p * width : py + r * cols + p * width;
            if (split) memcpy(narrow_row, wide_row, (size_t)width * sizeof(float));
            else memcpy(wide_row, narrow_row, (size_t)width * sizeof(float));
        }
}

static void cpu_split_columns(backend *be, tensor y, tensor x, int parts) { column_blocks(y, x, parts, 1); }

static void cpu_merge_columns(backend *be, tensor y, tensor x, int parts) { column_blocks(y, x, parts, 0); }

static void cpu_rope(backend *be, tensor x, tensor cos_sin, int heads, int rope_dim)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x), head_dim = cols / heads;
    float *px = f32(x);
    const float *table = f32(cos_sin);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
        const float *cs = table + i * rope_dim;
        for (int h = 0; h < heads; h++) {
            float *v = px + i * cols + h * head_dim;
            for (int p = 0; p < rope_dim / 2; p++) {
                float c = cs[2 * p], s = cs[2 * p + 1];
                float x0 = v[2 * p], x1 = v[2 * p + 1];
                v[2 * p] = c * x0 - s * x1;
                v[2 * p + 1] = s * x0 + c * x1;
            }
        }
    }
}

/* The two ops one after the other: the CPU's F32 rows gain nothing from one
 * pass, and this keeps its pictures bit for bit what they were unfused. */
static void cpu_rms_norm_rope(backend *be, tensor x, tensor weight, float eps, tensor cos_sin, int heads, int rope_dim)
{
    cpu_rms_norm(be, x, x, weight, eps);
    cpu_rope(be, x, cos_sin, heads, rope_dim);
}

/* Softmax of each row of scores[rows, cols] in place; returns log-sum-exp per row. */
static void softmax_rows(float *scores, int64_t rows, int64_t cols, float *lse)
{
#pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
        float log_sum = cpu_softmax_in_place(scores + i * cols, cols);
        if (lse) lse[i] = log_sum;
    }
}

static float *cpu_scratch(cpu_state *state, size_t floats)
{
    if (floats > state->scratch_capacity) {
        free(state->scratch);
        state->scratch = malloc(floats * sizeof(float));
        state->scratch_capacity = state->scratch ? floats : 0;
    }
    return state->scratch;
}

/* Softmax attention per head, a block of queries at a time, of the scores
 * scale * q k^T (+ bias[h, i, j] when bias is not NULL); with `causal`,
 * query i sees keys 0..i only. */
static void attention_blocks(backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads,
                             int causal, const float *bias, float scale)
{
    int64_t sq = tensor_rows(&q), sk = tensor_rows(&k), width = tensor_cols(&q), d = width / heads;
    int64_t block = (int64_t)(ATTENTION_SCORE_BYTES / sizeof(float)) / (sk ? sk : 1);
    if (block < 1) block = 1;
    if (block > sq) block = sq;
    float *scores = cpu_scratch(be->impl, (size_t)(block * sk));
    assert(scores != NULL);
    for (int h = 0; h < heads; h++) {
        for (int64_t first = 0; first < sq; first += block) {
            int64_t rows = sq - first < block ? sq - first : block;
            cpu_gemm(CblasTrans, rows, sk, d, scale, f32(q) + first * width + h * d, width, f32(k) + h * d, width, 0.0f,
                 scores, sk);
            if (bias) {
                const float *head_bias = bias + ((int64_t)h * sq + first) * sk;
                for (int64_t e = 0; e < rows * sk; e++) scores[e] += head_bias[e];
            }
            if (causal)
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = first + i + 1; j < sk; j++) scores[i * sk + j] = -INFINITY;
            softmax_rows(scores, rows, sk, lse.data ? f32(lse) + h * sq + first : NULL);
            cpu_gemm(CblasNoTrans, rows, d, sk, 1.0f, scores, sk, f32(v) + h * d, width, 0.0f,
                 f32(out) + first * width + h * d, width);
        }
    }
}

static void cpu_attention(backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads)
{
    attention_blocks(be, out, lse, q, k, v, heads, 0, NULL, 1.0f / sqrtf((float)(tensor_cols(&q) / heads)));
}

static void cpu_attention_merge(backend *be, tensor out, tensor lse, tensor part_out, tensor part_lse, int heads)
{
    int64_t sq = tensor_rows(&out), width = tensor_cols(&out), d = width / heads;
    float *o = f32(out), *l = f32(lse);
    const float *po = f32(part_out), *pl = f32(part_lse);
#pragma omp parallel for
    for (int64_t i = 0; i < sq; i++)
        for (int h = 0; h < heads; h++) {
            float a = l[h * sq + i], b = pl[h * sq + i];
            float m = a > b ? a : b;
            float merged = m + logf(expf(a - m) + expf(b - m));
            float wa = expf(a - merged), wb = expf(b - merged);
            float *row = o + i * width + h * d;
            const float *part = po + i * width + h * d;
            for (int64_t c = 0; c < d; c++) row[c] = wa * row[c] + wb * part[c];
            l[h * sq + i] = merged;
        }
}

static void cpu_attention_causal(backend *be, tensor out, tensor q, tensor k, tensor v, int heads)
{
    attention_blocks(be, out, tensor_none(), q, k, v, heads, 1, NULL, 1.0f / sqrtf((float)(tensor_cols(&q) / heads)));
}

static void cpu_attention_bias(backend *be, tensor out, tensor q, tensor k, tensor v, tensor bias, int heads,
                               float scale)
{
    assert(bias.dtype == DTYPE_F32 && tensor_numel(&bias) == heads * tensor_rows(&q) * tensor_rows(&k));
    attention_blocks(be, out, tensor_none(), q, k, v, heads, 0, f32(bias), scale);
}

/* im2col for output rows [oy0, oy0 + rows): columns[Cin * k * k, rows * Wo]. */
static void im2col_rows(const float *x, int64_t cin, int64_t h, int64_t w, int kernel, int stride, const int pad[4],
                        int64_t oy0, int64_t rows, int64_t wo, float *columns)
{
    int64_t patch = cin * kernel * kernel, span = rows * wo;
#pragma omp parallel for
    for (int64_t p = 0; p < patch; p++) {
        int64_t c = p / (kernel * kernel), ky = (p / kernel) % kernel, kx = p % kernel;
        float *dst = columns + p * span;
        for (int64_t r = 0; r < rows; r++) {
            int64_t iy = (oy0 + r) * stride + ky - pad[0];
            for (int64_t ox = 0; ox < wo; ox++) {
                int64_t ix = ox * stride + kx - pad[2];
                dst[r * wo + ox] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x[(c * h + iy) * w + ix] : 0.0f;
            }
        }
    }
}

static void cpu_conv2d(backend *be, tensor y, tensor x, tensor w, tensor bias, int kernel, int stride, const int pad[4])
{
    int64_t cin = x.shape[0], h = x.shape[1], wi = x.shape[2];
    int64_t cout = y.shape[0], ho = y.shape[1], wo = y.shape[2];
    int64_t patch = cin * kernel * kernel;
    assert(tensor_cols(&w) == patch && tensor_rows(&w) == cout);
    assert(ho == (h + pad[0] + pad[1] - kernel) / stride + 1 && wo == (wi + pad[2] + pad[3] - kernel) / stride + 1);
    /* Bands of output rows whose columns fit the scratch: one GEMM per band. */
    int64_t rows = (int64_t)(ATTENTION_SCORE_BYTES / sizeof(float)) / (patch * wo);
    if (rows < 1) rows = 1;
    if (rows > ho) rows = ho;
    float *columns = cpu_scratch(be->impl, (size_t)(patch * rows * wo));
    assert(columns != NULL);
    float *out = f32(y);
    for (int64_t oy = 0; oy < ho; oy += rows) {
        int64_t band = ho - oy < rows ? ho - oy : rows;
        im2col_rows(f32(x), cin, h, wi, kernel, stride, pad, oy, band, wo, columns);
        /* y[:, oy .. oy + band, :] = W[Cout, patch] columns[patch, band * Wo] */
        cpu_gemm(CblasNoTrans, cout, band * wo, patch, 1.0f, f32(w), patch, columns, band * wo, 0.0f, out + oy * wo,
             ho * wo);
    }
    if (bias.data) {
        const float *b = f32(bias);
#pragma omp parallel for
        for (int64_t c = 0; c < cout; c++)
            for (int64_t i = 0; i < ho * wo; i++) out[c * ho * wo + i] += b[c];
    }
}

static void cpu_group_norm_stats(backend *be, tensor stats, tensor x, int groups)
{
    int64_t channels = x.shape[0], n = tensor_numel(&x) / channels, per_group = channels / groups;
    float *out = f32(stats);
#pragma omp parallel for
    for (int g = 0; g < groups; g++) {
        double sum = 0, squares = 0;
        const float *p = f32(x) + g * per_group * n;
        for (int64_t i = 0; i < per_group * n; i++) {
            sum += p[i];
            squares += (double)p[i] * p[i];
        }
        out[2 * g] = (float)sum;
        out[2 * g + 1] = (float)squares;
    }
}

static void cpu_group_norm_apply(backend *be, tensor y, tensor x, tensor stats, int64_t count, tensor weight,
                                 tensor bias, float eps, int silu)
{
    int64_t channels = x.shape[0], n = tensor_numel(&x) / channels;
    int groups = (int)tensor_rows(&stats);
    int64_t per_group = channels / groups;
    const float *st = f32(stats), *wt = f32(weight), *bs = f32(bias);
    float *out = f32(y);
    const float *in = f32(x);
#pragma omp parallel for
    for (int64_t c = 0; c < channels; c++) {
        int64_t g = c / per_group;
        double mean = st[2 * g] / (double)count;
        double var = st[2 * g + 1] / (double)count - mean * mean;
        float inv = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
        float a = inv * wt[c], b = bs[c] - (float)mean * inv * wt[c];
        for (int64_t i = 0; i < n; i++) out[c * n + i] = in[c * n + i] * a + b;
        if (silu) silu_all(out + c * n, out + c * n, NULL, n);
    }
}

static void cpu_upsample_nearest2x(backend *be, tensor y, tensor x)
{
    int64_t channels = x.shape[0], h = x.shape[1], w = x.shape[2];
    float *out = f32(y);
    const float *in = f32(x);
#pragma omp parallel for
    for (int64_t c = 0; c < channels; c++)
        for (int64_t oy = 0; oy < 2 * h; oy++)
            for (int64_t ox = 0; ox < 2 * w; ox++)
                out[(c * 2 * h + oy) * 2 * w + ox] = in[(c * h + oy / 2) * w + ox / 2];
}

static void cpu_transpose(backend *be, tensor y, tensor x)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    float *out = f32(y);
    const float *in = f32(x);
    /* Blocks of 32 x 32 so both sides stay in cache lines. */
#pragma omp parallel for
    for (int64_t i0 = 0; i0 < rows; i0 += 32)
        for (int64_t j0 = 0; j0 < cols; j0 += 32)
            for (int64_t i = i0; i < i0 + 32 && i < rows; i++)
                for (int64_t j = j0; j < j0 + 32 && j < cols; j++) out[j * rows + i] = in[i * cols + j];
}

static void cpu_gather_rows(backend *be, tensor y, tensor x, tensor index)
{
    int64_t n = tensor_numel(&index), cols = tensor_cols(&x);
    const int32_t *idx = index.data;
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) memcpy(f32(y) + i * cols, f32(x) + (int64_t)idx[i] * cols, (size_t)cols * 4);
}

static const backend_ops cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memory = cpu_memory,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .fill_uniform = cpu_fill_uniform,
    .synchronize = cpu_synchronize,
    .destroy = cpu_destroy,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_free,
    .download_raw = cpu_download_raw,
    .upload_async = cpu_upload_async,
    .upload_wait = cpu_upload_wait,
    .status = cpu_status,
    .linear = cpu_linear,
    .linear_grouped = cpu_linear_grouped,
    .row_abs_max = cpu_row_abs_max,
    .quantize_rows = cpu_quantize_rows,
    .add = cpu_add,
    .silu = cpu_silu,
    .swiglu = cpu_swiglu,
    .gated_residual = cpu_gated_residual,
    .scale_rows = cpu_scale_rows,
    .layer_norm_modulate = cpu_layer_norm_modulate,
    .rms_norm = cpu_rms_norm,
    .rope = cpu_rope,
    .rms_norm_rope = cpu_rms_norm_rope,
    .attention = cpu_attention,
    .attention_causal = cpu_attention_causal,
    .attention_merge = cpu_attention_merge,
    .row_sum_squares = cpu_row_sum_squares,
    .rms_norm_with_sums = cpu_rms_norm_with_sums,
    .split_columns = cpu_split_columns,
    .merge_columns = cpu_merge_columns,
    .conv2d = cpu_conv2d,
    .group_norm_stats = cpu_group_norm_stats,
    .group_norm_apply = cpu_group_norm_apply,
    .upsample_nearest2x = cpu_upsample_nearest2x,
    .transpose = cpu_transpose,
    .gather_rows = cpu_gather_rows,
    .copy_rows = cpu_copy_rows,
    .combine_rows = cpu_combine_rows,
    .moe_route = cpu_moe_route,
    .moe_dispatch = cpu_moe_dispatch,
    .activation = cpu_activation,
    .layer_norm = cpu_layer_norm,
    .attention_bias = cpu_attention_bias,
};

backend *backend_cpu_create(void)
{
    backend *be = calloc(1, sizeof *be);
    cpu_state *state = calloc(1, sizeof *state);
    if (!be || !state) {
        free(be);
        free(state);
        error_set("out of memory creating the CPU backend");
        return NULL;
    }
    be->ops = &cpu_ops;
    be->name = "cpu";
    be->device = DEVICE_CPU;
    be->dtype = DTYPE_F32;
    alloc_count_init(&state->allocations);
    be->impl = state;
    return be;
}

void backend_destroy(backend *be)
{
    if (be) be->ops->destroy(be);
}
