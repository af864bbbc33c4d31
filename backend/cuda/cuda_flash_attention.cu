/* Flash attention on tensor cores (FlashAttention-2's schedule) for BF16
 * q, k, v, out and head dims that are multiples of 16 up to 128:
 *   out[i] = sum_j softmax_j(q_i . k_j / sqrt(D)) v_j,  lse[h, i] = log sum_j e^(q_i . k_j / sqrt(D))
 * and the causal variant. Head dims 64 and 128 run the Hopper kernel of
 * cuda_flash_wgmma.cu (when the build and the device have sm_90a and the rows
 * are 16-byte aligned): several times the throughput of the kernel below
 * (docs/benchmarks.md, "Figures cited by source comments"). MOEDIT_FLASH_WGMMA=0
 * in the environment turns it off, for comparisons. The kernel below
 * (mma.sync) serves the other head dims that are multiples of 16.
 * cuda_attention.cu's plain kernel is the fallback for every other case (F32
 * tensors, other head dims).
 *
 * A block of 4 warps takes 64 queries of one head, 16 per warp, its Q tile
 * held in registers as mma A fragments. Keys come in tiles of 64 through
 * shared memory (K as [key][d], V transposed as [d][key], rows padded by 8
 * elements so fragment loads hit distinct banks). Per tile each warp
 * computes S = Q K^T with mma.sync m16n8k16 (BF16 in, FP32 accumulate),
 * updates its rows' running max and sum (online softmax, log2 units, exp2f),
 * rescales O, and adds P V with P rounded to BF16 straight from the S
 * accumulators (the C fragment of one mma is the A fragment of the next).
 * Each thread holds rows g and g + 8 of its warp's 16 (g = lane / 4); the
 * four threads of a quad share a row, so row reductions are two shuffles. */
#include "backend/cuda/cuda_common.cuh"

#include <float.h>

#define FA_WARPS 4
#define FA_QUERIES (16 * FA_WARPS)
#define FA_KEYS 64
#define FA_LN2 0.69314718055994530942f
#define FA_LOG2E 1.44269504088896340736f

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&pair);
}

/* c += a b for one m16n8k16 tile: a row-major 16x16, b column-major 16x8. */
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two adjacent BF16 of row `row` (0 beyond the last row), low half first. */
__device__ __forceinline__ uint32_t load_pair(const unsigned short *x, int64_t row, int64_t rows, int64_t at)
{
    if (row >= rows) return 0u;
    return (uint32_t)x[at] | ((uint32_t)x[at + 1] << 16);
}

template <int KSTEPS, bool BIAS> /* D = 16 * KSTEPS; BIAS: add bias[h, i, j] (F32 [H, Sq, Sk]) to the scores */
__global__ void __launch_bounds__(FA_WARPS * 32)
    flash_attention_kernel(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                           const __nv_bfloat16 *v, int64_t sq, int64_t sk, int heads, float scale_log2, int causal,
                           int vector_loads, const float *bias)
{
    constexpr int D = 16 * KSTEPS, D_TILES = D / 8;
    constexpr int K_STRIDE = D + 8, V_STRIDE = FA_KEYS + 8;
    __shared__ __align__(16) __nv_bfloat16 k_tile[FA_KEYS * K_STRIDE]; /* [key][d] */
    __shared__ __align__(16) __nv_bfloat16 v_tile[D * V_STRIDE];       /* [d][key] */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y;
    const int64_t width = (int64_t)heads * D, column = (int64_t)h * D;
    const int64_t q0 = (int64_t)blockIdx.x * FA_QUERIES, row0 = q0 + warp * 16 + g, row1 = row0 + 8;

    uint32_t qa[KSTEPS][4];
    const unsigned short *qs = (const unsigned short *)q;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; kk++) {
        int64_t c = column + kk * 16 + 2 * t;
        qa[kk][0] = load_pair(qs, row0, sq, row0 * width + c);
        qa[kk][1] = load_pair(qs, row1, sq, row1 * width + c);
        qa[kk][2] = load_pair(qs, row0, sq, row0 * width + c + 8);
        qa[kk][3] = load_pair(qs, row1, sq, row1 * width + c + 8);
    }
    float o[D_TILES][4];
#pragma unroll
    for (int dt = 0; dt < D_TILES; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    int64_t key_end = causal ? min(sk, q0 + FA_QUERIES) : sk;

    for (int64_t k0 = 0; k0 < key_end; k0 += FA_KEYS) {
        __syncthreads(); /* the previous tile is consumed */
        if (vector_loads) {
            for (int e = threadIdx.x; e < FA_KEYS * D / 8; e += blockDim.x) {
                int key = e / (D / 8), c = e % (D / 8) * 8;
                int64_t kj = k0 + key;
                uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
                if (kj < sk) {
                    kv = *(const uint4 *)(k + kj * width + column + c);
                    vv = *(const uint4 *)(v + kj * width + column + c);
                }
                *(uint4 *)&k_tile[key * K_STRIDE + c] = kv;
                const __nv_bfloat16 *vh = (const __nv_bfloat16 *)&vv;
#pragma unroll
                for (int i = 0; i < 8; i++) v_tile[(c + i) * V_STRIDE + key] = vh[i];
            }
        } else {
            for (int e = threadIdx.x; e < FA_KEYS * D; e += blockDim.x) {
                int key = e / D, c = e % D;
                int64_t kj = k0 + key;
                __nv_bfloat16 zero = __float2bfloat16(0.0f);
                k_tile[key * K_STRIDE + c] = kj < sk ? k[kj * width + column + c] : zero;
                v_tile[c * V_STRIDE + key] = kj < sk ? v[kj * width + column + c] : zero;
            }
        }
        __syncthreads();

        /* S = Q K^T: 8 tiles of 8 keys. */
        float s[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KSTEPS; kk++)
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const __nv_bfloat16 *kp = &k_tile[(nt * 8 + g) * K_STRIDE + kk * 16 + 2 * t];
                mma_bf16(s[nt], qa[kk], *(const uint32_t *)kp, *(const uint32_t *)(kp + 8));
            }

        /* Mask, scale to log2 units, row maxima over the quad. */
        float max0 = -INFINITY, max1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int64_t key = k0 + nt * 8 + 2 * t + (e & 1), row = e < 2 ? row0 : row1;
                int visible = key < sk && (!causal || key <= row);
                float value = visible ? s[nt][e] * scale_log2 : -INFINITY;
                /* A masked key's bias is -FLT_MAX, which becomes -inf in log2
                 * units: held at -FLT_MAX, its weight is still 0 beside any
                 * unmasked key, and a row with every key masked gets equal
                 * weights, as cuda_attention_gemm.cu's softmax and the CPU's. */
                if (BIAS && visible && row < sq)
                    value = fmaxf(value + bias[((int64_t)h * sq + row) * sk + key] * FA_LOG2E, -FLT_MAX);
                s[nt][e] = value;
                if (e < 2)
                    max0 = fmaxf(max0, value);
                else
                    max1 = fmaxf(max1, value);
            }
        max0 = fmaxf(max0, __shfl_xor_sync(0xffffffffu, max0, 1));
        max0 = fmaxf(max0, __shfl_xor_sync(0xffffffffu, max0, 2));
        max1 = fmaxf(max1, __shfl_xor_sync(0xffffffffu, max1, 1));
        max1 = fmaxf(max1, __shfl_xor_sync(0xffffffffu, max1, 2));
        float new0 = fmaxf(m0, max0), new1 = fmaxf(m1, max1);
        float alpha0 = new0 == -INFINITY ? 1.0f : exp2f(m0 - new0);
        float alpha1 = new1 == -INFINITY ? 1.0f : exp2f(m1 - new1);
        m0 = new0;
        m1 = new1;

        /* P = exp2(S - m); this thread's share of the row sums (quad-summed at the end). */
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            s[nt][0] = new0 == -INFINITY ? 0.0f : exp2f(s[nt][0] - new0);
            s[nt][1] = new0 == -INFINITY ? 0.0f : exp2f(s[nt][1] - new0);
            s[nt][2] = new1 == -INFINITY ? 0.0f : exp2f(s[nt][2] - new1);
            s[nt][3] = new1 == -INFINITY ? 0.0f : exp2f(s[nt][3] - new1);
            sum0 += s[nt][0] + s[nt][1];
            sum1 += s[nt][2] + s[nt][3];
        }
        l0 = l0 * alpha0 + sum0;
        l1 = l1 * alpha1 + sum1;
#pragma unroll
        for (int dt = 0; dt < D_TILES; dt++) {
            o[dt][0] *= alpha0;
            o[dt][1] *= alpha0;
            o[dt][2] *= alpha1;
            o[dt][3] *= alpha1;
        }

        /* O += P V, 16 keys per step. */
#pragma unroll
        for (int j = 0; j < 4; j++) {
            uint32_t pa[4] = {pack_bf16(s[2 * j][0], s[2 * j][1]), pack_bf16(s[2 * j][2], s[2 * j][3]),
                              pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
            for (int dt = 0; dt < D_TILES; dt++) {
                const __nv_bfloat16 *vp = &v_tile[(dt * 8 + g) * V_STRIDE + j * 16 + 2 * t];
                mma_bf16(o[dt], pa, *(const uint32_t *)vp, *(const uint32_t *)(vp + 8));
            }
        }
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int dt = 0; dt < D_TILES; dt++) {
        int64_t c = column + dt * 8 + 2 * t;
        if (row0 < sq) {
            out[row0 * width + c] = __float2bfloat16(o[dt][0] * inv0);
            out[row0 * width + c + 1] = __float2bfloat16(o[dt][1] * inv0);
        }
        if (row1 < sq) {
            out[row1 * width + c] = __float2bfloat16(o[dt][2] * inv1);
            out[row1 * width + c + 1] = __float2bfloat16(o[dt][3] * inv1);
        }
    }
    if (lse && t == 0) {
        if (row0 < sq) lse[(int64_t)h * sq + row0] = (m0 + log2f(l0)) * FA_LN2;
        if (row1 < sq) lse[(int64_t)h * sq + row1] = (m1 + log2f(l1)) * FA_LN2;
    }
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* cuda_flash_wgmma.cu: 0 (nothing launched) unless d is 64 or 128, the rows are aligned and sm_90a is there. */
int cuda_flash_wgmma(cuda_state *s, __nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                     const __nv_bfloat16 *v, int64_t sq, int64_t sk, int heads, int d, int causal);

/* The mma.sync kernel for head dim d (a multiple of 16, at most 128). */
static void flash_launch(cuda_state *s, dim3 grid, int d, __nv_bfloat16 *o, float *l, const __nv_bfloat16 *qp,
                         const __nv_bfloat16 *kp, const __nv_bfloat16 *vp, int64_t sq, int64_t sk, int heads,
                         float scale_log2, int causal, int vector_loads, const float *bias)
{
#define FA_LAUNCH(KSTEPS)                                                                                         \
    do {                                                                                                          \
        if (bias)                                                                                                 \
            flash_attention_kernel<KSTEPS, true><<<grid, FA_WARPS * 32, 0, s->stream>>>(                          \
                o, l, qp, kp, vp, sq, sk, heads, scale_log2, causal, vector_loads, bias);                         \
        else                                                                                                      \
            flash_attention_kernel<KSTEPS, false><<<grid, FA_WARPS * 32, 0, s->stream>>>(                         \
                o, l, qp, kp, vp, sq, sk, heads, scale_log2, causal, vector_loads, NULL);                          \
    } while (0)
    switch (d / 16) {
    case 1: FA_LAUNCH(1); break;
    case 2: FA_LAUNCH(2); break;
    case 3: FA_LAUNCH(3); break;
    case 4: FA_LAUNCH(4); break;
    case 5: FA_LAUNCH(5); break;
    case 6: FA_LAUNCH(6); break;
    case 7: FA_LAUNCH(7); break;
    default: FA_LAUNCH(8); break;
    }
#undef FA_LAUNCH
}

static int flash_fits(tensor out, tensor q, tensor k, tensor v, int d)
{
    int bf16 = q.dtype == DTYPE_BF16 && k.dtype == DTYPE_BF16 && v.dtype == DTYPE_BF16 && out.dtype == DTYPE_BF16;
    return bf16 && d % 16 == 0 && d <= 128;
}

int cuda_flash_attention(cuda_state *s, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads, int causal)
{
    int64_t sq = tensor_rows(&q), sk = tensor_rows(&k), width = tensor_cols(&q);
    int d = (int)(width / heads);
    if (!flash_fits(out, q, k, v, d)) return 0;
    int vector_loads = aligned16(k.data) && aligned16(v.data) && width % 8 == 0;
    dim3 grid((unsigned)((sq + FA_QUERIES - 1) / FA_QUERIES), (unsigned)heads);
    float scale_log2 = FA_LOG2E / sqrtf((float)d);
    __nv_bfloat16 *o = (__nv_bfloat16 *)out.data;
    const __nv_bfloat16 *qp = (const __nv_bfloat16 *)q.data, *kp = (const __nv_bfloat16 *)k.data,
                        *vp = (const __nv_bfloat16 *)v.data;
    float *l = (float *)lse.data;
    static int wgmma = -1;
    if (wgmma < 0) wgmma = !getenv("MOEDIT_FLASH_WGMMA") || atoi(getenv("MOEDIT_FLASH_WGMMA")) != 0;
    if (wgmma && cuda_flash_wgmma(s, o, l, qp, kp, vp, sq, sk, heads, d, causal)) {
        cuda_launched(s, causal ? "attention_causal (wgmma)" : "attention (wgmma)");
        return 1;
    }
    flash_launch(s, grid, d, o, l, qp, kp, vp, sq, sk, heads, scale_log2, causal, vector_loads, NULL);
    cuda_launched(s, causal ? "attention_causal (tensor cores)" : "attention (tensor cores)");
    return 1;
}

int cuda_flash_attention_bias(cuda_state *s, tensor out, tensor q, tensor k, tensor v, int heads, const float *bias,
                              float scale)
{
    int64_t sq = tensor_rows(&q), sk = tensor_rows(&k), width = tensor_cols(&q);
    int d = (int)(width / heads);
    if (!flash_fits(out, q, k, v, d)) return 0;
    int vector_loads = aligned16(k.data) && aligned16(v.data) && width % 8 == 0;
    dim3 grid((unsigned)((sq + FA_QUERIES - 1) / FA_QUERIES), (unsigned)heads);
    flash_launch(s, grid, d, (__nv_bfloat16 *)out.data, NULL, (const __nv_bfloat16 *)q.data,
                 (const __nv_bfloat16 *)k.data, (const __nv_bfloat16 *)v.data, sq, sk, heads, FA_LOG2E * scale, 0,
                 vector_loads, bias);
    cuda_launched(s, "attention_bias (tensor cores)");
    return 1;
}
