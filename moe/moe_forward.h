/* The MoE feed-forward sublayer of a transformer block (moe_forward.c). */
#ifndef MOEDIT_MOE_FORWARD_H
#define MOEDIT_MOE_FORWARD_H

#include "moe/moe_ffn.h"

/* y[M, C] = ffn(x[M, C]), or this rank's partial sum of it under tensor
 * parallelism (the caller all-reduces y over tp). With expert parallelism
 * each tp rank routes its share of the rows to the experts' owners and adds
 * the results into those rows of its partial sum, so the same all-reduce
 * completes them. */
int moe_ffn_forward(const moe_context *ctx, const moe_ffn *ffn, tensor y, tensor x, const moe_token_map *map);

#endif
