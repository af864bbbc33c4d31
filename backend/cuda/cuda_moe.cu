/* MoE gate and dispatch on the device, so that a MoE layer's only host round
 * trip is the download of its bucket offsets (the grouped product needs each
 * expert's row count on the host). Before, the host downloaded the logits,
 * ran softmax and top-k over every row and uploaded the dispatch, while
 * the device waited (docs/benchmarks.md, "Figures cited by source comments").
 *
 *   moe_route     one thread per row: backend/moe_gate.h's moe_gate_row, the
 *                 function the CPU backend runs, on an F32 copy of the row.
 *   moe_dispatch  a stable counting sort of the slots by bucket in three
 *                 kernels: per block of 256 slots the count of each bucket;
 *                 one block turns the counts into each (bucket, block)'s
 *                 first position and the offsets; per block again, each slot
 *                 its position: its bucket's first position in the block plus
 *                 the slots of earlier warps in that bucket plus the earlier
 *                 lanes of its own warp with the same bucket (__match_any_sync).
 *                 Positions follow slot order within a bucket, as the CPU's
 *                 serial loop, so both backends give the same dispatch. */
#include "backend/cuda/cuda_common.cuh"

#include "backend/moe_gate.h"

#define DISPATCH_SLOTS 256 /* slots per block: 8 warps */
#define DISPATCH_WARPS (DISPATCH_SLOTS / 32)

__global__ void moe_route_kernel(int32_t *experts, float *weights, float *probs, const void *logits, int dl,
                                 int64_t rows, int n, int k, int forced)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < rows; i += (int64_t)gridDim.x * blockDim.x) {
        float *p = probs + i * n;
        for (int e = 0; e < n; e++) p[e] = ld(logits, dl, i * n + e);
        moe_gate_row(p, n, k, forced, experts + i * k, weights + i * k);
    }
}

void cuda_moe_route(backend *be, tensor experts, tensor weights, tensor logits, int forced)
{
    cuda_state *s = cuda_of(be);
    int64_t rows = tensor_rows(&logits);
    int n = (int)tensor_cols(&logits), k = (int)tensor_cols(&experts);
    assert(experts.dtype == DTYPE_I32 && weights.dtype == DTYPE_F32 && tensor_rows(&experts) == rows);
    if (rows == 0) return;
    float *probs = (float *)cuda_scratch(s, (size_t)(rows * n) * sizeof(float));
    if (!probs) return;
    moe_route_kernel<<<cuda_blocks(s, rows), CUDA_THREADS, 0, s->stream>>>(
        (int32_t *)experts.data, (float *)weights.data, probs, logits.data, logits.dtype, rows, n, k, forced);
    cuda_launched(s, "moe_route");
}

__device__ __forceinline__ int slot_bucket(const int32_t *experts, const int32_t *bucket, int64_t slot)
{
    int e = experts[slot];
    return bucket ? bucket[e] : e;
}

/* counts[b * blocks + block] = the slots of this block in bucket b. */
__global__ void dispatch_count_kernel(int32_t *counts, const int32_t *experts, const int32_t *bucket, int64_t slots,
                                      int buckets, int blocks)
{
    extern __shared__ int32_t count[];
    for (int b = threadIdx.x; b < buckets; b += blockDim.x) count[b] = 0;
    __syncthreads();
    int64_t slot = (int64_t)blockIdx.x * DISPATCH_SLOTS + threadIdx.x;
    if (slot < slots) atomicAdd(&count[slot_bucket(experts, bucket, slot)], 1);
    __syncthreads();
    for (int b = threadIdx.x; b < buckets; b += blockDim.x) counts[(int64_t)b * blocks + blockIdx.x] = count[b];
}

/* One block: counts become first positions (bucket-major, then block), and
 * offsets[b] the first position of bucket b. */
__global__ void dispatch_scan_kernel(int32_t *counts, int32_t *offsets, int buckets, int blocks)
{
    __shared__ int32_t base[MOE_MAX_BUCKETS + 1];
    for (int b = threadIdx.x; b < buckets; b += blockDim.x) {
        int32_t sum = 0;
        for (int j = 0; j < blocks; j++) {
            int32_t c = counts[(int64_t)b * blocks + j];
            counts[(int64_t)b * blocks + j] = sum;
            sum += c;
        }
        base[b + 1] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        base[0] = 0;
        for (int b = 0; b < buckets; b++) base[b + 1] += base[b];
    }
    __syncthreads();
    for (int b = threadIdx.x; b <= buckets; b += blockDim.x) offsets[b] = base[b];
    for (int b = threadIdx.x; b < buckets; b += blockDim.x)
        for (int j = 0; j < blocks; j++) counts[(int64_t)b * blocks + j] += base[b];
}

__global__ void dispatch_place_kernel(int32_t *rows, float *slot_weights, int32_t *positions, const int32_t *first,
                                      const int32_t *experts, const float *weights, const int32_t *bucket,
                                      int64_t slots, int buckets, int blocks, int k)
{
    extern __shared__ int32_t warp_count[]; /* [DISPATCH_WARPS][buckets] */
    for (int i = threadIdx.x; i < DISPATCH_WARPS * buckets; i += blockDim.x) warp_count[i] = 0;
    __syncthreads();
    int64_t slot = (int64_t)blockIdx.x * DISPATCH_SLOTS + threadIdx.x;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int key = slot < slots ? slot_bucket(experts, bucket, slot) : -1;
    unsigned same = __match_any_sync(0xffffffffu, key);
    int earlier = __popc(same & ((1u << lane) - 1));
    if (key >= 0 && earlier == 0) warp_count[warp * buckets + key] = __popc(same);
    __syncthreads();
    if (key < 0) return;
    int32_t at = first[(int64_t)key * blocks + blockIdx.x] + earlier;
    for (int w = 0; w < warp; w++) at += warp_count[w * buckets + key];
    rows[at] = (int32_t)(slot / k);
    slot_weights[at] = weights[slot];
    positions[slot] = at;
}

void cuda_moe_dispatch(backend *be, tensor rows, tensor slot_weights, tensor positions, tensor offsets, tensor experts,
                       tensor weights, tensor bucket, int buckets)
{
    cuda_state *s = cuda_of(be);
    int64_t slots = tensor_numel(&experts);
    int k = (int)tensor_cols(&experts), blocks = (int)((slots + DISPATCH_SLOTS - 1) / DISPATCH_SLOTS);
    assert(rows.dtype == DTYPE_I32 && offsets.dtype == DTYPE_I32 && tensor_numel(&offsets) == buckets + 1);
    assert(tensor_numel(&rows) == slots && tensor_numel(&positions) == slots && buckets <= MOE_MAX_BUCKETS);
    int32_t *counts = (int32_t *)cuda_scratch(s, (size_t)buckets * (blocks > 0 ? blocks : 1) * sizeof(int32_t));
    if (!counts) return;
    const int32_t *map = (const int32_t *)bucket.data, *chosen = (const int32_t *)experts.data;
    if (blocks > 0) {
        dispatch_count_kernel<<<blocks, DISPATCH_SLOTS, buckets * sizeof(int32_t), s->stream>>>(counts, chosen, map,
                                                                                                 slots, buckets, blocks);
        cuda_launched(s, "moe_dispatch count");
    }
    dispatch_scan_kernel<<<1, 256, 0, s->stream>>>(counts, (int32_t *)offsets.data, buckets, blocks);
    cuda_launched(s, "moe_dispatch scan");
    if (blocks == 0) return;
    dispatch_place_kernel<<<blocks, DISPATCH_SLOTS, DISPATCH_WARPS * buckets * sizeof(int32_t), s->stream>>>(
        (int32_t *)rows.data, (float *)slot_weights.data, (int32_t *)positions.data, counts, chosen,
        (const float *)weights.data, map, slots, buckets, blocks, k);
    cuda_launched(s, "moe_dispatch place");
}
