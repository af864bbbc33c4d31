/* Linear layers with one short side: y[M, N] = x[M, K] w[N, K]^T (+ bias)
 * where M or N is at most SKINNY_MAX. Two of them run every block: the MoE
 * gate (N = 4 experts, M = all tokens) and the adaLN modulation (M = the
 * batch, N = 6 or 12 chunks of the width). Either reads one large operand
 * once and does almost no arithmetic, so its time is the memory traffic, but
 * cuBLASLt runs them at ~40% of the memory bandwidth (session 11's profile at
 * 1024, batch 2: the gate 0.051 ms for a 45 MB x, the modulation 0.043 ms for
 * a 79 MB weight).
 *
 * Here one warp takes one row of the long operand (x's rows for a short N,
 * w's rows for a short M) and dots it with every row of the short operand,
 * which stays in L1: each lane reads 16-byte runs of 8 BF16 values, keeps
 * S FP32 sums in registers and the warp adds them up with shuffles. The sums
 * run in a fixed order, so results repeat bit for bit. */
#include "core/cuda_common.cuh"

#define SKINNY_MAX 8
#define SKINNY_WARPS 8 /* warps of a block */

/* long_rows rows of `lng` (ld_long) dotted with S rows of `sml` (ld_small),
 * both BF16 and K a multiple of 8; the dot of long row r and short row s goes
 * to y[r * y_long + s * y_short] plus bias[r] (bias_by_long) or bias[s]. */
template <int S>
__global__ void skinny_kernel(void *y, int ydt, int64_t y_long, int64_t y_short, const __nv_bfloat16 *lng,
                              int64_t ld_long, const __nv_bfloat16 *sml, int64_t ld_small, int64_t long_rows, int64_t k,
                              const void *bias, int bdt, int bias_by_long)
{
    int lane = threadIdx.x & 31;
    int64_t warps = (int64_t)gridDim.x * SKINNY_WARPS;
    for (int64_t r = (int64_t)blockIdx.x * SKINNY_WARPS + (threadIdx.x >> 5); r < long_rows; r += warps) {
        const __nv_bfloat16 *row = lng + r * ld_long;
        float sum[S];
#pragma unroll
        for (int s = 0; s < S; s++) sum[s] = 0.0f;
#pragma unroll 2
        for (int64_t c = (int64_t)lane * 8; c < k; c += 32 * 8) {
            float a[8];
            ld8(row + c, 0, a);
#pragma unroll
            for (int s = 0; s < S; s++) {
                float b[8];
                ld8(sml + s * ld_small + c, 0, b);
#pragma unroll
                for (int i = 0; i < 8; i++) sum[s] = fmaf(a[i], b[i], sum[s]);
            }
        }
#pragma unroll
        for (int s = 0; s < S; s++) {
            float v = warp_sum(sum[s]);
            if (lane == s) {
                if (bias) v += ld(bias, bdt, bias_by_long ? r : s);
                st(y, ydt, r * y_long + s * y_short, v);
            }
        }
    }
}

template <int S>
static void launch(cuda_state *s, void *y, int ydt, int64_t y_long, int64_t y_short, const void *lng, int64_t ld_long,
                   const void *sml, int64_t ld_small, int64_t long_rows, int64_t k, tensor bias, int bias_by_long)
{
    int64_t blocks = (long_rows + SKINNY_WARPS - 1) / SKINNY_WARPS, cap = (int64_t)s->sm_count * 16;
    skinny_kernel<S><<<(unsigned)(blocks < cap ? blocks : cap), SKINNY_WARPS * 32, 0, s->stream>>>(
        y, ydt, y_long, y_short, (const __nv_bfloat16 *)lng, ld_long, (const __nv_bfloat16 *)sml, ld_small, long_rows,
        k, bias.data, bias.dtype, bias_by_long);
}

static int aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

int cuda_skinny_linear(cuda_state *s, tensor y, tensor x, tensor w, tensor bias)
{
    int64_t m = tensor_rows(&x), k = tensor_cols(&x), n = tensor_rows(&w);
    int short_n = n <= SKINNY_MAX && n <= m, short_side = short_n ? n : m;
    if (short_side > SKINNY_MAX || short_side == 0 || k % 8 || x.dtype != DTYPE_BF16 || w.dtype != DTYPE_BF16 ||
        !aligned16(x.data) || !aligned16(w.data))
        return 0;
    /* x and w are whole row-major tensors (views are row slices): ld = K. */
    const void *lng = short_n ? x.data : w.data, *sml = short_n ? w.data : x.data;
    int64_t long_rows = short_n ? m : n, y_long = short_n ? n : 1, y_short = short_n ? 1 : n;
    typedef void (*launcher)(cuda_state *, void *, int, int64_t, int64_t, const void *, int64_t, const void *, int64_t,
                             int64_t, int64_t, tensor, int);
    static const launcher by_side[SKINNY_MAX] = {launch<1>, launch<2>, launch<3>, launch<4>,
                                                 launch<5>, launch<6>, launch<7>, launch<8>};
    by_side[short_side - 1](s, y.data, y.dtype, y_long, y_short, lng, k, sml, k, long_rows, k, bias, !short_n);
    cuda_launched(s, "linear (short side)");
    return 1;
}
