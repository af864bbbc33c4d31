/* FP8 activations and products on the GPU. docs/fp8.md ("The quantization
 * rule") is the contract and backend/cpu/cpu_fp8.c the reference:
 *
 *   row_abs_max    amax[m] = max_k |x[m, k]| (NaN when the row holds one)
 *   quantize_rows  q.scale[m] = amax[m] / 448 (1 unless amax > 0),
 *                  q[m, k] = e4m3(x[m, k] / q.scale[m])
 *   linear, F8 w   x quantized per row here unless it comes quantized
 *                  (row-parallel layers, parallel/fp8_rows.h), then
 *                  cuBLASLt's FP8 product with the rows' and channels'
 *                  scales and the bias in its epilogue (cuda_gemm.cu):
 *                  F32 sums, output in y's dtype (BF16).
 *
 * The activation is quantized by a pass of its own: one kernel per call
 * that reads each row twice (its amax, then its codes; the second read
 * comes from L2) and writes the codes to the scratch buffer. It is not yet
 * fused into the kernels that produce the activations (the norms, SwiGLU,
 * attention), which would save this pass's M x K read and write.
 *
 * e4m3(v): __nv_cvt_float2_to_fp8x2 with __NV_SATFINITE (Hopper's
 * cvt.rn.satfinite.e4m3x2.f32) rounds to nearest, ties to even, and turns
 * |v| > 448 and the infinities into +-448 with v's sign, which is the rule
 * (values from 464 up included, which torch's own cast makes NaN). NaN it
 * turns into 0x7F whatever v's sign, where the rule keeps the sign (0xFF for
 * a negative NaN), so NaNs are coded before it; and a NaN x skips the
 * division, whose GPU result would be the positive canonical NaN where the
 * CPU's keeps x's sign. The division is __fdiv_rn,
 * IEEE whatever the compile flags: the rule divides, and x * (1 / scale)
 * differs from it at some ties. test_cuda_fp8 holds the codes to the CPU's
 * bit for bit. */
#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "core/float8.h"
}

/* The larger of a and b, NaN when either is (fmaxf would drop it), as
 * core/float8.c's f8_abs_max returns NaN for a row that holds one. */
__device__ __forceinline__ float max_keeping_nan(float a, float b) { return a != a || a > b ? a : b; }

__device__ __forceinline__ float warp_max_keeping_nan(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v = max_keeping_nan(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* max |x[row0 + c]| over c < cols for the block; every thread gets it. W
 * values per access (cuda_common.cuh's ldw). shared holds 32 floats. */
template <int W> __device__ float row_amax(const void *x, int dx, int64_t row0, int64_t cols, float *shared)
{
    float amax = 0.0f, v[W];
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, row0 + c, v);
#pragma unroll
        for (int i = 0; i < W; i++) amax = max_keeping_nan(amax, fabsf(v[i]));
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    amax = warp_max_keeping_nan(amax);
    if (lane == 0) shared[warp] = amax;
    __syncthreads();
    amax = lane < warps ? shared[lane] : 0.0f;
    return warp_max_keeping_nan(amax);
}

/* core/float8.c's f8_row_scale. */
__device__ __forceinline__ float row_scale(float amax) { return amax > 0.0f ? __fdiv_rn(amax, F8_E4M3_MAX) : 1.0f; }

/* The codes of lo and hi (already divided by the scale), lo in the low byte. */
__device__ __forceinline__ unsigned e4m3_pair(float lo, float hi)
{
    unsigned codes = __nv_cvt_float2_to_fp8x2(make_float2(lo, hi), __NV_SATFINITE, __NV_E4M3);
    if (lo != lo) codes = (codes & 0xFF00u) | (__float_as_uint(lo) >> 31 ? 0xFFu : 0x7Fu);
    if (hi != hi) codes = (codes & 0x00FFu) | (__float_as_uint(hi) >> 31 ? 0xFF00u : 0x7F00u);
    return codes;
}

/* Block r: amax[r] of x's row r. */
template <int W> __global__ void row_abs_max_kernel(float *amax, const void *x, int dx, int64_t cols)
{
    __shared__ float shared[32];
    float a = row_amax<W>(x, dx, (int64_t)blockIdx.x * cols, cols, shared);
    if (threadIdx.x == 0) amax[blockIdx.x] = a;
}

/* Block r: scales[r] and the codes of x's row r, from amax[r] (the ranks'
 * max-reduced amax) or, when amax is NULL, from the row's own. */
template <int W>
__global__ void quantize_rows_kernel(uint8_t *codes, float *scales, const void *x, int dx, const float *amax,
                                     int64_t cols)
{
    __shared__ float shared[32];
    const int64_t row0 = (int64_t)blockIdx.x * cols;
    const float scale = row_scale(amax ? amax[blockIdx.x] : row_amax<W>(x, dx, row0, cols, shared));
    if (threadIdx.x == 0) scales[blockIdx.x] = scale;
    float v[W];
    for (int64_t c = threadIdx.x * W; c < cols; c += blockDim.x * W) {
        ldw<W>(x, dx, row0 + c, v);
#pragma unroll
        for (int i = 0; i < W; i++) v[i] = v[i] != v[i] ? v[i] : __fdiv_rn(v[i], scale); /* NaN keeps its sign */
        if constexpr (W == 8) {
            uint2 packed;
            packed.x = e4m3_pair(v[0], v[1]) | e4m3_pair(v[2], v[3]) << 16;
            packed.y = e4m3_pair(v[4], v[5]) | e4m3_pair(v[6], v[7]) << 16;
            *reinterpret_cast<uint2 *>(codes + row0 + c) = packed;
        } else {
            codes[row0 + c] = (uint8_t)(e4m3_pair(v[0], 0.0f) & 0xFFu);
        }
    }
}

/* 8 values per access where x is BF16 on 16-byte boundaries with rows of
 * a multiple of 8 (and the codes, when written, on 8-byte ones). */
static int fp8_width(tensor x, const void *codes)
{
    return bf16x8_fits(x) && tensor_cols(&x) % 8 == 0 && (uintptr_t)codes % 8 == 0 ? 8 : 1;
}

void cuda_row_abs_max(backend *be, tensor amax, tensor x)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(amax.dtype == DTYPE_F32 && tensor_numel(&amax) == rows);
    if (rows == 0) return;
    float *out = (float *)amax.data;
    if (fp8_width(x, NULL) == 8)
        row_abs_max_kernel<8><<<(unsigned)rows, cuda_row_threads(cols / 8), 0, s->stream>>>(out, x.data, x.dtype, cols);
    else
        row_abs_max_kernel<1><<<(unsigned)rows, cuda_row_threads(cols), 0, s->stream>>>(out, x.data, x.dtype, cols);
    cuda_launched(s, "row_abs_max");
}

/* q (F8_E4M3 with q.scale) = x quantized per row; amax NULL: each row's own. */
static void quantize_on(cuda_state *s, tensor q, tensor x, const float *amax)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(q.dtype == DTYPE_F8_E4M3 && q.scale && tensor_rows(&q) == rows && tensor_cols(&q) == cols);
    if (rows == 0) return;
    uint8_t *codes = (uint8_t *)q.data;
    float *scales = (float *)q.scale;
    if (fp8_width(x, codes) == 8)
        quantize_rows_kernel<8><<<(unsigned)rows, cuda_row_threads(cols / 8), 0, s->stream>>>(codes, scales, x.data,
                                                                                            x.dtype, amax, cols);
    else
        quantize_rows_kernel<1><<<(unsigned)rows, cuda_row_threads(cols), 0, s->stream>>>(codes, scales, x.data,
                                                                                        x.dtype, amax, cols);
    cuda_launched(s, "quantize_rows");
}

void cuda_quantize_rows(backend *be, tensor q, tensor x, tensor amax)
{
    assert(amax.dtype == DTYPE_F32 && tensor_numel(&amax) == tensor_rows(&x));
    quantize_on(cuda_of(be), q, x, (const float *)amax.data);
}

static size_t round_up16(size_t bytes) { return (bytes + 15) / 16 * 16; }

/* y[rows g] = x[rows g] w[g]^T (+ bias) for the groups g, x quantized first
 * unless it is F8 already. The scratch holds x's scales, one group's scales
 * moved to a 16-byte boundary (cuBLASLt's scale vectors are kept aligned as
 * its documentation asks of the other scale modes'; an expert's rows may
 * start anywhere), then x's codes. */
static void fp8_products(cuda_state *s, tensor y, tensor x, const tensor *w, tensor bias, const int64_t *offsets,
                         int groups)
{
    int64_t m = tensor_rows(&x), k = tensor_cols(&x), n = tensor_cols(&y);
    if (m == 0) return;
    int quantize = x.dtype != DTYPE_F8_E4M3;
    size_t scale_bytes = round_up16((size_t)m * sizeof(float));
    char *base = (char *)cuda_scratch(s, 2 * scale_bytes + (quantize ? (size_t)(m * k) : 0));
    if (!base) return; /* the failure is recorded */
    float *aligned_scales = (float *)(base + scale_bytes);
    if (quantize) {
        tensor q = x;
        q.dtype = DTYPE_F8_E4M3;
        q.scale = base;
        q.data = base + 2 * scale_bytes;
        quantize_on(s, q, x, NULL);
        x = q;
    }
    assert(x.scale);
    for (int g = 0; g < groups; g++) {
        int64_t rows = offsets[g + 1] - offsets[g];
        if (rows == 0) continue;
        assert(w[g].dtype == DTYPE_F8_E4M3 && w[g].scale && tensor_rows(&w[g]) == n && tensor_cols(&w[g]) == k);
        tensor xg = tensor_row_slice(x, offsets[g], rows), yg = tensor_row_slice(y, offsets[g], rows);
        const float *x_scales = (const float *)xg.scale;
        if ((uintptr_t)x_scales % 16) {
            if (!cuda_ok(s, cudaMemcpyAsync(aligned_scales, x_scales, (size_t)rows * sizeof(float),
                                            cudaMemcpyDeviceToDevice, s->stream),
                         "FP8 activation scales"))
                return;
            x_scales = aligned_scales;
        }
        cuda_matrix a = {xg.data, DTYPE_F8_E4M3, k, x_scales};
        cuda_matrix b = {w[g].data, DTYPE_F8_E4M3, k, (const float *)w[g].scale};
        cuda_gemm(s, yg.data, y.dtype, n, a, b, 1, rows, n, k, bias);
    }
}

void cuda_fp8_linear(backend *be, tensor y, tensor x, tensor w, tensor bias)
{
    assert(tensor_rows(&y) == tensor_rows(&x) && (!bias.data || tensor_numel(&bias) == tensor_rows(&w)));
    int64_t offsets[2] = {0, tensor_rows(&x)};
    fp8_products(cuda_of(be), y, x, &w, bias, offsets, 1);
}

void cuda_fp8_linear_grouped(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups)
{
    assert(tensor_rows(&y) == tensor_rows(&x) && offsets[groups] <= tensor_rows(&x));
    fp8_products(cuda_of(be), y, x, w, cuda_tensor_none(), offsets, groups);
}
