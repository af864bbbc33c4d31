/* SwiGLU and mixture-of-experts feed-forward; see moe_ffn.h. */
#include "moe/moe_ffn.h"

#include "core/backend_profile.h"
#include "core/error.h"
#include "core/timer.h"
#include "moe/moe_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int swiglu_ffn_load(swiglu_ffn *ffn, weight_loader *wl, const char *prefix, int64_t dim, int64_t hidden, int tp_rank,
                    int tp_size)
{
    char name[256];
    weight_shard rows = {SHARD_ROWS, tp_rank, tp_size}, cols = {SHARD_COLS, tp_rank, tp_size};
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
    if (num_experts == 0) return swiglu_ffn_load(&ffn->shared, wl, prefix, dim, hidden, p->tp_rank, p->tp_size);

    snprintf(name, sizeof name, "%s.shared_experts", prefix);
    if (swiglu_ffn_load(&ffn->shared, wl, name, dim, shared_hidden, p->tp_rank, p->tp_size)) return -1;
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
    if (expert_parallel && place_experts(ffn, p, prefix)) return -1;
    for (int e = 0; e < ffn->local_experts; e++) {
        swiglu_ffn expert;
        int id = expert_parallel ? expert_at(p, p->ep_rank * ffn->local_experts + e) : e;
        snprintf(name, sizeof name, "%s.experts.%d", prefix, id);
        if (swiglu_ffn_load(&expert, wl, name, dim, hidden, expert_parallel ? 0 : p->tp_rank,
                            expert_parallel ? 1 : p->tp_size))
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

int moe_scratch_init(moe_scratch *s, int64_t max_rows, int num_experts, int top_k, int ep_size)
{
    memset(s, 0, sizeof *s);
    s->max_rows = max_rows;
    s->num_experts = num_experts;
    s->top_k = top_k;
    s->ep_size = ep_size;
    if (num_experts == 0) return 0;
    size_t slots = (size_t)(max_rows * top_k), received = slots * (size_t)ep_size;
    s->send_counts = calloc((size_t)num_experts, sizeof(int32_t));
    s->recv_counts = calloc((size_t)num_experts, sizeof(int32_t));
    s->order = malloc(received * sizeof(int32_t));
    s->inverse = malloc(received * sizeof(int32_t));
    s->logits = malloc((size_t)(max_rows * num_experts) * sizeof(float));
    s->experts = malloc(slots * sizeof(int32_t));
    s->weights = malloc(slots * sizeof(float));
    s->dispatch_rows = malloc(slots * sizeof(int32_t));
    s->dispatch_weights = malloc(slots * sizeof(float));
    s->offsets = malloc((size_t)(num_experts + 1) * sizeof(int64_t));
    if (!s->logits || !s->experts || !s->weights || !s->dispatch_rows || !s->dispatch_weights || !s->offsets ||
        !s->send_counts || !s->recv_counts || !s->order || !s->inverse) {
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
    free(s->logits);
    free(s->experts);
    free(s->weights);
    free(s->dispatch_rows);
    free(s->dispatch_weights);
    free(s->offsets);
    free(s->send_counts);
    free(s->recv_counts);
    free(s->order);
    free(s->inverse);
    memset(s, 0, sizeof *s);
}

/* Softmax of one row of gate logits in place. */
static void softmax_in_place(float *row, int n)
{
    float max = -FLT_MAX;
    for (int e = 0; e < n; e++) max = row[e] > max ? row[e] : max;
    double sum = 0;
    for (int e = 0; e < n; e++) {
        row[e] = expf(row[e] - max);
        sum += row[e];
    }
    for (int e = 0; e < n; e++) row[e] = (float)(row[e] / sum);
}

/* The k highest scores, ties to the lower expert index, written ascending by
 * expert index so captures compare equal whatever order selection found them.
 * On GPU runs the host routes every MoE call while the device waits: the
 * earlier selection (k passes over a zeroed 1 KB array per row) took 1.3 ms
 * of a 2 ms call at 33536 rows. Few experts: expert e is chosen when fewer
 * than k experts beat it (a higher score, or the same and a lower index), a
 * total order, so exactly k are; n x n comparisons, no scratch. Many: k
 * passes for the best not yet chosen, then the chosen sorted. */
void moe_top_k_ascending(const float *scores, int n, int k, int32_t *chosen)
{
    if (n <= 16) {
        int out = 0;
        for (int e = 0; e < n; e++) {
            int beaten_by = 0;
            for (int j = 0; j < n; j++) beaten_by += scores[j] > scores[e] || (scores[j] == scores[e] && j < e);
            if (beaten_by < k) chosen[out++] = e;
        }
        return;
    }
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < n; e++) {
            int taken = 0;
            for (int t = 0; t < j; t++) taken |= chosen[t] == e;
            if (!taken && (best < 0 || scores[e] > scores[best])) best = e;
        }
        int at = j; /* insert keeping chosen[0..j] ascending */
        while (at > 0 && chosen[at - 1] > best) {
            chosen[at] = chosen[at - 1];
            at--;
        }
        chosen[at] = best;
    }
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

int moe_route(const moe_context *ctx, const moe_ffn *ffn, tensor x, const moe_token_map *map)
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
    arena_mark_t mark = arena_mark(ctx->scratch);
    tensor logits = arena_tensor_2d(ctx->scratch, rows, n);
    if (!logits.data) return -1;
    be->ops->linear(be, logits, x, ffn->gate, tensor_none());
    be->ops->download(be, s->logits, logits);
    arena_release(ctx->scratch, mark);
    double start = timer_seconds(); /* the device waits from here until the experts' rows are queued */
    /* Rows are independent; threads help wherever the launcher leaves cores. */
#pragma omp parallel for if (rows > 4096)
    for (int64_t i = 0; i < rows; i++) softmax_in_place(s->logits + i * n, n);

    if (routing && routing->mode == ROUTING_REPLAY) {
        if (replay(s, ffn, routing, map)) return -1;
    } else {
#pragma omp parallel for if (rows > 4096)
        for (int64_t i = 0; i < rows; i++) moe_top_k_ascending(s->logits + i * n, n, k, s->experts + i * k);
    }
    for (int64_t i = 0; i < rows * k; i++) s->weights[i] = s->logits[(i / k) * n + s->experts[i]];
    int status = routing && routing->mode == ROUTING_CAPTURE ? capture(s, ffn, routing, map) : 0;
    backend_profile_host(be, "host MoE routing", timer_seconds() - start);
    return status;
}

/* Groups the (row, expert) slots by expert: counting sort, rows ascending
 * within each expert. */
static void build_dispatch(moe_scratch *s, int64_t rows, int n, int k)
{
    memset(s->offsets, 0, (size_t)(n + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < rows * k; i++) s->offsets[s->experts[i] + 1]++;
    for (int e = 0; e < n; e++) s->offsets[e + 1] += s->offsets[e];
    int64_t fill[1024];
    memcpy(fill, s->offsets, (size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < rows * k; i++) {
        int64_t slot = fill[s->experts[i]]++;
        s->dispatch_rows[slot] = (int32_t)(i / k);
        s->dispatch_weights[slot] = s->weights[i];
    }
}

tensor moe_upload_indices(const moe_context *ctx, const int32_t *indices, int64_t count)
{
    tensor t = arena_tensor_typed(ctx->scratch, DTYPE_I32, count, 1);
    /* upload() takes F32; I32 indices travel bit-for-bit as 4-byte words. */
    if (t.data) ctx->be->ops->upload(ctx->be, t, (const float *)(const void *)indices);
    return t;
}

int moe_experts_compute(const moe_context *ctx, const moe_ffn *ffn, tensor rows, const int64_t *offsets)
{
    backend *be = ctx->be;
    int64_t slots = tensor_rows(&rows), hidden = tensor_rows(&ffn->w1[0]);
    arena_mark_t mark = arena_mark(ctx->scratch);
    tensor gate = arena_tensor_2d(ctx->scratch, slots, hidden);
    tensor up = arena_tensor_2d(ctx->scratch, slots, hidden);
    if (!gate.data || !up.data) return -1;
    be->ops->linear_grouped(be, gate, rows, ffn->w1, offsets, ffn->local_experts);
    be->ops->linear_grouped(be, up, rows, ffn->w3, offsets, ffn->local_experts);
    be->ops->swiglu(be, gate, gate, up);
    be->ops->linear_grouped(be, rows, gate, ffn->w2, offsets, ffn->local_experts);
    arena_release(ctx->scratch, mark);
    return 0;
}

/* Every expert on this rank: gather the routed rows by expert, compute, and
 * add them back weighted into y. */
static int local_experts_forward(const moe_context *ctx, const moe_ffn *ffn, tensor y, tensor x)
{
    backend *be = ctx->be;
    moe_scratch *s = ctx->host;
    int64_t slots = tensor_rows(&x) * ffn->top_k;
    double start = timer_seconds();
    build_dispatch(s, tensor_rows(&x), ffn->num_experts, ffn->top_k);
    backend_profile_host(be, "host MoE dispatch", timer_seconds() - start);
    tensor index = moe_upload_indices(ctx, s->dispatch_rows, slots);
    tensor weight = arena_tensor_typed(ctx->scratch, DTYPE_F32, slots, 1);
    tensor gathered = arena_tensor_2d(ctx->scratch, slots, tensor_cols(&x));
    if (!index.data || !weight.data || !gathered.data) return -1;
    be->ops->upload(be, weight, s->dispatch_weights);
    be->ops->gather_rows(be, gathered, x, index);
    moe_count_expert_rows(s, slots);
    if (moe_experts_compute(ctx, ffn, gathered, s->offsets)) return -1;
    be->ops->scatter_add_rows(be, y, gathered, index, weight);
    return 0;
}

int moe_ffn_forward(const moe_context *ctx, const moe_ffn *ffn, tensor y, tensor x, const moe_token_map *map)
{
    /* Under expert parallelism the shared expert runs inside the exchange of the routed rows. */
    int shared_inside = ctx->ep && ffn->num_experts > 0;
    if (!shared_inside && swiglu_ffn_forward(ctx->be, ctx->scratch, &ffn->shared, y, x)) return -1;
    if (ffn->num_experts == 0) return 0;
    arena_mark_t mark = arena_mark(ctx->scratch);
    int status = ctx->ep ? moe_expert_parallel_forward(ctx, ffn, y, x, map)
                         : (moe_route(ctx, ffn, x, map) || local_experts_forward(ctx, ffn, y, x));
    arena_release(ctx->scratch, mark);
    return status ? -1 : 0;
}
