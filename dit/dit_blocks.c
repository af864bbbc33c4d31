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

/* q, k, v of rows x into the given row views; q may have fewer rows (none
 * when q.data is NULL): only the rows whose output is kept need queries. */
static void project_qkv(backend *be, const dit_attention_stream *stream, tensor x, tensor q, tensor k, tensor v)
{
    if (q.data) {
        linear(be, q, tensor_row_slice(x, 0, tensor_rows(&q)), &stream->to_q);
        be->ops->rms_norm(be, q, q, stream->q_norm, QK_NORM_EPS);
    }
    linear(be, k, x, &stream->to_k);
    be->ops->rms_norm(be, k, k, stream->k_norm, QK_NORM_EPS);
    linear(be, v, x, &stream->to_v);
}

/* Zero the padded image keys (diffusers multiplies them by the mask), rotate
 * the real image tokens, attend. */
static void attend(dit_run *run, const dit_sequence *s, tensor out, tensor q, tensor k, tensor v)
{
    backend *be = run->model->be;
    const dit_config *cfg = &run->model->cfg;
    int64_t pad = s->image_tokens - s->valid_tokens;
    if (pad > 0) be->ops->fill(be, tensor_row_slice(k, s->valid_tokens, pad), 0.0f);
    be->ops->rope(be, tensor_row_slice(q, 0, s->valid_tokens), run->rope, cfg->heads, cfg->rope_dim);
    be->ops->rope(be, tensor_row_slice(k, 0, s->valid_tokens), run->rope, cfg->heads, cfg->rope_dim);
    be->ops->attention(be, out, tensor_none(), q, k, v, cfg->heads);
}

/* x += gate * ff(layer_norm(x) * (1 + scale) + shift), where ff is the MoE
 * feed-forward `moe` or, when that is NULL, the dense SwiGLU `dense`. */
static int feed_forward_sublayer(dit_run *run, const moe_ffn *moe, const swiglu_ffn *dense, tensor x, tensor shift,
                                 tensor scale, tensor gate)
{
    backend *be = run->model->be;
    arena_mark_t mark = arena_mark(&run->scratch);
    tensor normed = arena_tensor_2d(&run->scratch, tensor_rows(&x), tensor_cols(&x));
    tensor out = arena_tensor_2d(&run->scratch, tensor_rows(&x), tensor_cols(&x));
    if (!normed.data || !out.data) return -1;
    be->ops->layer_norm_modulate(be, normed, x, shift, scale, LAYER_NORM_EPS);
    int status = moe ? moe_ffn_forward(be, &run->scratch, &run->moe, moe, out, normed, run->routing, 0)
                     : swiglu_ffn_forward(be, &run->scratch, dense, out, normed);
    if (status) return -1;
    be->ops->gated_residual(be, x, gate, out);
    arena_release(&run->scratch, mark);
    return 0;
}

int dit_double_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s)
{
    backend *be = run->model->be;
    arena *a = &run->scratch;
    int64_t c = run->model->cfg.dim, rows = tensor_rows(&s->seq);
    int64_t image = s->image_tokens, text = rows - image, kept_text = s->kept_tokens - image;
    arena_mark_t mark = arena_mark(a);

    /* m: shift, scale, gate (msa), shift, scale, gate (mlp); image then text. */
    tensor m = arena_tensor_2d(a, 1, 12 * c);
    tensor normed = arena_tensor_2d(a, rows, c);
    tensor q = arena_tensor_2d(a, s->kept_tokens, c);
    tensor k = arena_tensor_2d(a, rows, c);
    tensor v = arena_tensor_2d(a, rows, c);
    tensor attended = arena_tensor_2d(a, s->kept_tokens, c);
    if (!m.data || !normed.data || !q.data || !k.data || !v.data || !attended.data) return -1;
    linear(be, m, s->silu_temb, &block->modulation);

    tensor x_image = tensor_row_slice(s->seq, 0, image), x_text = tensor_row_slice(s->seq, image, text);
    tensor n_image = tensor_row_slice(normed, 0, image), n_text = tensor_row_slice(normed, image, text);
    be->ops->layer_norm_modulate(be, n_image, x_image, chunk(m, 0, c), chunk(m, 1, c), LAYER_NORM_EPS);
    be->ops->layer_norm_modulate(be, n_text, x_text, chunk(m, 6, c), chunk(m, 7, c), LAYER_NORM_EPS);
    project_qkv(be, &block->image, n_image, tensor_row_slice(q, 0, image), tensor_row_slice(k, 0, image),
                tensor_row_slice(v, 0, image));
    project_qkv(be, &block->text, n_text, tensor_row_slice(q, image, kept_text), tensor_row_slice(k, image, text),
                tensor_row_slice(v, image, text));
    attend(run, s, attended, q, k, v);

    /* Output projections reuse q's rows, which attention no longer needs. */
    tensor out_image = tensor_row_slice(q, 0, image), out_text = tensor_row_slice(q, image, kept_text);
    linear(be, out_image, tensor_row_slice(attended, 0, image), &block->image.to_out);
    linear(be, out_text, tensor_row_slice(attended, image, kept_text), &block->text.to_out);
    be->ops->gated_residual(be, x_image, chunk(m, 2, c), out_image);
    tensor kept = tensor_row_slice(s->seq, image, kept_text);
    be->ops->gated_residual(be, kept, chunk(m, 8, c), out_text);

    if (feed_forward_sublayer(run, &block->ff_image, NULL, x_image, chunk(m, 3, c), chunk(m, 4, c), chunk(m, 5, c))) return -1;
    if (feed_forward_sublayer(run, NULL, &block->ff_text, kept, chunk(m, 9, c), chunk(m, 10, c), chunk(m, 11, c))) return -1;
    arena_release(a, mark);
    return 0;
}

int dit_single_block_forward(dit_run *run, const dit_block *block, const dit_sequence *s)
{
    backend *be = run->model->be;
    arena *a = &run->scratch;
    int64_t c = run->model->cfg.dim, rows = tensor_rows(&s->seq), kept = s->kept_tokens;
    arena_mark_t mark = arena_mark(a);

    tensor m = arena_tensor_2d(a, 1, 6 * c);
    tensor normed = arena_tensor_2d(a, rows, c);
    tensor q = arena_tensor_2d(a, kept, c);
    tensor k = arena_tensor_2d(a, rows, c);
    tensor v = arena_tensor_2d(a, rows, c);
    tensor attended = arena_tensor_2d(a, kept, c);
    if (!m.data || !normed.data || !q.data || !k.data || !v.data || !attended.data) return -1;
    linear(be, m, s->silu_temb, &block->modulation);

    be->ops->layer_norm_modulate(be, normed, s->seq, chunk(m, 0, c), chunk(m, 1, c), LAYER_NORM_EPS);
    project_qkv(be, &block->image, normed, q, k, v);
    attend(run, s, attended, q, k, v);
    linear(be, q, attended, &block->image.to_out);
    tensor x = tensor_row_slice(s->seq, 0, kept);
    be->ops->gated_residual(be, x, chunk(m, 2, c), q);

    if (feed_forward_sublayer(run, &block->ff_image, NULL, x, chunk(m, 3, c), chunk(m, 4, c), chunk(m, 5, c))) return -1;
    arena_release(a, mark);
    return 0;
}
