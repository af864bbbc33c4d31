/* What every file of the CUDA backend shares: the backend's state, error
 * bookkeeping, launch sizes, the growable device scratch buffer, and loads and
 * stores that convert any tensor dtype to and from F32 in registers.
 *
 * Kernels read and write through ld()/st() with the tensor's dtype passed as
 * an argument, so every op accepts F32, F16 and BF16 tensors alike (the model
 * runs in BF16; small side tensors such as the RoPE table, gate weights and
 * group-norm statistics stay F32). The dtype branch is uniform across a warp. */
#ifndef MOEDIT_BACKEND_CUDA_CUDA_COMMON_CUH
#define MOEDIT_BACKEND_CUDA_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend/alloc_count.h"
#include "backend/cuda/cuda_ops.h"
#include "core/error.h"
}

#include <assert.h>
#include <string.h>

#define CUDA_THREADS 256

struct cuda_gemm_cache;
struct cuda_sdpa_cache;

struct cuda_state {
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace; /* cuBLASLt workspace */
    size_t workspace_bytes;
    void *scratch; /* im2col columns, sort buffers, partial sums */
    size_t scratch_bytes;
    void *staging; /* pinned host buffer for dtype conversion on upload/download */
    size_t staging_bytes;
    cudaEvent_t staged[2]; /* download: when each half of the staging buffer holds its chunk */
    /* Streamed weights (cuda_host_weights.cu), made at the first upload_async:
     * the copy stream, the compute stream's progress it waits for, and the
     * end of each slot's last copy. */
    cudaStream_t copy_stream;
    cudaEvent_t compute_done, copied[2];
    struct cuda_gemm_cache *gemm_cache;
    struct cuda_sdpa_cache *sdpa_cache; /* cuDNN's handle and attention plans (cuda_attention_cudnn.cu) */
    alloc_count allocations; /* device bytes cudaMalloc'd: alloc's, the workspace, the scratch */
    int failed;          /* a CUDA call failed: ops after it are not trustworthy */
    char failure[512];   /* the first failure's message */
};

/* A tensor with no data: for optional arguments (backend/backend.h's twin). */
static inline tensor cuda_tensor_none(void)
{
    tensor t;
    memset(&t, 0, sizeof t);
    return t;
}

/* Records a failed CUDA call (the first one wins); returns 0 on failure. */
int cuda_ok(cuda_state *s, cudaError_t status, const char *what);
/* Checks the launch just made. */
int cuda_launched(cuda_state *s, const char *kernel);

/* A device buffer of at least `bytes`, valid until the next call. Ops run in
 * stream order, so one op's scratch is free again when the next op starts. */
void *cuda_scratch(cuda_state *s, size_t bytes);

/* Grid size for a grid-stride loop over n elements. */
static inline unsigned cuda_blocks(const cuda_state *s, int64_t n)
{
    int64_t blocks = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    int64_t cap = (int64_t)s->sm_count * 16;
    if (blocks > cap) blocks = cap;
    return (unsigned)(blocks > 0 ? blocks : 1);
}

/* Threads for a kernel with one block per row whose threads walk `units`
 * accesses of the row. */
static inline unsigned cuda_row_threads(int64_t units) { return units >= 1024 ? 256 : units >= 128 ? 128 : 64; }

/* ---- device helpers ---------------------------------------------------- */

__device__ __forceinline__ float ld(const void *p, int dtype, int64_t i)
{
    if (dtype == DTYPE_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (dtype == DTYPE_F32) return ((const float *)p)[i];
    if (dtype == DTYPE_F16) return __half2float(((const __half *)p)[i]);
    /* An E4M3 code's value, without its row's scale (every code is exact in
     * F16, hence in F32): the FP8 product's fallback reads codes so. */
    if (dtype == DTYPE_F8_E4M3)
        return __half2float(__half(__nv_cvt_fp8_to_halfraw(((const __nv_fp8_storage_t *)p)[i], __NV_E4M3)));
    return (float)((const int32_t *)p)[i];
}

__device__ __forceinline__ void st(void *p, int dtype, int64_t i, float v)
{
    if (dtype == DTYPE_BF16)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
    else if (dtype == DTYPE_F32)
        ((float *)p)[i] = v;
    else if (dtype == DTYPE_F16)
        ((__half *)p)[i] = __float2half(v);
    else
        ((int32_t *)p)[i] = (int32_t)v;
}

/* Eight BF16 values through one 16-byte access: the vectorised paths of
 * element-wise kernels, for BF16 tensors on 16-byte boundaries whose
 * element count is a multiple of 8 (bf16x8_fits). Scalar BF16 accesses
 * reached about half the memory bandwidth (docs/benchmarks.md, "Figures
 * cited by source comments"). */
__device__ __forceinline__ void ld8(const void *p, int64_t i8, float v[8])
{
    uint4 raw = reinterpret_cast<const uint4 *>(p)[i8];
    const __nv_bfloat162 *pairs = reinterpret_cast<const __nv_bfloat162 *>(&raw);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 f = __bfloat1622float2(pairs[k]);
        v[2 * k] = f.x;
        v[2 * k + 1] = f.y;
    }
}

__device__ __forceinline__ void st8(void *p, int64_t i8, const float v[8])
{
    uint4 raw;
    __nv_bfloat162 *pairs = reinterpret_cast<__nv_bfloat162 *>(&raw);
#pragma unroll
    for (int k = 0; k < 4; k++) pairs[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
    reinterpret_cast<uint4 *>(p)[i8] = raw;
}

/* W consecutive values at element i: 8-wide (BF16 only, i a multiple of 8)
 * or one of any dtype; for kernels templated on their access width. */
template <int W> __device__ __forceinline__ void ldw(const void *p, int dtype, int64_t i, float v[W])
{
    if constexpr (W == 8) ld8(p, i / 8, v);
    else
        for (int k = 0; k < W; k++) v[k] = ld(p, dtype, i + k);
}

template <int W> __device__ __forceinline__ void stw(void *p, int dtype, int64_t i, const float v[W])
{
    if constexpr (W == 8) st8(p, i / 8, v);
    else
        for (int k = 0; k < W; k++) st(p, dtype, i + k, v[k]);
}

/* RoPE on W / 2 consecutive (x0, x1) pairs: (c x0 - s x1, s x0 + c x1) with
 * (c, s) the F32 table's interleaved entries from `at`. */
template <int W> __device__ __forceinline__ void rotate_pairs(float v[W], const void *table, int dt, int64_t at)
{
#pragma unroll
    for (int k = 0; k < W; k += 2) {
        float c = ld(table, dt, at + k), s = ld(table, dt, at + k + 1);
        float x0 = v[k], x1 = v[k + 1];
        v[k] = c * x0 - s * x1;
        v[k + 1] = s * x0 + c * x1;
    }
}

static inline int bf16x8_fits(tensor t)
{
    return t.dtype == DTYPE_BF16 && (uintptr_t)t.data % 16 == 0 && tensor_numel(&t) % 8 == 0;
}

/* Values per access (ldw/stw's W) for a row kernel over y and x whose rows
 * it walks in runs of `cols`: 8 where 16-byte BF16 accesses tile them, else 1. */
static inline int access_width(tensor y, tensor x, int64_t cols)
{
    return bf16x8_fits(y) && bf16x8_fits(x) && cols % 8 == 0 ? 8 : 1;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the total. `shared` holds 32 floats. */
__device__ __forceinline__ float block_sum(float v, float *shared)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* shared may still be read by a previous call */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0f;
    return warp_sum(v);
}

/* ---- shared between the .cu files ------------------------------------ */

/* cuda_gemm.cu: y[M, N] = a[M, K] op(b) (+ bias[N]), op(b) = b^T for b [N, K]
 * (b_is_nk) or b for b [K, N]; leading dimensions in elements. All of a, b, y
 * carry their own dtype. F8_E4M3 a and b (both, b_is_nk) carry F32 row
 * scales (a: [M], b: [N]) and give
 *   y[m, n] = (sum_k a[m, k] b[n, k]) * (a.scale[m] * b.scale[n]) + bias[n]
 * (docs/fp8.md); scale is NULL for the other dtypes. */
typedef struct cuda_matrix {
    const void *data;
    tensor_dtype dtype;
    int64_t ld;
    const float *scale;
} cuda_matrix;

void cuda_gemm(cuda_state *s, void *y, tensor_dtype y_dtype, int64_t ldy, cuda_matrix a, cuda_matrix b, int b_is_nk,
               int64_t m, int64_t n, int64_t k, tensor bias);
void cuda_gemm_cache_free(cuda_state *s);
/* cuda_fp8.cu: backend.h's linear and linear_grouped for F8_E4M3 weights
 * (x BF16/F16/F32, quantized per row here, or F8_E4M3 with its scales). */
void cuda_fp8_linear(backend *be, tensor y, tensor x, tensor w, tensor bias);
void cuda_fp8_linear_grouped(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups);
void cuda_sdpa_cache_free(cuda_state *s);

/* cuda_attention_gemm.cu: attention of any head dim through cuBLASLt, softmax of scale * q k^T (+ bias[H, Sq, Sk]
 * F32 when bias is not NULL; not with causal); 0 when the dtypes differ. */
int cuda_attention_gemm(cuda_state *s, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads, int causal,
                        const float *bias, float scale);

/* cuda_elementwise.cu */
void cuda_convert(cuda_state *s, void *dst, tensor_dtype dst_dtype, const void *src, tensor_dtype src_dtype, int64_t n);
/* y[cols, rows] = x[rows, cols]^T on the state's stream (cuda_rows.cu). */
void cuda_transpose_on(cuda_state *s, void *y, tensor_dtype y_dtype, const void *x, tensor_dtype x_dtype, int64_t rows,
                       int64_t cols);
/* y[i * ld + j] += bias[i] (rows) or bias[j] (cols), for i < rows, j < cols. */
void cuda_add_bias_rows(cuda_state *s, void *y, tensor_dtype y_dtype, tensor bias, int64_t rows, int64_t cols,
                        int64_t ld);
void cuda_add_bias_cols(cuda_state *s, void *y, tensor_dtype y_dtype, tensor bias, int64_t rows, int64_t cols,
                        int64_t ld);

/* cuda_attention.cu: raises the kernels' shared-memory limit; 0 on failure. */
int cuda_attention_setup(cuda_state *s);
/* cuda_attention_cudnn.cu: cuDNN's fused attention when the build has the
 * cuDNN frontend, unless MOEDIT_ATTENTION=moedit; 1 done, 0 declined (nothing
 * launched), -1 failure recorded. */
int cuda_attention_cudnn(cuda_state *s, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads, int causal);
/* cuda_flash_attention.cu: the tensor-core attention; 0 (nothing launched) when
 * the tensors are not BF16 or the head dim is not a multiple of 16 up to 128. */
int cuda_flash_attention(cuda_state *s, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads, int causal);
/* The same kernel with softmax(scale q k^T + bias) v, bias F32 [H, Sq, Sk]
 * (T5's attention_bias; masked keys -FLT_MAX); 0 on the same terms. */
int cuda_flash_attention_bias(cuda_state *s, tensor out, tensor q, tensor k, tensor v, int heads, const float *bias,
                              float scale);

#endif
