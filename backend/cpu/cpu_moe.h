/* The CPU backend's MoE gate, dispatch and combine ops (backend_ops.moe_route,
 * .moe_dispatch and .combine_rows in backend/backend.h). */
#ifndef MOEDIT_BACKEND_CPU_CPU_MOE_H
#define MOEDIT_BACKEND_CPU_CPU_MOE_H

#include "backend/backend.h"

void cpu_moe_route(backend *be, tensor experts, tensor weights, tensor logits, int forced);
void cpu_moe_dispatch(backend *be, tensor rows, tensor slot_weights, tensor positions, tensor offsets, tensor experts,
                      tensor weights, tensor bucket, int buckets);
void cpu_combine_rows(backend *be, tensor y, tensor x, tensor positions, tensor weight, int64_t first);

#endif
