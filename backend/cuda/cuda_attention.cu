/* Fused softmax attention, flash style (one pass over the keys, online
 * softmax, FP32 accumulators), per head h of q[Sq, H*D], k, v[Sk, H*D]:
 *   out[i] = sum_j softmax_j(q_i . k_j / sqrt(D)) v_j
 *   lse[h, i] = log sum_j exp(q_i . k_j / sqrt(D))     (F32, optional)
 * and the causal variant (query i sees keys 0..i): torch's
 * F.scaled_dot_product_attention without dropout. BF16 tensors with head
 * dims that are multiples of 16 (up to 128) go to the tensor-core kernel of
 * cuda_flash_attention.cu; head dims over 128 to the matrix products of
 * cuda_attention_gemm.cu; everything else runs the plain kernel below, FP32
 * arithmetic on CUDA cores.
 *
 * A block of 4 warps takes 32 queries of one head; each warp owns 8 of
 * them. Keys come in tiles of 32 through shared memory (one key per lane):
 * lane j computes the scores of key j for the warp's 8 queries, the warp
 * updates each query's running max m and sum l, then every lane
 * accumulates D/32 output channels over the tile's 32 keys, broadcasting the
 * probabilities by shuffle. Scores are kept in log2 units (q pre-scaled by
 * log2(e) / sqrt(D)) so exp2f does the exponentials. Head dims up to 128.
 *
 * attention_merge folds a partial result over other keys into (out, lse),
 * for ring attention: lse' = log(e^lse + e^part_lse),
 * out' = e^(lse - lse') out + e^(part_lse - lse') part_out. */
#include "backend/cuda/cuda_common.cuh"

#include <math.h>
#include <stdio.h>

#define ATT_WARPS 4
#define ATT_ROWS 8 /* queries per warp */
#define ATT_QUERIES (ATT_WARPS * ATT_ROWS)
#define ATT_KEYS 32 /* keys per tile: one per lane */
#define ATT_MAX_HEAD_DIM 128
#define LN2 0.69314718055994530942f
#define LOG2E 1.44269504088896340736f

static size_t shared_bytes(int d) { return (size_t)(ATT_KEYS * (d + 1) + ATT_KEYS * d + ATT_QUERIES * d) * sizeof(float); }

/* DD = channels per lane: D <= 32 * DD. */
template <int DD>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_kernel(void *out, int d_out, float *lse, const void *q, int d_q, const void *k, int d_k, const void *v,
                     int d_v, int64_t sq, int64_t sk, int heads, int d, float scale_log2, int causal)
{
    extern __shared__ float smem[];
    float *k_tile = smem;                        /* [KEYS][d + 1]: padded, lanes read rows */
    float *v_tile = k_tile + ATT_KEYS * (d + 1); /* [KEYS][d] */
    float *q_tile = v_tile + ATT_KEYS * d;       /* [QUERIES][d], pre-scaled */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int h = blockIdx.y;
    const int64_t q0 = (int64_t)blockIdx.x * ATT_QUERIES, width = (int64_t)heads * d, column = (int64_t)h * d;

    for (int e = threadIdx.x; e < ATT_QUERIES * d; e += blockDim.x) {
        int64_t qi = q0 + e / d;
        q_tile[e] = qi < sq ? ld(q, d_q, qi * width + column + e % d) * scale_log2 : 0.0f;
    }
    float m[ATT_ROWS], l[ATT_ROWS], acc[ATT_ROWS][DD];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DD; i++) acc[r][i] = 0.0f;
    }
    const float *my_q = q_tile + warp * ATT_ROWS * d;
    const int64_t first_query = q0 + warp * ATT_ROWS;
    int64_t key_end = causal ? min(sk, q0 + ATT_QUERIES) : sk;

    for (int64_t k0 = 0; k0 < key_end; k0 += ATT_KEYS) {
        __syncthreads(); /* the previous tile is consumed (first time: q_tile is written) */
        for (int e = threadIdx.x; e < ATT_KEYS * d; e += blockDim.x) {
            int j = e / d, c = e % d;
            int64_t kj = k0 + j, at = kj * width + column + c;
            k_tile[j * (d + 1) + c] = kj < sk ? ld(k, d_k, at) : 0.0f;
            v_tile[j * d + c] = kj < sk ? ld(v, d_v, at) : 0.0f;
        }
        __syncthreads();

        /* Scores of key k0 + lane against the warp's queries. */
        float s[ATT_ROWS];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) s[r] = 0.0f;
        const float *my_k = k_tile + lane * (d + 1);
        for (int c = 0; c < d; c++) {
            float kc = my_k[c];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) s[r] += my_q[r * d + c] * kc;
        }

        /* Online softmax: rescale what was accumulated to the new maximum. */
        int64_t kj = k0 + lane;
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            int visible = kj < sk && (!causal || kj <= first_query + r);
            float score = visible ? s[r] : -INFINITY;
            float m_new = fmaxf(m[r], warp_max(score));
            float p = m_new == -INFINITY ? 0.0f : exp2f(score - m_new);
            float alpha = m_new == -INFINITY ? 1.0f : exp2f(m[r] - m_new);
            l[r] = l[r] * alpha + warp_sum(p);
            m[r] = m_new;
#pragma unroll
            for (int i = 0; i < DD; i++) acc[r][i] *= alpha;
            s[r] = p;
        }

        /* acc += p v over the tile's keys; lane owns channels lane + 32 i. */
        int keys = (int)min((int64_t)ATT_KEYS, sk - k0);
        for (int j = 0; j < keys; j++) {
            float vj[DD];
#pragma unroll
            for (int i = 0; i < DD; i++) {
                int c = lane + 32 * i;
                vj[i] = c < d ? v_tile[j * d + c] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                float p = __shfl_sync(0xffffffffu, s[r], j);
#pragma unroll
                for (int i = 0; i < DD; i++) acc[r][i] += p * vj[i];
            }
        }
    }

#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        int64_t qi = first_query + r;
        if (qi >= sq) continue;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
        for (int i = 0; i < DD; i++) {
            int c = lane + 32 * i;
            if (c < d) st(out, d_out, qi * width + column + c, acc[r][i] * inv);
        }
        if (lse && lane == 0) lse[(int64_t)h * sq + qi] = (m[r] + log2f(l[r])) * LN2;
    }
}

int cuda_attention_setup(cuda_state *s)
{
    int bytes = (int)shared_bytes(ATT_MAX_HEAD_DIM);
    return cuda_ok(s, cudaFuncSetAttribute(attention_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                   "attention setup") &&
           cuda_ok(s, cudaFuncSetAttribute(attention_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                   "attention setup") &&
           cuda_ok(s, cudaFuncSetAttribute(attention_kernel<3>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                   "attention setup") &&
           cuda_ok(s, cudaFuncSetAttribute(attention_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                   "attention setup");
}

static void attention_launch(backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads, int causal)
{
    cuda_state *s = cuda_of(be);
    int64_t sq = tensor_rows(&q), sk = tensor_rows(&k), width = tensor_cols(&q);
    int d = (int)(width / heads);
    assert(width % heads == 0 && tensor_cols(&k) == width && tensor_cols(&v) == width && tensor_rows(&v) == sk);
    assert(tensor_rows(&out) == sq && tensor_cols(&out) == width);
    assert(!lse.data || (lse.dtype == DTYPE_F32 && tensor_numel(&lse) == heads * sq));
    assert(!causal || sq == sk);
    if (sq == 0) return;
    if (cuda_attention_cudnn(s, out, lse, q, k, v, heads, causal)) return; /* done, or its failure recorded */
    if (d > ATT_MAX_HEAD_DIM && cuda_attention_gemm(s, out, lse, q, k, v, heads, causal, NULL, 1.0f / sqrtf((float)d)))
        return;
    if (d > ATT_MAX_HEAD_DIM || d < 1) {
        char what[96];
        snprintf(what, sizeof what, "attention (head dim %d; supported: 1..%d)", d, ATT_MAX_HEAD_DIM);
        cuda_ok(s, cudaErrorInvalidValue, what);
        return;
    }
    if (cuda_flash_attention(s, out, lse, q, k, v, heads, causal)) return;
    dim3 grid((unsigned)((sq + ATT_QUERIES - 1) / ATT_QUERIES), (unsigned)heads);
    size_t bytes = shared_bytes(d);
    float scale_log2 = LOG2E / sqrtf((float)d);
    float *lse_out = (float *)lse.data;
#define ATT_LAUNCH(DD)                                                                                              \
    attention_kernel<DD><<<grid, ATT_WARPS * 32, bytes, s->stream>>>(out.data, out.dtype, lse_out, q.data, q.dtype, \
                                                                     k.data, k.dtype, v.data, v.dtype, sq, sk,      \
                                                                     heads, d, scale_log2, causal)
    switch ((d + 31) / 32) {
    case 1: ATT_LAUNCH(1); break;
    case 2: ATT_LAUNCH(2); break;
    case 3: ATT_LAUNCH(3); break;
    default: ATT_LAUNCH(4); break;
    }
#undef ATT_LAUNCH
    cuda_launched(s, causal ? "attention_causal" : "attention");
}

void cuda_attention(backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads)
{
    attention_launch(be, out, lse, q, k, v, heads, 0);
}

void cuda_attention_causal(backend *be, tensor out, tensor q, tensor k, tensor v, int heads)
{
    attention_launch(be, out, cuda_tensor_none(), q, k, v, heads, 1);
}

/* One warp per (query, head). */
__global__ void attention_merge_kernel(void *out, int d_out, float *lse, const void *part, int d_part,
                                       const float *part_lse, int64_t sq, int heads, int d)
{
    int64_t pair = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (pair >= sq * heads) return;
    int64_t i = pair / heads;
    int h = (int)(pair % heads);
    float a = lse[(int64_t)h * sq + i], b = part_lse[(int64_t)h * sq + i];
    float m = fmaxf(a, b);
    float merged = m == -INFINITY ? -INFINITY : m + logf(expf(a - m) + expf(b - m));
    float wa = merged == -INFINITY ? 0.0f : expf(a - merged), wb = merged == -INFINITY ? 0.0f : expf(b - merged);
    int64_t base = i * (int64_t)heads * d + (int64_t)h * d;
    for (int c = lane; c < d; c += 32)
        st(out, d_out, base + c, wa * ld(out, d_out, base + c) + wb * ld(part, d_part, base + c));
    __syncwarp();
    if (lane == 0) lse[(int64_t)h * sq + i] = merged;
}

void cuda_attention_merge(backend *be, tensor out, tensor lse, tensor part_out, tensor part_lse, int heads)
{
    cuda_state *s = cuda_of(be);
    int64_t sq = tensor_rows(&out), width = tensor_cols(&out);
    assert(width % heads == 0 && tensor_numel(&part_out) == sq * width);
    assert(lse.dtype == DTYPE_F32 && part_lse.dtype == DTYPE_F32);
    assert(tensor_numel(&lse) == heads * sq && tensor_numel(&part_lse) == heads * sq);
    int64_t threads = sq * heads * 32;
    if (threads == 0) return;
    attention_merge_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, s->stream>>>(
        out.data, out.dtype, (float *)lse.data, part_out.data, part_out.dtype, (const float *)part_lse.data, sq,
        heads, (int)(width / heads));
    cuda_launched(s, "attention_merge");
}
