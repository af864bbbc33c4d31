/* Attention for head dims over 128 (the VAE's single 512-wide head) as two
 * matrix products per head and chunk of queries, on cuBLASLt:
 *   scores[R, Sk] = q_h[R, D] k_h^T           (F32 out)
 *   p[R, Sk]      = softmax(scores / sqrt(D))  (one block per row; lse too)
 *   out_h[R, D]   = p v_h                      (p in q's dtype, F32 sums)
 * The flash kernels keep a query tile's accumulators in registers, which a
 * 512-wide head does not fit; at such widths the products are long enough
 * that tensor-core GEMMs plus one pass over the scores win anyway (the
 * scores are 2 x Sk x D times smaller than the products' work). Chunks of at
 * most ATTG_MAX_ROWS queries, fewer when Sk is large, bound the scratch.
 *
 * attention_bias (T5's relative position bias with the padding mask, F32
 * [H, Sq, Sk]) takes the same path, its softmax of scale * scores + bias[h,
 * rows]: the bias, a full matrix per head, would not ride along in the flash
 * kernels' tiles for free, and a text encoder runs it once per layer on a few
 * hundred tokens. Masked keys carry -FLT_MAX: their probability underflows
 * to 0, and a row whose keys are all masked gets equal weights, as in
 * transformers.
 *
 * That was 1.2 ms a call for T5-XXL's Sq = Sk = 128, H 64, D 64 on an H100
 * (three launches per head; issue 29), so BF16 tensors with head dims that
 * are multiples of 16 up to 128 can go to the tensor-core flash kernel of
 * cuda_flash_attention.cu, which reads the bias tile by tile, when the
 * environment says MOEDIT_ATTENTION_BIAS=flash. Not the default yet: that
 * kernel has only been compiled, never run on a GPU (session 16 had no
 * device time left); make it the default once test_cuda_text_encoders
 * passes on a GPU. The two products serve every other case. */
#include "backend/cuda/cuda_common.cuh"
#include "core/env_choice.h"

#include <math.h>

#define ATTG_SCRATCH ((size_t)256 << 20)
#define ATTG_MAX_ROWS 4096
#define ATTG_THREADS 256

__device__ __forceinline__ float block_reduce(float v, int is_max, float *shared)
{
    for (int o = 16; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, other) : v + other;
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); /* shared is reused by consecutive reductions */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? shared[lane] : (is_max ? -INFINITY : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, other) : v + other;
    }
    return v;
}

/* Row i of the chunk (global query first_row + i): p = softmax(scale * s (+ b))
 * over keys 0..sk-1 (0..query under causal), lse[h, query] = log sum e^(scale
 * s (+ b)); b = bias_rows[i, :] when bias_rows is not NULL. */
__global__ void __launch_bounds__(ATTG_THREADS)
    softmax_rows_kernel(void *p, int dp, float *lse, const float *scores, const float *bias_rows, int64_t sk,
                        float scale, int64_t first_row, int64_t sq, int h, int causal)
{
    __shared__ float shared[32];
    int64_t i = blockIdx.x, query = first_row + i;
    const float *row = scores + i * sk, *bias = bias_rows ? bias_rows + i * sk : NULL;
    int64_t keys = causal ? query + 1 : sk;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < keys; j += blockDim.x) m = fmaxf(m, row[j] * scale + (bias ? bias[j] : 0.0f));
    m = block_reduce(m, 1, shared);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < keys; j += blockDim.x) sum += expf(row[j] * scale + (bias ? bias[j] : 0.0f) - m);
    sum = block_reduce(sum, 0, shared);
    float inv = 1.0f / sum;
    for (int64_t j = threadIdx.x; j < sk; j += blockDim.x)
        st(p, dp, i * sk + j, j < keys ? expf(row[j] * scale + (bias ? bias[j] : 0.0f) - m) * inv : 0.0f);
    if (lse && threadIdx.x == 0) lse[(int64_t)h * sq + query] = m + logf(sum);
}

int cuda_attention_gemm(cuda_state *s, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads, int causal,
                        const float *bias, float scale)
{
    int64_t sq = tensor_rows(&q), sk = tensor_rows(&k), width = tensor_cols(&q);
    int64_t d = width / heads;
    if (q.dtype != k.dtype || q.dtype != v.dtype) return 0;
    size_t p_bytes = dtype_size(q.dtype), row_bytes = (size_t)sk * (sizeof(float) + p_bytes);
    int64_t rows = (int64_t)(ATTG_SCRATCH / row_bytes);
    if (rows > ATTG_MAX_ROWS) rows = ATTG_MAX_ROWS;
    if (rows > sq) rows = sq;
    if (rows < 1) rows = 1;
    char *scratch = (char *)cuda_scratch(s, (size_t)rows * row_bytes);
    if (!scratch) return 1; /* the failure is recorded */
    float *scores = (float *)scratch;
    void *p = scratch + (size_t)rows * sk * sizeof(float);
    for (int h = 0; h < heads; h++) {
        const char *qh = (const char *)q.data + (size_t)h * d * dtype_size(q.dtype);
        const char *kh = (const char *)k.data + (size_t)h * d * dtype_size(k.dtype);
        const char *vh = (const char *)v.data + (size_t)h * d * dtype_size(v.dtype);
        char *oh = (char *)out.data + (size_t)h * d * dtype_size(out.dtype);
        for (int64_t r0 = 0; r0 < sq; r0 += rows) {
            int64_t n = sq - r0 < rows ? sq - r0 : rows;
            int64_t keys = causal ? r0 + n : sk; /* later keys get p = 0: skip them in both products */
            cuda_matrix a = {qh + (size_t)r0 * width * dtype_size(q.dtype), q.dtype, width};
            cuda_matrix b = {kh, k.dtype, width};
            cuda_gemm(s, scores, DTYPE_F32, keys, a, b, 1, n, keys, d, cuda_tensor_none());
            const float *bias_rows = bias ? bias + ((int64_t)h * sq + r0) * sk : NULL; /* not causal: keys == sk */
            softmax_rows_kernel<<<(unsigned)n, ATTG_THREADS, 0, s->stream>>>(p, q.dtype, (float *)lse.data, scores,
                                                                             bias_rows, keys, scale, r0, sq, h, causal);
            if (!cuda_launched(s, "attention (softmax rows)")) return 1;
            cuda_matrix pm = {p, q.dtype, keys}, vm = {vh, v.dtype, width};
            cuda_gemm(s, oh + (size_t)r0 * width * dtype_size(out.dtype), out.dtype, width, pm, vm, 0, n, d, keys,
                      cuda_tensor_none());
        }
    }
    return 1;
}

void cuda_attention_bias(backend *be, tensor out, tensor q, tensor k, tensor v, tensor bias, int heads, float scale)
{
    cuda_state *s = cuda_of(be);
    int64_t sq = tensor_rows(&q), sk = tensor_rows(&k), width = tensor_cols(&q);
    assert(width % heads == 0 && tensor_cols(&k) == width && tensor_cols(&v) == width && tensor_rows(&v) == sk);
    assert(tensor_rows(&out) == sq && tensor_cols(&out) == width);
    assert(bias.dtype == DTYPE_F32 && tensor_numel(&bias) == heads * sq * sk);
    if (sq == 0) return;
    /* Read per call: the tests switch it. */
    static const char *const choices[2] = {"flash", "gemm"};
    static int warned;
    int gemm_only = env_choice("MOEDIT_ATTENTION_BIAS", choices, 2, 1, &warned) == 1;
    if (!gemm_only && cuda_flash_attention_bias(s, out, q, k, v, heads, (const float *)bias.data, scale)) return;
    if (!cuda_attention_gemm(s, out, cuda_tensor_none(), q, k, v, heads, 0, (const float *)bias.data, scale))
        cuda_ok(s, cudaErrorInvalidValue, "attention_bias (q, k and v of different dtypes)");
}
