/* One transformer block's weights (diffusers' double_stream_blocks.<i>.block
 * and single_stream_blocks.<i>.block) and the list of its tensors, apart
 * from the model (dit_model.h) so that what moves a block's weights
 * (dit_weight_stream.c) needs only the block. */
#ifndef MOEDIT_DIT_BLOCK_H
#define MOEDIT_DIT_BLOCK_H

#include "moe/moe_ffn.h"

typedef struct dit_linear {
    tensor weight; /* [out, in] */
    tensor bias;   /* [out]; data NULL when the layer has none */
} dit_linear;

/* q, k, v, out projections and q/k RMSNorm weights of one token stream. */
typedef struct dit_attention_stream {
    dit_linear to_q, to_k, to_v, to_out;
    tensor q_norm, k_norm;
} dit_attention_stream;

typedef struct dit_block {
    int is_double;
    dit_linear modulation;      /* adaLN_modulation.1: [12C or 6C, C] */
    dit_attention_stream image; /* to_q ... (single blocks: the only stream) */
    dit_attention_stream text;  /* to_q_t ... (double blocks only) */
    moe_ffn ff_image;           /* ff_i */
    swiglu_ffn ff_text;         /* ff_t (double blocks only) */
} dit_block;

/* The tensors of a block whose data its weights are (every dit_block
 * member, the MoE's local experts too), into out when not NULL; returns
 * how many. */
int dit_block_tensors(dit_block *block, tensor **out);

#endif
