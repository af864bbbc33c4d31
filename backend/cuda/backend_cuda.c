/* The CUDA backend behind the backend_ops seam: BF16 weights and
 * activations, FP32 accumulation, cuBLASLt for matrix products and moedit's
 * own kernels for the rest (backend/cuda/cuda_*.cu, one concept each; backend/cuda/cuda_ops.h
 * is the contract). This file only fills the ops table and owns the
 * backend handle; it is compiled only when CMake finds CUDA. */
#include "backend/cuda/backend_cuda.h"

#include "backend/cuda/cuda_ops.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>

cuda_state *cuda_of(backend *be) { return (cuda_state *)be->impl; }

static void cuda_destroy(backend *be)
{
    cuda_state_destroy(cuda_of(be));
    free(be);
}

static int cuda_status(backend *be) { return cuda_state_status(cuda_of(be)); }

static void cuda_memory(backend *be, backend_memory_use *use)
{
    int device = 0;
    cuda_memory_figures(cuda_of(be), &use->in_use, &use->peak, &use->total, &device);
    snprintf(use->device, sizeof use->device, "cuda:%d", device);
}

static const backend_ops cuda_ops = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .fill = cuda_fill,
    .fill_uniform = cuda_fill_uniform,
    .synchronize = cuda_synchronize,
    .destroy = cuda_destroy,
    .status = cuda_status,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .download_raw = cuda_download_raw,
    .upload_async = cuda_upload_async,
    .upload_wait = cuda_upload_wait,
    .memory = cuda_memory,
    .linear = cuda_linear,
    .linear_grouped = cuda_linear_grouped,
    .row_abs_max = cuda_row_abs_max,
    .quantize_rows = cuda_quantize_rows,
    .add = cuda_add,
    .silu = cuda_silu,
    .swiglu = cuda_swiglu,
    .gated_residual = cuda_gated_residual,
    .scale_rows = cuda_scale_rows,
    .layer_norm_modulate = cuda_layer_norm_modulate,
    .rms_norm = cuda_rms_norm,
    .row_sum_squares = cuda_row_sum_squares,
    .rms_norm_with_sums = cuda_rms_norm_with_sums,
    .split_columns = cuda_split_columns,
    .merge_columns = cuda_merge_columns,
    .rope = cuda_rope,
    .rms_norm_rope = cuda_rms_norm_rope,
    .attention = cuda_attention,
    .attention_causal = cuda_attention_causal,
    .attention_merge = cuda_attention_merge,
    .conv2d = cuda_conv2d,
    .group_norm_stats = cuda_group_norm_stats,
    .group_norm_apply = cuda_group_norm_apply,
    .upsample_nearest2x = cuda_upsample_nearest2x,
    .transpose = cuda_transpose,
    .copy_rows = cuda_copy_rows,
    .gather_rows = cuda_gather_rows,
    .combine_rows = cuda_combine_rows,
    .moe_route = cuda_moe_route,
    .moe_dispatch = cuda_moe_dispatch,
    .activation = cuda_activation,
    .layer_norm = cuda_layer_norm,
    .attention_bias = cuda_attention_bias,
};

backend *backend_cuda_create(int device_index)
{
    backend *be = calloc(1, sizeof *be);
    if (!be) {
        error_set("out of memory creating the CUDA backend");
        return NULL;
    }
    cuda_state *state = cuda_state_create(device_index);
    if (!state) {
        free(be);
        return NULL;
    }
    be->ops = &cuda_ops;
    be->name = "cuda";
    be->device = DEVICE_CUDA;
    be->dtype = DTYPE_BF16;
    be->impl = state;
    return be;
}

int backend_cuda_status(backend *be) { return cuda_status(be); }

int backend_cuda_device_count(void) { return cuda_device_count(); }

void *backend_cuda_stream(backend *be) { return cuda_state_stream(cuda_of(be)); }
