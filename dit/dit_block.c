/* dit_block_tensors: a block's weight tensors in one fixed order (the
 * order a streamed block's host image packs them in). */
#include "dit/dit_block.h"

#include <stddef.h>

static int add_tensor(tensor **out, int n, tensor *t)
{
    if (out) out[n] = t;
    return n + 1;
}

static int add_linear(tensor **out, int n, dit_linear *l)
{
    n = add_tensor(out, n, &l->weight);
    return add_tensor(out, n, &l->bias);
}

static int add_stream(tensor **out, int n, dit_attention_stream *a)
{
    dit_linear *layers[4] = {&a->to_q, &a->to_k, &a->to_v, &a->to_out};
    for (int i = 0; i < 4; i++) n = add_linear(out, n, layers[i]);
    n = add_tensor(out, n, &a->q_norm);
    return add_tensor(out, n, &a->k_norm);
}

static int add_swiglu(tensor **out, int n, swiglu_ffn *f)
{
    n = add_tensor(out, n, &f->w1);
    n = add_tensor(out, n, &f->w3);
    return add_tensor(out, n, &f->w2);
}

int dit_block_tensors(dit_block *block, tensor **out)
{
    moe_ffn *ff = &block->ff_image;
    int n = add_linear(out, 0, &block->modulation);
    n = add_stream(out, n, &block->image);
    if (block->is_double) n = add_stream(out, n, &block->text);
    n = add_tensor(out, n, &ff->gate);
    n = add_tensor(out, n, &ff->bucket_map);
    for (int e = 0; ff->w1 && e < ff->local_experts; e++) {
        n = add_tensor(out, n, &ff->w1[e]);
        n = add_tensor(out, n, &ff->w3[e]);
        n = add_tensor(out, n, &ff->w2[e]);
    }
    n = add_swiglu(out, n, &ff->shared);
    if (block->is_double) n = add_swiglu(out, n, &block->ff_text);
    return n;
}
