/* The feed-forward of a HiDream block: a SwiGLU MLP, or a mixture of experts.
 *
 * Mirrors diffusers' HiDreamImageFeedForwardSwiGLU and MOEFeedForwardSwiGLU:
 *   swiglu(x)  = w2(silu(w1 x) * w3 x)
 *   gate       = softmax(x Wg^T) over E routed experts; top-K by score,
 *                weights = the softmax scores themselves (not renormalised)
 *   moe(x)     = sum_k weight_k * expert_k(x) + shared(x)
 * Tokens are dispatched by expert: the rows routed to each expert are gathered
 * into one contiguous group, all groups go through one grouped GEMM per
 * projection, and the outputs are scattered back with their gate weights. */
#ifndef MOEDIT_MOE_FFN_H
#define MOEDIT_MOE_FFN_H

#include "backend/arena.h"
#include "io/weights.h"
#include "moe/moe_routing.h"
#include "parallel/process_group.h"

typedef struct swiglu_ffn {
    tensor w1, w3; /* [F, C] */
    tensor w2;     /* [C, F] */
} swiglu_ffn;

/* Where this rank's share of a layer's weights lies: SwiGLU hidden units
 * split over tp ranks (w1, w3 by rows, w2 by columns; partial outputs are
 * all-reduced by the caller), and with ep_size > 1 whole experts instead of a
 * tp slice of every expert: E / ep_size of them per rank, rank r holding
 * entries [r E / ep_size, (r + 1) E / ep_size) of expert_order (a permutation
 * of the layer's experts), or of 0, 1, ..., E - 1 when expert_order is NULL.
 * An order lets experts that the router loads alike share a rank less. */
typedef struct moe_placement {
    int tp_rank, tp_size;
    int ep_rank, ep_size;
    const int32_t *expert_order; /* [E] or NULL */
    /* [tp_size + 1] or NULL (even): the shared expert's hidden units per tp
     * rank, uneven to even out the routed experts' load (moe_shared_split). */
    const int64_t *shared_bounds;
} moe_placement;

typedef struct moe_ffn {
    int num_experts;   /* routed experts; 0 = dense: only `shared` (the whole FFN) */
    int top_k;
    int layer;         /* index of this MoE layer for routing capture/replay */
    int local_experts; /* experts held here: all, or (EP) E / ep_size of them */
    int32_t *bucket;   /* EP: [E] owner rank * local_experts + index there, of each expert; else NULL */
    tensor bucket_map; /* EP: the same on the device (I32 [E], the dispatch's key); else none */
    tensor gate;       /* [E, C], all experts' rows on every rank */
    tensor *w1, *w3, *w2; /* per local expert */
    swiglu_ffn shared;
} moe_ffn;

/* Host-side scratch for routing one layer: sized once per run for the most
 * rows any layer sees (and, with expert parallelism, the most slots any rank
 * can receive), so the step loop does not allocate. */
typedef struct moe_scratch {
    int64_t max_rows;
    int num_experts, top_k;
    int32_t *experts;    /* [rows, K] replayed or captured experts, ascending per row */
    int64_t *offsets;        /* [E + 1] */
    /* Expert parallel exchange: */
    int32_t *send_counts, *recv_counts; /* [ep_size, local experts] slots per (peer, expert) */
    tensor *segment_weights; /* [3, E] the local experts' w1, w3, w2 per (source, expert) segment */
    /* Rows this rank's routed experts computed, one entry per MoE call since
     * init, in call order (the same on every rank of a layout): under expert
     * parallelism each call waits for the rank its router loads most (moedit
     * bench reports it). Not kept when out of memory (calls stops growing). */
    int64_t *call_rows;
    int64_t calls, call_capacity;
} moe_scratch;

/* What a MoE forward runs with besides the layer. */
typedef struct moe_context {
    backend *be;
    arena *scratch;
    moe_scratch *host;
    moe_routing *routing; /* NULL: free routing */
    process_group *tp;    /* with ep and sequence parallelism: the rows are split over these ranks */
    process_group *ep;    /* NULL: experts are tensor parallel (or serial) */
} moe_context;

/* `dim` C; hidden F of each expert (or the dense FFN); `shared_hidden` of the
 * shared expert. prefix is e.g. "double_stream_blocks.0.block.ff_i". */
int moe_ffn_load(moe_ffn *ffn, weight_loader *wl, const char *prefix, int64_t dim, int64_t hidden,
                 int64_t shared_hidden, int num_experts, int top_k, int layer, const moe_placement *placement);
void moe_ffn_free(moe_ffn *ffn);

/* The tp_rank-th of tp_size slices of the hidden units (1 slice: all):
 * even slices, or [bounds[tp_rank], bounds[tp_rank + 1]) when bounds (tp_size
 * + 1 entries from 0 to hidden) are given. */
int swiglu_ffn_load(swiglu_ffn *ffn, weight_loader *wl, const char *prefix, int64_t dim, int64_t hidden, int tp_rank,
                    int tp_size, const int64_t *bounds);
/* y[M, C] = swiglu(x[M, C]); the hidden units split over tp (NULL: not
 * split), whose ranks quantize w2's FP8 input alike (parallel/fp8_rows.h). */
int swiglu_ffn_forward(backend *be, arena *scratch, process_group *tp, const swiglu_ffn *ffn, tensor y, tensor x);

int moe_scratch_init(moe_scratch *s, int64_t max_rows, int num_experts, int top_k);
void moe_scratch_free(moe_scratch *s);

/* Records the rows this rank's routed experts computed in this call (moe_scratch.call_rows). */
void moe_count_expert_rows(moe_scratch *s, int64_t n);

/* Where x's rows sit in the full token sequences of the samples of a
 * forward: runs of consecutive rows, so captures and replays address tokens
 * the same way in every parallel layout and whether the CFG branches run as
 * one batch or one at a time. A NULL map: x is one whole sequence of the
 * conditional branch. */
#define MOE_MAX_SEGMENTS 64
typedef struct moe_token_segment {
    int64_t local_first, rows; /* rows [local_first, local_first + rows) of x */
    int64_t global_first;      /* ... are these tokens of their sample's sequence */
    int64_t global_rows;       /* that whole sequence (the capture record's rows) */
    int branch;                /* the sample's CFG branch (0 cond, 1 uncond): the record's key */
} moe_token_segment;

typedef struct moe_token_map {
    int segments;
    moe_token_segment seg[MOE_MAX_SEGMENTS];
} moe_token_map;

#endif
