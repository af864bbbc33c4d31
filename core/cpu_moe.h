/* The CPU backend's MoE gate and dispatch ops (backend_ops.moe_route and
 * .moe_dispatch in core/backend.h). */
#ifndef MOEDIT_CORE_CPU_MOE_H
#define MOEDIT_CORE_CPU_MOE_H

#include "core/backend.h"

void cpu_moe_route(backend *be, tensor experts, tensor weights, tensor logits, int forced);
void cpu_moe_dispatch(backend *be, tensor rows, tensor slot_weights, tensor offsets, tensor experts, tensor weights,
                      tensor bucket, int buckets);

#endif
