/* Floating-point operations of one transformer forward, counted from the
 * matrix products (2 per multiply-add): projections, attention scores and
 * weighted values, and the active experts of each MoE layer. Norms,
 * activations and other elementwise work are left out; they are a fraction
 * of a percent at real sizes. Used to report achieved TFLOP/s. */
#ifndef MOEDIT_DIT_FLOPS_H
#define MOEDIT_DIT_FLOPS_H

#include "dit/dit_config.h"

double dit_forward_flops(const dit_config *cfg, int64_t image_tokens, int64_t t5_tokens, int64_t llama_tokens);
/* Blocks [first, end) alone (what a cached step skips: dit_step_cache.h). */
double dit_blocks_flops(const dit_config *cfg, int64_t image_tokens, int64_t t5_tokens, int64_t llama_tokens, int first,
                        int end);

#endif
