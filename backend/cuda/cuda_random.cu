/* fill_uniform on the CUDA backend: random weights made on the device, the
 * same numbers the CPU makes (core/philox.c), so a --random-weights model is
 * the same model on every device and layout, and a 17B-parameter one loads
 * without generating and uploading 68 GB of F32 from the host.
 *
 * One thread per element runs the Philox4x32-10 block of its index and
 * keeps its lane: four times the block work of the CPU's loop, which is
 * still far below the memory traffic of the write. The uniform is formed in
 * double exactly as philox_fill_uniform does, scaled in F32, then rounded to
 * the tensor's dtype (round to nearest even, as the upload path rounds). */
#include "backend/cuda/cuda_common.cuh"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* Lane `lane` of the Philox4x32-10 block of (counter, key). */
__device__ __forceinline__ uint32_t philox_lane(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                                uint32_t k1, int lane)
{
#pragma unroll
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0 = __umulhi(PHILOX_M0, c0), lo0 = PHILOX_M0 * c0;
        uint32_t hi1 = __umulhi(PHILOX_M1, c2), lo1 = PHILOX_M1 * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    return lane == 0 ? c0 : lane == 1 ? c1 : lane == 2 ? c2 : c3;
}

__global__ void fill_uniform_kernel(void *dst, int d_dst, int64_t rows, int64_t cols, uint64_t seed, uint64_t stream,
                                    float scale, int64_t full_cols, int64_t row0, int64_t col0)
{
    int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t index = (uint64_t)((row0 + i / cols) * full_cols + col0 + i % cols), block = index / 4;
        uint32_t x = philox_lane((uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32),
                                 (uint32_t)seed, (uint32_t)(seed >> 32), (int)(index % 4));
        /* Explicit roundings: no fused multiply-add, as on the host. */
        float u = (float)__dadd_rn(__dmul_rn((double)x + 0.5, 2.0 / 4294967296.0), -1.0);
        st(dst, d_dst, i, u * scale);
    }
}

void cuda_fill_uniform(backend *be, tensor dst, uint64_t seed, uint64_t stream, float scale, int64_t full_cols,
                       int64_t row0, int64_t col0)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = dst.ndim == 2 ? dst.shape[0] : tensor_numel(&dst), cols = dst.ndim == 2 ? dst.shape[1] : 1;
    if (rows * cols == 0) return;
    fill_uniform_kernel<<<cuda_blocks(s, rows * cols), CUDA_THREADS, 0, s->stream>>>(
        dst.data, dst.dtype, rows, cols, seed, stream, scale, full_cols, row0, col0);
    cuda_launched(s, "fill_uniform");
}
