/* Counting alloc/free at the backend seam; see backend_memory.h.
 *
 * Every other op is forwarded to the inner backend with the inner backend
 * as its `be` (so an inner wrapper, like the op profiler, still finds its
 * own state). free is handed only the pointer: the view's alloc_count
 * remembers each live allocation's size. */
#include "backend/backend_memory.h"

#include "backend/alloc_count.h"
#include "core/error.h"

#include <stdlib.h>

typedef struct memory_view {
    backend base; /* first: the view is handed out as a backend */
    backend *inner;
    alloc_count counts;
} memory_view;

static backend *inner_of(backend *be) { return ((memory_view *)be)->inner; }

/* One forwarder per op: the same call on the inner backend. */
#define FORWARD(name, params, args)    \
    static void v_##name params         \
    {                                  \
        backend *in = inner_of(be);    \
        in->ops->name args;            \
    }
FORWARD(upload, (backend *be, tensor dst, const float *src), (in, dst, src))
FORWARD(download, (backend *be, float *dst, tensor src), (in, dst, src))
FORWARD(copy, (backend *be, tensor dst, tensor src), (in, dst, src))
FORWARD(fill, (backend *be, tensor dst, float value), (in, dst, value))
FORWARD(fill_uniform, (backend *be, tensor dst, uint64_t seed, uint64_t stream, float scale, int64_t full_cols,
                       int64_t row0, int64_t col0), (in, dst, seed, stream, scale, full_cols, row0, col0))
FORWARD(synchronize, (backend *be), (in))
FORWARD(host_free, (backend *be, void *ptr), (in, ptr))
FORWARD(download_raw, (backend *be, void *host, const void *device, size_t bytes), (in, host, device, bytes))
FORWARD(upload_async, (backend *be, int slot, void *device, const void *host, size_t bytes),
        (in, slot, device, host, bytes))
FORWARD(upload_wait, (backend *be, int slot), (in, slot))
FORWARD(row_abs_max, (backend *be, tensor amax, tensor x), (in, amax, x))
FORWARD(quantize_rows, (backend *be, tensor q, tensor x, tensor amax), (in, q, x, amax))
FORWARD(linear, (backend *be, tensor y, tensor x, tensor w, tensor bias), (in, y, x, w, bias))
FORWARD(linear_grouped, (backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups),
        (in, y, x, w, offsets, groups))
FORWARD(add, (backend *be, tensor y, tensor a, tensor b), (in, y, a, b))
FORWARD(silu, (backend *be, tensor y, tensor x), (in, y, x))
FORWARD(swiglu, (backend *be, tensor y, tensor gate, tensor up), (in, y, gate, up))
FORWARD(gated_residual, (backend *be, tensor x, tensor gate, tensor y), (in, x, gate, y))
FORWARD(scale_rows, (backend *be, tensor x, tensor row_scale), (in, x, row_scale))
FORWARD(layer_norm_modulate, (backend *be, tensor y, tensor x, tensor shift, tensor scale, float eps),
        (in, y, x, shift, scale, eps))
FORWARD(rms_norm, (backend *be, tensor y, tensor x, tensor weight, float eps), (in, y, x, weight, eps))
FORWARD(row_sum_squares, (backend *be, tensor sums, tensor x), (in, sums, x))
FORWARD(rms_norm_with_sums, (backend *be, tensor y, tensor x, tensor sums, int64_t count, tensor weight, float eps),
        (in, y, x, sums, count, weight, eps))
FORWARD(split_columns, (backend *be, tensor y, tensor x, int parts), (in, y, x, parts))
FORWARD(merge_columns, (backend *be, tensor y, tensor x, int parts), (in, y, x, parts))
FORWARD(rope, (backend *be, tensor x, tensor cos_sin, int heads, int rope_dim), (in, x, cos_sin, heads, rope_dim))
FORWARD(rms_norm_rope, (backend *be, tensor x, tensor weight, float eps, tensor cos_sin, int heads, int rope_dim),
        (in, x, weight, eps, cos_sin, heads, rope_dim))
FORWARD(activation, (backend *be, tensor y, tensor x, tensor up, backend_activation act), (in, y, x, up, act))
FORWARD(layer_norm, (backend *be, tensor y, tensor x, tensor weight, tensor bias, float eps), (in, y, x, weight, bias, eps))
FORWARD(attention_bias, (backend *be, tensor out, tensor q, tensor k, tensor v, tensor bias, int heads, float scale),
        (in, out, q, k, v, bias, heads, scale))
FORWARD(attention, (backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads),
        (in, out, lse, q, k, v, heads))
FORWARD(attention_merge, (backend *be, tensor out, tensor lse, tensor part_out, tensor part_lse, int heads),
        (in, out, lse, part_out, part_lse, heads))
FORWARD(attention_causal, (backend *be, tensor out, tensor q, tensor k, tensor v, int heads), (in, out, q, k, v, heads))
FORWARD(conv2d, (backend *be, tensor y, tensor x, tensor w, tensor bias, int kernel, int stride, const int pad[4]),
        (in, y, x, w, bias, kernel, stride, pad))
FORWARD(group_norm_stats, (backend *be, tensor stats, tensor x, int groups), (in, stats, x, groups))
FORWARD(group_norm_apply, (backend *be, tensor y, tensor x, tensor stats, int64_t count, tensor weight, tensor bias,
                           float eps, int silu), (in, y, x, stats, count, weight, bias, eps, silu))
FORWARD(upsample_nearest2x, (backend *be, tensor y, tensor x), (in, y, x))
FORWARD(copy_rows, (backend *be, tensor y, int64_t y_row, tensor x, int64_t x_row, int64_t rows),
        (in, y, y_row, x, x_row, rows))
FORWARD(transpose, (backend *be, tensor y, tensor x), (in, y, x))
FORWARD(gather_rows, (backend *be, tensor y, tensor x, tensor index), (in, y, x, index))
FORWARD(combine_rows, (backend *be, tensor y, tensor x, tensor positions, tensor weight, int64_t first),
        (in, y, x, positions, weight, first))
FORWARD(moe_route, (backend *be, tensor experts, tensor weights, tensor logits, int forced),
        (in, experts, weights, logits, forced))
FORWARD(moe_dispatch, (backend *be, tensor rows, tensor slot_weights, tensor positions, tensor offsets,
                       tensor experts, tensor weights, tensor bucket, int buckets),
        (in, rows, slot_weights, positions, offsets, experts, weights, bucket, buckets))

static int v_status(backend *be)
{
    backend *in = inner_of(be);
    return in->ops->status(in);
}

/* Host memory: not the device's, so not counted. */
static void *v_host_alloc(backend *be, size_t bytes)
{
    backend *in = inner_of(be);
    return in->ops->host_alloc(in, bytes);
}

static void v_memory(backend *be, backend_memory_use *use)
{
    backend *in = inner_of(be);
    in->ops->memory(in, use);
}

static void *view_alloc(backend *be, size_t bytes)
{
    memory_view *v = (memory_view *)be;
    void *ptr = v->inner->ops->alloc(v->inner, bytes);
    if (ptr) alloc_count_add(&v->counts, ptr, bytes);
    return ptr;
}

static void view_free(backend *be, void *ptr)
{
    memory_view *v = (memory_view *)be;
    alloc_count_remove(&v->counts, ptr);
    v->inner->ops->free(v->inner, ptr);
}

static void view_destroy(backend *be)
{
    memory_view *v = (memory_view *)be;
    alloc_count_free(&v->counts);
    free(v);
}

backend *backend_memory_wrap(backend *inner)
{
    memory_view *v = calloc(1, sizeof *v);
    if (!v) {
        error_set("out of host memory wrapping the %s backend", inner->name);
        return NULL;
    }
    static const backend_ops ops = {
        .alloc = view_alloc, .free = view_free, .destroy = view_destroy, .status = v_status, .memory = v_memory,
        .upload = v_upload, .download = v_download, .copy = v_copy, .fill = v_fill, .fill_uniform = v_fill_uniform,
        .synchronize = v_synchronize, .linear = v_linear, .linear_grouped = v_linear_grouped, .add = v_add,
        .silu = v_silu, .swiglu = v_swiglu, .gated_residual = v_gated_residual, .scale_rows = v_scale_rows,
        .layer_norm_modulate = v_layer_norm_modulate, .rms_norm = v_rms_norm, .row_sum_squares = v_row_sum_squares,
        .rms_norm_with_sums = v_rms_norm_with_sums, .split_columns = v_split_columns,
        .merge_columns = v_merge_columns, .rope = v_rope, .rms_norm_rope = v_rms_norm_rope,
        .attention = v_attention, .attention_merge = v_attention_merge, .attention_causal = v_attention_causal,
        .conv2d = v_conv2d, .group_norm_stats = v_group_norm_stats, .group_norm_apply = v_group_norm_apply,
        .upsample_nearest2x = v_upsample_nearest2x, .copy_rows = v_copy_rows, .transpose = v_transpose,
        .gather_rows = v_gather_rows, .combine_rows = v_combine_rows, .moe_route = v_moe_route,
        .moe_dispatch = v_moe_dispatch, .activation = v_activation, .layer_norm = v_layer_norm,
        .attention_bias = v_attention_bias, .host_alloc = v_host_alloc, .host_free = v_host_free,
        .download_raw = v_download_raw, .upload_async = v_upload_async, .upload_wait = v_upload_wait,
        .row_abs_max = v_row_abs_max, .quantize_rows = v_quantize_rows,
    };
    v->inner = inner;
    alloc_count_init(&v->counts);
    v->base = *inner; /* name, device, dtype, and impl: device-specific helpers (NCCL's stream) read be->impl */
    v->base.ops = &ops;
    return &v->base;
}

backend *backend_memory_inner(backend *be)
{
    return be && be->ops->alloc == view_alloc ? inner_of(be) : NULL;
}

/* The counts are read under their mutex, which a const view would not let us take. */
int64_t backend_memory_in_use(const backend *view)
{
    int64_t in_use, peak;
    alloc_count_read(&((memory_view *)view)->counts, &in_use, &peak);
    return in_use;
}

int64_t backend_memory_peak(const backend *view)
{
    int64_t in_use, peak;
    alloc_count_read(&((memory_view *)view)->counts, &in_use, &peak);
    return peak;
}

void backend_memory_reset_peak(backend *view) { alloc_count_reset_peak(&((memory_view *)view)->counts); }
