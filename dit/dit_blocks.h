/* Double-stream and single-stream blocks of HiDream (diffusers
 * HiDreamImageTransformerBlock and HiDreamImageSingleTransformerBlock).
 *
 * With m = adaLN_modulation(silu(temb)) chunked into (shift, scale, gate) triples:
 *   x += gate_msa * attn(layer_norm(x) * (1 + scale_msa) + shift_msa)
 *   x += gate_mlp * ff(layer_norm(x) * (1 + scale_mlp) + shift_mlp)
 * Double blocks keep image and text projections apart and attend jointly over
 * [image, text]; single blocks run one stream over the whole sequence.
 * q and k go through RMSNorm before RoPE; padded image keys are zeroed. */
#ifndef MOEDIT_DIT_BLOCKS_H
#define MOEDIT_DIT_BLOCKS_H

#include "dit/dit_forward.h"

/* Where the streams sit in the sequence buffer seq[S, C] of one step. */
typedef struct dit_sequence {
    tensor seq;           /* [S, C]: image | initial text | block llama */
    tensor silu_temb;     /* [1, C] */
    int64_t image_tokens; /* image rows, padding included */
    int64_t valid_tokens; /* image rows that are real (RoPE and unmasked keys) */
    int64_t kept_tokens;  /* image + initial text: the rows that carry over */
} dit_sequence;

int dit_double_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s);
int dit_single_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s);

#endif
