/* The routed experts' stages of a MoE layer, shared by the local and the
 * expert-parallel paths: route (gate, top-k or replay, capture), dispatch
 * (slots ordered by bucket) and compute (one product per run of rows);
 * see moe_experts.h. */
#include "moe/moe_experts.h"

#include "backend/backend_profile.h"
#include "backend/moe_gate.h"
#include "core/error.h"
#include "parallel/fp8_rows.h"
#include "core/timer.h"

#include <stdio.h>
#include <string.h>

/* Replays the recorded experts of every segment of the map. */
static int replay(moe_scratch *s, const moe_ffn *ffn, const moe_routing *routing, const moe_token_map *map)
{
    int n = ffn->num_experts, k = ffn->top_k;
    for (int i = 0; i < map->segments; i++) {
        const moe_token_segment *seg = &map->seg[i];
        const int32_t *forced;
        if (moe_routing_lookup(routing, seg->branch, ffn->layer, seg->global_first, seg->rows, k, &forced)) return -1;
        for (int64_t j = 0; j < seg->rows * k; j++) {
            if (forced[j] < 0 || forced[j] >= n)
                return error_set("routing replay %s: expert %d out of range in layer %d", routing->source,
                                 forced[j], ffn->layer);
            s->experts[seg->local_first * k + j] = forced[j];
        }
    }
    return 0;
}

static int capture(moe_scratch *s, const moe_ffn *ffn, moe_routing *routing, const moe_token_map *map)
{
    for (int i = 0; i < map->segments; i++) {
        const moe_token_segment *seg = &map->seg[i];
        if (moe_routing_store(routing, seg->branch, ffn->layer, seg->global_first, seg->rows, seg->global_rows,
                              ffn->top_k, s->experts + seg->local_first * ffn->top_k))
            return -1;
    }
    return 0;
}

moe_token_map moe_whole_map(int64_t rows)
{
    moe_token_map map = {1, {{0, rows, 0, rows, 0}}};
    return map;
}

int moe_experts_route(const moe_context *ctx, const moe_ffn *ffn, tensor x, const moe_token_map *map, tensor *experts,
              tensor *weights)
{
    moe_scratch *s = ctx->host;
    moe_routing *routing = ctx->routing;
    backend *be = ctx->be;
    int n = ffn->num_experts, k = ffn->top_k;
    int64_t rows = tensor_rows(&x);
    if (rows > s->max_rows)
        return error_set("MoE layer %d: %lld tokens exceed the routing scratch (%lld)", ffn->layer, (long long)rows,
                         (long long)s->max_rows);
    moe_token_map whole = moe_whole_map(rows);
    if (!map) map = &whole;
    tensor logits = arena_tensor_2d(ctx->scratch, rows, n);
    *experts = arena_tensor_typed(ctx->scratch, DTYPE_I32, rows, k);
    *weights = arena_tensor_typed(ctx->scratch, DTYPE_F32, rows, k);
    if (!logits.data || !experts->data || !weights->data) return -1;
    be->ops->linear(be, logits, x, ffn->gate, tensor_none());
    int replaying = routing && routing->mode == ROUTING_REPLAY;
    if (replaying) {
        double start = timer_seconds(); /* the device may be idle from here until the experts are uploaded */
        if (replay(s, ffn, routing, map)) return -1;
        /* upload() takes F32; I32 experts travel bit-for-bit as 4-byte words. */
        be->ops->upload(be, *experts, (const float *)(const void *)s->experts);
        backend_profile_host(be, "host MoE routing replay", timer_seconds() - start);
    }
    be->ops->moe_route(be, *experts, *weights, logits, replaying);
    if (!routing || routing->mode != ROUTING_CAPTURE) return 0;
    be->ops->download(be, (float *)(void *)s->experts, *experts);
    return capture(s, ffn, routing, map);
}

int moe_experts_dispatch(const moe_context *ctx, tensor experts, tensor weights, tensor bucket, int buckets, tensor *rows,
                 tensor *slot_weights, tensor *positions, int64_t *offsets)
{
    backend *be = ctx->be;
    int64_t slots = tensor_numel(&experts);
    if (buckets > MOE_MAX_BUCKETS) return error_set("MoE dispatch: %d buckets, at most %d", buckets, MOE_MAX_BUCKETS);
    int32_t first[MOE_MAX_BUCKETS + 1];
    tensor firsts = arena_tensor_typed(ctx->scratch, DTYPE_I32, buckets + 1, 1);
    *rows = arena_tensor_typed(ctx->scratch, DTYPE_I32, slots, 1);
    *slot_weights = arena_tensor_typed(ctx->scratch, DTYPE_F32, slots, 1);
    *positions = arena_tensor_typed(ctx->scratch, DTYPE_I32, tensor_rows(&experts), tensor_cols(&experts));
    if (!firsts.data || !rows->data || !slot_weights->data || !positions->data) return -1;
    be->ops->moe_dispatch(be, *rows, *slot_weights, *positions, firsts, experts, weights, bucket, buckets);
    /* The layer's one wait for the device: the grouped product sizes each expert's rows on the host. */
    be->ops->download(be, (float *)(void *)first, firsts);
    /* The host slices tensors by these: a device fault must not turn into reads out of bounds. */
    int ordered = first[0] == 0 && first[buckets] == slots;
    for (int b = 0; b < buckets && ordered; b++) ordered = first[b] <= first[b + 1];
    if (!ordered) return be->ops->status(be) ? -1 : error_set("MoE dispatch: inconsistent bucket offsets");
    for (int b = 0; b <= buckets; b++) offsets[b] = first[b];
    return 0;
}

int moe_experts_compute(const moe_context *ctx, const moe_ffn *ffn, tensor rows, const int64_t *offsets, int segments)
{
    backend *be = ctx->be;
    int64_t slots = tensor_rows(&rows), hidden = tensor_rows(&ffn->w1[0]);
    const tensor *w1 = ffn->w1, *w3 = ffn->w3, *w2 = ffn->w2;
    if (segments != ffn->local_experts) { /* the experts' weights once per segment */
        tensor *by_segment = ctx->host->segment_weights;
        for (int g = 0; g < segments; g++) {
            int j = g % ffn->local_experts;
            by_segment[g] = ffn->w1[j];
            by_segment[segments + g] = ffn->w3[j];
            by_segment[2 * segments + g] = ffn->w2[j];
        }
        w1 = by_segment, w3 = by_segment + segments, w2 = by_segment + 2 * segments;
    }
    arena_mark_t mark = arena_mark(ctx->scratch);
    tensor gate = arena_tensor_2d(ctx->scratch, slots, hidden);
    tensor up = arena_tensor_2d(ctx->scratch, slots, hidden);
    if (!gate.data || !up.data) return -1;
    be->ops->linear_grouped(be, gate, rows, w1, offsets, segments);
    be->ops->linear_grouped(be, up, rows, w3, offsets, segments);
    be->ops->swiglu(be, gate, gate, up);
    /* Without EP every expert's hidden units are split over tp (row parallel w2). */
    int status = 0;
    if (ctx->ep) be->ops->linear_grouped(be, rows, gate, w2, offsets, segments);
    else status = fp8_row_parallel_linear_grouped(be, ctx->scratch, ctx->tp, rows, gate, w2, offsets, segments);
    arena_release(ctx->scratch, mark);
    return status;
}
