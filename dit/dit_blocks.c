/* Double- and single-stream blocks; see dit_blocks.h. */
#include "dit/dit_blocks.h"

#include "core/error.h"
#include "moe/moe_forward.h"
#include "parallel/fp8_rows.h"

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
 * shards are added before normalising; without tp, one pass over the rows. */
static int qk_norm(dit_run *run, tensor x, tensor weight)
{
    backend *be = run->model->be;
    if (run->par.tp->size == 1) {
        be->ops->rms_norm(be, x, x, weight, QK_NORM_EPS);
        return 0;
    }
    arena_mark_t mark = arena_mark(&run->scratch);
    tensor sums = arena_tensor_typed(&run->scratch, DTYPE_F32, tensor_rows(&x), 1);
    if (!sums.data) return -1;
    be->ops->row_sum_squares(be, sums, x);
    if (run->par.tp->ops->all_reduce_sum(run->par.tp, sums)) return -1;
    be->ops->rms_norm_with_sums(be, x, x, sums, run->model->cfg.dim, weight, QK_NORM_EPS);
    arena_release(&run->scratch, mark);
    return 0;
}

/* A run of q or k rows (which start with the image stream) and the cos/sin
 * rows of its positions: `table` from table_first, or none (not rotated). */
typedef struct position_run {
    int64_t first, count;
    const tensor *table;
    int64_t table_first;
} position_run;

enum { POSITION_RUNS = 4 };

/* x's rows as [real targets | padding | context | text]: the first and the
 * third carry positions. */
static void position_runs(const dit_run *run, const dit_sequence *s, int64_t rows, position_run runs[POSITION_RUNS])
{
    runs[0] = (position_run){0, s->valid_tokens, &run->rope, s->image_first};
    runs[1] = (position_run){s->valid_tokens, s->image_tokens - s->valid_tokens, NULL, 0};
    runs[2] = (position_run){s->image_tokens, s->context_tokens, &run->context_rope, s->context_first};
    runs[3] = (position_run){s->image_stream_tokens, rows - s->image_stream_tokens, NULL, 0};
}

/* qk_norm and then RoPE on the rows of x that carry positions. Without tp,
 * one pass over each run of rows (rms_norm_rope where rows are rotated,
 * rms_norm over padding and text); with it the norm's sums are all-reduced
 * first, so the rotation is a pass of its own. */
static int qk_norm_rotate(dit_run *run, const dit_sequence *s, tensor x, tensor weight)
{
    backend *be = run->model->be;
    const dit_config *cfg = &run->model->cfg;
    int fused = run->par.tp->size == 1, heads = cfg->heads / run->par.tp->size;
    if (!fused && qk_norm(run, x, weight)) return -1;
    position_run runs[POSITION_RUNS];
    position_runs(run, s, tensor_rows(&x), runs);
    for (int i = 0; i < POSITION_RUNS; i++) {
        if (runs[i].count <= 0 || (!fused && !runs[i].table)) continue;
        tensor part = tensor_row_slice(x, runs[i].first, runs[i].count);
        tensor table = runs[i].table ? tensor_row_slice(*runs[i].table, runs[i].table_first, runs[i].count)
                                     : tensor_none();
        if (!runs[i].table)
            be->ops->rms_norm(be, part, part, weight, QK_NORM_EPS);
        else if (fused)
            be->ops->rms_norm_rope(be, part, weight, QK_NORM_EPS, table, heads, cfg->rope_dim);
        else
            be->ops->rope(be, part, table, heads, cfg->rope_dim);
    }
    return 0;
}

/* q, k, v of rows x into the given row views; q may have fewer rows than x
 * (only the kept rows need queries) or none (q.data NULL). With `s` (the
 * image stream's projections) q and k are also rotated. */
static int project_qkv(dit_run *run, const dit_sequence *s, const dit_attention_stream *stream, tensor x, tensor q,
                       tensor k, tensor v)
{
    backend *be = run->model->be;
    if (q.data && tensor_rows(&q) > 0) {
        linear(be, q, tensor_row_slice(x, 0, tensor_rows(&q)), &stream->to_q);
        if (s ? qk_norm_rotate(run, s, q, stream->q_norm) : qk_norm(run, q, stream->q_norm)) return -1;
    }
    linear(be, k, x, &stream->to_k);
    if (s ? qk_norm_rotate(run, s, k, stream->k_norm) : qk_norm(run, k, stream->k_norm)) return -1;
    linear(be, v, x, &stream->to_v);
    return 0;
}

/* Attention over the sequence-parallel ranks (parallel/sequence_attention.h)
 * for sample s: this rank's heads, the rows every sp rank holds. */
static sequence_attention sequence_attention_of(dit_run *run, const dit_sequence *s)
{
    const dit_parallel *par = &run->par;
    sequence_attention sa = {run->model->be, &run->scratch, par->ulysses, par->ring,
                             (int)(run->model->cfg.heads / par->tp->size / par->ulysses->size),
                             sequence_attention_overlaps(par->tp, par->ulysses, par->ring), s->query_rows, s->key_rows};
    return sa;
}

/* Zero the padded image keys (diffusers multiplies them by the mask; q and k
 * are rotated already), start the attention. Rows of q and k are
 * [target | context | text]. */
static int attend_start(dit_run *run, const dit_sequence *s, sequence_attention_state *st, tensor out, tensor q,
                        tensor k, tensor v)
{
    int64_t pad = s->image_tokens - s->valid_tokens;
    if (pad > 0) run->model->be->ops->fill(run->model->be, tensor_row_slice(k, s->valid_tokens, pad), 0.0f);
    sequence_attention sa = sequence_attention_of(run, s);
    return sequence_attention_start(&sa, st, out, q, k, v);
}

/* Four segments per sample at most (image, context, t5, llama). */
_Static_assert(MOE_MAX_SEGMENTS >= 4 * DIT_MAX_BATCH, "a token map holds every sample's segments");

/* The token map of the image stream (double blocks: target and context) or
 * of the kept rows (single blocks: and the initial text) of every sample,
 * the samples' rows one after the other from local row 0. */
static moe_token_map token_map(const dit_batch *batch, int kept)
{
    const dit_sequence *s = batch->s;
    int count = batch->count;
    moe_token_map map = {0};
    int64_t at = 0;
    for (int b = 0; b < count; b++) {
        const dit_sequence *x = &s[b];
        int64_t global_rows = kept ? x->global_kept_tokens : x->global_image_stream_tokens;
        moe_token_segment parts[4] = {
            {at, x->image_tokens, x->global_image, global_rows, x->branch},
            {at + x->image_tokens, x->context_tokens, x->global_context, global_rows, x->branch},
            {at + x->image_stream_tokens, x->t5_tokens, x->global_t5, global_rows, x->branch},
            {at + x->image_stream_tokens + x->t5_tokens, x->llama_tokens, x->global_llama, global_rows, x->branch},
        };
        for (int i = 0; i < (kept ? 4 : 2); i++) map.seg[map.segments++] = parts[i];
        at += kept ? x->kept_tokens : x->image_stream_tokens;
    }
    return map;
}

/* One sample's rows of a feed-forward sublayer and its modulation. */
typedef struct sublayer_rows {
    tensor x, shift, scale, gate;
} sublayer_rows;

/* x += gate * ff(layer_norm(x) * (1 + scale) + shift) for the rows of every
 * sample, where ff is the MoE feed-forward `moe` (with its token map) or,
 * when that is NULL, the dense SwiGLU `dense`. The samples' normalised rows
 * are stacked so that each product runs once over all of them (the CFG
 * branches of a step share every expert's product). Tensor-parallel partial
 * outputs are all-reduced first. */
static int feed_forward_sublayer(dit_run *run, const moe_ffn *moe, const moe_token_map *map, const swiglu_ffn *dense,
                                 const sublayer_rows *parts, int count)
{
    backend *be = run->model->be;
    arena_mark_t mark = arena_mark(&run->scratch);
    int64_t rows = 0, at = 0, c = tensor_cols(&parts[0].x);
    for (int b = 0; b < count; b++) rows += tensor_rows(&parts[b].x);
    tensor normed = arena_tensor_2d(&run->scratch, rows, c);
    tensor out = arena_tensor_2d(&run->scratch, rows, c);
    if (!normed.data || !out.data) return -1;
    for (int b = 0; b < count; at += tensor_rows(&parts[b].x), b++)
        be->ops->layer_norm_modulate(be, tensor_row_slice(normed, at, tensor_rows(&parts[b].x)), parts[b].x,
                                     parts[b].shift, parts[b].scale, LAYER_NORM_EPS);
    moe_context ctx = {be, &run->scratch, &run->moe, run->routing, run->par.tp, run->par.ep};
    int status = moe ? moe_ffn_forward(&ctx, moe, out, normed, map) : swiglu_ffn_forward(be, &run->scratch, run->par.tp, dense, out, normed);
    if (status || run->par.tp->ops->all_reduce_sum(run->par.tp, out)) return -1;
    at = 0;
    for (int b = 0; b < count; at += tensor_rows(&parts[b].x), b++)
        be->ops->gated_residual(be, parts[b].x, parts[b].gate, tensor_row_slice(out, at, tensor_rows(&parts[b].x)));
    arena_release(&run->scratch, mark);
    return 0;
}

/* The modulation vectors of every sample, m[count, chunks * C]: one product
 * over the samples' stacked silu(temb) rows. */
static tensor modulation(dit_run *run, const dit_block *block, const dit_batch *batch, int chunks)
{
    tensor m = arena_tensor_2d(&run->scratch, batch->count, chunks * run->model->cfg.dim);
    if (m.data) linear(run->model->be, m, batch->silu_temb, &block->modulation);
    return m;
}

/* One sample's attention sublayer, in the three phases of its attention
 * (sequence_attention_start/compute/end) so that dit_block_forward can run the
 * samples' phases interleaved:
 *   double block: x_image += gate * attention(...), likewise the text rows,
 *                 with their own projections, attending jointly;
 *   single block: x += gate * attention(...) over the whole sequence.
 * What the phases allocate stays in the scratch arena until the caller
 * releases it after the last one. */
typedef struct attention_sublayer {
    tensor attended, projected;
    sequence_attention_state attention;
} attention_sublayer;

/* Norms, projections, RoPE; starts the attention. */
static int attention_begin(dit_run *run, const dit_block *block, const dit_sequence *s, tensor m,
                           attention_sublayer *sub)
{
    backend *be = run->model->be;
    arena *a = &run->scratch;
    int64_t c = run->model->cfg.dim, local = c / run->par.tp->size, rows = tensor_rows(&s->seq);
    int64_t kept = s->kept_tokens, image = block->is_double ? s->image_stream_tokens : rows, text = rows - image;
    tensor normed = arena_tensor_2d(a, rows, c);
    tensor q = arena_tensor_2d(a, kept, local);
    tensor k = arena_tensor_2d(a, rows, local);
    tensor v = arena_tensor_2d(a, rows, local);
    sub->attended = arena_tensor_2d(a, kept, local);
    sub->projected = arena_tensor_2d(a, kept, c);
    if (!normed.data || !q.data || !k.data || !v.data || !sub->attended.data || !sub->projected.data) return -1;
    tensor n_image = tensor_row_slice(normed, 0, image);
    be->ops->layer_norm_modulate(be, n_image, tensor_row_slice(s->seq, 0, image), chunk(m, 0, c), chunk(m, 1, c),
                                 LAYER_NORM_EPS);
    tensor q_image = tensor_row_slice(q, 0, block->is_double ? image : kept);
    if (project_qkv(run, s, &block->image, n_image, q_image, tensor_row_slice(k, 0, image),
                    tensor_row_slice(v, 0, image)))
        return -1;
    if (block->is_double) {
        tensor n_text = tensor_row_slice(normed, image, text);
        be->ops->layer_norm_modulate(be, n_text, tensor_row_slice(s->seq, image, text), chunk(m, 6, c), chunk(m, 7, c),
                                     LAYER_NORM_EPS);
        if (project_qkv(run, NULL, &block->text, n_text, tensor_row_slice(q, image, kept - image),
                        tensor_row_slice(k, image, text), tensor_row_slice(v, image, text)))
            return -1;
    }
    return attend_start(run, s, &sub->attention, sub->attended, q, k, v);
}

/* Ends the attention; output projections (a double block's two land in one
 * buffer: one all-reduce for both) and the gated residuals. */
static int attention_finish(dit_run *run, const dit_block *block, const dit_sequence *s, tensor m,
                            attention_sublayer *sub)
{
    backend *be = run->model->be;
    int64_t c = run->model->cfg.dim, kept = s->kept_tokens, image = block->is_double ? s->image_stream_tokens : kept;
    sequence_attention sa = sequence_attention_of(run, s);
    if (sequence_attention_end(&sa, &sub->attention)) return -1;
    /* Row parallel: each rank holds its heads' columns of the attended rows. */
    tensor out_image = tensor_row_slice(sub->projected, 0, image);
    tensor out_text = tensor_row_slice(sub->projected, image, kept - image);
    const dit_linear *to_out = &block->image.to_out, *to_out_t = &block->text.to_out;
    if (fp8_row_parallel_linear(be, &run->scratch, run->par.tp, out_image, tensor_row_slice(sub->attended, 0, image),
                                to_out->weight, to_out->bias) ||
        (block->is_double &&
         fp8_row_parallel_linear(be, &run->scratch, run->par.tp, out_text,
                                 tensor_row_slice(sub->attended, image, kept - image), to_out_t->weight, to_out_t->bias)) ||
        run->par.tp->ops->all_reduce_sum(run->par.tp, sub->projected))
        return -1;
    be->ops->gated_residual(be, tensor_row_slice(s->seq, 0, image), chunk(m, 2, c), out_image);
    if (block->is_double) be->ops->gated_residual(be, tensor_row_slice(s->seq, image, kept - image), chunk(m, 8, c), out_text);
    return 0;
}

/* Every sample's attention sublayer. With overlapping exchanges the samples'
 * phases interleave (begin 0, begin 1, compute 0, compute 1, finish 0,
 * finish 1), so each exchange runs while the other sample computes; else
 * one sample after the other, each releasing its scratch. */
static int attention_sublayers(dit_run *run, const dit_block *block, const dit_batch *batch, tensor m)
{
    attention_sublayer subs[DIT_MAX_BATCH];
    int count = batch->count, interleave =
        sequence_attention_overlaps(run->par.tp, run->par.ulysses, run->par.ring) && count > 1;
    arena_mark_t mark = arena_mark(&run->scratch);
    for (int first = 0; first < count; first += interleave ? count : 1) {
        int last = interleave ? count : first + 1;
        for (int b = first; b < last; b++)
            if (attention_begin(run, block, &batch->s[b], tensor_row_slice(m, b, 1), &subs[b])) return -1;
        for (int b = first; b < last; b++) {
            sequence_attention sa = sequence_attention_of(run, &batch->s[b]);
            if (sequence_attention_compute(&sa, &subs[b].attention)) return -1;
        }
        for (int b = first; b < last; b++)
            if (attention_finish(run, block, &batch->s[b], tensor_row_slice(m, b, 1), &subs[b])) return -1;
        arena_release(&run->scratch, mark);
    }
    return 0;
}

int dit_block_forward(dit_run *run, const dit_block *block, const dit_batch *batch)
{
    const dit_sequence *s = batch->s;
    int count = batch->count, dual = block->is_double;
    int64_t c = run->model->cfg.dim;
    arena_mark_t mark = arena_mark(&run->scratch);
    /* m per sample: shift, scale, gate (attention), shift, scale, gate (feed-forward); a double block's
     * image stream's six, then its text stream's. */
    tensor m = modulation(run, block, batch, dual ? 12 : 6);
    if (!m.data) return -1;
    if (attention_sublayers(run, block, batch, m)) return -1;
    /* Rows of each sample for the feed-forward: the image stream (double) or
     * all kept rows (single) through the MoE; a double block's kept text
     * through its dense SwiGLU. */
    sublayer_rows routed[DIT_MAX_BATCH], text[DIT_MAX_BATCH];
    for (int b = 0; b < count; b++) {
        tensor mb = tensor_row_slice(m, b, 1);
        int64_t stream = dual ? s[b].image_stream_tokens : s[b].kept_tokens;
        routed[b] = (sublayer_rows){tensor_row_slice(s[b].seq, 0, stream), chunk(mb, 3, c), chunk(mb, 4, c),
                                    chunk(mb, 5, c)};
        if (dual)
            text[b] = (sublayer_rows){tensor_row_slice(s[b].seq, stream, s[b].kept_tokens - stream), chunk(mb, 9, c),
                                      chunk(mb, 10, c), chunk(mb, 11, c)};
    }
    moe_token_map map = token_map(batch, !dual);
    if (feed_forward_sublayer(run, &block->ff_image, &map, NULL, routed, count) ||
        (dual && feed_forward_sublayer(run, NULL, NULL, &block->ff_text, text, count)))
        return -1;
    arena_release(&run->scratch, mark);
    return 0;
}
