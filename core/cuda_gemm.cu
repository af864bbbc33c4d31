/* Matrix products on the GPU: nn.Linear (y = x w^T + b) and the per-expert
 * loop of grouped linears, through cuBLASLt: BF16 operands, FP32 compute,
 * BF16 (or F32) output, bias fused as the epilogue.
 *
 * Row-major y[M, N] = a[M, K] op(b) is, read column-major, y^T = op(b)^T a^T:
 * cuBLASLt's A is our b, its B is our a, its D is y^T with the same memory.
 * A heuristic query costs tens of microseconds, so each problem's descriptors
 * and chosen algorithm are kept in a small direct-mapped cache keyed by
 * shape, dtypes, leading dimensions and pointer alignment. Problems cuBLASLt
 * declines (odd dtype mixes, unaligned views) go to a plain tiled kernel, so
 * every shape works. */
#include "core/cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEMM_CACHE_SIZE 1024
#define FALLBACK_TILE 16

typedef struct gemm_key {
    int64_t m, n, k, lda, ldb, ldy;
    int a_dtype, y_dtype, b_is_nk, bias, align_a, align_b, align_y;
    int batch; /* 0: one product; > 1: that many over device arrays of pointers */
} gemm_key;

typedef struct gemm_entry {
    gemm_key key;
    int used; /* descriptors exist */
    int found; /* cuBLASLt has an algorithm for it */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t layout_a, layout_b, layout_y;
    cublasLtMatmulAlgo_t algo;
} gemm_entry;

/* Products of one grouped batch: at most this many (larger groupings run in
 * chunks); their operand pointers live in device memory, as cuBLASLt's
 * pointer-array batches read them. */
#define BATCH_MAX 32

typedef struct cuda_gemm_cache {
    gemm_entry entries[GEMM_CACHE_SIZE];
    const void **pointers; /* device: [3][BATCH_MAX] weights, inputs, outputs */
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
    cudaFree(s->gemm_cache->pointers);
    free(s->gemm_cache);
    s->gemm_cache = NULL;
}

static cudaDataType_t cuda_type(int dtype)
{
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

/* Descriptors, layouts and the heuristic's best algorithm for one problem. */
static void entry_build(cuda_state *s, gemm_entry *e, const gemm_key *key)
{
    memset(e, 0, sizeof *e);
    e->key = *key;
    e->used = 1;
    cudaDataType_t in = cuda_type(key->a_dtype), out = cuda_type(key->y_dtype);
    cublasOperation_t trans_a = key->b_is_nk ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
    if (cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) return;
    cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a);
    cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b);
    if (key->bias) {
        cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
    }
    /* cuBLASLt's A is our b: [K, N] column-major when b is [N, K] row-major. */
    uint64_t a_rows = key->b_is_nk ? key->k : key->n, a_cols = key->b_is_nk ? key->n : key->k;
    if (cublasLtMatrixLayoutCreate(&e->layout_a, in, a_rows, a_cols, key->ldb) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&e->layout_b, in, key->k, key->m, key->lda) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&e->layout_y, out, key->n, key->m, key->ldy) != CUBLAS_STATUS_SUCCESS)
        return;
    if (key->batch > 1) {
        int32_t mode = CUBLASLT_BATCH_MODE_POINTER_ARRAY, count = key->batch;
        cublasLtMatrixLayout_t layouts[3] = {e->layout_a, e->layout_b, e->layout_y};
        for (int i = 0; i < 3; i++) {
            cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_MODE, &mode, sizeof mode);
            cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count);
        }
    }
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

static gemm_entry *cache_lookup(cuda_state *s, const gemm_key *key)
{
    if (!s->gemm_cache) {
        s->gemm_cache = (cuda_gemm_cache *)calloc(1, sizeof *s->gemm_cache);
        if (!s->gemm_cache) return NULL;
    }
    gemm_entry *e = &s->gemm_cache->entries[key_hash(key) % GEMM_CACHE_SIZE];
    if (e->used && memcmp(&e->key, key, sizeof *key) == 0) return e;
    entry_release(e);
    entry_build(s, e, key);
    return e;
}

static int lt_types_supported(tensor_dtype a, tensor_dtype b, tensor_dtype y)
{
    int half = a == DTYPE_BF16 || a == DTYPE_F16;
    return a == b && (half || a == DTYPE_F32) && (y == a || y == DTYPE_F32);
}

/* Runs a cached problem; for a batch, b, a and y are device arrays of pointers. */
static void lt_matmul(cuda_state *s, gemm_entry *e, const void *b, const void *a, void *y)
{
    float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t status = cublasLtMatmul(s->lt, e->op, &alpha, b, e->layout_a, a, e->layout_b, &beta, y,
                                           e->layout_y, y, e->layout_y, &e->algo, s->workspace, s->workspace_bytes,
                                           s->stream);
    if (status != CUBLAS_STATUS_SUCCESS) {
        if (!s->failed) {
            snprintf(s->failure, sizeof s->failure, "cuBLASLt matmul [%lld x %lld x %lld, batch %d] failed: status %d",
                     (long long)e->key.m, (long long)e->key.n, (long long)e->key.k, e->key.batch, (int)status);
            s->failed = 1;
        }
        error_set("%s", s->failure);
    }
}

/* The cuBLASLt path; 0 when cuBLASLt has no algorithm for the problem. */
static int lt_gemm(cuda_state *s, void *y, tensor_dtype y_dtype, int64_t ldy, cuda_matrix a, cuda_matrix b,
                   int b_is_nk, int64_t m, int64_t n, int64_t k, const void *bias)
{
    if (!lt_types_supported(a.dtype, b.dtype, y_dtype)) return 0;
    gemm_key key;
    memset(&key, 0, sizeof key); /* padding takes part in the hash */
    key.m = m, key.n = n, key.k = k, key.lda = a.ld, key.ldb = b.ld, key.ldy = ldy;
    key.a_dtype = a.dtype, key.y_dtype = y_dtype, key.b_is_nk = b_is_nk, key.bias = bias != NULL;
    key.align_a = alignment(a.data), key.align_b = alignment(b.data), key.align_y = alignment(y);
    gemm_entry *e = cache_lookup(s, &key);
    if (!e || !e->found) return 0;
    if (bias) cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    lt_matmul(s, e, b.data, a.data, y);
    return 1;
}

/* The plain path: one thread per output element, 16x16 tiles through shared
 * memory, FP32 sums. Rows tile over blockIdx.y with a stride so any M fits. */
__global__ void gemm_fallback_kernel(void *y, int dy, int64_t ldy, const void *a, int da, int64_t lda, const void *b,
                                     int db, int64_t ldb, int b_is_nk, int64_t m, int64_t n, int64_t k,
                                     const void *bias, int dbias)
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
        if (row < m && col < n) st(y, dy, row * ldy + col, acc + (bias ? ld(bias, dbias, col) : 0.0f));
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
    dim3 threads(FALLBACK_TILE, FALLBACK_TILE);
    int64_t row_tiles = (m + FALLBACK_TILE - 1) / FALLBACK_TILE;
    dim3 grid((unsigned)((n + FALLBACK_TILE - 1) / FALLBACK_TILE), (unsigned)(row_tiles < 65535 ? row_tiles : 65535));
    gemm_fallback_kernel<<<grid, threads, 0, s->stream>>>(y, y_dtype, ldy, a.data, a.dtype, a.ld, b.data, b.dtype,
                                                          b.ld, b_is_nk, m, n, k, bias.data, bias.dtype);
    cuda_launched(s, "gemm (fallback)");
}

void cuda_linear(backend *be, tensor y, tensor x, tensor w, tensor bias)
{
    int64_t m = tensor_rows(&x), k = tensor_cols(&x), n = tensor_rows(&w);
    assert(tensor_cols(&w) == k && tensor_rows(&y) == m && tensor_cols(&y) == n);
    assert(!bias.data || tensor_numel(&bias) == n);
    cuda_matrix a = {x.data, x.dtype, k}, b = {w.data, w.dtype, k};
    cuda_gemm(cuda_of(be), y.data, y.dtype, n, a, b, 1, m, n, k, bias);
}

/* A batch's operand pointers, passed by value and written to device memory
 * in stream order (the previous batch's product has read its own by then). */
typedef struct pointer_set {
    const void *p[3 * BATCH_MAX];
} pointer_set;

__global__ void pointer_set_kernel(const void **to, pointer_set set, int count)
{
    if ((int)threadIdx.x < count) to[threadIdx.x] = set.p[threadIdx.x];
}

/* Rows [first[i], first[i] + m) of the groups in `which` (count of them), as
 * one pointer-array batch of cuBLASLt; 0 when that is not available. */
static int batched_rows(cuda_state *s, tensor y, tensor x, const tensor *w, const int *which, const int64_t *first,
                        int count, int64_t m)
{
    int64_t k = tensor_cols(&x), n = tensor_cols(&y);
    if (!lt_types_supported(x.dtype, w[which[0]].dtype, y.dtype)) return 0;
    pointer_set set;
    memset(&set, 0, sizeof set);
    int align_w = 16, align_x = 16, align_y = 16;
    for (int i = 0; i < count; i++) {
        const tensor *wi = &w[which[i]];
        if (wi->dtype != w[which[0]].dtype || tensor_rows(wi) != n || tensor_cols(wi) != k) return 0;
        set.p[i] = wi->data;
        set.p[BATCH_MAX + i] = (const char *)x.data + first[i] * k * dtype_size(x.dtype);
        set.p[2 * BATCH_MAX + i] = (const char *)y.data + first[i] * n * dtype_size(y.dtype);
        if (alignment(set.p[i]) < align_w) align_w = alignment(set.p[i]);
        if (alignment(set.p[BATCH_MAX + i]) < align_x) align_x = alignment(set.p[BATCH_MAX + i]);
        if (alignment(set.p[2 * BATCH_MAX + i]) < align_y) align_y = alignment(set.p[2 * BATCH_MAX + i]);
    }
    gemm_key key;
    memset(&key, 0, sizeof key);
    key.m = m, key.n = n, key.k = k, key.lda = k, key.ldb = k, key.ldy = n;
    key.a_dtype = x.dtype, key.y_dtype = y.dtype, key.b_is_nk = 1, key.batch = count;
    key.align_a = align_x, key.align_b = align_w, key.align_y = align_y;
    gemm_entry *e = cache_lookup(s, &key);
    if (!e || !e->found) return 0;
    if (!s->gemm_cache->pointers &&
        cudaMalloc((void **)&s->gemm_cache->pointers, 3 * BATCH_MAX * sizeof(void *)) != cudaSuccess) {
        s->gemm_cache->pointers = NULL;
        cudaGetLastError(); /* not sticky: the loop of single products still works */
        return 0;
    }
    const void **arrays = s->gemm_cache->pointers;
    /* Only the used slots of each third are written; the kernel copies the set whole. */
    pointer_set_kernel<<<1, 3 * BATCH_MAX, 0, s->stream>>>(arrays, set, 3 * BATCH_MAX);
    if (!cuda_launched(s, "linear_grouped (pointers)")) return 1;
    lt_matmul(s, e, arrays, arrays + BATCH_MAX, (void *)(arrays + 2 * BATCH_MAX));
    return 1;
}

/* Up to BATCH_MAX groups: rounds of one batch each. A round covers, in every
 * group with rows left, as many rows as the group with the fewest has left,
 * so a batch's products are all the same shape and no group's rows are
 * computed twice. A layer's experts get similar row counts, so the first
 * round holds most rows: one launch fills the GPU where each expert's own
 * product is too small to (at 1024x1024 an expert's down product of ~2200
 * rows made 170 tiles for 132 multiprocessors, ~230 TFLOP/s). */
static void grouped_rounds(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups)
{
    cuda_state *s = cuda_of(be);
    int64_t done[BATCH_MAX] = {0}, first[BATCH_MAX];
    int which[BATCH_MAX];
    const char *choice = getenv("MOEDIT_GROUPED_GEMM"); /* read per call: the tests switch it */
    int batched = !(choice && !strcmp(choice, "loop"));
    for (;;) {
        int count = 0;
        int64_t m = INT64_MAX;
        for (int g = 0; g < groups; g++) {
            int64_t left = offsets[g + 1] - offsets[g] - done[g];
            if (left <= 0) continue;
            first[count] = offsets[g] + done[g];
            which[count++] = g;
            if (left < m) m = left;
        }
        if (count == 0) return;
        if (!batched || count == 1 || !batched_rows(s, y, x, w, which, first, count, m)) {
            for (int i = 0; i < count; i++) {
                int64_t rows = offsets[which[i] + 1] - first[i];
                cuda_linear(be, tensor_row_slice(y, first[i], rows), tensor_row_slice(x, first[i], rows),
                            w[which[i]], cuda_tensor_none());
            }
            return;
        }
        for (int i = 0; i < count; i++) done[which[i]] += m;
    }
}

void cuda_linear_grouped(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups)
{
    for (int g0 = 0; g0 < groups; g0 += BATCH_MAX)
        grouped_rounds(be, y, x, w + g0, offsets + g0, groups - g0 < BATCH_MAX ? groups - g0 : BATCH_MAX);
}
