/* Row normalisations over the last dim, one thread block per row, FP32 sums:
 *   layer_norm_modulate  y = (x - mean) / sqrt(var + eps) * (1 + scale[C]) + shift[C]
 *                        (no affine weights; diffusers' LayerNorm(elementwise_affine=False)
 *                        followed by adaLN modulation; scale/shift optional)
 *   layer_norm           y = (x - mean) / sqrt(var + eps) * weight[C] + bias[C]
 *                        (nn.LayerNorm: CLIP's; bias optional)
 *   rms_norm             y = x / sqrt(mean(x^2) + eps) * weight[C]
 *   rms_norm_rope        rms_norm in place, then RoPE (q and k of the tokens with positions)
 *   row_sum_squares      sums[M] (F32) = sum_c x[i, c]^2, and
 *   rms_norm_with_sums   y = x / sqrt(sums / count + eps) * weight[C]: RMSNorm of
 *                        a row split over tensor-parallel ranks, sums all-reduced
 *                        in between.
 * Mean and variance are two passes over the row (re-read from cache), not
 * E[x^2] - E[x]^2, so large means do not cancel. In place is fine: every
 * thread writes only elements it read itself, after the last reduction. */
#include "backend/cuda/cuda_common.cuh"

static int row_threads(int64_t cols) { return cols >= 1024 ? 256 : cols >= 256 ? 128 : 64; }

/* W: values per access, 8 on rows of BF16 that 16-byte accesses tile
 * (access_width), else 1. */
/* The row's mean and 1 / sqrt(var + eps), in every thread of the block. */
template <int W>
__device__ void row_moments(const void *x, int dx, int64_t base, int64_t cols, float eps, float *partial, float *mean,
                            float *inv)
{
    float sum = 0.0f, v[W];
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, base + c, v);
#pragma unroll
        for (int k = 0; k < W; k++) sum += v[k];
    }
    *mean = block_sum(sum, partial) / (float)cols;
    float squares = 0.0f;
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, base + c, v);
#pragma unroll
        for (int k = 0; k < W; k++) squares += (v[k] - *mean) * (v[k] - *mean);
    }
    *inv = rsqrtf(block_sum(squares, partial) / (float)cols + eps);
}

template <int W>
__global__ void layer_norm_modulate_kernel(void *y, int dy, const void *x, int dx, const void *shift, int dsh,
                                           const void *scale, int dsc, int64_t cols, float eps)
{
    __shared__ float partial[32];
    int64_t row = blockIdx.x;
    const int64_t base = row * cols;
    float mean, inv, v[W];
    row_moments<W>(x, dx, base, cols, eps, partial, &mean, &inv);
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, base + c, v);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float sc = scale ? ld(scale, dsc, c + k) : 0.0f, sh = shift ? ld(shift, dsh, c + k) : 0.0f;
            v[k] = (v[k] - mean) * inv * (1.0f + sc) + sh;
        }
        stw<W>(y, dy, base + c, v);
    }
}

/* nn.LayerNorm: y = (x - mean) * inv * weight[C] + bias[C] (bias optional). */
template <int W>
__global__ void layer_norm_kernel(void *y, int dy, const void *x, int dx, const void *weight, int dw, const void *bias,
                                  int db, int64_t cols, float eps)
{
    __shared__ float partial[32];
    const int64_t base = (int64_t)blockIdx.x * cols;
    float mean, inv, v[W];
    row_moments<W>(x, dx, base, cols, eps, partial, &mean, &inv);
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, base + c, v);
#pragma unroll
        for (int k = 0; k < W; k++)
            v[k] = (v[k] - mean) * inv * ld(weight, dw, c + k) + (bias ? ld(bias, db, c + k) : 0.0f);
        stw<W>(y, dy, base + c, v);
    }
}

/* The sum of x^2 over the row at `base`, in every thread of the block. */
template <int W> __device__ float row_squares(const void *x, int dx, int64_t base, int64_t cols, float *partial)
{
    float squares = 0.0f, v[W];
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, base + c, v);
#pragma unroll
        for (int k = 0; k < W; k++) squares += v[k] * v[k];
    }
    return block_sum(squares, partial);
}

/* RoPE on a row's chunks inside each head's first rope_dim channels, from
 * the cos/sin row at `first` of `table`; none when table is NULL. */
struct row_rope {
    const void *table;
    int dt;
    int64_t first;
    int head_dim, rope_dim;
};

/* y = x * inv * weight[C] over the row at `base`, rotated by `rope` before
 * the values are rounded to y's dtype. */
template <int W>
__device__ void scale_row(void *y, int dy, const void *x, int dx, const void *weight, int dw, int64_t base,
                          int64_t cols, float inv, row_rope rope = {})
{
    float v[W];
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, base + c, v);
#pragma unroll
        for (int k = 0; k < W; k++) v[k] *= inv * ld(weight, dw, c + k);
        if constexpr (W % 2 == 0) {
            if (rope.table && (int)(c % rope.head_dim) < rope.rope_dim)
                rotate_pairs<W>(v, rope.table, rope.dt, rope.first + c % rope.head_dim);
        }
        stw<W>(y, dy, base + c, v);
    }
}

template <int W>
__global__ void rms_norm_kernel(void *y, int dy, const void *x, int dx, const void *weight, int dw, int64_t cols,
                                float eps)
{
    __shared__ float partial[32];
    const int64_t base = (int64_t)blockIdx.x * cols;
    float inv = rsqrtf(row_squares<W>(x, dx, base, cols, partial) / (float)cols + eps);
    scale_row<W>(y, dy, x, dx, weight, dw, base, cols, inv);
}

/* rms_norm_kernel, then RoPE on the chunks inside a head's first rope_dim
 * channels: W even, and head_dim and rope_dim multiples of W, so a chunk
 * holds whole pairs and lies wholly inside or outside the rotated channels.
 * The normalised values are rotated before they are rounded to the tensor's
 * dtype (the two ops apart round in between). */
template <int W>
__global__ void rms_norm_rope_kernel(void *x, int dx, const void *weight, int dw, const void *table, int dt,
                                     int64_t cols, int head_dim, int rope_dim, float eps)
{
    static_assert(W % 2 == 0, "a chunk holds whole pairs");
    __shared__ float partial[32];
    const int64_t row = blockIdx.x, base = row * cols;
    float inv = rsqrtf(row_squares<W>(x, dx, base, cols, partial) / (float)cols + eps);
    scale_row<W>(x, dx, x, dx, weight, dw, base, cols, inv, row_rope{table, dt, row * rope_dim, head_dim, rope_dim});
}

void cuda_layer_norm_modulate(backend *be, tensor y, tensor x, tensor shift, tensor scale, float eps)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&y) == rows * cols);
    assert(!shift.data || tensor_numel(&shift) == cols);
    assert(!scale.data || tensor_numel(&scale) == cols);
    if (rows == 0) return;
    if (access_width(y, x, cols) == 8)
        layer_norm_modulate_kernel<8><<<(unsigned)rows, row_threads(cols / 8), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, shift.data, shift.dtype, scale.data, scale.dtype, cols, eps);
    else
        layer_norm_modulate_kernel<1><<<(unsigned)rows, row_threads(cols), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, shift.data, shift.dtype, scale.data, scale.dtype, cols, eps);
    cuda_launched(s, "layer_norm_modulate");
}

void cuda_layer_norm(backend *be, tensor y, tensor x, tensor weight, tensor bias, float eps)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&y) == rows * cols && tensor_numel(&weight) == cols);
    assert(!bias.data || tensor_numel(&bias) == cols);
    if (rows == 0) return;
    if (access_width(y, x, cols) == 8)
        layer_norm_kernel<8><<<(unsigned)rows, row_threads(cols / 8), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, weight.data, weight.dtype, bias.data, bias.dtype, cols, eps);
    else
        layer_norm_kernel<1><<<(unsigned)rows, row_threads(cols), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, weight.data, weight.dtype, bias.data, bias.dtype, cols, eps);
    cuda_launched(s, "layer_norm");
}

void cuda_rms_norm(backend *be, tensor y, tensor x, tensor weight, float eps)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&y) == rows * cols && tensor_numel(&weight) == cols);
    if (rows == 0) return;
    if (access_width(y, x, cols) == 8)
        rms_norm_kernel<8><<<(unsigned)rows, row_threads(cols / 8), 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype,
                                                                                   weight.data, weight.dtype, cols, eps);
    else
        rms_norm_kernel<1><<<(unsigned)rows, row_threads(cols), 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype,
                                                                               weight.data, weight.dtype, cols, eps);
    cuda_launched(s, "rms_norm");
}

template <int W> __global__ void row_sum_squares_kernel(void *sums, int ds, const void *x, int dx, int64_t cols)
{
    __shared__ float partial[32];
    float total = row_squares<W>(x, dx, (int64_t)blockIdx.x * cols, cols, partial);
    if (threadIdx.x == 0) st(sums, ds, blockIdx.x, total);
}

template <int W>
__global__ void rms_norm_with_sums_kernel(void *y, int dy, const void *x, int dx, const void *sums, int ds,
                                          float count, const void *weight, int dw, int64_t cols, float eps)
{
    float inv = rsqrtf(ld(sums, ds, blockIdx.x) / count + eps);
    scale_row<W>(y, dy, x, dx, weight, dw, (int64_t)blockIdx.x * cols, cols, inv);
}

void cuda_row_sum_squares(backend *be, tensor sums, tensor x)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&sums) == rows);
    if (rows == 0) return;
    if (access_width(x, x, cols) == 8)
        row_sum_squares_kernel<8><<<(unsigned)rows, row_threads(cols / 8), 0, s->stream>>>(sums.data, sums.dtype,
                                                                                          x.data, x.dtype, cols);
    else
        row_sum_squares_kernel<1><<<(unsigned)rows, row_threads(cols), 0, s->stream>>>(sums.data, sums.dtype, x.data,
                                                                                       x.dtype, cols);
    cuda_launched(s, "row_sum_squares");
}

void cuda_rms_norm_with_sums(backend *be, tensor y, tensor x, tensor sums, int64_t count, tensor weight, float eps)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&y) == rows * cols && tensor_numel(&sums) == rows && tensor_numel(&weight) == cols);
    if (rows == 0) return;
    if (access_width(y, x, cols) == 8)
        rms_norm_with_sums_kernel<8><<<(unsigned)rows, row_threads(cols / 8), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, sums.data, sums.dtype, (float)count, weight.data, weight.dtype, cols, eps);
    else
        rms_norm_with_sums_kernel<1><<<(unsigned)rows, row_threads(cols), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, sums.data, sums.dtype, (float)count, weight.data, weight.dtype, cols, eps);
    cuda_launched(s, "rms_norm_with_sums");
}

void cuda_rms_norm_rope(backend *be, tensor x, tensor weight, float eps, tensor cos_sin, int heads, int rope_dim)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x), head_dim = cols / heads;
    assert(tensor_numel(&weight) == cols && head_dim % 2 == 0 && rope_dim % 2 == 0 && rope_dim <= head_dim);
    assert(tensor_cols(&cos_sin) == rope_dim && tensor_rows(&cos_sin) >= rows);
    if (rows == 0) return;
    if (access_width(x, x, cols) == 8 && head_dim % 8 == 0 && rope_dim % 8 == 0)
        rms_norm_rope_kernel<8><<<(unsigned)rows, row_threads(cols / 8), 0, s->stream>>>(
            x.data, x.dtype, weight.data, weight.dtype, cos_sin.data, cos_sin.dtype, cols, (int)head_dim, rope_dim, eps);
    else
        rms_norm_rope_kernel<2><<<(unsigned)rows, row_threads(cols / 2), 0, s->stream>>>(
            x.data, x.dtype, weight.data, weight.dtype, cos_sin.data, cos_sin.dtype, cols, (int)head_dim, rope_dim, eps);
    cuda_launched(s, "rms_norm_rope");
}
