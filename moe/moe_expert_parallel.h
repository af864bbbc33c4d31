/* Expert parallelism across ranks that hold different rows (moe_expert_parallel.c). */
#ifndef MOEDIT_MOE_EXPERT_PARALLEL_H
#define MOEDIT_MOE_EXPERT_PARALLEL_H

#include "moe/moe_ffn.h"

/* y = the shared expert of x plus this rank's share of the routed experts
 * (the shared expert is computed while the routed rows are exchanged). */
int moe_expert_parallel_forward(const moe_context *ctx, const moe_ffn *ffn, tensor y, tensor x,
                                const moe_token_map *map);

#endif
