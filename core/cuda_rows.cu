/* Moving rows and column blocks:
 *   gather_rows       y[i] = x[index[i]]                       (MoE dispatch)
 *   scatter_add_rows  y[index[i]] += weight[i] * x[i]          (MoE combine)
 *   split_columns     y[p * M + r, j] = x[r, p * w + j], w = C / parts, and
 *   merge_columns     its inverse                              (Ulysses packing)
 *   transpose         y[j, i] = x[i, j]                        (VAE image <-> tokens)
 * Several slots may add into one row (top-k > 1), and y is BF16, so the adds
 * cannot be float atomics. scatter_add_rows is deterministic instead: a
 * stable radix sort of the slots by destination row (CUB), then one thread
 * block per destination row adds its slots in slot order, in FP32, and rounds
 * once, the same order as the CPU backend's serial loop. */
#include "core/cuda_common.cuh"

#include <cub/device/device_radix_sort.cuh>

/* One block per destination row; W values per access: 8 BF16 values through
 * 16 bytes where both tensors allow it (the element-wise kernel this
 * replaced divided twice per element and ran at ~1.3 TB/s on an H200), else
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

static unsigned rows_threads(int64_t units) { return units >= 1024 ? 256 : units >= 128 ? 128 : 64; }

__global__ void iota_kernel(uint32_t *values, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        values[i] = (uint32_t)i;
}

/* First position in sorted[0, n) whose key is >= key. */
__device__ int64_t lower_bound(const uint32_t *sorted, int64_t n, uint32_t key)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (sorted[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* [*first, *last): the positions in the sorted keys of this block's row. */
__device__ __forceinline__ void row_slots(const uint32_t *sorted_rows, int64_t n, int64_t *first, int64_t *last)
{
    __shared__ int64_t range[2];
    if (threadIdx.x == 0) {
        range[0] = lower_bound(sorted_rows, n, blockIdx.x);
        range[1] = lower_bound(sorted_rows, n, blockIdx.x + 1);
    }
    __syncthreads();
    *first = range[0];
    *last = range[1];
}

/* Block `row` adds the slots sorted_slots[first, last) whose key is row, W
 * values per access (as gather_rows_kernel), in slot order. */
template <int W>
__global__ void scatter_rows_kernel(void *y, int dy, const void *x, int dx, const void *weight, int dw,
                                    const uint32_t *sorted_rows, const uint32_t *sorted_slots, int64_t n, int64_t cols)
{
    uint32_t row = blockIdx.x;
    int64_t first, last;
    row_slots(sorted_rows, n, &first, &last);
    if (first == last) return;
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        float acc[W], v[W];
        ldw<W>(y, dy, (int64_t)row * cols + c, acc);
        for (int64_t j = first; j < last; j++) {
            int64_t slot = sorted_slots[j];
            float w = ld(weight, dw, slot);
            ldw<W>(x, dx, slot * cols + c, v);
#pragma unroll
            for (int k = 0; k < W; k++) acc[k] += w * v[k];
        }
        stw<W>(y, dy, (int64_t)row * cols + c, acc);
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
        gather_rows_kernel<8><<<(unsigned)n, rows_threads(cols / 8), 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype,
                                                                                   rows, cols);
    else
        gather_rows_kernel<1><<<(unsigned)n, rows_threads(cols), 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype,
                                                                               rows, cols);
    cuda_launched(s, "gather_rows");
}

static int bits_for(int64_t values)
{
    int bits = 1;
    while (bits < 32 && ((int64_t)1 << bits) < values) bits++;
    return bits;
}

void cuda_scatter_add_rows(backend *be, tensor y, tensor x, tensor index, tensor weight)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&index), cols = tensor_cols(&x), rows = tensor_rows(&y);
    assert(index.dtype == DTYPE_I32 && tensor_rows(&x) == n && tensor_cols(&y) == cols);
    assert(tensor_numel(&weight) == n);
    if (n == 0 || cols == 0 || rows == 0) return;
    /* Indices are non-negative: sort them as unsigned keys on the bits that rows need. */
    const uint32_t *keys = (const uint32_t *)index.data;
    int end_bit = bits_for(rows);
    size_t sort_bytes = 0;
    cub::DeviceRadixSort::SortPairs(NULL, sort_bytes, keys, (uint32_t *)NULL, (const uint32_t *)NULL,
                                    (uint32_t *)NULL, (int)n, 0, end_bit, s->stream);
    size_t words = (size_t)(3 * n + 64) & ~(size_t)63; /* keep the sort's storage 256-byte aligned */
    char *scratch = (char *)cuda_scratch(s, words * 4 + sort_bytes);
    if (!scratch) return;
    uint32_t *sorted_rows = (uint32_t *)scratch, *slots = sorted_rows + n, *sorted_slots = slots + n;
    iota_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(slots, n);
    if (!cuda_launched(s, "scatter_add_rows (iota)")) return;
    if (!cuda_ok(s,
                 cub::DeviceRadixSort::SortPairs(scratch + words * 4, sort_bytes, keys, sorted_rows, slots,
                                                 sorted_slots, (int)n, 0, end_bit, s->stream),
                 "scatter_add_rows (sort)"))
        return;
    if (access_width(y, x, cols) == 8)
        scatter_rows_kernel<8><<<(unsigned)rows, rows_threads(cols / 8), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, weight.data, weight.dtype, sorted_rows, sorted_slots, n, cols);
    else
        scatter_rows_kernel<1><<<(unsigned)rows, rows_threads(cols), 0, s->stream>>>(
            y.data, y.dtype, x.data, x.dtype, weight.data, weight.dtype, sorted_rows, sorted_slots, n, cols);
    cuda_launched(s, "scatter_add_rows");
}

/* narrow[p * rows + r, j] <-> wide[r, p * width + j]; `split` copies wide to
 * narrow. One block per wide row, W values per access (as
 * gather_rows_kernel; W divides width): the element-wise kernel this
 * replaced divided four times per element and moved Ulysses' q, k and v at
 * ~0.9 TB/s on an H200. */
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
        column_blocks_kernel<8><<<(unsigned)rows, rows_threads(cols / 8), 0, s->stream>>>(
            narrow.data, narrow.dtype, wide.data, wide.dtype, rows, cols, parts, split);
    else
        column_blocks_kernel<1><<<(unsigned)rows, rows_threads(cols), 0, s->stream>>>(
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
