/* Per-op profile of any backend: MOEDIT_PROFILE_OPS=1 wraps the backend that
 * backend_create makes, so that every op is timed on its own and a table of
 * where the time went is printed to stderr when the backend is destroyed.
 *
 * Why a wrapper and not a profiler: the GPU machines have no Nsight Systems
 * and, on some runtimes, no hardware counters, so the one measurement that
 * always works is "wait for the device, run one op, wait again". That makes
 * each op synchronous (the run is slower and launch latency lands in every
 * op's figure), so the table says where the time goes, not how fast the
 * unprofiled run is. Host work that code reports (backend_profile_host:
 * rows keyed "host ...") is in the table too; other time outside ops
 * (collectives, the rest of the host) is the difference between the wall
 * time and the table's total.
 *
 * Ops are keyed by name and shape (a convolution by kernel, channels and
 * size; a product by M, N, K), so the table tells layers apart. */
#include "backend/backend_profile.h"

#include "backend/backend_memory.h"

#include "core/timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 512
#define KEY_LENGTH 64

typedef struct op_total {
    char key[KEY_LENGTH];
    double seconds;
    double first; /* the first call's share of `seconds`: first-use costs (plan search, module load) */
    int64_t calls;
} op_total;

typedef struct profiled {
    backend base; /* first: the wrapper is handed out as a backend */
    backend *inner;
    double created;
    op_total totals[MAX_KEYS];
    int count;
} profiled;

static profiled *profiled_of(backend *be) { return (profiled *)be; }
static backend *inner_of(backend *be) { return profiled_of(be)->inner; }

static double op_begin(backend *be)
{
    backend *in = inner_of(be);
    in->ops->synchronize(in);
    return timer_seconds();
}

static void record(profiled *p, const char *key, double seconds)
{
    int i = 0;
    while (i < p->count && strcmp(p->totals[i].key, key)) i++;
    if (i == p->count) {
        if (p->count == MAX_KEYS) i = MAX_KEYS - 1, key = "(other shapes)";
        else p->count++;
        snprintf(p->totals[i].key, KEY_LENGTH, "%s", key);
        p->totals[i].first = seconds;
    }
    p->totals[i].seconds += seconds;
    p->totals[i].calls++;
}

static void op_end(backend *be, double start, const char *key)
{
    backend *in = inner_of(be);
    in->ops->synchronize(in);
    record(profiled_of(be), key, timer_seconds() - start);
}

/* Times one call of the inner backend's op under `key`. */
#define TIMED(be, key, call)                                                                                           \
    do {                                                                                                               \
        backend *in = inner_of(be);                                                                                    \
        double start_ = op_begin(be);                                                                                  \
        call;                                                                                                          \
        op_end(be, start_, key);                                                                                       \
    } while (0)

static int by_seconds(const void *a, const void *b)
{
    double x = ((const op_total *)a)->seconds, y = ((const op_total *)b)->seconds;
    return (x < y) - (x > y);
}

static void print_report(profiled *p)
{
    double wall = timer_seconds() - p->created, ops = 0;
    for (int i = 0; i < p->count; i++) ops += p->totals[i].seconds;
    qsort(p->totals, (size_t)p->count, sizeof p->totals[0], by_seconds);
    fprintf(stderr, "op profile (%s): %.3f s in ops of %.3f s since the backend was made\n", p->inner->name, ops, wall);
    /* ms/call leaves out the first call, shown apart: a first call pays for
     * plan searches and lazy loading that later calls do not. */
    fprintf(stderr, "%10s %6s %10s %8s %8s  %s\n", "ms", "share", "calls", "ms/call", "1st ms", "op");
    for (int i = 0; i < p->count; i++) {
        const op_total *t = &p->totals[i];
        double per_call = t->calls > 1 ? (t->seconds - t->first) / (double)(t->calls - 1) : t->seconds;
        fprintf(stderr, "%10.2f %5.1f%% %10lld %8.3f %8.3f  %s\n", t->seconds * 1e3,
                ops > 0 ? 100 * t->seconds / ops : 0, (long long)t->calls, per_call * 1e3, t->first * 1e3, t->key);
    }
}

static void *p_alloc(backend *be, size_t bytes) { return inner_of(be)->ops->alloc(inner_of(be), bytes); }
static void p_free(backend *be, void *ptr) { inner_of(be)->ops->free(inner_of(be), ptr); }
static void p_synchronize(backend *be) { inner_of(be)->ops->synchronize(inner_of(be)); }
static int p_status(backend *be) { return inner_of(be)->ops->status(inner_of(be)); }
static void *p_host_alloc(backend *be, size_t bytes) { return inner_of(be)->ops->host_alloc(inner_of(be), bytes); }
static void p_host_free(backend *be, void *ptr) { inner_of(be)->ops->host_free(inner_of(be), ptr); }
static void p_download_raw(backend *be, void *host, const void *device, size_t bytes)
{
    inner_of(be)->ops->download_raw(inner_of(be), host, device, bytes);
}
static void p_upload_wait(backend *be, int slot) { inner_of(be)->ops->upload_wait(inner_of(be), slot); }

/* A streamed block's copy, timed like an op (which serializes it with the ops around it). */
static void p_upload_async(backend *be, int slot, void *device, const void *host, size_t bytes)
{
    TIMED(be, "upload_async", in->ops->upload_async(in, slot, device, host, bytes));
}

static void p_memory(backend *be, backend_memory_use *use) { inner_of(be)->ops->memory(inner_of(be), use); }

static void p_destroy(backend *be)
{
    profiled *p = profiled_of(be);
    print_report(p);
    p->inner->ops->destroy(p->inner);
    free(p);
}

static void p_upload(backend *be, tensor dst, const float *src) { TIMED(be, "upload", in->ops->upload(in, dst, src)); }
static void p_download(backend *be, float *dst, tensor src) { TIMED(be, "download", in->ops->download(in, dst, src)); }
static void p_copy(backend *be, tensor dst, tensor src) { TIMED(be, "copy", in->ops->copy(in, dst, src)); }
static void p_fill(backend *be, tensor dst, float value) { TIMED(be, "fill", in->ops->fill(in, dst, value)); }

static void p_fill_uniform(backend *be, tensor dst, uint64_t seed, uint64_t stream, float scale, int64_t full_cols,
                           int64_t row0, int64_t col0)
{
    TIMED(be, "fill_uniform", in->ops->fill_uniform(in, dst, seed, stream, scale, full_cols, row0, col0));
}

static void p_linear(backend *be, tensor y, tensor x, tensor w, tensor bias)
{
    char key[KEY_LENGTH];
    snprintf(key, sizeof key, "linear M%lld N%lld K%lld", (long long)x.shape[0], (long long)w.shape[0],
             (long long)w.shape[1]);
    TIMED(be, key, in->ops->linear(in, y, x, w, bias));
}

static void p_linear_grouped(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups)
{
    char key[KEY_LENGTH];
    snprintf(key, sizeof key, "linear_grouped x%d N%lld K%lld", groups, (long long)w[0].shape[0],
             (long long)w[0].shape[1]);
    TIMED(be, key, in->ops->linear_grouped(in, y, x, w, offsets, groups));
}

static void p_row_abs_max(backend *be, tensor amax, tensor x)
{
    TIMED(be, "row_abs_max", in->ops->row_abs_max(in, amax, x));
}

static void p_quantize_rows(backend *be, tensor q, tensor x, tensor amax)
{
    TIMED(be, "quantize_rows", in->ops->quantize_rows(in, q, x, amax));
}

static void p_add(backend *be, tensor y, tensor a, tensor b) { TIMED(be, "add", in->ops->add(in, y, a, b)); }
static void p_silu(backend *be, tensor y, tensor x) { TIMED(be, "silu", in->ops->silu(in, y, x)); }
static void p_swiglu(backend *be, tensor y, tensor g, tensor u) { TIMED(be, "swiglu", in->ops->swiglu(in, y, g, u)); }

static void p_gated_residual(backend *be, tensor x, tensor gate, tensor y)
{
    TIMED(be, "gated_residual", in->ops->gated_residual(in, x, gate, y));
}

static void p_scale_rows(backend *be, tensor x, tensor s) { TIMED(be, "scale_rows", in->ops->scale_rows(in, x, s)); }

static void p_layer_norm_modulate(backend *be, tensor y, tensor x, tensor shift, tensor scale, float eps)
{
    TIMED(be, "layer_norm_modulate", in->ops->layer_norm_modulate(in, y, x, shift, scale, eps));
}

static void p_rms_norm(backend *be, tensor y, tensor x, tensor w, float eps)
{
    TIMED(be, "rms_norm", in->ops->rms_norm(in, y, x, w, eps));
}

static void p_row_sum_squares(backend *be, tensor sums, tensor x)
{
    TIMED(be, "row_sum_squares", in->ops->row_sum_squares(in, sums, x));
}

static void p_rms_norm_with_sums(backend *be, tensor y, tensor x, tensor sums, int64_t count, tensor w, float eps)
{
    TIMED(be, "rms_norm_with_sums", in->ops->rms_norm_with_sums(in, y, x, sums, count, w, eps));
}

static void p_split_columns(backend *be, tensor y, tensor x, int parts)
{
    TIMED(be, "split_columns", in->ops->split_columns(in, y, x, parts));
}

static void p_merge_columns(backend *be, tensor y, tensor x, int parts)
{
    TIMED(be, "merge_columns", in->ops->merge_columns(in, y, x, parts));
}

static void p_rope(backend *be, tensor x, tensor cos_sin, int heads, int rope_dim)
{
    TIMED(be, "rope", in->ops->rope(in, x, cos_sin, heads, rope_dim));
}

static void p_rms_norm_rope(backend *be, tensor x, tensor w, float eps, tensor cos_sin, int heads, int rope_dim)
{
    TIMED(be, "rms_norm_rope", in->ops->rms_norm_rope(in, x, w, eps, cos_sin, heads, rope_dim));
}

static void p_attention(backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads)
{
    char key[KEY_LENGTH];
    snprintf(key, sizeof key, "attention Sq%lld Sk%lld H%d D%lld", (long long)q.shape[0], (long long)k.shape[0], heads,
             (long long)(q.shape[1] / heads));
    TIMED(be, key, in->ops->attention(in, out, lse, q, k, v, heads));
}

static void p_attention_merge(backend *be, tensor out, tensor lse, tensor part_out, tensor part_lse, int heads)
{
    TIMED(be, "attention_merge", in->ops->attention_merge(in, out, lse, part_out, part_lse, heads));
}

static void p_attention_causal(backend *be, tensor out, tensor q, tensor k, tensor v, int heads)
{
    /* By shape, as attention: each shape's first call builds its own plan. */
    char key[KEY_LENGTH];
    snprintf(key, sizeof key, "attention_causal S%lld H%d D%lld", (long long)q.shape[0], heads,
             (long long)(q.shape[1] / heads));
    TIMED(be, key, in->ops->attention_causal(in, out, q, k, v, heads));
}

static void p_conv2d(backend *be, tensor y, tensor x, tensor w, tensor bias, int kernel, int stride, const int pad[4])
{
    char key[KEY_LENGTH];
    snprintf(key, sizeof key, "conv2d k%d %lld->%lld %lldx%lld", kernel, (long long)x.shape[0], (long long)y.shape[0],
             (long long)x.shape[1], (long long)x.shape[2]);
    TIMED(be, key, in->ops->conv2d(in, y, x, w, bias, kernel, stride, pad));
}

static void p_group_norm_stats(backend *be, tensor stats, tensor x, int groups)
{
    TIMED(be, "group_norm_stats", in->ops->group_norm_stats(in, stats, x, groups));
}

static void p_group_norm_apply(backend *be, tensor y, tensor x, tensor stats, int64_t count, tensor w, tensor b,
                               float eps, int silu)
{
    TIMED(be, "group_norm_apply", in->ops->group_norm_apply(in, y, x, stats, count, w, b, eps, silu));
}

static void p_upsample_nearest2x(backend *be, tensor y, tensor x)
{
    TIMED(be, "upsample_nearest2x", in->ops->upsample_nearest2x(in, y, x));
}

static void p_transpose(backend *be, tensor y, tensor x) { TIMED(be, "transpose", in->ops->transpose(in, y, x)); }

static void p_copy_rows(backend *be, tensor y, int64_t y_row, tensor x, int64_t x_row, int64_t rows)
{
    TIMED(be, "copy_rows", in->ops->copy_rows(in, y, y_row, x, x_row, rows));
}

static void p_gather_rows(backend *be, tensor y, tensor x, tensor index)
{
    TIMED(be, "gather_rows", in->ops->gather_rows(in, y, x, index));
}

static void p_combine_rows(backend *be, tensor y, tensor x, tensor positions, tensor weight, int64_t first)
{
    TIMED(be, "combine_rows", in->ops->combine_rows(in, y, x, positions, weight, first));
}

static void p_moe_route(backend *be, tensor experts, tensor weights, tensor logits, int forced)
{
    TIMED(be, "moe_route", in->ops->moe_route(in, experts, weights, logits, forced));
}

static void p_moe_dispatch(backend *be, tensor rows, tensor slot_weights, tensor positions, tensor offsets,
                           tensor experts, tensor weights, tensor bucket, int buckets)
{
    TIMED(be, "moe_dispatch",
          in->ops->moe_dispatch(in, rows, slot_weights, positions, offsets, experts, weights, bucket, buckets));
}

static void p_activation(backend *be, tensor y, tensor x, tensor up, backend_activation act)
{
    TIMED(be, "activation", in->ops->activation(in, y, x, up, act));
}

static void p_layer_norm(backend *be, tensor y, tensor x, tensor w, tensor b, float eps)
{
    TIMED(be, "layer_norm", in->ops->layer_norm(in, y, x, w, b, eps));
}

static void p_attention_bias(backend *be, tensor out, tensor q, tensor k, tensor v, tensor bias, int heads,
                             float scale)
{
    char key[KEY_LENGTH];
    snprintf(key, sizeof key, "attention_bias Sq%lld Sk%lld H%d D%lld", (long long)q.shape[0],
             (long long)k.shape[0], heads, (long long)(q.shape[1] / heads));
    TIMED(be, key, in->ops->attention_bias(in, out, q, k, v, bias, heads, scale));
}

static const backend_ops profiled_ops = {
    .alloc = p_alloc,
    .free = p_free,
    .upload = p_upload,
    .download = p_download,
    .copy = p_copy,
    .fill = p_fill,
    .fill_uniform = p_fill_uniform,
    .synchronize = p_synchronize,
    .destroy = p_destroy,
    .status = p_status,
    .host_alloc = p_host_alloc,
    .host_free = p_host_free,
    .download_raw = p_download_raw,
    .upload_async = p_upload_async,
    .upload_wait = p_upload_wait,
    .memory = p_memory,
    .linear = p_linear,
    .row_abs_max = p_row_abs_max,
    .quantize_rows = p_quantize_rows,
    .linear_grouped = p_linear_grouped,
    .add = p_add,
    .silu = p_silu,
    .swiglu = p_swiglu,
    .gated_residual = p_gated_residual,
    .scale_rows = p_scale_rows,
    .layer_norm_modulate = p_layer_norm_modulate,
    .rms_norm = p_rms_norm,
    .row_sum_squares = p_row_sum_squares,
    .rms_norm_with_sums = p_rms_norm_with_sums,
    .split_columns = p_split_columns,
    .merge_columns = p_merge_columns,
    .rope = p_rope,
    .rms_norm_rope = p_rms_norm_rope,
    .attention = p_attention,
    .attention_merge = p_attention_merge,
    .attention_causal = p_attention_causal,
    .conv2d = p_conv2d,
    .group_norm_stats = p_group_norm_stats,
    .group_norm_apply = p_group_norm_apply,
    .upsample_nearest2x = p_upsample_nearest2x,
    .transpose = p_transpose,
    .copy_rows = p_copy_rows,
    .gather_rows = p_gather_rows,
    .combine_rows = p_combine_rows,
    .moe_route = p_moe_route,
    .moe_dispatch = p_moe_dispatch,
    .activation = p_activation,
    .layer_norm = p_layer_norm,
    .attention_bias = p_attention_bias,
};

void backend_profile_host(backend *be, const char *key, double seconds)
{
    while (be && be->ops != &profiled_ops) be = backend_memory_inner(be); /* under counting views */
    if (be) record(profiled_of(be), key, seconds);
}

backend *backend_profile_wrap(backend *inner)
{
    if (!inner) return NULL;
    profiled *p = calloc(1, sizeof *p);
    if (!p) return inner; /* profiling is a diagnostic: without memory for it, run unprofiled */
    p->inner = inner;
    p->base = *inner; /* name, device, dtype, and impl: device-specific helpers read be->impl */
    p->base.ops = &profiled_ops;
    p->created = timer_seconds();
    return &p->base;
}

int backend_profile_requested(void)
{
    const char *v = getenv("MOEDIT_PROFILE_OPS");
    return v && *v && strcmp(v, "0");
}
