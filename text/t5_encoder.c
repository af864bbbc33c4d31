/* T5's encoder: config, weights and forward; see t5_encoder.h.
 *
 * Mirrors transformers' T5EncoderModel.forward (modeling_t5.py): the shared
 * embedding, T5Block x N (T5LayerSelfAttention: pre-RMS-norm attention with
 * the position bias that block 0 computes (T5Attention.compute_bias) plus the
 * padding mask, scaling 1; T5LayerFF with T5DenseGatedActDense), then the
 * final T5LayerNorm. Dropout is off (inference).
 *
 * Precision on a half-precision backend follows transformers' bf16 T5:
 * wo stays F32 (T5PreTrainedModel._keep_in_fp32_modules = ["wo"]), and
 * T5DenseGatedActDense casts its product to wo's dtype before wo, so wo runs
 * F32 x F32 with an F32 output; the residual stream is F32 (see t5_buffers). */
#include "text/t5_encoder.h"

#include "core/config.h"
#include "core/error.h"
#include "io/weights.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct t5_config {
    int64_t d_model; /* C */
    int64_t d_kv;    /* D */
    int64_t d_ff;    /* F */
    int64_t num_layers;
    int64_t num_heads; /* H */
    int64_t vocab_size;
    int64_t num_buckets;
    int64_t max_distance;
    double eps;
    backend_activation act;
} t5_config;

typedef struct t5_layer {
    tensor attention_norm, ff_norm; /* [C] */
    tensor q, k, v, o;              /* [H*D, C] x3, [C, H*D] */
    tensor wi_0, wi_1;              /* [F, C] x2 */
    tensor wo;                      /* F32 [C, F] on every backend */
} t5_layer;

struct t5_encoder {
    t5_config cfg;
    backend *be;
    tensor embedding; /* [vocab, C] */
    t5_layer *layers;
    tensor final_norm;     /* [C] */
    float *relative_bias;  /* host [num_buckets, H] */
    weight_loader weights;
};

/* ---- config ------------------------------------------------------------------ */

/* feed_forward_proj "gated-ACT"; transformers reads "gated-gelu" as gelu_new. */
static int parse_feed_forward(const char *path, const char *proj, backend_activation *act)
{
    if (strncmp(proj, "gated-", 6) != 0)
        return error_set("%s: feed_forward_proj \"%s\" is not supported (only a gated feed-forward, \"gated-gelu\" "
                         "as in T5 v1.1)",
                         path, proj);
    const char *name = proj + 6;
    if (!strcmp(name, "gelu") || !strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh"))
        *act = BACKEND_GELU_TANH;
    else if (!strcmp(name, "quick_gelu"))
        *act = BACKEND_QUICK_GELU;
    else
        return error_set("%s: feed_forward_proj \"%s\": activation \"%s\" is not supported (gelu, gelu_new, "
                         "gelu_pytorch_tanh or quick_gelu)",
                         path, proj, name);
    return 0;
}

static int read_config(void *out, const config *c)
{
    t5_config *cfg = out;
    const char *path = config_path(c), *model_type = NULL, *proj = NULL;
    memset(cfg, 0, sizeof *cfg);
    if (config_get_string(c, "model_type", &model_type)) return -1;
    if (strcmp(model_type, "t5") != 0)
        return error_set("%s: model_type \"%s\" is not supported (the T5 encoder reads t5 configs)", path, model_type);
    if (config_get_int(c, "d_model", &cfg->d_model) || config_get_int(c, "d_kv", &cfg->d_kv) ||
        config_get_int(c, "d_ff", &cfg->d_ff) || config_get_int(c, "num_layers", &cfg->num_layers) ||
        config_get_int(c, "num_heads", &cfg->num_heads) || config_get_int(c, "vocab_size", &cfg->vocab_size) ||
        config_get_int_or(c, "relative_attention_num_buckets", 32, &cfg->num_buckets) ||
        config_get_int_or(c, "relative_attention_max_distance", 128, &cfg->max_distance) ||
        config_get_float_or(c, "layer_norm_epsilon", 1e-6, &cfg->eps) ||
        config_get_string_or(c, "feed_forward_proj", "relu", &proj) || parse_feed_forward(path, proj, &cfg->act))
        return -1;
    if (cfg->d_model < 1 || cfg->d_kv < 1 || cfg->d_ff < 1 || cfg->num_layers < 1 || cfg->num_heads < 1 ||
        cfg->vocab_size < 1 || cfg->d_model > INT32_MAX)
        return error_set("%s: d_model, d_kv, d_ff, num_layers, num_heads and vocab_size must be positive", path);
    if (cfg->num_buckets < 4 || cfg->num_buckets > 1 << 20 || cfg->max_distance <= cfg->num_buckets / 4 ||
        cfg->max_distance > 1 << 30)
        return error_set("%s: relative_attention_num_buckets %lld must be 4..2^20 and relative_attention_max_distance "
                         "%lld above a quarter of it",
                         path, (long long)cfg->num_buckets, (long long)cfg->max_distance);
    if (!(cfg->eps > 0)) return error_set("%s: layer_norm_epsilon must be > 0", path);
    return 0;
}

/* ---- weights ----------------------------------------------------------------- */

static int load_layer(t5_encoder *enc, int index)
{
    int64_t c = enc->cfg.d_model, inner = enc->cfg.num_heads * enc->cfg.d_kv, ff = enc->cfg.d_ff;
    t5_layer *layer = &enc->layers[index];
    const struct {
        tensor *out;
        const char *name;
        int64_t rows, cols;
    } weights[] = {
        {&layer->attention_norm, "layer.0.layer_norm.weight", c, 0},
        {&layer->q, "layer.0.SelfAttention.q.weight", inner, c},
        {&layer->k, "layer.0.SelfAttention.k.weight", inner, c},
        {&layer->v, "layer.0.SelfAttention.v.weight", inner, c},
        {&layer->o, "layer.0.SelfAttention.o.weight", c, inner},
        {&layer->ff_norm, "layer.1.layer_norm.weight", c, 0},
        {&layer->wi_0, "layer.1.DenseReluDense.wi_0.weight", ff, c},
        {&layer->wi_1, "layer.1.DenseReluDense.wi_1.weight", ff, c},
        {&layer->wo, "layer.1.DenseReluDense.wo.weight", c, ff},
    };
    char name[192];
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++) {
        snprintf(name, sizeof name, "encoder.block.%d.%s", index, weights[i].name);
        int keep_f32 = weights[i].out == &layer->wo;
        if ((keep_f32 ? weight_load_f32 : weight_load)(&enc->weights, weights[i].out, name, weights[i].rows,
                                                       weights[i].cols, shard_whole()))
            return -1;
    }
    return 0;
}

/* The position bias table [num_buckets, H], kept on the host: read from the
 * file, or (random weights) made on the device as every tensor is and
 * copied back. */
static int read_relative_bias(t5_encoder *enc, const safetensors *st)
{
    const char *name = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
    int64_t shape[2] = {enc->cfg.num_buckets, enc->cfg.num_heads};
    if (!enc->weights.random) return safetensors_read_f32(st, name, 2, shape, enc->relative_bias);
    tensor table;
    if (weight_load(&enc->weights, &table, name, shape[0], shape[1], shard_whole())) return -1;
    enc->be->ops->download(enc->be, enc->relative_bias, table);
    return 0;
}

static int load_all(t5_encoder *enc, const safetensors *st)
{
    const t5_config *cfg = &enc->cfg;
    weight_loader *wl = &enc->weights;
    /* T5EncoderModel ties encoder.embed_tokens to shared; a checkpoint holds either. */
    const char *embedding = weight_exists(wl, "shared.weight") || !weight_exists(wl, "encoder.embed_tokens.weight")
                                ? "shared.weight"
                                : "encoder.embed_tokens.weight";
    if (weight_load(wl, &enc->embedding, embedding, cfg->vocab_size, cfg->d_model, shard_whole()) ||
        weight_load(wl, &enc->final_norm, "encoder.final_layer_norm.weight", cfg->d_model, 0, shard_whole()))
        return -1;
    enc->relative_bias = malloc((size_t)(cfg->num_buckets * cfg->num_heads) * sizeof(float));
    enc->layers = calloc((size_t)cfg->num_layers, sizeof(t5_layer));
    if (!enc->relative_bias || !enc->layers) return error_set("out of memory loading the T5 encoder");
    if (read_relative_bias(enc, st)) return -1;
    for (int l = 0; l < cfg->num_layers; l++)
        if (load_layer(enc, l)) return -1;
    return 0;
}

/* Weights of the config, for the host-memory check of random weights. */
static int64_t parameter_count(const t5_config *cfg)
{
    int64_t c = cfg->d_model, inner = cfg->num_heads * cfg->d_kv;
    int64_t layer = 4 * inner * c + 3 * cfg->d_ff * c + 2 * c;
    return cfg->vocab_size * c + cfg->num_layers * layer + c + cfg->num_buckets * cfg->num_heads;
}

static int load_all_of(void *enc, const safetensors *st) { return load_all(enc, st); }

/* The weights from dir's safetensors, or from Philox (random). */
static int load_weights(t5_encoder *enc, const char *dir, int random, uint64_t seed)
{
    return weights_load_dir(&enc->weights, enc->be, dir, random, seed, parameter_count(&enc->cfg),
                            "the T5 encoder's weights on the CPU (--device cpu)", load_all_of, enc);
}

int t5_encoder_load(t5_encoder **out, const char *dir, backend *be, int random, uint64_t seed)
{
    char path[4096];
    *out = NULL;
    t5_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return error_set("out of memory loading the T5 encoder");
    enc->be = be;
    snprintf(path, sizeof path, "%s/config.json", dir);
    int status = config_read_file(path, read_config, &enc->cfg);
    if (!status && load_weights(enc, dir, random, seed)) status = error_prefix("loading the T5 encoder in %s", dir);
    if (status) {
        t5_encoder_free(enc);
        return -1;
    }
    *out = enc;
    return 0;
}

void t5_encoder_free(t5_encoder *enc)
{
    if (!enc) return;
    free(enc->layers);
    free(enc->relative_bias);
    weight_loader_free_all(&enc->weights);
    free(enc);
}

int t5_encoder_hidden_size(const t5_encoder *enc) { return (int)enc->cfg.d_model; }

/* ---- position bias ------------------------------------------------------------ */

int t5_relative_bucket(int64_t relative, int num_buckets, int max_distance)
{
    int half = num_buckets / 2, max_exact = half / 2;
    int bucket = relative > 0 ? half : 0;
    int64_t distance = relative < 0 ? -relative : relative;
    if (distance < max_exact) return bucket + (int)distance;
    /* torch: log(distance.float() / max_exact) / math.log(max_distance / max_exact)
     * * (half - max_exact), in float32 (the double log rounded to float), truncated. */
    float ratio = (float)distance / (float)max_exact;
    float scaled = logf(ratio) / (float)log((double)max_distance / (double)max_exact) * (float)(half - max_exact);
    int64_t large = max_exact + (int64_t)scaled;
    return bucket + (int)(large < half - 1 ? large : half - 1);
}

/* bias[h, i, j] = relative_bias[bucket(j - i), h] + (mask[j] ? 0 : -FLT_MAX),
 * host F32 [H, S, S]: T5Attention.compute_bias plus the extended mask
 * (transformers' finfo(float32).min for masked keys). */
static float *position_bias(const t5_encoder *enc, const int32_t *mask, int64_t s)
{
    const t5_config *cfg = &enc->cfg;
    int64_t heads = cfg->num_heads;
    float *bias = malloc((size_t)(heads * s * s) * sizeof(float));
    int *buckets = malloc((size_t)(2 * s - 1) * sizeof(int)); /* of relative positions -(s-1)..s-1 */
    if (!bias || !buckets) {
        free(bias);
        free(buckets);
        error_set("out of memory building the T5 position bias for %lld tokens", (long long)s);
        return NULL;
    }
    for (int64_t r = -(s - 1); r < s; r++)
        buckets[r + s - 1] = t5_relative_bucket(r, (int)cfg->num_buckets, (int)cfg->max_distance);
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < s; i++)
            for (int64_t j = 0; j < s; j++) {
                float value = enc->relative_bias[buckets[j - i + s - 1] * heads + h];
                bias[(h * s + i) * s + j] = mask && !mask[j] ? value + -FLT_MAX : value;
            }
    free(buckets);
    return bias;
}

/* ---- forward ------------------------------------------------------------------ */

/* Activations of one forward pass on the device. The residual stream x is
 * F32 on every backend: transformers keeps T5's wo in float32 under a BF16
 * model (T5PreTrainedModel._keep_in_fp32_modules), so its residual sums
 * promote to float32 after the first feed-forward; T5 v1.1's hidden states
 * reach magnitudes where BF16 sums would round away the smaller updates. */
typedef struct t5_buffers {
    tensor x;                    /* F32 [S, C] */
    tensor normed, projected;    /* [S, C] */
    tensor q, k, v, attention;   /* [S, H*D] */
    tensor gate, up;             /* [S, F] */
    tensor gate_f32;             /* F32 [S, F]: wo's input (gate itself where that is F32) */
    tensor ff_out;               /* F32 [S, C]: wo's output (projected itself where that is F32) */
    tensor bias;                 /* F32 [H * S, S] */
    tensor token_index;          /* I32 [S] */
} t5_buffers;

static int alloc_buffers(t5_buffers *b, arena *scratch, const t5_config *cfg, int64_t s)
{
    int64_t c = cfg->d_model, inner = cfg->num_heads * cfg->d_kv;
    b->x = arena_tensor_typed(scratch, DTYPE_F32, s, c);
    b->normed = arena_tensor_2d(scratch, s, c);
    b->projected = arena_tensor_2d(scratch, s, c);
    b->q = arena_tensor_2d(scratch, s, inner);
    b->k = arena_tensor_2d(scratch, s, inner);
    b->v = arena_tensor_2d(scratch, s, inner);
    b->attention = arena_tensor_2d(scratch, s, inner);
    b->gate = arena_tensor_2d(scratch, s, cfg->d_ff);
    b->up = arena_tensor_2d(scratch, s, cfg->d_ff);
    int f32 = b->gate.dtype == DTYPE_F32;
    b->gate_f32 = f32 ? b->gate : arena_tensor_typed(scratch, DTYPE_F32, s, cfg->d_ff);
    b->ff_out = f32 ? b->projected : arena_tensor_typed(scratch, DTYPE_F32, s, c);
    b->bias = arena_tensor_typed(scratch, DTYPE_F32, cfg->num_heads * s, s);
    b->token_index = arena_tensor_typed(scratch, DTYPE_I32, s, 1);
    tensor all[] = {b->x, b->normed, b->projected, b->q, b->k, b->v, b->attention, b->gate, b->up, b->gate_f32,
                    b->ff_out, b->bias, b->token_index};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!all[i].data) return error_prefix("T5 encoder activations for %lld tokens", (long long)s);
    return 0;
}

/* x += o(attention(q, k, v of rms0(x)) with the position bias, unscaled). */
static void attention_block(const t5_encoder *enc, const t5_layer *layer, const t5_buffers *b)
{
    backend *be = enc->be;
    be->ops->rms_norm(be, b->normed, b->x, layer->attention_norm, (float)enc->cfg.eps);
    be->ops->linear(be, b->q, b->normed, layer->q, tensor_none());
    be->ops->linear(be, b->k, b->normed, layer->k, tensor_none());
    be->ops->linear(be, b->v, b->normed, layer->v, tensor_none());
    be->ops->attention_bias(be, b->attention, b->q, b->k, b->v, b->bias, (int)enc->cfg.num_heads, 1.0f);
    be->ops->linear(be, b->projected, b->attention, layer->o, tensor_none());
    be->ops->add(be, b->x, b->x, b->projected);
}

/* x += wo(act(wi_0(rms1(x))) * wi_1(rms1(x))), wo in F32: the product is
 * converted to F32 first (on an F32 backend it is F32 already). */
static void feed_forward_block(const t5_encoder *enc, const t5_layer *layer, const t5_buffers *b)
{
    backend *be = enc->be;
    be->ops->rms_norm(be, b->normed, b->x, layer->ff_norm, (float)enc->cfg.eps);
    be->ops->linear(be, b->gate, b->normed, layer->wi_0, tensor_none());
    be->ops->linear(be, b->up, b->normed, layer->wi_1, tensor_none());
    be->ops->activation(be, b->gate, b->gate, b->up, enc->cfg.act);
    if (b->gate_f32.data != b->gate.data) be->ops->copy(be, b->gate_f32, b->gate);
    be->ops->linear(be, b->ff_out, b->gate_f32, layer->wo, tensor_none());
    be->ops->add(be, b->x, b->x, b->ff_out);
}

static int forward(const t5_encoder *enc, arena *scratch, const int32_t *ids, const int32_t *mask, int64_t s,
                   float *hidden)
{
    const t5_config *cfg = &enc->cfg;
    backend *be = enc->be;
    t5_buffers b;
    if (alloc_buffers(&b, scratch, cfg, s)) return -1;
    float *bias = position_bias(enc, mask, s);
    if (!bias) return -1;
    be->ops->upload(be, b.bias, bias);
    be->ops->synchronize(be); /* the upload may be asynchronous: the host buffer goes now */
    free(bias);
    be->ops->upload(be, b.token_index, (const float *)(const void *)ids); /* I32 travels as raw words */
    be->ops->gather_rows(be, b.x, enc->embedding, b.token_index);
    for (int64_t l = 0; l < cfg->num_layers; l++) {
        attention_block(enc, &enc->layers[l], &b);
        feed_forward_block(enc, &enc->layers[l], &b);
    }
    be->ops->rms_norm(be, b.normed, b.x, enc->final_norm, (float)cfg->eps);
    be->ops->download(be, hidden, b.normed);
    return be->ops->status(be); /* a device fault in any layer */
}

int t5_encoder_forward(t5_encoder *enc, arena *scratch, const int32_t *ids, int count, const int32_t *attention_mask,
                       float *hidden)
{
    const t5_config *cfg = &enc->cfg;
    if (count < 1) return error_set("T5 encoder: a prompt needs at least one token");
    for (int t = 0; t < count; t++) {
        if (ids[t] < 0 || ids[t] >= cfg->vocab_size)
            return error_set("T5 encoder: token id %d at position %d is outside the vocabulary (vocab_size %lld)",
                             ids[t], t, (long long)cfg->vocab_size);
        if (attention_mask && attention_mask[t] != 0 && attention_mask[t] != 1)
            return error_set("T5 encoder: attention mask value %d at position %d is not 0 or 1", attention_mask[t],
                             t);
    }
    arena_mark_t mark = arena_mark(scratch);
    int status = forward(enc, scratch, ids, attention_mask, count, hidden);
    arena_release(scratch, mark);
    return status;
}
