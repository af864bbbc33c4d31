/* SwiGLU and mixture-of-experts feed-forward; see moe_ffn.h. */
#include "moe/moe_ffn.h"

#include "core/error.h"
#include "parallel/fp8_rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int swiglu_ffn_load(swiglu_ffn *ffn, weight_loader *wl, const char *prefix, int64_t dim, int64_t hidden, int tp_rank,
                    int tp_size, const int64_t *bounds)
{
    char name[256];
    weight_shard rows = {SHARD_ROWS, tp_rank, tp_size, bounds}, cols = {SHARD_COLS, tp_rank, tp_size, bounds};
    snprintf(name, sizeof name, "%s.w1.weight", prefix);
    if (weight_load_linear(wl, &ffn->w1, name, hidden, dim, rows)) return -1;
    snprintf(name, sizeof name, "%s.w3.weight", prefix);
    if (weight_load_linear(wl, &ffn->w3, name, hidden, dim, rows)) return -1;
    snprintf(name, sizeof name, "%s.w2.weight", prefix);
    return weight_load_linear(wl, &ffn->w2, name, dim, hidden, cols);
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

int swiglu_ffn_forward(backend *be, arena *scratch, process_group *tp, const swiglu_ffn *ffn, tensor y, tensor x)
{
    arena_mark_t mark = arena_mark(scratch);
    int64_t rows = tensor_rows(&x), hidden = tensor_rows(&ffn->w1);
    tensor gate = arena_tensor_2d(scratch, rows, hidden);
    tensor up = arena_tensor_2d(scratch, rows, hidden);
    if (!gate.data || !up.data) return -1;
    be->ops->linear(be, gate, x, ffn->w1, tensor_none());
    be->ops->linear(be, up, x, ffn->w3, tensor_none());
    be->ops->swiglu(be, gate, gate, up);
    int status = 0;
    if (tp) status = fp8_row_parallel_linear(be, scratch, tp, y, gate, ffn->w2, tensor_none());
    else be->ops->linear(be, y, gate, ffn->w2, tensor_none());
    arena_release(scratch, mark);
    return status;
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
