/* Expert parallelism: experts live on the ranks of the ep group (tp x sp of
 * one branch, or every rank with --expert-parallel-scope world), E / ep
 * whole experts each. This file serves the groups whose ranks hold
 * different rows: sequence shards, and under the world scope the other CFG
 * branch's rows or another replica's images, in counts that may differ per
 * rank (step 2 tells every rank what comes). When the ep group is the tp
 * group every rank holds all rows and runs its own experts on them in place
 * (owned_experts_forward in moe_forward.c: nothing travels but the all-reduce).
 *
 *   1. The rows of x are replicated over the tp ranks; each tp rank takes
 *      its contiguous share of them (no padding: shares differ by at most
 *      one row) and routes only those.
 *   2. Slots (row, chosen expert) are ordered by owner rank, then expert,
 *      then row (ffn->bucket: the placement decides which rank owns which
 *      expert); the slot counts per (owner, expert) are exchanged first, so
 *      every rank knows what it will receive.
 *   3. One all-to-all sends each slot's row to the owner (started: the
 *      shared expert computes meanwhile); the owner runs its experts over
 *      the received rows as they came, one product per (source, expert)
 *      segment, and a second all-to-all sends the results back in place.
 *   4. Each rank adds the returned rows, times their gate weights, into its
 *      share of y. The tensor-parallel all-reduce that follows every MoE
 *      sublayer then both completes the shared expert and fills in the rows
 *      the other tp ranks routed, so no extra gather is needed. */
#include "moe/moe_expert_parallel.h"

#include "moe/moe_experts.h"

#include "backend/moe_gate.h"
#include "parallel/layout.h"

#include <string.h>

/* This tp rank's share of the token map: segments clipped to [first, first + count). */
static moe_token_map clip_map(const moe_token_map *map, int64_t rows, int64_t first, int64_t count)
{
    moe_token_map whole = moe_whole_map(rows), out = {0};
    if (!map) map = &whole;
    for (int i = 0; i < map->segments; i++) {
        moe_token_segment seg = map->seg[i];
        int64_t begin = seg.local_first > first ? seg.local_first : first;
        int64_t end = seg.local_first + seg.rows;
        if (end > first + count) end = first + count;
        if (end <= begin) continue;
        seg.global_first += begin - seg.local_first;
        seg.local_first = begin - first;
        seg.rows = end - begin;
        out.seg[out.segments++] = seg;
    }
    return out;
}

/* Received rows come grouped by source, then local expert: offsets[]
 * bounds each (source, expert) segment, which the grouped products take as
 * they are (no reordering into expert-major order and back). */
static int64_t segment_received(moe_scratch *s, int peers, int local, int64_t *peer_rows)
{
    int64_t total = 0;
    for (int p = 0; p < peers; p++) {
        peer_rows[p] = 0;
        for (int j = 0; j < local; j++) {
            s->offsets[p * local + j] = total;
            total += s->recv_counts[p * local + j];
            peer_rows[p] += s->recv_counts[p * local + j];
        }
    }
    s->offsets[peers * local] = total;
    return total;
}

static int exchange_counts(const moe_context *ctx, const moe_ffn *ffn)
{
    process_group *ep = ctx->ep;
    int64_t ones[MOE_MAX_BUCKETS];
    for (int p = 0; p < ep->size; p++) ones[p] = 1;
    tensor send = tensor_make_2d(DTYPE_I32, DEVICE_CPU, ep->size, ffn->local_experts);
    tensor recv = send;
    send.data = ctx->host->send_counts;
    recv.data = ctx->host->recv_counts;
    /* Counts travel through host memory whatever the device. */
    return ep->ops->all_to_all_rows(ep, recv, ones, send, ones) == 0 ? 0 : -1;
}

int moe_expert_parallel_forward(const moe_context *ctx, const moe_ffn *ffn, tensor y, tensor x, const moe_token_map *map)
{
    backend *be = ctx->be;
    moe_scratch *s = ctx->host;
    process_group *ep = ctx->ep;
    int peers = ep->size, local = ffn->local_experts, k = ffn->top_k;
    int64_t first, rows;
    layout_split_rows(tensor_rows(&x), ctx->tp->size, ctx->tp->rank, &first, &rows);
    tensor mine = tensor_row_slice(x, first, rows);
    moe_token_map clipped = clip_map(map, tensor_rows(&x), first, rows);
    /* Step 2 on the device: slots by (owner, local expert), rows ascending
     * within each (moe_dispatch refuses more buckets than MOE_MAX_BUCKETS,
     * which bounds the arrays here). */
    tensor experts, weights, slot_rows, slot_weights, positions;
    int64_t bucket_first[MOE_MAX_BUCKETS + 1];
    if (moe_experts_route(ctx, ffn, mine, &clipped, &experts, &weights) ||
        moe_experts_dispatch(ctx, experts, weights, ffn->bucket_map, peers * local, &slot_rows, &slot_weights, &positions,
                     bucket_first))
        return -1;
    for (int b = 0; b < peers * local; b++) s->send_counts[b] = (int32_t)(bucket_first[b + 1] - bucket_first[b]);
    if (exchange_counts(ctx, ffn)) return -1;

    int64_t send_rows[MOE_MAX_BUCKETS], recv_rows[MOE_MAX_BUCKETS], slots = rows * k;
    for (int p = 0; p < peers; p++) send_rows[p] = bucket_first[(p + 1) * local] - bucket_first[p * local];
    int64_t received = segment_received(s, peers, local, recv_rows);

    int64_t dim = tensor_cols(&x);
    tensor outgoing = arena_tensor_2d(ctx->scratch, slots, dim);
    tensor incoming = arena_tensor_2d(ctx->scratch, received, dim);
    if (!outgoing.data || !incoming.data) return -1;
    be->ops->gather_rows(be, outgoing, mine, slot_rows);
    int ticket;
    if (pg_all_to_all_start(ep, incoming, recv_rows, outgoing, send_rows, &ticket)) return -1;
    /* The shared expert (all of x's rows, y's first writer) computes while the routed rows travel. */
    if (swiglu_ffn_forward(be, ctx->scratch, ctx->tp, &ffn->shared, y, x) || pg_wait(ep, ticket)) return -1;
    moe_count_expert_rows(s, received);
    if (moe_experts_compute(ctx, ffn, incoming, s->offsets, peers * local)) return -1;
    if (ep->ops->all_to_all_rows(ep, outgoing, send_rows, incoming, recv_rows)) return -1;
    be->ops->combine_rows(be, tensor_row_slice(y, first, rows), outgoing, positions, slot_weights, 0);
    return 0;
}
