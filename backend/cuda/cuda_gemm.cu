/* Matrix products on the GPU: nn.Linear (y = x w^T + b) and the per-expert
 * loop of grouped linears, through cuBLASLt: BF16 operands, FP32 compute,
 * BF16 (or F32) output, bias fused as the epilogue. FP8 products (E4M3
 * operands with F32 row scales, docs/fp8.md) take the same path with
 * cuBLASLt's outer-vector scales (entry_build); cuda_fp8.cu quantizes their
 * activations.
 *
 * Row-major y[M, N] = a[M, K] op(b) is, read column-major, y^T = op(b)^T a^T:
 * cuBLASLt's A is our b, its B is our a, its D is y^T with the same memory.
 * A heuristic query costs tens of microseconds, so each problem's descriptors
 * and chosen algorithm are kept in a small direct-mapped cache keyed by
 * shape, dtypes, leading dimensions and pointer alignment. Problems cuBLASLt
 * declines (odd dtype mixes, unaligned views) go to a plain tiled kernel, so
 * every shape works.
 *
 * The routed experts' row counts change with every call, so a key by the
 * exact M would query the heuristic (and build descriptors, and evict an
 * entry) for nearly every expert product. M is therefore keyed by a bucket
 * (rounded up, see bucket_rows) and the entry's layouts are set to the exact
 * M before each product; an algorithm chosen for a bucket that cuBLASLt
 * refuses at a smaller M falls back to the heuristic's choice for that exact
 * M. MOEDIT_GEMM_CACHE=exact keys by the exact M instead (for A/B runs;
 * docs/benchmarks.md has both). */
#include "backend/cuda/cuda_common.cuh"
#include "core/env_choice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEMM_CACHE_SIZE 1024
#define FALLBACK_TILE 16
#define GEMM_CACHE_WAYS 4

typedef struct gemm_key {
    int64_t m, n, k, lda, ldb, ldy;
    int a_dtype, y_dtype, b_is_nk, bias, align_a, align_b, align_y;
} gemm_key;

typedef struct gemm_entry {
    gemm_key key;
    int used; /* descriptors exist */
    int found; /* cuBLASLt has an algorithm for it */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t layout_a, layout_b, layout_y;
    int64_t layout_m; /* the M that layout_b and layout_y describe now */
    cublasLtMatmulAlgo_t algo;
} gemm_entry;

typedef struct cuda_gemm_cache {
    gemm_entry entries[GEMM_CACHE_SIZE];
} cuda_gemm_cache;

static void entry_release(gemm_entry *e)
{
    if (!e->used) return;
    if (e->layout_a) cublasLtMatrixLayoutDestroy(e->layout_a);
    if (e->layout_b) cublasLtMatrixLayoutDestroy(e->layout_b);
    if (e->layout_y) cublasLtMatrixLayoutDestroy(e->layout_y);
    if (e->op) cublasLtMatmulDescDestroy(e->op);
    memset(e, 0, sizeof *e);
}

void cuda_gemm_cache_free(cuda_state *s)
{
    if (!s->gemm_cache) return;
    for (int i = 0; i < GEMM_CACHE_SIZE; i++) entry_release(&s->gemm_cache->entries[i]);
    free(s->gemm_cache);
    s->gemm_cache = NULL;
}

static cudaDataType_t cuda_type(int dtype)
{
    if (dtype == DTYPE_F8_E4M3) return CUDA_R_8F_E4M3;
    return dtype == DTYPE_BF16 ? CUDA_R_16BF : dtype == DTYPE_F16 ? CUDA_R_16F : CUDA_R_32F;
}

static int alignment(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    int a = 16;
    while (a > 1 && p % (uintptr_t)a) a /= 2;
    return a;
}

static uint64_t key_hash(const gemm_key *key)
{
    const unsigned char *bytes = (const unsigned char *)key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *key; i++) h = (h ^ bytes[i]) * 1099511628211ull;
    return h;
}

/* FP8 (docs/fp8.md): D[i, j] = scale_A[i] scale_B[j] sum_l A[l, i] B[l, j]
 * (+ bias[i]) in cuBLASLt's terms, its A being our weight (scale_A = the
 * weight's per-output-channel scales, N of them) and its B our activation
 * (scale_B = the per-token scales, M): the rule's per-row and per-column
 * scales applied by cuBLASLt itself, so no F32 output and no second pass.
 * This is CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, which the cuBLAS
 * documentation ("Narrow Precision Data Types Usage", its table of scaling
 * modes) lists for compute capability 9.0 with E4M3/E5M2 operands and F32
 * scale vectors, and D in F16, BF16 or F32 (cublasLt.h of CUDA 12.9 and 13
 * declares it). Its order of the two scale multiplications is cuBLASLt's;
 * against the rule's (x_scale * w_scale first) that is an F32 rounding,
 * below the BF16 output's. Fast accumulation stays off: Hopper's FP8
 * tensor cores keep fewer bits than F32 in their accumulators, and with it
 * off cuBLASLt adds their partial sums into F32 registers, the rule's F32
 * sum. The scale pointers are set before each product (set_pointers).
 * 0 when this cuBLASLt lacks the mode (older than 12.9): then the problem
 * has no algorithm here and takes the plain kernel, rather than a product
 * whose vector scales would be read as one scalar. */
static int fp8_scales_build(cublasLtMatmulDesc_t op, cudaDataType_t out)
{
    cublasLtMatmulMatrixScale_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    int8_t fast_accumulation = 0;
    if (cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast_accumulation,
                                       sizeof fast_accumulation) != CUBLAS_STATUS_SUCCESS)
        return 0;
    /* The bias is fused only when it has y's dtype (cuda_gemm); cuBLASLt's
     * default bias type is D's, except for FP8 products of F32 output. */
    return out != CUDA_R_32F || cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &out,
                                                               sizeof out) == CUBLAS_STATUS_SUCCESS;
}

/* Descriptors, layouts and the heuristic's best algorithm for one problem. */
static void entry_build(cuda_state *s, gemm_entry *e, const gemm_key *key)
{
    memset(e, 0, sizeof *e);
    e->key = *key;
    e->used = 1;
    e->layout_m = key->m;
    cudaDataType_t in = cuda_type(key->a_dtype), out = cuda_type(key->y_dtype);
    cublasOperation_t trans_a = key->b_is_nk ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
    if (cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) return;
    cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a);
    cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b);
    if (key->bias) {
        cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
    }
    if (key->a_dtype == DTYPE_F8_E4M3 && !fp8_scales_build(e->op, out)) return;
    /* cuBLASLt's A is our b: [K, N] column-major when b is [N, K] row-major. */
    uint64_t a_rows = key->b_is_nk ? key->k : key->n, a_cols = key->b_is_nk ? key->n : key->k;
    if (cublasLtMatrixLayoutCreate(&e->layout_a, in, a_rows, a_cols, key->ldb) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&e->layout_b, in, key->k, key->m, key->lda) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&e->layout_y, out, key->n, key->m, key->ldy) != CUBLAS_STATUS_SUCCESS)
        return;
    cublasLtMatmulPreference_t preference;
    if (cublasLtMatmulPreferenceCreate(&preference) != CUBLAS_STATUS_SUCCESS) return;
    uint32_t align_a = key->align_b, align_b = key->align_a, align_y = key->align_y; /* swapped roles */
    cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &s->workspace_bytes,
                                         sizeof s->workspace_bytes);
    cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                         sizeof align_a);
    cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                         sizeof align_b);
    cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_y,
                                         sizeof align_y);
    cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_y,
                                         sizeof align_y);
    cublasLtMatmulHeuristicResult_t result;
    int count = 0;
    cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(s->lt, e->op, e->layout_a, e->layout_b, e->layout_y,
                                                           e->layout_y, preference, 1, &result, &count);
    cublasLtMatmulPreferenceDestroy(preference);
    if (status == CUBLAS_STATUS_SUCCESS && count > 0) {
        e->algo = result.algo;
        e->found = 1;
    }
}

/* 1 when MOEDIT_GEMM_CACHE=exact asks for a key by the exact M. */
static int exact_rows(void)
{
    static int mode = -1;
    if (mode < 0) {
        static const char *const choices[2] = {"bucket", "exact"};
        static int warned;
        mode = env_choice("MOEDIT_GEMM_CACHE", choices, 2, 0, &warned);
    }
    return mode == 1;
}

/* The cache's M for a product of m rows: exact when small, else rounded up
 * to 128 (up to 2048 rows) or 512 rows, so that the experts' changing row
 * counts share a few entries. Rounding up keeps a split-K workspace need
 * within what the heuristic checked. */
static int64_t bucket_rows(int64_t m)
{
    if (exact_rows() || m <= 256) return m;
    int64_t step = m <= 2048 ? 128 : 512;
    return (m + step - 1) / step * step;
}

/* Points the entry's layouts at m rows (its key may be a bucket of them). */
static void set_rows(gemm_entry *e, int64_t m)
{
    if (e->layout_m == m) return;
    uint64_t cols = (uint64_t)m;
    cublasLtMatrixLayoutSetAttribute(e->layout_b, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols);
    cublasLtMatrixLayoutSetAttribute(e->layout_y, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols);
    e->layout_m = m;
}

static gemm_entry *cache_lookup(cuda_state *s, const gemm_key *key)
{
    if (!s->gemm_cache) {
        s->gemm_cache = (cuda_gemm_cache *)calloc(1, sizeof *s->gemm_cache);
        if (!s->gemm_cache) return NULL;
    }
    /* Four slots per key, so that two keys of one hash slot do not evict
     * each other on every product. */
    uint64_t slot = key_hash(key) % GEMM_CACHE_SIZE;
    gemm_entry *free_slot = NULL;
    for (int probe = 0; probe < GEMM_CACHE_WAYS; probe++) {
        gemm_entry *e = &s->gemm_cache->entries[(slot + probe) % GEMM_CACHE_SIZE];
        if (e->used && memcmp(&e->key, key, sizeof *key) == 0) return e;
        if (!e->used && !free_slot) free_slot = e;
    }
    gemm_entry *e = free_slot ? free_slot : &s->gemm_cache->entries[slot];
    entry_release(e);
    entry_build(s, e, key);
    return e;
}

/* The pointers a product passes through its descriptor: the bias, and an
 * FP8 product's scales (cuBLASLt's A is our b). */
static void set_pointers(gemm_entry *e, const void *bias, cuda_matrix a, cuda_matrix b)
{
    if (bias) cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (!a.scale) return;
    cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &b.scale, sizeof b.scale);
    cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &a.scale, sizeof a.scale);
}

static cublasStatus_t run_algo(cuda_state *s, gemm_entry *e, const cublasLtMatmulAlgo_t *algo, void *y,
                               cuda_matrix a, cuda_matrix b)
{
    float alpha = 1.0f, beta = 0.0f;
    return cublasLtMatmul(s->lt, e->op, &alpha, b.data, e->layout_a, a.data, e->layout_b, &beta, y, e->layout_y, y,
                          e->layout_y, algo, s->workspace, s->workspace_bytes, s->stream);
}

/* The cuBLASLt path; 0 when cuBLASLt has no algorithm for the problem. */
static int lt_gemm(cuda_state *s, void *y, tensor_dtype y_dtype, int64_t ldy, cuda_matrix a, cuda_matrix b,
                   int b_is_nk, int64_t m, int64_t n, int64_t k, const void *bias)
{
    int half = a.dtype == DTYPE_BF16 || a.dtype == DTYPE_F16, fp8 = a.dtype == DTYPE_F8_E4M3;
    if (a.dtype != b.dtype || !(half || fp8 || a.dtype == DTYPE_F32)) return 0;
    if (fp8 ? !(a.scale && b.scale && b_is_nk && (y_dtype == DTYPE_BF16 || y_dtype == DTYPE_F16 ||
                                                   y_dtype == DTYPE_F32))
            : !(y_dtype == a.dtype || y_dtype == DTYPE_F32))
        return 0;
    gemm_key key;
    memset(&key, 0, sizeof key); /* padding takes part in the hash */
    key.m = bucket_rows(m), key.n = n, key.k = k, key.lda = a.ld, key.ldb = b.ld, key.ldy = ldy;
    key.a_dtype = a.dtype, key.y_dtype = y_dtype, key.b_is_nk = b_is_nk, key.bias = bias != NULL;
    key.align_a = alignment(a.data), key.align_b = alignment(b.data), key.align_y = alignment(y);
    gemm_entry *e = cache_lookup(s, &key);
    if (!e || !e->found) return 0;
    set_rows(e, m);
    set_pointers(e, bias, a, b);
    cublasStatus_t status = run_algo(s, e, &e->algo, y, a, b);
    if (status != CUBLAS_STATUS_SUCCESS && key.m != m) {
        /* The bucket's algorithm does not take this M: the heuristic's choice
         * for it, cached under the exact M (which no bucket key equals, as
         * the bucket differs from m) so the query runs once. */
        key.m = m;
        e = cache_lookup(s, &key);
        status = CUBLAS_STATUS_NOT_SUPPORTED;
        if (e && e->found) {
            set_pointers(e, bias, a, b);
            status = run_algo(s, e, &e->algo, y, a, b);
        }
    }
    if (status != CUBLAS_STATUS_SUCCESS) {
        if (!s->failed) {
            snprintf(s->failure, sizeof s->failure, "cuBLASLt matmul [%lld x %lld x %lld] failed: status %d",
                     (long long)m, (long long)n, (long long)k, (int)status);
            s->failed = 1;
        }
        error_set("%s", s->failure);
    }
    return 1;
}

/* The plain path: one thread per output element, 16x16 tiles through shared
 * memory, FP32 sums. Rows tile over blockIdx.y with a stride so any M fits.
 * FP8 operands are read as their codes' values and the sum scaled by
 * a_scale[row] * b_scale[col] (docs/fp8.md's order) when a_scale is given. */
__global__ void gemm_fallback_kernel(void *y, int dy, int64_t ldy, const void *a, int da, int64_t lda, const void *b,
                                     int db, int64_t ldb, int b_is_nk, int64_t m, int64_t n, int64_t k,
                                     const void *bias, int dbias, const float *a_scale, const float *b_scale)
{
    __shared__ float a_tile[FALLBACK_TILE][FALLBACK_TILE + 1];
    __shared__ float b_tile[FALLBACK_TILE][FALLBACK_TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t col = (int64_t)blockIdx.x * FALLBACK_TILE + tx;
    int64_t row_tiles = (m + FALLBACK_TILE - 1) / FALLBACK_TILE;
    for (int64_t tile = blockIdx.y; tile < row_tiles; tile += gridDim.y) {
        int64_t row = tile * FALLBACK_TILE + ty;
        float acc = 0.0f;
        for (int64_t k0 = 0; k0 < k; k0 += FALLBACK_TILE) {
            int64_t ka = k0 + tx, kb = k0 + ty;
            /* a_tile[ty][tx] = a[row, k0 + tx]; b_tile[ty][tx] = op(b)[k0 + ty, col] */
            a_tile[ty][tx] = row < m && ka < k ? ld(a, da, row * lda + ka) : 0.0f;
            float bv = 0.0f;
            if (col < n && kb < k) bv = b_is_nk ? ld(b, db, col * ldb + kb) : ld(b, db, kb * ldb + col);
            b_tile[ty][tx] = bv;
            __syncthreads();
            for (int i = 0; i < FALLBACK_TILE; i++) acc += a_tile[ty][i] * b_tile[i][tx];
            __syncthreads();
        }
        if (row < m && col < n) {
            if (a_scale) acc = __fmul_rn(acc, __fmul_rn(a_scale[row], b_scale[col]));
            st(y, dy, row * ldy + col, __fadd_rn(acc, bias ? ld(bias, dbias, col) : 0.0f));
        }
    }
}

void cuda_gemm(cuda_state *s, void *y, tensor_dtype y_dtype, int64_t ldy, cuda_matrix a, cuda_matrix b, int b_is_nk,
               int64_t m, int64_t n, int64_t k, tensor bias)
{
    if (m == 0 || n == 0) return;
    int fuse_bias = bias.data && bias.dtype == y_dtype;
    if (k > 0 && lt_gemm(s, y, y_dtype, ldy, a, b, b_is_nk, m, n, k, fuse_bias ? bias.data : NULL)) {
        if (bias.data && !fuse_bias) cuda_add_bias_cols(s, y, y_dtype, bias, m, n, ldy);
        return;
    }
    /* An FP8 product whose outer-vector scales cuBLASLt takes without the
     * bias epilogue: the bias added after (one more BF16 rounding), not the
     * plain kernel. */
    if (k > 0 && a.scale && fuse_bias && lt_gemm(s, y, y_dtype, ldy, a, b, b_is_nk, m, n, k, NULL)) {
        cuda_add_bias_cols(s, y, y_dtype, bias, m, n, ldy);
        return;
    }
    dim3 threads(FALLBACK_TILE, FALLBACK_TILE);
    int64_t row_tiles = (m + FALLBACK_TILE - 1) / FALLBACK_TILE;
    dim3 grid((unsigned)((n + FALLBACK_TILE - 1) / FALLBACK_TILE), (unsigned)(row_tiles < 65535 ? row_tiles : 65535));
    gemm_fallback_kernel<<<grid, threads, 0, s->stream>>>(y, y_dtype, ldy, a.data, a.dtype, a.ld, b.data, b.dtype,
                                                          b.ld, b_is_nk, m, n, k, bias.data, bias.dtype, a.scale,
                                                          b.scale);
    cuda_launched(s, "gemm (fallback)");
}

void cuda_linear(backend *be, tensor y, tensor x, tensor w, tensor bias)
{
    int64_t m = tensor_rows(&x), k = tensor_cols(&x), n = tensor_rows(&w);
    assert(tensor_cols(&w) == k && tensor_rows(&y) == m && tensor_cols(&y) == n);
    assert(!bias.data || tensor_numel(&bias) == n);
    if (w.dtype == DTYPE_F8_E4M3) {
        cuda_fp8_linear(be, y, x, w, bias);
        return;
    }
    cuda_matrix a = {x.data, x.dtype, k}, b = {w.data, w.dtype, k};
    cuda_gemm(cuda_of(be), y.data, y.dtype, n, a, b, 1, m, n, k, bias);
}

void cuda_linear_grouped(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups)
{
    if (groups > 0 && w[0].dtype == DTYPE_F8_E4M3) {
        cuda_fp8_linear_grouped(be, y, x, w, offsets, groups);
        return;
    }
    for (int g = 0; g < groups; g++) {
        int64_t rows = offsets[g + 1] - offsets[g];
        if (rows == 0) continue;
        cuda_linear(be, tensor_row_slice(y, offsets[g], rows), tensor_row_slice(x, offsets[g], rows), w[g],
                    cuda_tensor_none());
    }
}
