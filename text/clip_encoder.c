/* CLIP's text encoder with projection: config, weights and forward; see clip_encoder.h.
 *
 * Mirrors transformers' CLIPTextModelWithProjection.forward (modeling_clip.py):
 * CLIPTextEmbeddings (token + absolute position embeddings), CLIPEncoderLayer
 * x N (pre-LN causal self-attention with biases, pre-LN MLP fc1 -> act -> fc2),
 * final_layer_norm, the EOS pooling of CLIPTextTransformer and text_projection.
 * Only the pooled row goes through the final norm and the projection: both
 * act on each row alone. */
#include "text/clip_encoder.h"

#include "core/config.h"
#include "core/error.h"
#include "io/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct clip_config {
    int64_t hidden_size;       /* C */
    int64_t intermediate_size; /* I */
    int64_t num_layers;
    int64_t num_heads;         /* H; D = C / H */
    int64_t max_positions;
    int64_t vocab_size;
    int64_t projection_dim;    /* P */
    int64_t eos_token_id;
    double layer_norm_eps;
    backend_activation act;
} clip_config;

typedef struct clip_layer {
    tensor norm1_weight, norm1_bias, norm2_weight, norm2_bias; /* [C] */
    tensor q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, out_weight, out_bias;
    tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
} clip_layer;

struct clip_encoder {
    clip_config cfg;
    backend *be;
    tensor token_embedding, position_embedding; /* [vocab, C], [positions, C] */
    clip_layer *layers;
    tensor final_norm_weight, final_norm_bias; /* [C] */
    tensor projection;                         /* [P, C] */
    weight_loader weights;
};

/* ---- config ------------------------------------------------------------------ */

static int parse_activation(const char *path, const char *name, backend_activation *act)
{
    if (!strcmp(name, "quick_gelu")) *act = BACKEND_QUICK_GELU;
    else if (!strcmp(name, "gelu")) *act = BACKEND_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) *act = BACKEND_GELU_TANH;
    else
        return error_set("%s: hidden_act \"%s\" is not supported (quick_gelu, gelu, gelu_new or gelu_pytorch_tanh)",
                         path, name);
    return 0;
}

/* Defaults are CLIPTextConfig's (transformers 5). */
static int read_config(void *out, const config *c)
{
    clip_config *cfg = out;
    const char *path = config_path(c), *model_type = NULL, *act = NULL;
    memset(cfg, 0, sizeof *cfg);
    if (config_get_string(c, "model_type", &model_type)) return -1;
    if (strcmp(model_type, "clip_text_model") != 0)
        return error_set("%s: model_type \"%s\" is not supported (the CLIP encoder reads clip_text_model configs, "
                         "as CLIPTextModelWithProjection saves them)",
                         path, model_type);
    if (config_get_int_or(c, "hidden_size", 512, &cfg->hidden_size) ||
        config_get_int_or(c, "intermediate_size", 2048, &cfg->intermediate_size) ||
        config_get_int_or(c, "num_hidden_layers", 12, &cfg->num_layers) ||
        config_get_int_or(c, "num_attention_heads", 8, &cfg->num_heads) ||
        config_get_int_or(c, "max_position_embeddings", 77, &cfg->max_positions) ||
        config_get_int_or(c, "vocab_size", 49408, &cfg->vocab_size) ||
        config_get_int_or(c, "projection_dim", 512, &cfg->projection_dim) ||
        config_get_int_or(c, "eos_token_id", 49407, &cfg->eos_token_id) ||
        config_get_float_or(c, "layer_norm_eps", 1e-5, &cfg->layer_norm_eps) ||
        config_get_string_or(c, "hidden_act", "quick_gelu", &act) || parse_activation(path, act, &cfg->act))
        return -1;
    if (cfg->hidden_size < 1 || cfg->intermediate_size < 1 || cfg->num_layers < 1 || cfg->num_heads < 1 ||
        cfg->max_positions < 1 || cfg->vocab_size < 1 || cfg->projection_dim < 1 || cfg->max_positions > INT32_MAX ||
        cfg->projection_dim > INT32_MAX)
        return error_set("%s: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
                         "max_position_embeddings, vocab_size and projection_dim must be positive",
                         path);
    if (cfg->hidden_size % cfg->num_heads != 0)
        return error_set("%s: hidden_size %lld is not a multiple of num_attention_heads %lld", path,
                         (long long)cfg->hidden_size, (long long)cfg->num_heads);
    if (!(cfg->layer_norm_eps > 0)) return error_set("%s: layer_norm_eps must be > 0", path);
    return 0;
}

/* ---- weights ----------------------------------------------------------------- */

static int load_layer(clip_encoder *enc, int index)
{
    int64_t c = enc->cfg.hidden_size, inter = enc->cfg.intermediate_size;
    clip_layer *layer = &enc->layers[index];
    const struct {
        tensor *out;
        const char *name;
        int64_t rows, cols;
    } weights[] = {
        {&layer->norm1_weight, "layer_norm1.weight", c, 0},  {&layer->norm1_bias, "layer_norm1.bias", c, 0},
        {&layer->q_weight, "self_attn.q_proj.weight", c, c}, {&layer->q_bias, "self_attn.q_proj.bias", c, 0},
        {&layer->k_weight, "self_attn.k_proj.weight", c, c}, {&layer->k_bias, "self_attn.k_proj.bias", c, 0},
        {&layer->v_weight, "self_attn.v_proj.weight", c, c}, {&layer->v_bias, "self_attn.v_proj.bias", c, 0},
        {&layer->out_weight, "self_attn.out_proj.weight", c, c}, {&layer->out_bias, "self_attn.out_proj.bias", c, 0},
        {&layer->norm2_weight, "layer_norm2.weight", c, 0},  {&layer->norm2_bias, "layer_norm2.bias", c, 0},
        {&layer->fc1_weight, "mlp.fc1.weight", inter, c},    {&layer->fc1_bias, "mlp.fc1.bias", inter, 0},
        {&layer->fc2_weight, "mlp.fc2.weight", c, inter},    {&layer->fc2_bias, "mlp.fc2.bias", c, 0},
    };
    char name[192];
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++) {
        snprintf(name, sizeof name, "text_model.encoder.layers.%d.%s", index, weights[i].name);
        if (weight_load(&enc->weights, weights[i].out, name, weights[i].rows, weights[i].cols, shard_whole()))
            return -1;
    }
    return 0;
}

static int load_all(clip_encoder *enc)
{
    const clip_config *cfg = &enc->cfg;
    weight_loader *wl = &enc->weights;
    int64_t c = cfg->hidden_size;
    if (weight_load(wl, &enc->token_embedding, "text_model.embeddings.token_embedding.weight", cfg->vocab_size, c,
                    shard_whole()) ||
        weight_load(wl, &enc->position_embedding, "text_model.embeddings.position_embedding.weight",
                    cfg->max_positions, c, shard_whole()) ||
        weight_load(wl, &enc->final_norm_weight, "text_model.final_layer_norm.weight", c, 0, shard_whole()) ||
        weight_load(wl, &enc->final_norm_bias, "text_model.final_layer_norm.bias", c, 0, shard_whole()) ||
        weight_load(wl, &enc->projection, "text_projection.weight", cfg->projection_dim, c, shard_whole()))
        return -1;
    enc->layers = calloc((size_t)cfg->num_layers, sizeof(clip_layer));
    if (!enc->layers) return error_set("out of memory loading the CLIP encoder");
    for (int l = 0; l < cfg->num_layers; l++)
        if (load_layer(enc, l)) return -1;
    return 0;
}

/* Weights of the config, for the host-memory check of random weights. */
static int64_t parameter_count(const clip_config *cfg)
{
    int64_t c = cfg->hidden_size, inter = cfg->intermediate_size;
    int64_t layer = 4 * (c * c + c) + 2 * c * inter + inter + c + 4 * c;
    return (cfg->vocab_size + cfg->max_positions) * c + cfg->num_layers * layer + 2 * c + cfg->projection_dim * c;
}

static int load_all_of(void *enc, const safetensors *st) { return load_all(enc); }

/* The weights from dir's safetensors, or from Philox (random). */
static int load_weights(clip_encoder *enc, const char *dir, int random, uint64_t seed)
{
    return weights_load_dir(&enc->weights, enc->be, dir, random, seed, parameter_count(&enc->cfg),
                            "the CLIP encoder's weights on the CPU (--device cpu)", load_all_of, enc);
}

int clip_encoder_load(clip_encoder **out, const char *dir, backend *be, int random, uint64_t seed)
{
    char path[4096];
    *out = NULL;
    clip_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return error_set("out of memory loading the CLIP encoder");
    enc->be = be;
    snprintf(path, sizeof path, "%s/config.json", dir);
    int status = config_read_file(path, read_config, &enc->cfg);
    if (!status && load_weights(enc, dir, random, seed)) status = error_prefix("loading the CLIP encoder in %s", dir);
    if (status) {
        clip_encoder_free(enc);
        return -1;
    }
    *out = enc;
    return 0;
}

void clip_encoder_free(clip_encoder *enc)
{
    if (!enc) return;
    free(enc->layers);
    weight_loader_free_all(&enc->weights);
    free(enc);
}

int clip_encoder_projection_dim(const clip_encoder *enc) { return (int)enc->cfg.projection_dim; }

int clip_encoder_max_positions(const clip_encoder *enc) { return (int)enc->cfg.max_positions; }

/* ---- forward ------------------------------------------------------------------ */

/* Activations of one forward pass on the device. */
typedef struct clip_buffers {
    tensor x, normed, q, k, v, attention, projected; /* [S, C] */
    tensor hidden;                                   /* [S, I] */
    tensor pooled_normed, text_embeds;               /* [1, C], [1, P] */
    tensor token_index;                              /* I32 [S] */
} clip_buffers;

static int alloc_buffers(clip_buffers *b, arena *scratch, const clip_config *cfg, int64_t s)
{
    int64_t c = cfg->hidden_size;
    b->x = arena_tensor_2d(scratch, s, c);
    b->normed = arena_tensor_2d(scratch, s, c);
    b->q = arena_tensor_2d(scratch, s, c);
    b->k = arena_tensor_2d(scratch, s, c);
    b->v = arena_tensor_2d(scratch, s, c);
    b->attention = arena_tensor_2d(scratch, s, c);
    b->projected = arena_tensor_2d(scratch, s, c);
    b->hidden = arena_tensor_2d(scratch, s, cfg->intermediate_size);
    b->pooled_normed = arena_tensor_2d(scratch, 1, c);
    b->text_embeds = arena_tensor_2d(scratch, 1, cfg->projection_dim);
    b->token_index = arena_tensor_typed(scratch, DTYPE_I32, s, 1);
    tensor all[] = {b->x, b->normed, b->q, b->k, b->v, b->attention, b->projected, b->hidden, b->pooled_normed,
                    b->text_embeds, b->token_index};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!all[i].data) return error_prefix("CLIP encoder activations for %lld tokens", (long long)s);
    return 0;
}

/* The row CLIPTextTransformer pools: under the legacy eos_token_id 2, the
 * first position of the largest id (torch's argmax); else the first position
 * of eos_token_id, or 0 when it does not occur (argmax of all zeros). */
static int64_t eos_position(const clip_config *cfg, const int32_t *ids, int64_t s)
{
    int64_t best = 0;
    for (int64_t t = 0; t < s; t++) {
        if (cfg->eos_token_id == 2 && ids[t] > ids[best]) best = t;
        if (cfg->eos_token_id != 2 && ids[t] == cfg->eos_token_id) return t;
    }
    return best;
}

/* x += out_proj(causal attention of q_proj, k_proj, v_proj over LN1(x)). */
static void attention_block(const clip_encoder *enc, const clip_layer *layer, const clip_buffers *b)
{
    backend *be = enc->be;
    be->ops->layer_norm(be, b->normed, b->x, layer->norm1_weight, layer->norm1_bias, (float)enc->cfg.layer_norm_eps);
    be->ops->linear(be, b->q, b->normed, layer->q_weight, layer->q_bias);
    be->ops->linear(be, b->k, b->normed, layer->k_weight, layer->k_bias);
    be->ops->linear(be, b->v, b->normed, layer->v_weight, layer->v_bias);
    be->ops->attention_causal(be, b->attention, b->q, b->k, b->v, (int)enc->cfg.num_heads);
    be->ops->linear(be, b->projected, b->attention, layer->out_weight, layer->out_bias);
    be->ops->add(be, b->x, b->x, b->projected);
}

/* x += fc2(act(fc1(LN2(x)))). */
static void mlp_block(const clip_encoder *enc, const clip_layer *layer, const clip_buffers *b)
{
    backend *be = enc->be;
    be->ops->layer_norm(be, b->normed, b->x, layer->norm2_weight, layer->norm2_bias, (float)enc->cfg.layer_norm_eps);
    be->ops->linear(be, b->hidden, b->normed, layer->fc1_weight, layer->fc1_bias);
    be->ops->activation(be, b->hidden, b->hidden, tensor_none(), enc->cfg.act);
    be->ops->linear(be, b->projected, b->hidden, layer->fc2_weight, layer->fc2_bias);
    be->ops->add(be, b->x, b->x, b->projected);
}

static int forward(const clip_encoder *enc, arena *scratch, const int32_t *ids, int64_t s, float *pooled)
{
    const clip_config *cfg = &enc->cfg;
    backend *be = enc->be;
    clip_buffers b;
    if (alloc_buffers(&b, scratch, cfg, s)) return -1;
    be->ops->upload(be, b.token_index, (const float *)(const void *)ids); /* I32 travels as raw words */
    be->ops->gather_rows(be, b.x, enc->token_embedding, b.token_index);
    be->ops->add(be, b.x, b.x, tensor_row_slice(enc->position_embedding, 0, s));
    for (int64_t l = 0; l < cfg->num_layers; l++) {
        attention_block(enc, &enc->layers[l], &b);
        mlp_block(enc, &enc->layers[l], &b);
    }
    tensor eos_row = tensor_row_slice(b.x, eos_position(cfg, ids, s), 1);
    be->ops->layer_norm(be, b.pooled_normed, eos_row, enc->final_norm_weight, enc->final_norm_bias,
                        (float)cfg->layer_norm_eps);
    be->ops->linear(be, b.text_embeds, b.pooled_normed, enc->projection, tensor_none());
    be->ops->download(be, pooled, b.text_embeds);
    return be->ops->status(be); /* a device fault in any layer */
}

int clip_encoder_forward(clip_encoder *enc, arena *scratch, const int32_t *ids, int count, float *pooled)
{
    const clip_config *cfg = &enc->cfg;
    if (count < 1) return error_set("CLIP encoder: a prompt needs at least one token");
    if (count > cfg->max_positions)
        return error_set("CLIP encoder: %d tokens exceed max_position_embeddings %lld", count,
                         (long long)cfg->max_positions);
    for (int t = 0; t < count; t++)
        if (ids[t] < 0 || ids[t] >= cfg->vocab_size)
            return error_set("CLIP encoder: token id %d at position %d is outside the vocabulary (vocab_size %lld)",
                             ids[t], t, (long long)cfg->vocab_size);
    arena_mark_t mark = arena_mark(scratch);
    int status = forward(enc, scratch, ids, count, pooled);
    arena_release(scratch, mark);
    return status;
}
