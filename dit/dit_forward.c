/* The transformer forward pass (diffusers HiDreamImageTransformer2DModel.forward);
 * see dit_forward.h for the token layout. */
#include "dit/dit_forward.h"

#include "core/error.h"
#include "dit/dit_blocks.h"
#include "dit/dit_embed.h"
#include "dit/dit_step_cache.h"
#include "parallel/layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYER_NORM_EPS 1e-6f

/* Takes the caller's groups, or makes one-rank groups for a serial run. */
static int set_groups(dit_run *run, const dit_parallel *par)
{
    if (par) {
        run->par = *par;
        return 0;
    }
    process_group **own[4] = {&run->par.tp, &run->par.ulysses, &run->par.ring, &run->par.sp};
    const char *names[4] = {"tp", "ulysses", "ring", "sp"};
    for (int i = 0; i < 4; i++) {
        run->own_groups[i] = *own[i] = pg_create_self(names[i], 0, run->model->be);
        if (!*own[i]) return -1;
    }
    return 0;
}

static int check_layout(const dit_run *run)
{
    const dit_config *cfg = &run->model->cfg;
    const dit_parallel *par = &run->par;
    int heads_split = par->tp->size * par->ulysses->size;
    if (cfg->heads % heads_split)
        return error_set("tensor parallel %d x ulysses %d = %d does not divide the transformer's %d attention heads",
                         par->tp->size, par->ulysses->size, heads_split, cfg->heads);
    if (par->tp->size != run->model->shard.tp_size)
        return error_set("the transformer was loaded for tensor parallel %d but runs on %d ranks",
                         run->model->shard.tp_size, par->tp->size);
    if (par->sp->size != par->ulysses->size * par->ring->size || par->sp->size > DIT_MAX_SP)
        return error_set("sequence parallel group of %d ranks does not match ulysses %d x ring %d", par->sp->size,
                         par->ulysses->size, par->ring->size);
    int ep = par->ep ? par->ep->size : 1;
    if (ep != run->model->shard.ep_size)
        return error_set("the transformer was loaded for %d expert-parallel ranks but runs on %d",
                         run->model->shard.ep_size, ep);
    return 0;
}

int dit_run_init(dit_run *run, const dit_model *model, int64_t latent_h, int64_t latent_w, int64_t t5_tokens,
                 int64_t llama_tokens, const dit_parallel *par)
{
    dit_run_shape shape = {latent_h, latent_w, 0, 0, t5_tokens, llama_tokens, 1};
    return dit_run_init_shape(run, model, &shape, par);
}

static int check_grid(const dit_config *cfg, const char *what, int64_t h, int64_t w)
{
    int p = cfg->patch_size;
    if (h < p || w < p || h % p || w % p)
        return error_set("%s size %lldx%lld is not a positive multiple of the transformer's patch size %d", what,
                         (long long)h, (long long)w, p);
    return 0;
}

/* Token counts of the target (padded when a non-square image) and the context. */
static int size_sequence(dit_run *run, const dit_run_shape *shape)
{
    const dit_config *cfg = &run->model->cfg;
    int p = cfg->patch_size;
    if (check_grid(cfg, "latent", shape->latent_h, shape->latent_w)) return -1;
    if ((shape->context_h || shape->context_w) && check_grid(cfg, "context latent", shape->context_h, shape->context_w))
        return -1;
    run->frames = shape->frames > 1 ? shape->frames : 1;
    if (run->frames > 1 && (shape->context_h || shape->context_w))
        return error_set("a clip of %lld frames cannot also have in-context tokens", (long long)run->frames);
    run->latent_h = shape->latent_h;
    run->latent_w = shape->latent_w;
    run->grid_h = shape->latent_h / p;
    run->grid_w = shape->latent_w / p;
    run->valid_tokens = run->frames * run->grid_h * run->grid_w;
    run->image_tokens = run->frames > 1 ? run->valid_tokens : dit_image_tokens(cfg, shape->latent_h, shape->latent_w);
    if (run->valid_tokens > run->image_tokens)
        return error_set("non-square latent %lldx%lld has %lld patches, more than the %lld that the transformer's "
                         "max_resolution [%d, %d] allows",
                         (long long)shape->latent_h, (long long)shape->latent_w, (long long)run->valid_tokens,
                         (long long)run->image_tokens, cfg->max_resolution[0], cfg->max_resolution[1]);
    run->context_h = shape->context_h;
    run->context_w = shape->context_w;
    run->context_tokens = (shape->context_h / p) * (shape->context_w / p);
    run->text_tokens = shape->t5_tokens + 2 * shape->llama_tokens;
    return 0;
}

/* The RoPE tables of the target (ids (frame, row, col); frame 0 for an
 * image) and the context (1, row, col). */
static int build_rope(dit_run *run)
{
    const dit_config *cfg = &run->model->cfg;
    backend *be = run->model->be;
    int p = cfg->patch_size;
    float *table = malloc((size_t)((run->valid_tokens + run->context_tokens) * cfg->rope_dim) * sizeof(float));
    /* The RoPE tables stay F32 on every backend: angles need the precision. */
    run->rope = arena_tensor_typed(&run->persistent, DTYPE_F32, run->valid_tokens, cfg->rope_dim);
    if (!table || !run->rope.data) {
        free(table);
        return -1;
    }
    int64_t frame_tokens = run->grid_h * run->grid_w;
    for (int64_t f = 0; f < run->frames; f++)
        dit_rope_table(cfg, (int)f, run->grid_h, run->grid_w, table + f * frame_tokens * cfg->rope_dim);
    be->ops->upload(be, run->rope, table);
    if (run->context_tokens > 0) {
        run->context_rope = arena_tensor_typed(&run->persistent, DTYPE_F32, run->context_tokens, cfg->rope_dim);
        if (!run->context_rope.data) {
            free(table);
            return -1;
        }
        float *context_table = table + run->valid_tokens * cfg->rope_dim;
        dit_rope_table(cfg, 1, run->context_h / p, run->context_w / p, context_table);
        be->ops->upload(be, run->context_rope, context_table);
    }
    free(table);
    return 0;
}

int dit_run_init_shape(dit_run *run, const dit_model *model, const dit_run_shape *shape, const dit_parallel *par)
{
    const dit_config *cfg = &model->cfg;
    int p = cfg->patch_size;
    memset(run, 0, sizeof *run);
    run->model = model;
    arena_init(&run->persistent, model->be);
    arena_init(&run->scratch, model->be);
    run->persistent.name = "the transformer's activations (kept over the steps)";
    run->scratch.name = "the transformer's activations";
    if (set_groups(run, par) || check_layout(run) || size_sequence(run, shape)) {
        dit_run_free(run);
        return -1;
    }
    int64_t rows = run->image_tokens + run->context_tokens + run->text_tokens;
    int64_t features = (int64_t)p * p * (cfg->in_channels > cfg->out_channels ? cfg->in_channels : cfg->out_channels);
    int64_t staged = run->image_tokens > run->context_tokens ? run->image_tokens : run->context_tokens;
    int64_t context_first, context_rows;
    layout_split_rows(run->context_tokens, run->par.sp->size, run->par.sp->rank, &context_first, &context_rows);
    run->host_tokens = malloc((size_t)(staged * features) * sizeof(float));
    run->batch = calloc(1, sizeof *run->batch);
    run->context = arena_tensor_2d(&run->persistent, context_rows > 0 ? context_rows : 1, cfg->dim);
    if (!run->host_tokens || !run->batch || !run->context.data || build_rope(run)) {
        dit_run_free(run);
        return error_set("out of memory preparing %lld latent frame(s) of %lldx%lld", (long long)run->frames,
                         (long long)shape->latent_h, (long long)shape->latent_w);
    }
    run->context = tensor_row_slice(run->context, 0, context_rows);
    run->max_samples = 2;
    if (moe_scratch_init(&run->moe, rows * run->max_samples, cfg->num_routed_experts, cfg->num_activated_experts)) {
        dit_run_free(run);
        return -1;
    }
    return 0;
}

int dit_run_hold_samples(dit_run *run, int samples)
{
    const dit_config *cfg = &run->model->cfg;
    if (samples < 1 || samples > DIT_MAX_BATCH)
        return error_set("a transformer forward of %d samples: at most %d", samples, DIT_MAX_BATCH);
    if (samples <= run->max_samples) return 0;
    int64_t rows = run->image_tokens + run->context_tokens + run->text_tokens;
    moe_scratch_free(&run->moe);
    run->max_samples = 0;
    if (moe_scratch_init(&run->moe, rows * samples, cfg->num_routed_experts, cfg->num_activated_experts)) return -1;
    run->max_samples = samples;
    return 0;
}

int dit_run_set_context(dit_run *run, const float *latents)
{
    const dit_model *model = run->model;
    const dit_config *cfg = &model->cfg;
    backend *be = model->be;
    if (run->context_tokens == 0) return error_set("this transformer run was prepared without in-context tokens");
    int64_t features = (int64_t)cfg->patch_size * cfg->patch_size * cfg->in_channels, first, rows;
    layout_split_rows(run->context_tokens, run->par.sp->size, run->par.sp->rank, &first, &rows);
    dit_patchify(latents, cfg->in_channels, run->context_h, run->context_w, cfg->patch_size, run->context_tokens,
                 run->host_tokens);
    if (arena_reset(&run->scratch)) return -1;
    if (rows > 0) {
        tensor tokens = arena_tensor_2d(&run->scratch, rows, features);
        if (!tokens.data) return -1;
        be->ops->upload(be, tokens, run->host_tokens + first * features);
        be->ops->linear(be, run->context, tokens, model->patch_embed.weight, model->patch_embed.bias);
    }
    run->has_context = 1;
    return 0;
}

void dit_run_free(dit_run *run)
{
    for (int i = 0; i < 4; i++) pg_destroy(run->own_groups[i]);
    memset(run->own_groups, 0, sizeof run->own_groups);
    arena_free(&run->persistent);
    arena_free(&run->scratch);
    moe_scratch_free(&run->moe);
    free(run->host_tokens);
    run->host_tokens = NULL;
    free(run->batch);
    run->batch = NULL;
}

static void trace(dit_run *run, const char *name, tensor value)
{
    if (run->trace) run->trace(run->trace_user, name, value);
}

/* temb = t_embedder(t) + p_embedder(pooled) of every sample; returns
 * silu(temb) [count, C], the input of every adaLN modulation. The timestep
 * part is the same for all samples (one timestep per forward). */
static tensor time_embedding(dit_run *run, const dit_sample *samples, int count, float timestep)
{
    const dit_model *model = run->model;
    backend *be = model->be;
    int64_t c = model->cfg.dim;
    float sinusoid[DIT_TIMESTEP_CHANNELS];
    dit_timestep_sinusoid(timestep, sinusoid);
    tensor t = arena_tensor_2d(&run->scratch, 1, DIT_TIMESTEP_CHANNELS);
    tensor hidden = arena_tensor_2d(&run->scratch, 1, c);
    tensor time = arena_tensor_2d(&run->scratch, 1, c);
    tensor temb = arena_tensor_2d(&run->scratch, count, c);
    if (!t.data || !hidden.data || !time.data || !temb.data) return tensor_none();
    be->ops->upload(be, t, sinusoid);
    be->ops->linear(be, hidden, t, model->time_linear_1.weight, model->time_linear_1.bias);
    be->ops->silu(be, hidden, hidden);
    be->ops->linear(be, time, hidden, model->time_linear_2.weight, model->time_linear_2.bias);
    for (int b = 0; b < count; b++) be->ops->add(be, tensor_row_slice(temb, b, 1), time, samples[b].text->pooled);
    trace(run, "temb", temb);
    be->ops->silu(be, temb, temb);
    return temb;
}

/* Patchify on the host, then x_embedder into this rank's image rows; the
 * embedded context rows (dit_run_set_context) follow them. */
static int embed_image(dit_run *run, const float *latents, const dit_sequence *s)
{
    const dit_model *model = run->model;
    const dit_config *cfg = &model->cfg;
    backend *be = model->be;
    int64_t features = (int64_t)cfg->patch_size * cfg->patch_size * cfg->in_channels;
    int64_t frame_latents = (int64_t)cfg->in_channels * run->latent_h * run->latent_w;
    int64_t frame_tokens = run->frames > 1 ? run->grid_h * run->grid_w : run->image_tokens; /* an image's padding */
    for (int64_t f = 0; f < run->frames; f++)
        dit_patchify(latents + f * frame_latents, cfg->in_channels, run->latent_h, run->latent_w, cfg->patch_size,
                     frame_tokens, run->host_tokens + f * frame_tokens * features);
    tensor tokens = arena_tensor_2d(&run->scratch, s->image_tokens, features);
    if (!tokens.data) return -1;
    be->ops->upload(be, tokens, run->host_tokens + s->image_first * features);
    tensor image_rows = tensor_row_slice(s->seq, 0, s->image_tokens);
    be->ops->linear(be, image_rows, tokens, model->patch_embed.weight, model->patch_embed.bias);
    trace(run, "x_embed", image_rows);
    if (s->context_tokens > 0) be->ops->copy(be, tensor_row_slice(s->seq, s->image_tokens, s->context_tokens), run->context);
    return 0;
}

/* final_layer: layer_norm(x) * (1 + scale) + shift, then linear on this
 * rank's image rows; the sequence-parallel ranks gather all of them and
 * every rank unpatchifies the whole output on the host. */
static int final_layer(dit_run *run, const dit_sequence *s, float *out)
{
    const dit_model *model = run->model;
    const dit_config *cfg = &model->cfg;
    backend *be = model->be;
    process_group *sp = run->par.sp;
    int64_t c = cfg->dim, features = (int64_t)cfg->patch_size * cfg->patch_size * cfg->out_channels;
    tensor m = arena_tensor_2d(&run->scratch, 2, c);
    tensor normed = arena_tensor_2d(&run->scratch, s->image_tokens, c);
    tensor tokens = arena_tensor_2d(&run->scratch, s->image_tokens, features);
    tensor all = arena_tensor_2d(&run->scratch, run->image_tokens, features);
    if (!m.data || !normed.data || !tokens.data || !all.data) return -1;
    be->ops->linear(be, tensor_reshape_2d(m, 1, 2 * c), s->silu_temb, model->final_modulation.weight,
                    model->final_modulation.bias);
    be->ops->layer_norm_modulate(be, normed, tensor_row_slice(s->seq, 0, s->image_tokens), tensor_row_slice(m, 0, 1),
                                 tensor_row_slice(m, 1, 1), LAYER_NORM_EPS);
    be->ops->linear(be, tokens, normed, model->final_linear.weight, model->final_linear.bias);
    int64_t rows[DIT_MAX_SP], first;
    for (int p = 0; p < sp->size; p++) layout_split_rows(run->image_tokens, sp->size, p, &first, &rows[p]);
    if (sp->ops->all_gather_rows(sp, all, tokens, rows)) return -1;
    trace(run, "final", all);
    be->ops->download(be, run->host_tokens, all);
    if (be->ops->status(be)) return -1; /* a device fault in any op of the step */
    int64_t frame_tokens = run->grid_h * run->grid_w;
    int64_t frame_latents = (int64_t)cfg->out_channels * run->latent_h * run->latent_w;
    for (int64_t f = 0; f < run->frames; f++)
        dit_unpatchify(run->host_tokens + f * frame_tokens * features, cfg->out_channels, run->latent_h, run->latent_w,
                       cfg->patch_size, out + f * frame_latents);
    return 0;
}

/* Copies this rank's part of a text segment into seq rows starting at `at`. */
static void copy_text_part(dit_run *run, const dit_sequence *s, tensor segment, int64_t at, int64_t count)
{
    backend *be = run->model->be;
    int64_t first, rows;
    layout_split_rows(tensor_rows(&segment), run->par.sp->size, run->par.sp->rank, &first, &rows);
    if (rows > 0) be->ops->copy(be, tensor_row_slice(s->seq, at, count), tensor_row_slice(segment, first, rows));
}

/* Blocks [first, end), each after its own llama layer is placed. */
static int run_block_range(dit_run *run, const dit_sample *samples, dit_batch *batch, int first, int end)
{
    const dit_model *model = run->model;
    const dit_config *cfg = &model->cfg;
    const dit_sequence *s = &batch->s[0];
    char name[64];
    for (int b = first; b < end; b++) {
        const dit_block *block = &model->blocks[b];
        for (int i = 0; i < batch->count; i++)
            copy_text_part(run, &batch->s[i], samples[i].text->llama[b], batch->s[i].kept_tokens,
                           batch->s[i].llama_tokens);
        dit_weight_stream_acquire(model->stream, model->be, b); /* a streamed block's weights copied in */
        if (dit_block_forward(run, block, batch)) return -1;
        if (block->is_double) {
            snprintf(name, sizeof name, "double_%d_image", b);
            trace(run, name, tensor_row_slice(s->seq, 0, s->image_stream_tokens));
            snprintf(name, sizeof name, "double_%d_text", b);
            trace(run, name, tensor_row_slice(s->seq, s->image_stream_tokens, s->kept_tokens - s->image_stream_tokens));
        } else {
            snprintf(name, sizeof name, "single_%d", b - cfg->num_double_blocks);
            trace(run, name, tensor_row_slice(s->seq, 0, s->kept_tokens));
        }
    }
    return 0;
}

/* Every block, or with a step cache the first and last ones and the middle
 * ones only on computed steps (dit_step_cache.h). */
static int run_blocks(dit_run *run, const dit_sample *samples, dit_batch *batch)
{
    if (run->step_cache && run->step_cache->settings.mode != DIT_CACHE_NONE)
        return dit_step_cache_run_blocks(run->step_cache, run, samples, batch, run_block_range);
    return run_block_range(run, samples, batch, 0, dit_num_blocks(&run->model->cfg));
}

/* Checks one sample's text against the run. */
static int check_text(const dit_run *run, const dit_text *text)
{
    if (text->t5_tokens + 2 * text->llama_tokens > run->text_tokens)
        return error_set("prompt has %lld text tokens; this run was prepared for %lld",
                         (long long)(text->t5_tokens + 2 * text->llama_tokens), (long long)run->text_tokens);
    return 0;
}

/* Plans sample b's sequence, embeds its image and places its initial text
 * = [t5 | llama of the last block]. */
static int prepare_sample(dit_run *run, const dit_sample *sample, dit_batch *batch, int b)
{
    const dit_model *model = run->model;
    const dit_text *text = sample->text;
    dit_sequence *s = &batch->s[b];
    dit_segment_lengths lengths = {run->image_tokens, run->valid_tokens, run->context_tokens, text->t5_tokens,
                                   text->llama_tokens};
    dit_sequence_plan(s, &lengths, run->par.sp->size, run->par.sp->rank);
    s->seq = arena_tensor_2d(&run->scratch, s->kept_tokens + s->llama_tokens, model->cfg.dim);
    if (!s->seq.data) return -1;
    s->silu_temb = tensor_row_slice(batch->silu_temb, b, 1);
    s->branch = sample->branch;
    if (embed_image(run, sample->latents, s)) return -1;
    int last = dit_num_blocks(&model->cfg) - 1;
    copy_text_part(run, s, text->t5, s->image_stream_tokens, s->t5_tokens);
    copy_text_part(run, s, text->llama[last], s->image_stream_tokens + s->t5_tokens, s->llama_tokens);
    return 0;
}

int dit_forward_batch(dit_run *run, const dit_sample *samples, int count, float timestep)
{
    if (count < 1 || count > run->max_samples)
        return error_set("a transformer forward takes 1 to %d samples, not %d", run->max_samples, count);
    for (int b = 0; b < count; b++)
        if (check_text(run, samples[b].text)) return -1;
    if (run->context_tokens > 0 && !run->has_context)
        return error_set("the transformer run has in-context tokens but no context image was set");
    if (arena_reset(&run->scratch)) return -1;

    /* Intermediates are traced for one-sample forwards only (the tests' fixtures are one sample). */
    dit_trace_fn traced = run->trace;
    if (count > 1) run->trace = NULL;
    dit_batch *batch = run->batch;
    batch->count = count;
    batch->silu_temb = time_embedding(run, samples, count, timestep);
    int status = batch->silu_temb.data ? 0 : -1;
    for (int b = 0; b < count && status == 0; b++) status = prepare_sample(run, &samples[b], batch, b);
    if (status == 0) status = run_blocks(run, samples, batch);
    for (int b = 0; b < count && status == 0; b++) status = final_layer(run, &batch->s[b], samples[b].out);
    run->trace = traced;
    return status;
}

int dit_forward(dit_run *run, const dit_text *text, const float *latents, float timestep, float *out)
{
    dit_sample sample = {text, latents, out, 0};
    return dit_forward_batch(run, &sample, 1, timestep);
}
