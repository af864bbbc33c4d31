/* Elementwise CUDA kernels, FP32 arithmetic in registers:
 *   fill         y = value
 *   convert      y = x (between dtypes)
 *   add          y = a + b
 *   silu         y = x * sigmoid(x)
 *   swiglu       y = silu(gate) * up
 *   gated_residual  x[M, C] += gate[C] * y[M, C]
 *   scale_rows   x[i, :] *= s[i]
 *   bias rows / cols   y[i, j] += bias[i] (conv2d) or bias[j] (linear fallback)
 *   rope         (x0, x1) -> (c x0 - s x1, s x0 + c x1) on the first rope_dim
 *                channels of each head, (c, s) from an F32 table [S, rope_dim].
 * Each works in place (y may be x); each thread reads then writes its own
 * elements only. */
#include "backend/cuda/cuda_common.cuh"

__global__ void fill_kernel(void *y, int dt, int64_t n, float value)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(y, dt, i, value);
}

__global__ void convert_kernel(void *y, int dy, const void *x, int dx, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(y, dy, i, ld(x, dx, i));
}

__global__ void add_kernel(void *y, int dy, const void *a, int da, const void *b, int db, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(y, dy, i, ld(a, da, i) + ld(b, db, i));
}

__device__ __forceinline__ float silu_f(float v) { return v / (1.0f + expf(-v)); }

__global__ void silu_kernel(void *y, int dy, const void *x, int dx, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(y, dy, i, silu_f(ld(x, dx, i)));
}

__global__ void swiglu_kernel(void *y, int dy, const void *gate, int dg, const void *up, int du, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(y, dy, i, silu_f(ld(gate, dg, i)) * ld(up, du, i));
}

__global__ void gated_residual_kernel(void *x, int dx, const void *gate, int dg, const void *y, int dy, int64_t n,
                                      int64_t cols)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(x, dx, i, ld(x, dx, i) + ld(gate, dg, i % cols) * ld(y, dy, i));
}

/* y = op(a, b) on eight BF16 values at a time (n8 = n / 8). */
template <typename Op> __global__ void binary_bf16x8_kernel(void *y, const void *a, const void *b, int64_t n8, Op op)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        float va[8], vb[8];
        ld8(a, i, va);
        ld8(b, i, vb);
#pragma unroll
        for (int k = 0; k < 8; k++) va[k] = op(va[k], vb[k]);
        st8(y, i, va);
    }
}

struct add_op {
    __device__ float operator()(float a, float b) const { return a + b; }
};
struct swiglu_op {
    __device__ float operator()(float gate, float up) const { return silu_f(gate) * up; }
};

/* cols8 = cols / 8: eight values never straddle a row. */
__global__ void gated_residual_bf16x8_kernel(void *x, const void *gate, int dg, const void *y, int64_t n8, int64_t cols8)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        float vx[8], vy[8];
        ld8(x, i, vx);
        ld8(y, i, vy);
        int64_t col = (i % cols8) * 8;
#pragma unroll
        for (int k = 0; k < 8; k++) vx[k] += ld(gate, dg, col + k) * vy[k];
        st8(x, i, vx);
    }
}

__global__ void scale_rows_kernel(void *x, int dx, const void *scale, int ds, int64_t n, int64_t cols)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(x, dx, i, ld(x, dx, i) * ld(scale, ds, i / cols));
}

/* y[i * ld + j] += bias[by_row ? i : j] */
__global__ void add_bias_kernel(void *y, int dy, const void *bias, int db, int64_t rows, int64_t cols, int64_t ld_y,
                                int by_row)
{
    int64_t n = rows * cols;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / cols, j = e % cols;
        st(y, dy, i * ld_y + j, ld(y, dy, i * ld_y + j) + ld(bias, db, by_row ? i : j));
    }
}

/* W consecutive channels per thread: 8 (4 pairs through one 16-byte access,
 * BF16 rows whose head and rope widths are multiples of 8), else 2 (one pair,
 * any dtype). A chunk lies wholly inside or outside a head's rotated
 * channels, and its (c, s) pairs are the table's entries at the same offset.
 * The one-pair kernel this replaced (64-bit divisions per pair, 2-byte
 * accesses) ran at ~1.2 TB/s on q and k at 2048x2048. */
template <int W>
__global__ void rope_kernel(void *x, int dx, const void *table, int dt, int64_t rows, int64_t cols, int head_dim,
                            int rope_dim)
{
    int64_t chunks = cols / W, n = rows * chunks;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = e / chunks, col = (e - row * chunks) * W;
        int d = (int)(col % head_dim);
        if (d >= rope_dim) continue;
        float v[W];
        ldw<W>(x, dx, row * cols + col, v);
        rotate_pairs<W>(v, table, dt, row * rope_dim + d);
        stw<W>(x, dx, row * cols + col, v);
    }
}

void cuda_fill(backend *be, tensor dst, float value)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&dst);
    if (n == 0) return;
    fill_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(dst.data, dst.dtype, n, value);
    cuda_launched(s, "fill");
}

void cuda_convert(cuda_state *s, void *dst, tensor_dtype dst_dtype, const void *src, tensor_dtype src_dtype, int64_t n)
{
    if (n == 0) return;
    convert_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(dst, dst_dtype, src, src_dtype, n);
    cuda_launched(s, "convert");
}

void cuda_add(backend *be, tensor y, tensor a, tensor b)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&y);
    assert(tensor_numel(&a) == n && tensor_numel(&b) == n);
    if (n == 0) return;
    if (bf16x8_fits(y) && bf16x8_fits(a) && bf16x8_fits(b))
        binary_bf16x8_kernel<<<cuda_blocks(s, n / 8), CUDA_THREADS, 0, s->stream>>>(y.data, a.data, b.data, n / 8,
                                                                                     add_op());
    else
        add_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(y.data, y.dtype, a.data, a.dtype, b.data,
                                                                       b.dtype, n);
    cuda_launched(s, "add");
}

void cuda_silu(backend *be, tensor y, tensor x)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&y);
    assert(tensor_numel(&x) == n);
    if (n == 0) return;
    silu_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype, n);
    cuda_launched(s, "silu");
}

void cuda_swiglu(backend *be, tensor y, tensor gate, tensor up)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&y);
    assert(tensor_numel(&gate) == n && tensor_numel(&up) == n);
    if (n == 0) return;
    if (bf16x8_fits(y) && bf16x8_fits(gate) && bf16x8_fits(up))
        binary_bf16x8_kernel<<<cuda_blocks(s, n / 8), CUDA_THREADS, 0, s->stream>>>(y.data, gate.data, up.data,
                                                                                     n / 8, swiglu_op());
    else
        swiglu_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(y.data, y.dtype, gate.data, gate.dtype,
                                                                          up.data, up.dtype, n);
    cuda_launched(s, "swiglu");
}

void cuda_gated_residual(backend *be, tensor x, tensor gate, tensor y)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&y) == n && tensor_numel(&gate) == cols);
    if (n == 0) return;
    if (access_width(x, y, cols) == 8)
        gated_residual_bf16x8_kernel<<<cuda_blocks(s, n / 8), CUDA_THREADS, 0, s->stream>>>(x.data, gate.data, gate.dtype,
                                                                                             y.data, n / 8, cols / 8);
    else
        gated_residual_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(x.data, x.dtype, gate.data,
                                                                                  gate.dtype, y.data, y.dtype, n, cols);
    cuda_launched(s, "gated_residual");
}

void cuda_scale_rows(backend *be, tensor x, tensor row_scale)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&row_scale) == tensor_rows(&x));
    if (n == 0) return;
    scale_rows_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(x.data, x.dtype, row_scale.data,
                                                                          row_scale.dtype, n, cols);
    cuda_launched(s, "scale_rows");
}

static void add_bias(cuda_state *s, void *y, tensor_dtype y_dtype, tensor bias, int64_t rows, int64_t cols, int64_t ld,
                     int by_row)
{
    if (rows * cols == 0 || !bias.data) return;
    add_bias_kernel<<<cuda_blocks(s, rows * cols), CUDA_THREADS, 0, s->stream>>>(y, y_dtype, bias.data, bias.dtype,
                                                                                 rows, cols, ld, by_row);
    cuda_launched(s, "add_bias");
}

void cuda_add_bias_rows(cuda_state *s, void *y, tensor_dtype y_dtype, tensor bias, int64_t rows, int64_t cols,
                        int64_t ld)
{
    add_bias(s, y, y_dtype, bias, rows, cols, ld, 1);
}

void cuda_add_bias_cols(cuda_state *s, void *y, tensor_dtype y_dtype, tensor bias, int64_t rows, int64_t cols,
                        int64_t ld)
{
    add_bias(s, y, y_dtype, bias, rows, cols, ld, 0);
}

void cuda_rope(backend *be, tensor x, tensor cos_sin, int heads, int rope_dim)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x), head_dim = cols / heads;
    assert(rope_dim % 2 == 0 && rope_dim <= head_dim && tensor_cols(&cos_sin) == rope_dim);
    assert(tensor_rows(&cos_sin) >= rows && head_dim % 2 == 0);
    if (rows * rope_dim == 0) return;
    if (bf16x8_fits(x) && head_dim % 8 == 0 && rope_dim % 8 == 0)
        rope_kernel<8><<<cuda_blocks(s, rows * cols / 8), CUDA_THREADS, 0, s->stream>>>(
            x.data, x.dtype, cos_sin.data, cos_sin.dtype, rows, cols, (int)head_dim, rope_dim);
    else
        rope_kernel<2><<<cuda_blocks(s, rows * cols / 2), CUDA_THREADS, 0, s->stream>>>(
            x.data, x.dtype, cos_sin.data, cos_sin.dtype, rows, cols, (int)head_dim, rope_dim);
    cuda_launched(s, "rope");
}
