/* The CUDA backend's contract between its C seam (backend_cuda.c, which
 * fills backend_ops) and its CUDA C++ files (cuda_*.cu, which implement the
 * ops). Plain C, no CUDA types: backend/backend.h is C only (its tensor_none
 * does not compile as C++), so the .cu files see `backend` as an opaque
 * handle and reach their state through cuda_of(). Each op has the signature
 * and semantics of its backend_ops entry in backend/backend.h. */
#ifndef MOEDIT_BACKEND_CUDA_CUDA_OPS_H
#define MOEDIT_BACKEND_CUDA_CUDA_OPS_H

#include "backend/activation.h"
#include "core/tensor.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct backend backend;
typedef struct cuda_state cuda_state;

/* cuda_device.cu: the device, its stream and shared buffers. */
cuda_state *cuda_state_create(int device_index); /* NULL with "no CUDA device: ..." set */
int cuda_device_count(void); /* GPUs the driver reports; 0 when it reports none or fails */
void cuda_state_destroy(cuda_state *s);
int cuda_state_status(cuda_state *s);
void *cuda_state_stream(cuda_state *s);
cuda_state *cuda_of(backend *be); /* backend_cuda.c: be->impl */

/* The device bytes this backend cudaMalloc'd now and at most, and the
 * device's total (cudaMemGetInfo; -1 when it fails). */
void cuda_memory_figures(cuda_state *s, int64_t *in_use, int64_t *peak, int64_t *total, int *device);
void *cuda_alloc(backend *be, size_t bytes);
void cuda_free(backend *be, void *ptr);
void cuda_upload(backend *be, tensor dst, const float *src);
void cuda_download(backend *be, float *dst, tensor src);
void cuda_copy(backend *be, tensor dst, tensor src);
void cuda_synchronize(backend *be);

/* cuda_host_weights.cu: weights in pinned host memory, streamed in on a copy stream. */
void *cuda_host_alloc(backend *be, size_t bytes);
void cuda_host_free(backend *be, void *ptr);
void cuda_download_raw(backend *be, void *host, const void *device, size_t bytes);
void cuda_upload_async(backend *be, int slot, void *device, const void *host, size_t bytes);
void cuda_upload_wait(backend *be, int slot);
void cuda_host_weights_destroy(cuda_state *s);

/* cuda_elementwise.cu */
void cuda_fill(backend *be, tensor dst, float value);
void cuda_fill_uniform(backend *be, tensor dst, uint64_t seed, uint64_t stream, float scale, int64_t full_cols,
                       int64_t row0, int64_t col0); /* cuda_random.cu */
void cuda_add(backend *be, tensor y, tensor a, tensor b);
void cuda_silu(backend *be, tensor y, tensor x);
void cuda_swiglu(backend *be, tensor y, tensor gate, tensor up);
void cuda_gated_residual(backend *be, tensor x, tensor gate, tensor y);
void cuda_scale_rows(backend *be, tensor x, tensor row_scale);
void cuda_rope(backend *be, tensor x, tensor cos_sin, int heads, int rope_dim);

/* cuda_gemm.cu */
void cuda_linear(backend *be, tensor y, tensor x, tensor w, tensor bias);
void cuda_linear_grouped(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups);

/* cuda_fp8.cu: FP8 activations of rows split over ranks (docs/fp8.md) */
void cuda_row_abs_max(backend *be, tensor amax, tensor x);
void cuda_quantize_rows(backend *be, tensor q, tensor x, tensor amax);

/* cuda_norm.cu */
void cuda_layer_norm_modulate(backend *be, tensor y, tensor x, tensor shift, tensor scale, float eps);
void cuda_rms_norm(backend *be, tensor y, tensor x, tensor weight, float eps);
void cuda_rms_norm_rope(backend *be, tensor x, tensor weight, float eps, tensor cos_sin, int heads, int rope_dim);
void cuda_row_sum_squares(backend *be, tensor sums, tensor x);
void cuda_rms_norm_with_sums(backend *be, tensor y, tensor x, tensor sums, int64_t count, tensor weight, float eps);

/* cuda_attention.cu */
void cuda_attention(backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads);
void cuda_attention_causal(backend *be, tensor out, tensor q, tensor k, tensor v, int heads);
void cuda_attention_merge(backend *be, tensor out, tensor lse, tensor part_out, tensor part_lse, int heads);

/* cuda_image.cu */
void cuda_conv2d(backend *be, tensor y, tensor x, tensor w, tensor bias, int kernel, int stride, const int pad[4]);
void cuda_group_norm_stats(backend *be, tensor stats, tensor x, int groups);
void cuda_group_norm_apply(backend *be, tensor y, tensor x, tensor stats, int64_t count, tensor weight, tensor bias,
                           float eps, int silu);
void cuda_upsample_nearest2x(backend *be, tensor y, tensor x);
void cuda_transpose(backend *be, tensor y, tensor x);
void cuda_copy_rows(backend *be, tensor y, int64_t y_row, tensor x, int64_t x_row, int64_t rows);

/* cuda_rows.cu */
void cuda_gather_rows(backend *be, tensor y, tensor x, tensor index);
void cuda_combine_rows(backend *be, tensor y, tensor x, tensor positions, tensor weight, int64_t first);

/* cuda_moe.cu */
void cuda_moe_route(backend *be, tensor experts, tensor weights, tensor logits, int forced);
void cuda_moe_dispatch(backend *be, tensor rows, tensor slot_weights, tensor positions, tensor offsets, tensor experts,
                       tensor weights, tensor bucket, int buckets);
void cuda_split_columns(backend *be, tensor y, tensor x, int parts);
void cuda_merge_columns(backend *be, tensor y, tensor x, int parts);

/* the text encoders' ops: cuda_activation.cu, cuda_norm.cu, cuda_attention_gemm.cu */
void cuda_activation(backend *be, tensor y, tensor x, tensor up, backend_activation act);
void cuda_layer_norm(backend *be, tensor y, tensor x, tensor weight, tensor bias, float eps);
void cuda_attention_bias(backend *be, tensor out, tensor q, tensor k, tensor v, tensor bias, int heads, float scale);

#ifdef __cplusplus
}
#endif

#endif
