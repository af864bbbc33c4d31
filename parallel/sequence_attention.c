/* Attention over the sequence-parallel ranks (sequence_attention.h).
 *
 * Ulysses: each rank holds all heads of its tokens; an all-to-all turns that
 * into all tokens of its share of the heads (split_columns packs the head
 * blocks), attention runs locally, and the inverse all-to-all brings the
 * outputs back. Token order after the exchange is rank-major, which
 * attention does not care about (RoPE is applied before). The exchanges are
 * started (pg_all_to_all_start) and waited for in the next phase, so a
 * caller that runs the phases of its samples interleaved (dit/dit_blocks.c)
 * exchanges one sample's heads while it computes the other's; where that
 * is not safe (sequence_attention_overlaps) each exchange is waited for at once.
 * Ring: the ulysses-gathered keys and values of each ring slot travel around
 * the ring; each partial attention is merged into the running result with
 * its log-sum-exp (attention_merge), so every query sees every key once. */
#include "parallel/sequence_attention.h"

#include "core/error.h"

#include <string.h>

/* Rows each rank of the ulysses group sends and receives (its own rows,
 * from the sp ranks of the same ring slot). */
static void ulysses_counts(const sequence_attention *sa, const int64_t *rows_of_sp, int64_t *rows)
{
    int u = sa->ulysses->size, ring = sa->ring->rank;
    for (int j = 0; j < u; j++) rows[j] = rows_of_sp[ring * u + j];
}

static int64_t sum(const int64_t *values, int n)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += values[i];
    return total;
}

/* Waits for a started exchange of `pg` (if any) and marks it done. */
static int finish(process_group *pg, int *ticket)
{
    int status = pg_wait(pg, *ticket);
    *ticket = -1;
    return status;
}

int sequence_attention_overlaps(const process_group *tp, const process_group *ulysses, const process_group *ring)
{
    return ulysses->size > 1 && tp->size == 1 && ring->size == 1;
}

/* [rows, C] with all heads -> [sum of peers' rows, C / u] with this rank's
 * heads, exchanged beside later work until pg_wait(ticket). */
static int scatter_heads(const sequence_attention *sa, tensor x, const int64_t *rows_of_sp, tensor *out, int *ticket)
{
    process_group *u = sa->ulysses;
    backend *be = sa->be;
    int64_t peer_rows[SEQUENCE_PARALLEL_MAX_RANKS], own[SEQUENCE_PARALLEL_MAX_RANKS];
    int64_t rows = tensor_rows(&x), width = tensor_cols(&x) / u->size;
    ulysses_counts(sa, rows_of_sp, peer_rows);
    for (int j = 0; j < u->size; j++) own[j] = rows;
    tensor packed = arena_tensor_2d(sa->scratch, u->size * rows, width);
    *out = arena_tensor_2d(sa->scratch, sum(peer_rows, u->size), width);
    if (!packed.data || !out->data) return -1;
    be->ops->split_columns(be, packed, x, u->size);
    if (pg_all_to_all_start(u, *out, peer_rows, packed, own, ticket)) return -1;
    return sa->overlap ? 0 : finish(u, ticket);
}

/* The inverse, started: [sum of peers' query rows, C / u] -> `packed`, whose
 * column blocks sequence_attention_end merges into this rank's [rows, C]. */
static int gather_heads_start(const sequence_attention *sa, tensor x, const int64_t *rows_of_sp, int64_t rows, tensor *packed,
                              int *ticket)
{
    process_group *u = sa->ulysses;
    int64_t peer_rows[SEQUENCE_PARALLEL_MAX_RANKS], own[SEQUENCE_PARALLEL_MAX_RANKS];
    ulysses_counts(sa, rows_of_sp, peer_rows);
    for (int j = 0; j < u->size; j++) own[j] = rows;
    *packed = arena_tensor_2d(sa->scratch, u->size * rows, tensor_cols(&x));
    if (!packed->data) return -1;
    if (pg_all_to_all_start(u, *packed, own, x, peer_rows, ticket)) return -1;
    return sa->overlap ? 0 : finish(u, ticket);
}

/* Keys of ring slot r after the ulysses exchange: its peers' rows together. */
static int64_t ring_slot_rows(const sequence_attention *sa, const int64_t *key_rows, int slot)
{
    int u = sa->ulysses->size;
    return sum(key_rows + slot * u, u);
}

static int ring_attention(const sequence_attention *sa, tensor out, tensor q, tensor k, tensor v, int heads)
{
    process_group *ring = sa->ring;
    backend *be = sa->be;
    arena *a = sa->scratch;
    int n = ring->size, me = ring->rank;
    int64_t width = tensor_cols(&k), queries = tensor_rows(&q), most = 0;
    for (int r = 0; r < n; r++)
        if (ring_slot_rows(sa, sa->key_rows, r) > most) most = ring_slot_rows(sa, sa->key_rows, r);
    tensor lse = arena_tensor_typed(a, DTYPE_F32, heads, queries);
    tensor part = arena_tensor_2d(a, queries, tensor_cols(&q));
    tensor part_lse = arena_tensor_typed(a, DTYPE_F32, heads, queries);
    tensor keys[2] = {arena_tensor_2d(a, most, width), arena_tensor_2d(a, most, width)};
    tensor values[2] = {arena_tensor_2d(a, most, width), arena_tensor_2d(a, most, width)};
    if (!lse.data || !part.data || !part_lse.data || !keys[0].data || !keys[1].data || !values[0].data ||
        !values[1].data)
        return -1;

    /* Each step passes on the block it holds while attending over it: the
     * exchange is started beside the attention (a stream of its own under
     * NCCL) and waited for before the next step reads what arrived. The
     * block held is only read, by both; the one arriving goes to the other
     * buffer, which the step before last attended over. */
    tensor held_k = k, held_v = v;
    int next = (me + 1) % n, previous = (me + n - 1) % n;
    for (int step = 0; step < n; step++) {
        int passing = step + 1 < n, tickets[2] = {-1, -1};
        tensor next_k = held_k, next_v = held_v;
        if (passing) { /* receive the block that started step + 1 slots back */
            int64_t rows = ring_slot_rows(sa, sa->key_rows, (me + n - step - 1) % n);
            next_k = tensor_row_slice(keys[(step + 1) % 2], 0, rows);
            next_v = tensor_row_slice(values[(step + 1) % 2], 0, rows);
            if (pg_send_recv_start(ring, held_k, next, next_k, previous, &tickets[0]) ||
                pg_send_recv_start(ring, held_v, next, next_v, previous, &tickets[1]))
                return -1;
        }
        if (step == 0) {
            be->ops->attention(be, out, lse, q, held_k, held_v, heads);
        } else {
            be->ops->attention(be, part, part_lse, q, held_k, held_v, heads);
            be->ops->attention_merge(be, out, lse, part, part_lse, heads);
        }
        if (passing && (finish(ring, &tickets[0]) || finish(ring, &tickets[1]))) return -1;
        held_k = next_k;
        held_v = next_v;
    }
    return 0;
}

int sequence_attention_start(const sequence_attention *sa, sequence_attention_state *st, tensor out, tensor q, tensor k,
                        tensor v)
{
    memset(st, 0, sizeof *st);
    for (int i = 0; i < 4; i++) st->ticket[i] = -1;
    st->out = out;
    st->q = q, st->k = k, st->v = v;
    if (sa->ulysses->size == 1) return 0;
    return scatter_heads(sa, q, sa->query_rows, &st->q, &st->ticket[0]) ||
                   scatter_heads(sa, k, sa->key_rows, &st->k, &st->ticket[1]) ||
                   scatter_heads(sa, v, sa->key_rows, &st->v, &st->ticket[2])
               ? -1
               : 0;
}

int sequence_attention_compute(const sequence_attention *sa, sequence_attention_state *st)
{
    backend *be = sa->be;
    process_group *u = sa->ulysses;
    int heads = sa->heads;
    for (int i = 0; i < 3; i++)
        if (finish(u, &st->ticket[i])) return -1;
    tensor oh = st->out;
    if (u->size > 1) {
        oh = arena_tensor_2d(sa->scratch, tensor_rows(&st->q), tensor_cols(&st->q));
        if (!oh.data) return -1;
    }
    if (sa->ring->size > 1) {
        if (ring_attention(sa, oh, st->q, st->k, st->v, heads)) return -1;
    } else {
        be->ops->attention(be, oh, tensor_none(), st->q, st->k, st->v, heads);
    }
    if (u->size == 1) return 0;
    return gather_heads_start(sa, oh, sa->query_rows, tensor_rows(&st->out), &st->packed, &st->ticket[3]);
}

int sequence_attention_end(const sequence_attention *sa, sequence_attention_state *st)
{
    process_group *u = sa->ulysses;
    if (u->size == 1) return 0;
    if (finish(u, &st->ticket[3])) return -1;
    sa->be->ops->merge_columns(sa->be, st->out, st->packed, u->size);
    return 0;
}
