/* The CUDA device behind the backend: its state (stream, cuBLASLt handle,
 * shared buffers), error bookkeeping, memory and host transfers.
 *
 * Every op is enqueued on one stream, in call order. upload returns once the
 * host buffer may be reused, download once the host buffer holds the
 * result. Host F32 is converted to the tensor's dtype (BF16 for weights and
 * activations) on upload and back on download; I32 and F32 tensors travel
 * as raw 4-byte words. */
#include "backend/cuda/cuda_common.cuh"
#include "core/host_parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKSPACE_BYTES ((size_t)32 << 20)
#define STAGING_BYTES ((size_t)32 << 20)

int cuda_ok(cuda_state *s, cudaError_t status, const char *what)
{
    if (status == cudaSuccess) return 1;
    if (!s->failed) {
        snprintf(s->failure, sizeof s->failure, "CUDA error on cuda:%d in %s: %s", s->device, what,
                 cudaGetErrorString(status));
        s->failed = 1;
    }
    error_set("%s", s->failure);
    return 0;
}

int cuda_launched(cuda_state *s, const char *kernel) { return cuda_ok(s, cudaGetLastError(), kernel); }

void *cuda_scratch(cuda_state *s, size_t bytes)
{
    if (bytes <= s->scratch_bytes) return s->scratch;
    /* Grow by half again, so a slowly rising need does not reallocate often. */
    size_t size = bytes + bytes / 2;
    if (s->scratch) {
        cuda_ok(s, cudaStreamSynchronize(s->stream), "scratch resize");
        alloc_count_remove(&s->allocations, s->scratch);
        cudaFree(s->scratch);
    }
    s->scratch = NULL;
    s->scratch_bytes = 0;
    if (!cuda_ok(s, cudaMalloc(&s->scratch, size), "scratch allocation")) {
        s->scratch = NULL;
        return NULL;
    }
    s->scratch_bytes = size;
    alloc_count_add(&s->allocations, s->scratch, size);
    return s->scratch;
}

void *cuda_alloc(backend *be, size_t bytes)
{
    void *ptr = NULL;
    cudaError_t status = cudaMalloc(&ptr, bytes ? bytes : 1);
    if (status != cudaSuccess) {
        cudaGetLastError(); /* not sticky: clear it so later launch checks do not see it */
        size_t free_bytes = 0, total_bytes = 0;
        cudaMemGetInfo(&free_bytes, &total_bytes);
        error_set("out of GPU memory: cannot allocate %zu MiB on cuda:%d (%zu MiB free of %zu MiB)", bytes >> 20,
                  cuda_of(be)->device, free_bytes >> 20, total_bytes >> 20);
        return NULL;
    }
    alloc_count_add(&cuda_of(be)->allocations, ptr, bytes);
    return ptr;
}

void cuda_free(backend *be, void *ptr)
{
    if (!ptr) return;
    alloc_count_remove(&cuda_of(be)->allocations, ptr);
    cuda_ok(cuda_of(be), cudaFree(ptr), "cudaFree");
}

void cuda_memory_figures(cuda_state *s, int64_t *in_use, int64_t *peak, int64_t *total, int *device)
{
    alloc_count_read(&s->allocations, in_use, peak);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(s->device) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
        *total = (int64_t)total_bytes;
    else {
        cudaGetLastError(); /* not sticky: a figure missing is no failure of the run */
        *total = -1;
    }
    *device = s->device;
}

static int is_half(tensor_dtype dtype) { return dtype == DTYPE_BF16 || dtype == DTYPE_F16; }

static void host_to_half(uint16_t *dst, const float *src, int64_t n, tensor_dtype dtype)
{
#pragma omp parallel for if (n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t i = 0; i < n; i++) dst[i] = dtype == DTYPE_BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
}

void cuda_upload(backend *be, tensor dst, const float *src)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&dst);
    if (n == 0) return;
    if (!is_half(dst.dtype)) { /* F32 and I32: raw 4-byte words; F8: the codes' bytes (FP8 weights stay codes) */
        cuda_ok(s, cudaMemcpyAsync(dst.data, src, tensor_nbytes(&dst), cudaMemcpyHostToDevice, s->stream), "upload");
        return;
    }
    /* Convert a chunk into pinned memory, copy it, wait, next chunk. */
    int64_t chunk = (int64_t)(s->staging_bytes / sizeof(uint16_t));
    uint16_t *staging = (uint16_t *)s->staging;
    for (int64_t first = 0; first < n; first += chunk) {
        int64_t count = n - first < chunk ? n - first : chunk;
        host_to_half(staging, src + first, count, dst.dtype);
        if (!cuda_ok(s, cudaMemcpyAsync((uint16_t *)dst.data + first, staging, (size_t)count * 2,
                                        cudaMemcpyHostToDevice, s->stream),
                     "upload"))
            return;
        if (!cuda_ok(s, cudaStreamSynchronize(s->stream), "upload")) return;
    }
}

/* dst = src, in blocks of 1 MiB over the host's threads. */
static void host_copy(float *dst, const float *src, int64_t n)
{
    const int64_t block = (int64_t)1 << 18;
    int64_t blocks = (n + block - 1) / block;
#pragma omp parallel for if (n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t first = b * block, count = n - first < block ? n - first : block;
        memcpy(dst + first, src + first, (size_t)count * sizeof(float));
    }
}

void cuda_download(backend *be, float *dst, tensor src)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&src);
    if (n == 0) return;
    if (!is_half(src.dtype)) {
        cuda_ok(s, cudaMemcpyAsync(dst, src.data, tensor_nbytes(&src), cudaMemcpyDeviceToHost, s->stream),
                "download");
        cuda_ok(s, cudaStreamSynchronize(s->stream), "download");
        return;
    }
    /* Widened to F32 on the device, a chunk at a time, then copied through
     * pinned memory: a host-side conversion ran on one core under mpirun's
     * core binding and made downloads slow (docs/benchmarks.md, "Figures
     * cited by source comments"). The workspace is free between ops (stream
     * order). Chunks alternate between the halves of the workspace and of the
     * staging buffer, so the device converts and sends chunk i + 1 while the
     * host copies chunk i out; the host copy is spread over threads, as it
     * often first-touches fresh memory (the Llama's 64 MiB of hidden states
     * per prompt), whose page faults one core pays slowly. */
    size_t bytes = (s->workspace_bytes < s->staging_bytes ? s->workspace_bytes : s->staging_bytes) / 2;
    int64_t chunk = (int64_t)(bytes / sizeof(float)), chunks = (n + chunk - 1) / chunk;
    for (int64_t i = 0; i <= chunks; i++) {
        if (i < chunks) { /* chunk i into half i % 2 (its previous chunk, i - 2, is copied out) */
            int64_t first = i * chunk, count = n - first < chunk ? n - first : chunk;
            float *device = (float *)s->workspace + (i % 2) * chunk, *pinned = (float *)s->staging + (i % 2) * chunk;
            cuda_convert(s, device, DTYPE_F32, (const uint16_t *)src.data + first, src.dtype, count);
            if (!cuda_ok(s, cudaMemcpyAsync(pinned, device, (size_t)count * sizeof(float), cudaMemcpyDeviceToHost,
                                            s->stream),
                         "download") ||
                !cuda_ok(s, cudaEventRecord(s->staged[i % 2], s->stream), "download"))
                return;
        }
        if (i > 0) { /* chunk i - 1 out of half (i - 1) % 2 */
            int64_t j = i - 1, first = j * chunk, count = n - first < chunk ? n - first : chunk;
            if (!cuda_ok(s, cudaEventSynchronize(s->staged[j % 2]), "download")) return;
            host_copy(dst + first, (const float *)s->staging + (j % 2) * chunk, count);
        }
    }
}

void cuda_copy(backend *be, tensor dst, tensor src)
{
    cuda_state *s = cuda_of(be);
    assert(tensor_numel(&dst) == tensor_numel(&src));
    if (dst.dtype != src.dtype) {
        cuda_convert(s, dst.data, dst.dtype, src.data, src.dtype, tensor_numel(&src));
        return;
    }
    if (tensor_nbytes(&src) == 0 || dst.data == src.data) return;
    cuda_ok(s, cudaMemcpyAsync(dst.data, src.data, tensor_nbytes(&src), cudaMemcpyDeviceToDevice, s->stream),
            "copy");
}

void cuda_synchronize(backend *be) { cuda_ok(cuda_of(be), cudaDeviceSynchronize(), "synchronize"); }

/* Device, stream, cuBLASLt handle and the buffers every op shares. */
static int cuda_start(cuda_state *s, int device_index)
{
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) return error_set("no CUDA device: %s", cudaGetErrorString(status));
    if (count == 0) return error_set("no CUDA device: the driver reports none");
    if (device_index < 0) { /* one GPU per rank of this node, by the launcher's local rank */
        const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"};
        int local = 0;
        for (int i = 0; i < 4; i++)
            if (getenv(vars[i])) {
                local = atoi(getenv(vars[i]));
                break;
            }
        device_index = local % count;
    }
    if (device_index >= count)
        return error_set("no CUDA device: cuda:%d asked for, %d present", device_index, count);
    s->device = device_index;
    if ((status = cudaSetDevice(device_index)) != cudaSuccess ||
        (status = cudaDeviceGetAttribute(&s->sm_count, cudaDevAttrMultiProcessorCount, device_index)) !=
            cudaSuccess ||
        (status = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return error_set("no CUDA device: cuda:%d: %s", device_index, cudaGetErrorString(status));
    if (cublasLtCreate(&s->lt) != CUBLAS_STATUS_SUCCESS) {
        s->lt = NULL;
        return error_set("no CUDA device: cuda:%d: cuBLASLt failed to start", device_index);
    }
    s->workspace_bytes = WORKSPACE_BYTES;
    s->staging_bytes = STAGING_BYTES;
    if ((status = cudaMalloc(&s->workspace, s->workspace_bytes)) != cudaSuccess ||
        (status = cudaMallocHost(&s->staging, s->staging_bytes)) != cudaSuccess ||
        (status = cudaEventCreateWithFlags(&s->staged[0], cudaEventDisableTiming)) != cudaSuccess ||
        (status = cudaEventCreateWithFlags(&s->staged[1], cudaEventDisableTiming)) != cudaSuccess)
        return error_set("no CUDA device: cuda:%d: cannot allocate the backend's buffers: %s", device_index,
                         cudaGetErrorString(status));
    alloc_count_add(&s->allocations, s->workspace, s->workspace_bytes);
    if (!cuda_attention_setup(s)) return error_set("no CUDA device: cuda:%d: %s", device_index, s->failure);
    return 0;
}

int cuda_device_count(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); /* no driver or no device: not an error here */
        return 0;
    }
    return count;
}

cuda_state *cuda_state_create(int device_index)
{
    cuda_state *s = (cuda_state *)calloc(1, sizeof *s);
    if (!s) {
        error_set("out of memory creating the CUDA backend");
        return NULL;
    }
    alloc_count_init(&s->allocations);
    if (cuda_start(s, device_index) != 0) {
        cudaGetLastError();
        cuda_state_destroy(s);
        return NULL;
    }
    return s;
}

void cuda_state_destroy(cuda_state *s)
{
    if (!s) return;
    if (s->stream) cudaStreamSynchronize(s->stream);
    cuda_host_weights_destroy(s);
    cuda_gemm_cache_free(s);
    cuda_sdpa_cache_free(s);
    if (s->lt) cublasLtDestroy(s->lt);
    cudaFree(s->workspace);
    cudaFree(s->scratch);
    cudaFreeHost(s->staging);
    for (int i = 0; i < 2; i++)
        if (s->staged[i]) cudaEventDestroy(s->staged[i]);
    if (s->stream) cudaStreamDestroy(s->stream);
    alloc_count_free(&s->allocations);
    free(s);
}

int cuda_state_status(cuda_state *s)
{
    cuda_ok(s, cudaDeviceSynchronize(), "synchronize");
    if (!s->failed) return 0;
    return error_set("%s", s->failure);
}

void *cuda_state_stream(cuda_state *s) { return s->stream; }
