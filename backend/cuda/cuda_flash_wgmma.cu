/* Flash attention on Hopper's warpgroup tensor cores (wgmma, sm_90a) for BF16
 * q, k, v, out and head dims 64 and 128; cuda_flash_attention.cu dispatches
 * here and keeps its mma.sync kernel for the other head dims.
 *
 * A block takes M = 64 * WG queries of one head: WG warpgroups (4 warps
 * each) of 64 queries. Q is loaded once into shared memory; keys come in
 * tiles of N rows, K and V each double-buffered, copied by all threads with
 * 16-byte cp.async one tile ahead of their use. Every tile is stored
 * [D / 64 column blocks][rows][64 columns] with the 128-byte swizzle (the
 * 16-byte chunk c of row r sits at chunk c ^ (r % 8)), the layout wgmma reads
 * without bank conflicts: K-major for Q and K (S = Q K^T, both operands from
 * shared memory), MN-major for V (O += P V with P from registers, the
 * transposing read done by wgmma itself).
 *
 * Per tile j each warpgroup rounds P_{j-1} to BF16 (the S accumulator layout
 * is the A fragment layout), rescales O to tile j - 1's row maxima, issues
 * S = Q K_j^T and then O += P_{j-1} V_{j-1}, waits for S only, and runs the
 * online softmax of tile j (log2 units, ex2.approx, masks only on tiles that
 * reach past the sequence or the causal diagonal) while the P V product is
 * still on the tensor cores; the wait for that product opens the next tile.
 * One barrier per tile hands buffers over: every warpgroup has finished its
 * reads of tile j - 1's K and tile j - 2's V, which the next copies
 * overwrite. Each thread holds rows g and g + 8 of its warp's 16 (g =
 * lane / 4); the four threads of a quad share a row, so row reductions are
 * two shuffles.
 *
 * Shapes: D = 128 runs N = 128, WG = 2 (160 KB of shared memory, one block
 * per multiprocessor); D = 64 runs N = 128, WG = 3 (as FlashAttention-3 does
 * for that head dim: more queries per K/V tile, where the exponentials
 * weigh more against the products). */
#include "backend/cuda/cuda_common.cuh"

#define FW_LN2 0.69314718055994530942f

/* ---- PTX --------------------------------------------------------------- */

__device__ __forceinline__ void fw_cp_async16(uint32_t dst, const void *src, int bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void fw_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void fw_cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
/* Copies written through the generic proxy, read next by wgmma (async proxy). */
__device__ __forceinline__ void fw_fence_proxy_async()
{
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void fw_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void fw_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int PENDING> __device__ __forceinline__ void fw_wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(PENDING) : "memory");
}

/* Keeps the compiler from touching wgmma operands across a wait. */
template <int COUNT> __device__ __forceinline__ void fw_fence_regs(float (&r)[COUNT])
{
#pragma unroll
    for (int i = 0; i < COUNT; i++) asm volatile("" : "+f"(r[i])::"memory");
}
template <int COUNT> __device__ __forceinline__ void fw_fence_regs(uint32_t (&r)[COUNT])
{
#pragma unroll
    for (int i = 0; i < COUNT; i++) asm volatile("" : "+r"(r[i])::"memory");
}

__device__ __forceinline__ float fw_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ uint32_t fw_pack_bf16(float lo, float hi)
{
    __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&pair);
}

/* Shared-memory matrix descriptor, 128-byte swizzle: start address, leading
 * and stride byte offsets (K-major: stride = between 8-row groups; MN-major:
 * leading = between 64-element column blocks, stride = between 8-row groups). */
__device__ __forceinline__ uint64_t fw_desc(uint32_t address, uint32_t leading, uint32_t stride)
{
    return (uint64_t)((address & 0x3FFFFu) >> 4) | (uint64_t)((leading >> 4) & 0x3FFFu) << 16 |
           (uint64_t)((stride >> 4) & 0x3FFFu) << 32 | 1ull << 62;
}

#define FW_F4(d, i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define FW_F16(d, i) FW_F4(d, i), FW_F4(d, i + 4), FW_F4(d, i + 8), FW_F4(d, i + 12)
#define FW_F32(d, i) FW_F16(d, i), FW_F16(d, i + 16)
#define FW_REGS32                                                                                                  \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, "  \
    "%23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define FW_REGS64                                                                                                  \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, "  \
    "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "   \
    "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

/* d[64 x N] (+)= a b for k = 16: a K-major from shared memory, b K-major (N x 16) from shared memory;
 * accumulate = 0 overwrites d. */
template <int N> __device__ __forceinline__ void fw_mma_ss(float (&d)[N / 2], uint64_t a, uint64_t b, int accumulate);
template <> __device__ __forceinline__ void fw_mma_ss<64>(float (&d)[32], uint64_t a, uint64_t b, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " FW_REGS32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : FW_F32(d, 0)
                 : "l"(a), "l"(b), "r"(accumulate));
}
template <> __device__ __forceinline__ void fw_mma_ss<128>(float (&d)[64], uint64_t a, uint64_t b, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FW_REGS64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : FW_F32(d, 0), FW_F32(d, 32)
                 : "l"(a), "l"(b), "r"(accumulate));
}

/* d[64 x N] += a b for k = 16: a from registers (the m16n8k16 A fragment of each warp's 16 rows), b MN-major
 * (16 x N, N contiguous) from shared memory. */
template <int N> __device__ __forceinline__ void fw_mma_rs(float (&d)[N / 2], const uint32_t *a, uint64_t b);
template <> __device__ __forceinline__ void fw_mma_rs<64>(float (&d)[32], const uint32_t *a, uint64_t b)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " FW_REGS32
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : FW_F32(d, 0)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
template <> __device__ __forceinline__ void fw_mma_rs<128>(float (&d)[64], const uint32_t *a, uint64_t b)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FW_REGS64
                 ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : FW_F32(d, 0), FW_F32(d, 32)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

/* ---- tiles ------------------------------------------------------------- */

/* Byte offset of 16-byte chunk c (8 columns) of row r in a swizzled tile of R rows. */
template <int R> __device__ __forceinline__ uint32_t fw_offset(int r, int c)
{
    return (uint32_t)((c >> 3) * R * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/* R rows of one head (src: the first one's column 0, rows `width` elements
 * apart) into the tile at dst; rows from `rows` on read as zeros. */
template <int R, int D, int THREADS>
__device__ __forceinline__ void fw_load_tile(uint32_t dst, const __nv_bfloat16 *src, int rows, int64_t width)
{
    constexpr int CHUNKS = D / 8, TOTAL = R * CHUNKS;
#pragma unroll
    for (int i = 0; i < (TOTAL + THREADS - 1) / THREADS; i++) {
        int e = (int)threadIdx.x + i * THREADS;
        if (TOTAL % THREADS == 0 || e < TOTAL) {
            int r = e / CHUNKS, c = e % CHUNKS;
            int inside = r < rows;
            fw_cp_async16(dst + fw_offset<R>(r, c), src + (inside ? r : 0) * width + c * 8, inside ? 16 : 0);
        }
    }
}

/* o += p v over one tile of N keys (v: the tile's shared address). */
template <int D, int N>
__device__ __forceinline__ void fw_mma_pv(float (&o)[D / 2], const uint32_t (&p)[N / 4], uint32_t v_tile)
{
#pragma unroll
    for (int kk = 0; kk < N / 16; kk++) fw_mma_rs<D>(o, &p[4 * kk], fw_desc(v_tile + kk * 16 * 128, N * 128, 1024));
}

/* P (the S accumulators after the softmax) rounded to BF16 A fragments: the C fragment of keys 16 kk..16 kk + 15
 * is the A fragment of k-step kk. */
template <int N> __device__ __forceinline__ void fw_pack(uint32_t (&p)[N / 4], const float (&s)[N / 2])
{
#pragma unroll
    for (int i = 0; i < N / 4; i++) p[i] = fw_pack_bf16(s[2 * i], s[2 * i + 1]);
}

/* O's rows g (alpha0) and g + 8 (alpha1) to new maxima. */
template <int D> __device__ __forceinline__ void fw_rescale(float (&o)[D / 2], float alpha0, float alpha1)
{
#pragma unroll
    for (int i = 0; i < D / 2; i += 4) {
        o[i] *= alpha0;
        o[i + 1] *= alpha0;
        o[i + 2] *= alpha1;
        o[i + 3] *= alpha1;
    }
}

/* ---- the kernel -------------------------------------------------------- */

template <int D, int N, int WG> constexpr size_t fw_shared_bytes()
{
    return (size_t)(64 * WG + 4 * N) * D * 2 + 1024; /* Q, 2 K, 2 V; 1024 for the alignment */
}

template <int D, int N, int WG>
__global__ void __launch_bounds__(WG * 128, 1)
    flash_wgmma_kernel(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                       const __nv_bfloat16 *v, int sq, int sk, int heads, float scale_log2, int causal)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    static_assert(D == 64 || D == 128, "head dim 64 or 128");
    static_assert(N == 64 || N == 128, "key tile 64 or 128");
    constexpr int M = 64 * WG, THREADS = 128 * WG;
    constexpr uint32_t Q_BYTES = M * D * 2, KV_BYTES = N * D * 2;
    extern __shared__ uint8_t fw_shared[];
    const uint32_t base = ((uint32_t)__cvta_generic_to_shared(fw_shared) + 1023u) & ~1023u; /* swizzle atoms */
    const uint32_t q_tile = base, k_tiles = base + Q_BYTES, v_tiles = k_tiles + 2 * KV_BYTES;
    const int warpgroup = (int)threadIdx.x >> 7, warp = ((int)threadIdx.x >> 5) & 3, lane = (int)threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3, h = blockIdx.y;
    const int64_t width = (int64_t)heads * D, column = (int64_t)h * D;
    const int q0 = (int)(gridDim.x - 1 - blockIdx.x) * M; /* causal: the longest blocks first */
    const int first_row = q0 + warpgroup * 64, row0 = first_row + warp * 16 + g, row1 = row0 + 8;
    const __nv_bfloat16 *qh = q + column, *kh = k + column, *vh = v + column;
    const int key_end = causal ? min(sk, q0 + M) : sk;
    const int tiles = (int)((key_end + N - 1) / N);

    fw_load_tile<M, D, THREADS>(q_tile, qh + q0 * width, sq - q0, width);
    if (tiles > 0) fw_load_tile<N, D, THREADS>(k_tiles, kh, sk, width);
    fw_cp_async_commit();

    float o[D / 2], s[N / 2];
    uint32_t p[N / 4];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < N / 2; i++) s[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < N / 4; i++) p[i] = 0u;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* maxima in raw score units */
    float alpha0 = 1.0f, alpha1 = 1.0f; /* the last softmax's rescaling of O, applied before its P V */
    const uint32_t q_rows = q_tile + warpgroup * 64 * 128;

    for (int j = 0; j < tiles; j++) {
        /* Waits here, at the top, rather than after the softmax: the compiler hoists a wait at the end of
         * the softmax's block above the softmax, which would serialize it with the P V product. */
        fw_cp_async_wait_all(); /* K_j and V_{j-1} (and Q) are in */
        fw_wgmma_wait<0>();     /* P_{j-2} V_{j-2} is done: O, P and V_{j-2}'s buffer are free */
        fw_fence_regs(o);
        fw_fence_regs(p);
        fw_fence_proxy_async();
        __syncthreads(); /* ... for everyone: V_j and K_{j+1} may overwrite V_{j-2} and K_{j-1} */
        fw_pack<N>(p, s);  /* P_{j-1} (j = 0: zeros), before S_j overwrites s */
        fw_rescale<D>(o, alpha0, alpha1); /* O to tile j-1's maxima */

        /* S = Q K_j^T, then O += P_{j-1} V_{j-1}; wait for S only. */
        fw_wgmma_fence();
        const uint32_t k_tile = k_tiles + (j & 1) * KV_BYTES;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            fw_mma_ss<N>(s, fw_desc(q_rows + (kk >> 2) * M * 128 + (kk & 3) * 32, 16, 1024),
                         fw_desc(k_tile + (kk >> 2) * N * 128 + (kk & 3) * 32, 16, 1024), kk);
        fw_wgmma_commit();
        if (j > 0) {
            fw_mma_pv<D, N>(o, p, v_tiles + ((j - 1) & 1) * KV_BYTES);
            fw_wgmma_commit();
            fw_wgmma_wait<1>();
        } else {
            fw_wgmma_wait<0>();
        }
        fw_fence_regs(s);
        /* The copies of K_{j+1} and V_j. */
        if (j + 1 < tiles)
            fw_load_tile<N, D, THREADS>(k_tiles + ((j + 1) & 1) * KV_BYTES, kh + (j + 1) * N * width,
                                        sk - (j + 1) * N, width);
        fw_load_tile<N, D, THREADS>(v_tiles + (j & 1) * KV_BYTES, vh + j * N * width, sk - j * N, width);
        fw_cp_async_commit();
        __syncwarp();

        /* Softmax of tile j while P_{j-1} V_{j-1} runs; it touches no register of that product (O, P).
         * Mask (only tiles past the end or crossing the diagonal), row maxima over the quad. */
        const int k0 = j * N;
        if (k0 + N > sk || (causal && k0 + N - 1 > first_row)) {
#pragma unroll
            for (int i = 0; i < N / 2; i++) {
                int key = k0 + (i >> 2) * 8 + 2 * t + (i & 1), row = (i & 2) ? row1 : row0;
                if (key >= sk || (causal && key > row)) s[i] = -INFINITY;
            }
        }
        float max0 = m0, max1 = m1;
#pragma unroll
        for (int i = 0; i < N / 2; i += 4) {
            max0 = fmaxf(max0, fmaxf(s[i], s[i + 1]));
            max1 = fmaxf(max1, fmaxf(s[i + 2], s[i + 3]));
        }
        max0 = fmaxf(max0, __shfl_xor_sync(0xffffffffu, max0, 1));
        max0 = fmaxf(max0, __shfl_xor_sync(0xffffffffu, max0, 2));
        max1 = fmaxf(max1, __shfl_xor_sync(0xffffffffu, max1, 1));
        max1 = fmaxf(max1, __shfl_xor_sync(0xffffffffu, max1, 2));
        /* P = exp2(S scale - max scale); a row with nothing visible yet keeps 0s (no -inf - -inf). */
        const float base0 = max0 == -INFINITY ? 0.0f : max0 * scale_log2;
        const float base1 = max1 == -INFINITY ? 0.0f : max1 * scale_log2;
        alpha0 = fw_exp2(m0 * scale_log2 - base0);
        alpha1 = fw_exp2(m1 * scale_log2 - base1);
        m0 = max0;
        m1 = max1;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int i = 0; i < N / 2; i += 4) {
            s[i] = fw_exp2(fmaf(s[i], scale_log2, -base0));
            s[i + 1] = fw_exp2(fmaf(s[i + 1], scale_log2, -base0));
            s[i + 2] = fw_exp2(fmaf(s[i + 2], scale_log2, -base1));
            s[i + 3] = fw_exp2(fmaf(s[i + 3], scale_log2, -base1));
            sum0 += s[i] + s[i + 1];
            sum1 += s[i + 2] + s[i + 3];
        }
        l0 = l0 * alpha0 + sum0;
        l1 = l1 * alpha1 + sum1;
    }
    if (tiles > 0) { /* the last tile's P V */
        fw_cp_async_wait_all();
        fw_wgmma_wait<0>();
        fw_fence_regs(o);
        fw_fence_regs(p);
        fw_fence_proxy_async();
        __syncthreads();
        fw_pack<N>(p, s);
        fw_rescale<D>(o, alpha0, alpha1);
        fw_wgmma_fence();
        fw_mma_pv<D, N>(o, p, v_tiles + ((tiles - 1) & 1) * KV_BYTES);
        fw_wgmma_commit();
        fw_wgmma_wait<0>();
        fw_fence_regs(o);
    }
    fw_cp_async_wait_all(); /* no tiles: Q's copy is still open */

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int i = 0; i < D / 2; i += 4) {
        int64_t c = column + (i >> 2) * 8 + 2 * t;
        if (row0 < sq) *(__nv_bfloat162 *)&out[row0 * width + c] = __floats2bfloat162_rn(o[i] * inv0, o[i + 1] * inv0);
        if (row1 < sq)
            *(__nv_bfloat162 *)&out[row1 * width + c] = __floats2bfloat162_rn(o[i + 2] * inv1, o[i + 3] * inv1);
    }
    if (lse && t == 0) {
        if (row0 < sq) lse[(int64_t)h * sq + row0] = (m0 * scale_log2 + log2f(l0)) * FW_LN2;
        if (row1 < sq) lse[(int64_t)h * sq + row1] = (m1 * scale_log2 + log2f(l1)) * FW_LN2;
    }
#else
    __trap(); /* built without sm_90a: cuda_flash_wgmma never launches this */
#endif
}

/* ---- launch ------------------------------------------------------------ */

template <int D, int N, int WG>
static void fw_launch(cuda_state *s, __nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                      const __nv_bfloat16 *v, int64_t sq, int64_t sk, int heads, int causal)
{
    constexpr int M = 64 * WG;
    const size_t bytes = fw_shared_bytes<D, N, WG>();
    if (!cuda_ok(s, cudaFuncSetAttribute(flash_wgmma_kernel<D, N, WG>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)bytes),
                 "attention (wgmma) setup"))
        return;
    dim3 grid((unsigned)((sq + M - 1) / M), (unsigned)heads);
    float scale_log2 = 1.44269504088896340736f / sqrtf((float)D);
    flash_wgmma_kernel<D, N, WG><<<grid, WG * 128, bytes, s->stream>>>(out, lse, q, k, v, (int)sq, (int)sk, heads,
                                                                       scale_log2, causal);
}

/* 1 in device code built for sm_90a, where the kernel above has a body. */
__device__ int fw_built_for_sm90a =
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    1;
#else
    0;
#endif

/* Whether the code loaded for this device is sm_90a's (checked once per process). */
static int fw_available(void)
{
    static int available = -1;
    if (available < 0) {
        int device = 0, major = 0, built = 0;
        available = cudaGetDevice(&device) == cudaSuccess &&
                    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
                    major == 9 && cudaMemcpyFromSymbol(&built, fw_built_for_sm90a, sizeof built) == cudaSuccess &&
                    built == 1;
        (void)cudaGetLastError(); /* a refusal above is an answer, not a failure */
    }
    return available;
}

/* The wgmma attention for D = 64 or 128 with 16-byte aligned rows (sequences under 2^30); 0 (nothing launched)
 * otherwise. */
int cuda_flash_wgmma(cuda_state *s, __nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                     const __nv_bfloat16 *v, int64_t sq, int64_t sk, int heads, int d, int causal)
{
    uintptr_t any = (uintptr_t)out | (uintptr_t)q | (uintptr_t)k | (uintptr_t)v;
    if ((d != 64 && d != 128) || (any & 15u) != 0 || sq > (1 << 30) || sk > (1 << 30) || !fw_available()) return 0;
    if (d == 128)
        fw_launch<128, 128, 2>(s, out, lse, q, k, v, sq, sk, heads, causal);
    else
        fw_launch<64, 128, 3>(s, out, lse, q, k, v, sq, sk, heads, causal);
    return 1;
}
