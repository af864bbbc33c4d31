/* Double-stream and single-stream blocks of HiDream (diffusers
 * HiDreamImageTransformerBlock and HiDreamImageSingleTransformerBlock).
 *
 * With m = adaLN_modulation(silu(temb)) chunked into (shift, scale, gate) triples:
 *   x += gate_msa * attn(layer_norm(x) * (1 + scale_msa) + shift_msa)
 *   x += gate_mlp * ff(layer_norm(x) * (1 + scale_mlp) + shift_mlp)
 * Double blocks keep image and text projections apart and attend jointly over
 * [image, text]; single blocks run one stream over the whole sequence.
 * In-context tokens (dit_sequence.h) belong to the image stream.
 * q and k go through RMSNorm (over all heads) before RoPE; padded image keys
 * are zeroed. Under tensor parallelism each rank computes its heads and
 * hidden units and the partial outputs are all-reduced once per sublayer.
 *
 * A forward may carry several samples (the CFG branches of a step): each
 * sample's attention sublayer runs on its own sequence, and each
 * feed-forward sublayer runs once over the rows of all of them, so the
 * routed experts, the shared expert and the routing see both branches'
 * tokens in one call (twice the rows per expert product, one routing round
 * trip instead of two). */
#ifndef MOEDIT_DIT_BLOCKS_H
#define MOEDIT_DIT_BLOCKS_H

#include "dit/dit_forward.h"
#include "dit/dit_sequence.h"

/* The samples of one forward: each one's sequence, and their silu(temb)
 * rows stacked [count, C] (every block's modulation is one product). */
typedef struct dit_batch { /* dit_run holds one */
    int count;
    dit_sequence s[DIT_MAX_BATCH];
    tensor silu_temb;
} dit_batch;

/* One block (double- or single-stream, by block->is_double) over every sample of the batch. */
int dit_block_forward(dit_run *run, const dit_block *block, const dit_batch *batch);

#endif
