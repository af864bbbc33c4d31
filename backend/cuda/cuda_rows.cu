/* Moving rows and column blocks:
 *   gather_rows       y[i] = x[index[i]]                       (MoE dispatch)
 *   combine_rows      y[r] += sum of weight[p] * x[p - first] over the K
 *                     positions p = positions[r, :] that x holds, ascending
 *                                                                (MoE combine)
 *   split_columns     y[p * M + r, j] = x[r, p * w + j], w = C / parts, and
 *   merge_columns     its inverse                              (Ulysses packing)
 *   transpose         y[j, i] = x[i, j]                        (VAE image <-> tokens)
 * Each token row gathers its own K slots (their positions come from the
 * dispatch), so no two threads write one row and the sum's order is fixed:
 * ascending position, in FP32, rounded once, the CPU backend's order. (The
 * scatter this replaced sorted the slots by destination row with a CUB radix
 * sort on every call.) */
#include "backend/cuda/cuda_common.cuh"

/* One block per destination row; W values per access: 8 BF16 values through
 * 16 bytes where both tensors allow it (the element-wise kernel this
 * replaced divided twice per element and stayed well below the memory
 * bandwidth; docs/benchmarks.md, "Figures cited by source comments"), else
 * one value of any dtype. */
template <int W>
__global__ void gather_rows_kernel(void *y, int dy, const void *x, int dx, const int32_t *index, int64_t cols)
{
    const int64_t from = (int64_t)index[blockIdx.x] * cols, to = (int64_t)blockIdx.x * cols;
    float v[W];
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, from + c, v);
        stw<W>(y, dy, to + c, v);
    }
}

void cuda_gather_rows(backend *be, tensor y, tensor x, tensor index)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&index), cols = tensor_cols(&x);
    assert(index.dtype == DTYPE_I32 && tensor_rows(&y) == n && tensor_cols(&y) == cols);
    if (n * cols == 0) return;
    const int32_t *rows = (const int32_t *)index.data;
    if (access_width(y, x, cols) == 8)
        gather_rows_kernel<8><<<(unsigned)n, cuda_row_threads(cols / 8), 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype,
                                                                                   rows, cols);
    else
        gather_rows_kernel<1><<<(unsigned)n, cuda_row_threads(cols), 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype,
                                                                               rows, cols);
    cuda_launched(s, "gather_rows");
}

/* Block `row`: y[row] += its K slots' weighted rows, ascending by position
 * (sorted once into shared memory), W values per access (as gather_rows_kernel). */
template <int W>
__global__ void combine_rows_kernel(void *y, int dy, const void *x, int dx, const float *weight, const int32_t *positions,
                                    int k, int64_t cols, int64_t first, int64_t held)
{
    extern __shared__ int32_t order[]; /* [k] */
    if (threadIdx.x == 0) {
        for (int j = 0; j < k; j++) { /* insertion sort: k is small */
            int32_t p = positions[(int64_t)blockIdx.x * k + j];
            int at = j;
            while (at > 0 && order[at - 1] > p) {
                order[at] = order[at - 1];
                at--;
            }
            order[at] = p;
        }
    }
    __syncthreads();
    const int64_t row = (int64_t)blockIdx.x * cols;
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        float acc[W], v[W];
        ldw<W>(y, dy, row + c, acc);
        for (int j = 0; j < k; j++) {
            int64_t p = order[j];
            if (p < first || p >= first + held) continue; /* another rank's slot */
            float w = weight[p];
            ldw<W>(x, dx, (p - first) * cols + c, v);
#pragma unroll
            for (int i = 0; i < W; i++) acc[i] += w * v[i];
        }
        stw<W>(y, dy, row + c, acc);
    }
}

void cuda_combine_rows(backend *be, tensor y, tensor x, tensor positions, tensor weight, int64_t first)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&y), cols = tensor_cols(&y), held = tensor_rows(&x);
    int k = (int)tensor_cols(&positions);
    assert(positions.dtype == DTYPE_I32 && tensor_rows(&positions) == rows && weight.dtype == DTYPE_F32);
    assert(tensor_cols(&x) == cols && first >= 0 && tensor_numel(&weight) >= first + held);
    if (rows == 0 || cols == 0 || k == 0) return;
    size_t shared = (size_t)k * sizeof(int32_t);
    const int32_t *at = (const int32_t *)positions.data;
    const float *w = (const float *)weight.data;
    if (access_width(y, x, cols) == 8)
        combine_rows_kernel<8><<<(unsigned)rows, cuda_row_threads(cols / 8), shared, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, w, at, k, cols, first, held);
    else
        combine_rows_kernel<1><<<(unsigned)rows, cuda_row_threads(cols), shared, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, w, at, k, cols, first, held);
    cuda_launched(s, "combine_rows");
}

/* narrow[p * rows + r, j] <-> wide[r, p * width + j]; `split` copies wide to
 * narrow. One block per wide row, W values per access (as
 * gather_rows_kernel; W divides width): the element-wise kernel this
 * replaced divided four times per element and moved Ulysses' q, k and v
 * far below the memory bandwidth (docs/benchmarks.md, "Figures cited by
 * source comments"). */
template <int W>
__global__ void column_blocks_kernel(void *narrow, int dn, void *wide, int dw, int64_t rows, int64_t cols, int parts,
                                     int split)
{
    int64_t r = blockIdx.x, width = cols / parts;
    float v[W];
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        int64_t p = c / width, at = (p * rows + r) * width + (c - p * width);
        if (split) {
            ldw<W>(wide, dw, r * cols + c, v);
            stw<W>(narrow, dn, at, v);
        } else {
            ldw<W>(narrow, dn, at, v);
            stw<W>(wide, dw, r * cols + c, v);
        }
    }
}

static void column_blocks(backend *be, tensor y, tensor x, int parts, int split)
{
    cuda_state *s = cuda_of(be);
    tensor wide = split ? x : y, narrow = split ? y : x;
    int64_t rows = tensor_rows(&wide), cols = tensor_cols(&wide);
    assert(cols % parts == 0 && tensor_numel(&narrow) == rows * cols && tensor_cols(&narrow) == cols / parts);
    if (rows * cols == 0) return;
    if (access_width(wide, narrow, cols / parts) == 8)
        column_blocks_kernel<8><<<(unsigned)rows, cuda_row_threads(cols / 8), 0, s->stream>>>(
            narrow.data, narrow.dtype, wide.data, wide.dtype, rows, cols, parts, split);
    else
        column_blocks_kernel<1><<<(unsigned)rows, cuda_row_threads(cols), 0, s->stream>>>(
            narrow.data, narrow.dtype, wide.data, wide.dtype, rows, cols, parts, split);
    cuda_launched(s, split ? "split_columns" : "merge_columns");
}

void cuda_split_columns(backend *be, tensor y, tensor x, int parts) { column_blocks(be, y, x, parts, 1); }

void cuda_merge_columns(backend *be, tensor y, tensor x, int parts) { column_blocks(be, y, x, parts, 0); }

/* 32 x 32 tiles through shared memory: reads and writes both run along rows.
 * Tiles walk the grid with strides, so any matrix fits the grid limits. */
__global__ void transpose_kernel(void *y, int dy, const void *x, int dx, int64_t rows, int64_t cols)
{
    __shared__ float tile[32][33];
    int64_t row_tiles = (rows + 31) / 32, col_tiles = (cols + 31) / 32;
    for (int64_t t = blockIdx.x; t < row_tiles * col_tiles; t += gridDim.x) {
        int64_t r0 = t / col_tiles * 32, c0 = t % col_tiles * 32;
        for (int i = threadIdx.y; i < 32; i += blockDim.y) {
            int64_t r = r0 + i, c = c0 + threadIdx.x;
            if (r < rows && c < cols) tile[i][threadIdx.x] = ld(x, dx, r * cols + c);
        }
        __syncthreads();
        for (int i = threadIdx.y; i < 32; i += blockDim.y) {
            int64_t c = c0 + i, r = r0 + threadIdx.x;
            if (r < rows && c < cols) st(y, dy, c * rows + r, tile[threadIdx.x][i]);
        }
        __syncthreads();
    }
}

void cuda_transpose_on(cuda_state *s, void *y, tensor_dtype y_dtype, const void *x, tensor_dtype x_dtype, int64_t rows,
                       int64_t cols)
{
    if (rows * cols == 0) return;
    int64_t tiles = ((rows + 31) / 32) * ((cols + 31) / 32);
    transpose_kernel<<<(unsigned)(tiles < 65535 ? tiles : 65535), dim3(32, 8), 0, s->stream>>>(y, y_dtype, x, x_dtype,
                                                                                            rows, cols);
    cuda_launched(s, "transpose");
}

void cuda_transpose(backend *be, tensor y, tensor x)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(tensor_numel(&y) == rows * cols);
    cuda_transpose_on(cuda_of(be), y.data, y.dtype, x.data, x.dtype, rows, cols);
}
