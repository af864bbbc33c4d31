/* Double- and single-stream blocks; see dit_blocks.h. */
#include "dit/dit_blocks.h"

#include "core/error.h"

#define LAYER_NORM_EPS 1e-6f
#define QK_NORM_EPS 1e-5f

static tensor chunk(tensor modulation, int64_t index, int64_t dim)
{
    return tensor_row_slice(tensor_reshape_2d(modulation, tensor_numel(&modulation) / dim, dim), index, 1);
}

static void linear(backend *be, tensor y, tensor x, const dit_linear *layer)
{
    be->ops->linear(be, y, x, layer->weight, layer->bias);
}

/* RMSNorm over all heads of x[M, C_local]: the sums of squares of the tp
 * shards are added before normalising. */
static int qk_norm(dit_run *run, tensor x, tensor weight)
{
    backend *be = run->model->be;
    arena_mark_t mark = arena_mark(&run->scratch);
    tensor sums = arena_tensor_typed(&run->scratch, DTYPE_F32, tensor_rows(&x), 1);
    if (!sums.data) return -1;
    be->ops->row_sum_squares(be, sums, x);
    if (run->par.tp->ops->all_reduce_sum(run->par.tp, sums)) return -1;
    be->ops->rms_norm_with_sums(be, x, x, sums, run->model->cfg.dim, weight, QK_NORM_EPS);
    arena_release(&run->scratch, mark);
    return 0;
}

/* q, k, v of rows x into the given row views; q may have fewer rows than x
 * (only the kept rows need queries) or none (q.data NULL). */
static int project_qkv(dit_run *run, const dit_attention_stream *stream, tensor x, tensor q, tensor k, tensor v)
{
    backend *be = run->model->be;
    if (q.data && tensor_rows(&q) > 0) {
        linear(be, q, tensor_row_slice(x, 0, tensor_rows(&q)), &stream->to_q);
        if (qk_norm(run, q, stream->q_norm)) return -1;
    }
    linear(be, k, x, &stream->to_k);
    if (qk_norm(run, k, stream->k_norm)) return -1;
    linear(be, v, x, &stream->to_v);
    return 0;
}

/* Zero the padded image keys (diffusers multiplies them by the mask), rotate
 * the real target tokens and the context tokens, attend. Rows of q and k are
 * [target | context | text]. */
static int attend(dit_run *run, const dit_sequence *s, tensor out, tensor q, tensor k, tensor v)
{
    backend *be = run->model->be;
    const dit_config *cfg = &run->model->cfg;
    int heads = cfg->heads / run->par.tp->size;
    int64_t pad = s->image_tokens - s->valid_tokens;
    if (pad > 0) be->ops->fill(be, tensor_row_slice(k, s->valid_tokens, pad), 0.0f);
    if (s->valid_tokens > 0) {
        tensor table = tensor_row_slice(run->rope, s->image_first, s->valid_tokens);
        be->ops->rope(be, tensor_row_slice(q, 0, s->valid_tokens), table, heads, cfg->rope_dim);
        be->ops->rope(be, tensor_row_slice(k, 0, s->valid_tokens), table, heads, cfg->rope_dim);
    }
    if (s->context_tokens > 0) {
        tensor table = tensor_row_slice(run->context_rope, s->context_first, s->context_tokens);
        be->ops->rope(be, tensor_row_slice(q, s->image_tokens, s->context_tokens), table, heads, cfg->rope_dim);
        be->ops->rope(be, tensor_row_slice(k, s->image_tokens, s->context_tokens), table, heads, cfg->rope_dim);
    }
    return dit_attention_forward(run, s, out, q, k, v);
}

/* The token map of the image stream (double blocks: target and context) or
 * of the kept rows (single blocks: and the initial text). */
static moe_token_map token_map(const dit_sequence *s, int kept)
{
    moe_token_map map = {2,
                         {0, s->image_tokens},
                         {s->image_tokens, s->context_tokens},
                         {s->global_image, s->global_context},
                         s->global_image_stream_tokens};
    if (!kept) return map;
    map.segments = 4;
    map.local_first[2] = s->image_stream_tokens;
    map.rows[2] = s->t5_tokens;
    map.global_first[2] = s->global_t5;
    map.local_first[3] = s->image_stream_tokens + s->t5_tokens;
    map.rows[3] = s->llama_tokens;
    map.global_first[3] = s->global_llama;
    map.global_rows = s->global_kept_tokens;
    return map;
}

/* x += gate * ff(layer_norm(x) * (1 + scale) + shift), where ff is the MoE
 * feed-forward `moe` (with its token map) or, when that is NULL, the dense
 * SwiGLU `dense`. Tensor-parallel partial outputs are all-reduced first. */
static int feed_forward_sublayer(dit_run *run, const moe_ffn *moe, const moe_token_map *map, const swiglu_ffn *dense,
                                 tensor x, tensor shift, tensor scale, tensor gate)
{
    backend *be = run->model->be;
    arena_mark_t mark = arena_mark(&run->scratch);
    tensor normed = arena_tensor_2d(&run->scratch, tensor_rows(&x), tensor_cols(&x));
    tensor out = arena_tensor_2d(&run->scratch, tensor_rows(&x), tensor_cols(&x));
    if (!normed.data || !out.data) return -1;
    be->ops->layer_norm_modulate(be, normed, x, shift, scale, LAYER_NORM_EPS);
    moe_context ctx = {be, &run->scratch, &run->moe, run->routing, run->par.tp, run->par.ep};
    int status = moe ? moe_ffn_forward(&ctx, moe, out, normed, map) : swiglu_ffn_forward(be, &run->scratch, dense, out, normed);
    if (status || run->par.tp->ops->all_reduce_sum(run->par.tp, out)) return -1;
    be->ops->gated_residual(be, x, gate, out);
    arena_release(&run->scratch, mark);
    return 0;
}

int dit_double_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s)
{
    backend *be = run->model->be;
    arena *a = &run->scratch;
    int64_t c = run->model->cfg.dim, local = c / run->par.tp->size, rows = tensor_rows(&s->seq);
    int64_t image = s->image_stream_tokens, text = rows - image, kept_text = s->kept_tokens - image;
    arena_mark_t mark = arena_mark(a);

    /* m: shift, scale, gate (msa), shift, scale, gate (mlp); image then text. */
    tensor m = arena_tensor_2d(a, 1, 12 * c);
    tensor normed = arena_tensor_2d(a, rows, c);
    tensor q = arena_tensor_2d(a, s->kept_tokens, local);
    tensor k = arena_tensor_2d(a, rows, local);
    tensor v = arena_tensor_2d(a, rows, local);
    tensor attended = arena_tensor_2d(a, s->kept_tokens, local);
    tensor projected = arena_tensor_2d(a, s->kept_tokens, c);
    if (!m.data || !normed.data || !q.data || !k.data || !v.data || !attended.data || !projected.data) return -1;
    linear(be, m, s->silu_temb, &block->modulation);

    tensor x_image = tensor_row_slice(s->seq, 0, image), x_text = tensor_row_slice(s->seq, image, text);
    tensor n_image = tensor_row_slice(normed, 0, image), n_text = tensor_row_slice(normed, image, text);
    be->ops->layer_norm_modulate(be, n_image, x_image, chunk(m, 0, c), chunk(m, 1, c), LAYER_NORM_EPS);
    be->ops->layer_norm_modulate(be, n_text, x_text, chunk(m, 6, c), chunk(m, 7, c), LAYER_NORM_EPS);
    if (project_qkv(run, &block->image, n_image, tensor_row_slice(q, 0, image), tensor_row_slice(k, 0, image),
                    tensor_row_slice(v, 0, image)) ||
        project_qkv(run, &block->text, n_text, tensor_row_slice(q, image, kept_text), tensor_row_slice(k, image, text),
                    tensor_row_slice(v, image, text)) ||
        attend(run, s, attended, q, k, v))
        return -1;

    /* Both output projections land in one buffer: one all-reduce for both. */
    tensor out_image = tensor_row_slice(projected, 0, image), out_text = tensor_row_slice(projected, image, kept_text);
    linear(be, out_image, tensor_row_slice(attended, 0, image), &block->image.to_out);
    linear(be, out_text, tensor_row_slice(attended, image, kept_text), &block->text.to_out);
    if (run->par.tp->ops->all_reduce_sum(run->par.tp, projected)) return -1;
    be->ops->gated_residual(be, x_image, chunk(m, 2, c), out_image);
    tensor kept = tensor_row_slice(s->seq, image, kept_text);
    be->ops->gated_residual(be, kept, chunk(m, 8, c), out_text);

    moe_token_map map = token_map(s, 0);
    if (feed_forward_sublayer(run, &block->ff_image, &map, NULL, x_image, chunk(m, 3, c), chunk(m, 4, c),
                              chunk(m, 5, c)) ||
        feed_forward_sublayer(run, NULL, NULL, &block->ff_text, kept, chunk(m, 9, c), chunk(m, 10, c),
                              chunk(m, 11, c)))
        return -1;
    arena_release(a, mark);
    return 0;
}

int dit_single_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s)
{
    backend *be = run->model->be;
    arena *a = &run->scratch;
    int64_t c = run->model->cfg.dim, local = c / run->par.tp->size, rows = tensor_rows(&s->seq);
    int64_t kept = s->kept_tokens;
    arena_mark_t mark = arena_mark(a);

    tensor m = arena_tensor_2d(a, 1, 6 * c);
    tensor normed = arena_tensor_2d(a, rows, c);
    tensor q = arena_tensor_2d(a, kept, local);
    tensor k = arena_tensor_2d(a, rows, local);
    tensor v = arena_tensor_2d(a, rows, local);
    tensor attended = arena_tensor_2d(a, kept, local);
    tensor projected = arena_tensor_2d(a, kept, c);
    if (!m.data || !normed.data || !q.data || !k.data || !v.data || !attended.data || !projected.data) return -1;
    linear(be, m, s->silu_temb, &block->modulation);

    be->ops->layer_norm_modulate(be, normed, s->seq, chunk(m, 0, c), chunk(m, 1, c), LAYER_NORM_EPS);
    if (project_qkv(run, &block->image, normed, q, k, v) || attend(run, s, attended, q, k, v)) return -1;
    linear(be, projected, attended, &block->image.to_out);
    if (run->par.tp->ops->all_reduce_sum(run->par.tp, projected)) return -1;
    tensor x = tensor_row_slice(s->seq, 0, kept);
    be->ops->gated_residual(be, x, chunk(m, 2, c), projected);

    moe_token_map map = token_map(s, 1);
    if (feed_forward_sublayer(run, &block->ff_image, &map, NULL, x, chunk(m, 3, c), chunk(m, 4, c), chunk(m, 5, c)))
        return -1;
    arena_release(a, mark);
    return 0;
}
