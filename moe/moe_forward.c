/* The MoE feed-forward sublayer: the shared expert plus the routed experts,
 * run where their rows are (owned experts) or through the expert-parallel
 * exchange; see moe_forward.h. */
#include "moe/moe_forward.h"

#include "backend/moe_gate.h"
#include "moe/moe_expert_parallel.h"
#include "moe/moe_experts.h"

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
    if (moe_experts_route(ctx, ffn, x, map, &experts, &weights) ||
        moe_experts_dispatch(ctx, experts, weights, ctx->ep ? ffn->bucket_map : tensor_none(), buckets, &index, &weight,
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
    /* The ep group is the tp x sp ranks of a branch, or (world scope) every
     * rank. When it is the tp group, its ranks all hold x's rows, so no rows
     * need to travel (owned_experts_forward). Otherwise the ranks hold
     * different rows (other sequence shards, the other CFG branch, another
     * replica's image), which go to their experts' owners and back
     * (moe_expert_parallel.c), the shared expert running meanwhile. */
    int exchange = ctx->ep && ctx->ep->size != ctx->tp->size && ffn->num_experts > 0;
    if (!exchange && swiglu_ffn_forward(ctx->be, ctx->scratch, ctx->tp, &ffn->shared, y, x)) return -1;
    if (ffn->num_experts == 0) return 0;
    arena_mark_t mark = arena_mark(ctx->scratch);
    int status = exchange ? moe_expert_parallel_forward(ctx, ffn, y, x, map) : owned_experts_forward(ctx, ffn, y, x, map);
    arena_release(ctx->scratch, mark);
    return status ? -1 : 0;
}
