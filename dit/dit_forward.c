/* The transformer forward pass (diffusers HiDreamImageTransformer2DModel.forward);
 * see dit_forward.h for the token layout. */
#include "dit/dit_forward.h"

#include "core/error.h"
#include "dit/dit_blocks.h"
#include "dit/dit_embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYER_NORM_EPS 1e-6f

int dit_run_init(dit_run *run, const dit_model *model, int64_t latent_h, int64_t latent_w, int64_t t5_tokens,
                 int64_t llama_tokens)
{
    const dit_config *cfg = &model->cfg;
    int p = cfg->patch_size;
    memset(run, 0, sizeof *run);
    run->model = model;
    if (latent_h < p || latent_w < p || latent_h % p || latent_w % p)
        return error_set("latent size %lldx%lld is not a positive multiple of the transformer's patch size %d",
                         (long long)latent_h, (long long)latent_w, p);
    run->latent_h = latent_h;
    run->latent_w = latent_w;
    run->grid_h = latent_h / p;
    run->grid_w = latent_w / p;
    run->valid_tokens = run->grid_h * run->grid_w;
    run->image_tokens = dit_image_tokens(cfg, latent_h, latent_w);
    if (run->valid_tokens > run->image_tokens)
        return error_set("non-square latent %lldx%lld has %lld patches, more than the %lld that the transformer's "
                         "max_resolution [%d, %d] allows",
                         (long long)latent_h, (long long)latent_w, (long long)run->valid_tokens,
                         (long long)run->image_tokens, cfg->max_resolution[0], cfg->max_resolution[1]);
    run->text_tokens = t5_tokens + 2 * llama_tokens;

    arena_init(&run->persistent, model->be);
    arena_init(&run->scratch, model->be);
    int64_t rows = run->image_tokens + run->text_tokens;
    int64_t features = (int64_t)p * p * (cfg->in_channels > cfg->out_channels ? cfg->in_channels : cfg->out_channels);
    run->host_tokens = malloc((size_t)(run->image_tokens * features) * sizeof(float));
    float *table = malloc((size_t)(run->valid_tokens * cfg->rope_dim) * sizeof(float));
    /* The RoPE table stays F32 on every backend: angles need the precision. */
    run->rope = arena_tensor_typed(&run->persistent, DTYPE_F32, run->valid_tokens, cfg->rope_dim);
    if (!run->host_tokens || !table || !run->rope.data) {
        free(table);
        dit_run_free(run);
        return error_set("out of memory preparing a %lldx%lld latent", (long long)latent_h, (long long)latent_w);
    }
    dit_rope_table(cfg, run->grid_h, run->grid_w, table);
    model->be->ops->upload(model->be, run->rope, table);
    free(table);
    if (moe_scratch_init(&run->moe, rows, cfg->num_routed_experts, cfg->num_activated_experts)) {
        dit_run_free(run);
        return -1;
    }
    return 0;
}

void dit_run_free(dit_run *run)
{
    arena_free(&run->persistent);
    arena_free(&run->scratch);
    moe_scratch_free(&run->moe);
    free(run->host_tokens);
    run->host_tokens = NULL;
}

static void trace(dit_run *run, const char *name, tensor value)
{
    if (run->trace) run->trace(run->trace_user, name, value);
}

/* temb = t_embedder(t) + p_embedder(pooled); returns silu(temb), the input of
 * every adaLN modulation. */
static tensor time_embedding(dit_run *run, const dit_text *text, float timestep)
{
    const dit_model *model = run->model;
    backend *be = model->be;
    int64_t c = model->cfg.dim;
    float sinusoid[DIT_TIMESTEP_CHANNELS];
    dit_timestep_sinusoid(timestep, sinusoid);
    tensor t = arena_tensor_2d(&run->scratch, 1, DIT_TIMESTEP_CHANNELS);
    tensor hidden = arena_tensor_2d(&run->scratch, 1, c);
    tensor temb = arena_tensor_2d(&run->scratch, 1, c);
    if (!t.data || !hidden.data || !temb.data) return tensor_none();
    be->ops->upload(be, t, sinusoid);
    be->ops->linear(be, hidden, t, model->time_linear_1.weight, model->time_linear_1.bias);
    be->ops->silu(be, hidden, hidden);
    be->ops->linear(be, temb, hidden, model->time_linear_2.weight, model->time_linear_2.bias);
    be->ops->add(be, temb, temb, text->pooled);
    trace(run, "temb", temb);
    be->ops->silu(be, temb, temb);
    return temb;
}

/* Patchify on the host, then x_embedder into the image rows of seq. */
static int embed_image(dit_run *run, const float *latents, tensor image_rows)
{
    const dit_model *model = run->model;
    const dit_config *cfg = &model->cfg;
    backend *be = model->be;
    int64_t features = (int64_t)cfg->patch_size * cfg->patch_size * cfg->in_channels;
    dit_patchify(latents, cfg->in_channels, run->latent_h, run->latent_w, cfg->patch_size, run->image_tokens,
                 run->host_tokens);
    tensor tokens = arena_tensor_2d(&run->scratch, run->image_tokens, features);
    if (!tokens.data) return -1;
    be->ops->upload(be, tokens, run->host_tokens);
    be->ops->linear(be, image_rows, tokens, model->patch_embed.weight, model->patch_embed.bias);
    trace(run, "x_embed", image_rows);
    return 0;
}

/* final_layer: layer_norm(x) * (1 + scale) + shift, then linear; unpatchify on the host. */
static int final_layer(dit_run *run, tensor silu_temb, tensor image_rows, float *out)
{
    const dit_model *model = run->model;
    const dit_config *cfg = &model->cfg;
    backend *be = model->be;
    int64_t c = cfg->dim, features = (int64_t)cfg->patch_size * cfg->patch_size * cfg->out_channels;
    tensor m = arena_tensor_2d(&run->scratch, 2, c);
    tensor normed = arena_tensor_2d(&run->scratch, run->image_tokens, c);
    tensor tokens = arena_tensor_2d(&run->scratch, run->image_tokens, features);
    if (!m.data || !normed.data || !tokens.data) return -1;
    be->ops->linear(be, tensor_reshape_2d(m, 1, 2 * c), silu_temb, model->final_modulation.weight,
                    model->final_modulation.bias);
    be->ops->layer_norm_modulate(be, normed, image_rows, tensor_row_slice(m, 0, 1), tensor_row_slice(m, 1, 1),
                                 LAYER_NORM_EPS);
    be->ops->linear(be, tokens, normed, model->final_linear.weight, model->final_linear.bias);
    trace(run, "final", tokens);
    be->ops->download(be, run->host_tokens, tokens);
    dit_unpatchify(run->host_tokens, cfg->out_channels, run->latent_h, run->latent_w, cfg->patch_size, out);
    return 0;
}

static int run_blocks(dit_run *run, const dit_text *text, dit_sequence *s)
{
    const dit_model *model = run->model;
    const dit_config *cfg = &model->cfg;
    backend *be = model->be;
    int64_t block_text_first = s->kept_tokens;
    tensor block_text = tensor_row_slice(s->seq, block_text_first, text->llama_tokens);
    char name[64];
    for (int b = 0; b < dit_num_blocks(cfg); b++) {
        const dit_block *block = &model->blocks[b];
        be->ops->copy(be, block_text, text->llama[b]);
        if (block->is_double) {
            if (dit_double_block_forward(run, block, s)) return -1;
            snprintf(name, sizeof name, "double_%d_image", b);
            trace(run, name, tensor_row_slice(s->seq, 0, s->image_tokens));
            snprintf(name, sizeof name, "double_%d_text", b);
            trace(run, name, tensor_row_slice(s->seq, s->image_tokens, s->kept_tokens - s->image_tokens));
        } else {
            if (dit_single_block_forward(run, block, s)) return -1;
            snprintf(name, sizeof name, "single_%d", b - cfg->num_double_blocks);
            trace(run, name, tensor_row_slice(s->seq, 0, s->kept_tokens));
        }
    }
    return 0;
}

int dit_forward(dit_run *run, const dit_text *text, const float *latents, float timestep, float *out)
{
    const dit_model *model = run->model;
    backend *be = model->be;
    int64_t c = model->cfg.dim;
    if (text->t5_tokens + 2 * text->llama_tokens > run->text_tokens)
        return error_set("prompt has %lld text tokens; this run was prepared for %lld",
                         (long long)(text->t5_tokens + 2 * text->llama_tokens), (long long)run->text_tokens);
    if (arena_reset(&run->scratch)) return -1;

    dit_sequence s;
    s.image_tokens = run->image_tokens;
    s.valid_tokens = run->valid_tokens;
    s.kept_tokens = run->image_tokens + text->t5_tokens + text->llama_tokens;
    s.seq = arena_tensor_2d(&run->scratch, s.kept_tokens + text->llama_tokens, c);
    if (!s.seq.data) return -1;
    s.silu_temb = time_embedding(run, text, timestep);
    if (!s.silu_temb.data) return -1;
    if (embed_image(run, latents, tensor_row_slice(s.seq, 0, s.image_tokens))) return -1;

    /* initial text = [t5 | llama of the last block] */
    int last = dit_num_blocks(&model->cfg) - 1;
    be->ops->copy(be, tensor_row_slice(s.seq, s.image_tokens, text->t5_tokens), text->t5);
    be->ops->copy(be, tensor_row_slice(s.seq, s.image_tokens + text->t5_tokens, text->llama_tokens),
                  text->llama[last]);
    if (run_blocks(run, text, &s)) return -1;
    return final_layer(run, s.silu_temb, tensor_row_slice(s.seq, 0, s.image_tokens), out);
}
