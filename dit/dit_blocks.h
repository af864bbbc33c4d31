/* Double-stream and single-stream blocks of HiDream (diffusers
 * HiDreamImageTransformerBlock and HiDreamImageSingleTransformerBlock).
 *
 * With m = adaLN_modulation(silu(temb)) chunked into (shift, scale, gate) triples:
 *   x += gate_msa * attn(layer_norm(x) * (1 + scale_msa) + shift_msa)
 *   x += gate_mlp * ff(layer_norm(x) * (1 + scale_mlp) + shift_mlp)
 * Double blocks keep image and text projections apart and attend jointly over
 * [image, text]; single blocks run one stream over the whole sequence.
 * q and k go through RMSNorm (over all heads) before RoPE; padded image keys
 * are zeroed. Under tensor parallelism each rank computes its heads and
 * hidden units and the partial outputs are all-reduced once per sublayer. */
#ifndef MOEDIT_DIT_BLOCKS_H
#define MOEDIT_DIT_BLOCKS_H

#include "dit/dit_forward.h"

#define DIT_MAX_SP 1024

/* This rank's rows of the sequence of one step, seq[S_local, C]:
 *   [ image part | t5 part | last-llama part | block-llama part ]
 * image + t5 + last llama are the rows that carry over between blocks
 * ("kept"); the block llama rows are only keys and values. */
typedef struct dit_sequence {
    tensor seq;
    tensor silu_temb;     /* [1, C] */
    int64_t image_tokens; /* local image rows, padding included */
    int64_t valid_tokens; /* local image rows that are real (RoPE, unmasked keys) */
    int64_t image_first;  /* global index of the first local image row */
    int64_t t5_tokens, llama_tokens; /* local text rows of each segment */
    int64_t kept_tokens;  /* image + t5 + last llama */
    /* Global layout, for routing capture/replay: first rows of each local
     * segment in the full kept sequence. */
    int64_t global_image, global_t5, global_llama;
    int64_t global_image_tokens, global_kept_tokens;
    /* Rows every sp rank holds (queries = kept, keys = all), for the
     * Ulysses and ring exchanges. */
    int64_t query_rows[DIT_MAX_SP], key_rows[DIT_MAX_SP];
} dit_sequence;

int dit_double_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s);
int dit_single_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s);

/* out[q rows, C_local] = attention of this rank's queries over every rank's
 * keys: directly, or through the Ulysses all-to-all and the ring. */
int dit_attention_forward(dit_run *run, const dit_sequence *s, tensor out, tensor q, tensor k, tensor v);

#endif
