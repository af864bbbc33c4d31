/* Weights kept in host memory and streamed in ahead of use (backend.h's
 * host_alloc ... upload_wait; dit/dit_weight_stream.h drives them).
 *
 * Host copies live in pinned memory (cudaHostAlloc), so cudaMemcpyAsync is a
 * true asynchronous DMA on the copy engine. Copies go on their own stream:
 *   upload_async(slot): compute_done <- record(compute stream)
 *                       copy stream waits compute_done (the buffer's last
 *                       reader, queued earlier, has finished), copies,
 *                       copied[slot] <- record(copy stream)
 *   upload_wait(slot):  compute stream waits copied[slot]
 * so block i + 1's copy runs while block i computes, and neither the host
 * nor the compute stream ever blocks on a copy. */
#include "backend/cuda/cuda_common.cuh"

#include <stdio.h>

void *cuda_host_alloc(backend *be, size_t bytes)
{
    void *ptr = NULL;
    if (cudaHostAlloc(&ptr, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError(); /* not sticky */
        error_set("out of pinned host memory: cannot allocate %zu MiB for streamed weights", bytes >> 20);
        return NULL;
    }
    return ptr;
}

void cuda_host_free(backend *be, void *ptr)
{
    if (ptr) cuda_ok(cuda_of(be), cudaFreeHost(ptr), "cudaFreeHost");
}

void cuda_download_raw(backend *be, void *host, const void *device, size_t bytes)
{
    cuda_state *s = cuda_of(be);
    if (bytes == 0) return;
    if (cuda_ok(s, cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, s->stream), "download_raw"))
        cuda_ok(s, cudaStreamSynchronize(s->stream), "download_raw");
}

/* The copy stream and its events, made once. */
static int copy_stream_ready(cuda_state *s)
{
    if (s->copy_stream) return 1;
    if (!cuda_ok(s, cudaStreamCreateWithFlags(&s->copy_stream, cudaStreamNonBlocking), "copy stream") ||
        !cuda_ok(s, cudaEventCreateWithFlags(&s->compute_done, cudaEventDisableTiming), "copy stream") ||
        !cuda_ok(s, cudaEventCreateWithFlags(&s->copied[0], cudaEventDisableTiming), "copy stream") ||
        !cuda_ok(s, cudaEventCreateWithFlags(&s->copied[1], cudaEventDisableTiming), "copy stream"))
        return 0;
    return 1;
}

void cuda_upload_async(backend *be, int slot, void *device, const void *host, size_t bytes)
{
    cuda_state *s = cuda_of(be);
    if (slot < 0 || slot > 1 || !copy_stream_ready(s)) return;
    if (!cuda_ok(s, cudaEventRecord(s->compute_done, s->stream), "upload_async") ||
        !cuda_ok(s, cudaStreamWaitEvent(s->copy_stream, s->compute_done, 0), "upload_async") ||
        !cuda_ok(s, cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, s->copy_stream), "upload_async"))
        return;
    cuda_ok(s, cudaEventRecord(s->copied[slot], s->copy_stream), "upload_async");
}

void cuda_upload_wait(backend *be, int slot)
{
    cuda_state *s = cuda_of(be);
    if (slot < 0 || slot > 1 || !s->copy_stream) return;
    cuda_ok(s, cudaStreamWaitEvent(s->stream, s->copied[slot], 0), "upload_wait");
}

void cuda_host_weights_destroy(cuda_state *s)
{
    if (!s->copy_stream) return;
    cudaStreamSynchronize(s->copy_stream);
    for (int i = 0; i < 2; i++) cudaEventDestroy(s->copied[i]);
    cudaEventDestroy(s->compute_done);
    cudaStreamDestroy(s->copy_stream);
    s->copy_stream = NULL;
}
