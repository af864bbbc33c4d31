/* The routed experts' stages of a MoE layer (moe_experts.c), shared by the
 * local path (moe_forward.c) and the expert-parallel one
 * (moe_expert_parallel.c); not for model code. */
#ifndef MOEDIT_MOE_EXPERTS_H
#define MOEDIT_MOE_EXPERTS_H

#include "moe/moe_ffn.h"

/* Gate logits of x, softmax, top-k (or the replayed experts), gate weights
 * and capture: experts I32 [rows, K] and weights F32 [rows, K] on the device,
 * in ctx->scratch (the caller releases them). */
int moe_experts_route(const moe_context *ctx, const moe_ffn *ffn, tensor x, const moe_token_map *map,
                      tensor *experts, tensor *weights);

/* The slots of experts/weights in bucket order (bucket none: by expert;
 * else the device map ffn->bucket_map, buckets in all), rows ascending
 * within each: rows (I32) and slot_weights (F32) [slots], and each slot's
 * position (I32 [rows, K], for combine_rows) on the device, in
 * ctx->scratch; offsets[0..buckets] on the host, read back from the device
 * (the layer's one wait for it) and checked to be ordered. */
int moe_experts_dispatch(const moe_context *ctx, tensor experts, tensor weights, tensor bucket, int buckets,
                         tensor *rows, tensor *slot_weights, tensor *positions, int64_t *offsets);

/* The map of x that is one whole sequence of the conditional branch. */
moe_token_map moe_whole_map(int64_t rows);

/* rows[slots, C] <- the local experts applied in place, over `segments`
 * runs of rows: run g is [offsets[g], offsets[g + 1]) and goes to local
 * expert g % local_experts (segments = local_experts: one run per expert;
 * under EP, one per (source rank, expert)). */
int moe_experts_compute(const moe_context *ctx, const moe_ffn *ffn, tensor rows, const int64_t *offsets, int segments);

#endif
