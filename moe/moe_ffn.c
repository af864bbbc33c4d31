/* SwiGLU and mixture-of-experts feed-forward; see moe_ffn.h. */
#include "moe/moe_ffn.h"

#include "core/backend_profile.h"
#include "core/error.h"
#include "core/moe_gate.h"
#include "core/timer.h"
#include "moe/moe_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int swiglu_ffn_load(swiglu_ffn *ffn, weight_loader *wl, const char *prefix, int64_t dim, int64_t hidden, int tp_rank,
                    int tp_size, const int64_t *bounds)
{
    char name[256];
    weight_shard rows = {SHARD_ROWS, tp_rank, tp_size, bounds}, cols = {SHARD_COLS, tp_rank, tp_size, bounds};
    snprintf(name, sizeof name, "%s.w1.weight", prefix);
    if (weight_load(wl, &ffn->w1, name, hidden, dim, rows)) return -1;
    snprintf(name, sizeof name, "%s.w3.weight", prefix);
    if (weight_load(wl, &ffn->w3, name, hidden, dim, rows)) return -1;
    snprintf(name, sizeof name, "%s.w2.weight", prefix);
    return weight_load(wl, &ffn->w2, name, dim, hidden, cols);
}

/* The expert at `entry` of the placement (owner rank * local experts + index there). */
static int expert_at(const moe_placement *p, int entry) { return p->expert_order ? p->expert_order[entry] : entry; }

/* ffn->bucket from the placement; fails when expert_order is not a permutation. */
static int place_experts(moe_ffn *ffn, const moe_placement *p, const char *prefix)
{
    int n = ffn->num_experts;
    for (int e = 0; e < n; e++) ffn->bucket[e] = -1;
    for (int entry = 0; entry < n; entry++) {
        int e = expert_at(p, entry);
        if (e < 0 || e >= n || ffn->bucket[e] >= 0)
            return error_set("%s: the expert placement is not an order of the %d experts (entry %d is %d)", prefix,
                             n, entry, e);
        ffn->bucket[e] = entry; /* entry = owner rank * local_experts + index there */
    }
    return 0;
}

int moe_ffn_load(moe_ffn *ffn, weight_loader *wl, const char *prefix, int64_t dim, int64_t hidden,
                 int64_t shared_hidden, int num_experts, int top_k, int layer, const moe_placement *p)
{
    char name[256];
    memset(ffn, 0, sizeof *ffn);
    ffn->num_experts = num_experts;
    ffn->top_k = top_k;
    ffn->layer = layer;
    if (num_experts == 0) return swiglu_ffn_load(&ffn->shared, wl, prefix, dim, hidden, p->tp_rank, p->tp_size, NULL);

    snprintf(name, sizeof name, "%s.shared_experts", prefix);
    if (swiglu_ffn_load(&ffn->shared, wl, name, dim, shared_hidden, p->tp_rank, p->tp_size, p->shared_bounds))
        return -1;
    snprintf(name, sizeof name, "%s.gate.weight", prefix);
    if (weight_load(wl, &ffn->gate, name, num_experts, dim, shard_whole())) return -1;
    /* Expert parallel: whole experts of this rank. Otherwise: a tp slice of all. */
    int expert_parallel = p->ep_size > 1;
    ffn->local_experts = expert_parallel ? num_experts / p->ep_size : num_experts;
    ffn->w1 = calloc((size_t)ffn->local_experts, sizeof(tensor));
    ffn->w2 = calloc((size_t)ffn->local_experts, sizeof(tensor));
    ffn->w3 = calloc((size_t)ffn->local_experts, sizeof(tensor));
    if (expert_parallel) ffn->bucket = calloc((size_t)num_experts, sizeof(int32_t));
    if (!ffn->w1 || !ffn->w2 || !ffn->w3 || (expert_parallel && !ffn->bucket))
        return error_set("out of memory loading %s", prefix);
    if (expert_parallel &&
        (place_experts(ffn, p, prefix) || weight_load_indices(wl, &ffn->bucket_map, ffn->bucket, num_experts)))
        return -1;
    for (int e = 0; e < ffn->local_experts; e++) {
        swiglu_ffn expert;
        int id = expert_parallel ? expert_at(p, p->ep_rank * ffn->local_experts + e) : e;
        snprintf(name, sizeof name, "%s.experts.%d", prefix, id);
        if (swiglu_ffn_load(&expert, wl, name, dim, hidden, expert_parallel ? 0 : p->tp_rank,
                            expert_parallel ? 1 : p->tp_size, NULL))
            return -1;
        ffn->w1[e] = expert.w1;
        ffn->w2[e] = expert.w2;
        ffn->w3[e] = expert.w3;
    }
    return 0;
}

void moe_ffn_free(moe_ffn *ffn)
{
    free(ffn->bucket);
    ffn->bucket = NULL;
    free(ffn->w1);
    free(ffn->w2);
    free(ffn->w3);
    ffn->w1 = ffn->w2 = ffn->w3 = NULL;
}

int swiglu_ffn_forward(backend *be, arena *scratch, const swiglu_ffn *ffn, tensor y, tensor x)
{
    arena_mark_t mark = arena_mark(scratch);
    int64_t rows = tensor_rows(&x), hidden = tensor_rows(&ffn->w1);
    tensor gate = arena_tensor_2d(scratch, rows, hidden);
    tensor up = arena_tensor_2d(scratch, rows, hidden);
    if (!gate.data || !up.data) return -1;
    be->ops->linear(be, gate, x, ffn->w1, tensor_none());
    be->ops->linear(be, up, x, ffn->w3, tensor_none());
    be->ops->swiglu(be, gate, gate, up);
    be->ops->linear(be, y, gate, ffn->w2, tensor_none());
    arena_release(scratch, mark);
    return 0;
}

int moe_scratch_init(moe_scratch *s, int64_t max_rows, int num_experts, int top_k)
{
    memset(s, 0, sizeof *s);
    s->max_rows = max_rows;
    s->num_experts = num_experts;
    s->top_k = top_k;
    if (num_experts == 0) return 0;
    size_t slots = (size_t)(max_rows * top_k);
    s->send_counts = calloc((size_t)num_experts, sizeof(int32_t));
    s->recv_counts = calloc((size_t)num_experts, sizeof(int32_t));
    s->segment_weights = calloc((size_t)(3 * num_experts), sizeof(tensor));
    s->experts = malloc(slots * sizeof(int32_t));
    s->offsets = malloc((size_t)(num_experts + 1) * sizeof(int64_t));
    if (!s->experts || !s->offsets ||
        !s->send_counts || !s->recv_counts || !s->segment_weights) {
        moe_scratch_free(s);
        return error_set("out of memory: MoE routing scratch for %lld tokens", (long long)max_rows);
    }
    return 0;
}

void moe_count_expert_rows(moe_scratch *s, int64_t n)
{
    if (s->calls == s->call_capacity) {
        int64_t capacity = s->call_capacity ? 2 * s->call_capacity : 256;
        int64_t *grown = realloc(s->call_rows, (size_t)capacity * sizeof *grown);
        if (!grown) return; /* a diagnostic: the run goes on without it */
        s->call_rows = grown;
        s->call_capacity = capacity;
    }
    s->call_rows[s->calls++] = n;
}

void moe_scratch_free(moe_scratch *s)
{
    free(s->call_rows);
    free(s->experts);
    free(s->offsets);
    free(s->send_counts);
    free(s->recv_counts);
    free(s->segment_weights);
    memset(s, 0, sizeof *s);
}

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

int moe_route(const moe_context *ctx, const moe_ffn *ffn, tensor x, const moe_token_map *map, tensor *experts,
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

int moe_dispatch(const moe_context *ctx, tensor experts, tensor weights, tensor bucket, int buckets, tensor *rows,
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
    be->ops->linear_grouped(be, rows, gate, w2, offsets, segments);
    arena_release(ctx->scratch, mark);
    return 0;
}

/* The experts this rank holds, over all of x's rows: route them, gather the
 * rows of this rank's buckets by expert, compute, and add them back weighted
 * into y. Without expert parallelism that is every expert (a tp slice of
 * each); with it, when every ep rank holds the same rows, only this rank's
 * whole experts: the slots of the others are skipped here and added on their
 * owners, and the all-reduce after the sublayer sums the ranks' shares as it
 * sums tensor-parallel partial outputs. */
static int owned_experts_forward(const moe_context *ctx, const moe_ffn *ffn, tensor y, tensor x,
                                 const moe_token_map *map)
{
    backend *be = ctx->be;
    moe_scratch *s = ctx->host;
    int owned = ffn->local_experts, buckets = ctx->ep ? ctx->ep->size * owned : owned;
    int first_bucket = ctx->ep ? ctx->ep->rank * owned : 0;
    tensor experts, weights, index, weight, positions;
    if (moe_route(ctx, ffn, x, map, &experts, &weights) ||
        moe_dispatch(ctx, experts, weights, ctx->ep ? ffn->bucket_map : tensor_none(), buckets, &index, &weight,
                     &positions, s->offsets))
        return -1;
    int64_t first = s->offsets[first_bucket], slots = s->offsets[first_bucket + owned] - first;
    int64_t offsets[MOE_MAX_BUCKETS + 1];
    for (int j = 0; j <= owned; j++) offsets[j] = s->offsets[first_bucket + j] - first;
    tensor gathered = arena_tensor_2d(ctx->scratch, slots, tensor_cols(&x));
    if (!gathered.data) return -1;
    be->ops->gather_rows(be, gathered, x, tensor_row_slice(index, first, slots));
    moe_count_expert_rows(s, slots);
    if (moe_experts_compute(ctx, ffn, gathered, offsets, owned)) return -1;
    be->ops->combine_rows(be, y, gathered, positions, weight, first);
    return 0;
}

int moe_ffn_forward(const moe_context *ctx, const moe_ffn *ffn, tensor y, tensor x, const moe_token_map *map)
{
    /* The ep group is the tp x sp ranks of a branch: without sequence
     * parallelism it is the tp group, whose ranks all hold x's rows, so no
     * rows need to travel (owned_experts_forward). With it the ranks hold
     * different rows, which go to their experts' owners and back
     * (moe_expert_parallel.c), the shared expert running meanwhile. */
    int exchange = ctx->ep && ctx->ep->size != ctx->tp->size && ffn->num_experts > 0;
    if (!exchange && swiglu_ffn_forward(ctx->be, ctx->scratch, &ffn->shared, y, x)) return -1;
    if (ffn->num_experts == 0) return 0;
    arena_mark_t mark = arena_mark(ctx->scratch);
    int status = exchange ? moe_expert_parallel_forward(ctx, ffn, y, x, map) : owned_experts_forward(ctx, ffn, y, x, map);
    arena_release(ctx->scratch, mark);
    return status ? -1 : 0;
}
