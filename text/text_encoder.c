/* The Llama-style text encoder: config, weights and forward; see text_encoder.h.
 *
 * Mirrors transformers' LlamaModel.forward (modeling_llama.py): embed_tokens,
 * LlamaDecoderLayer x N (pre-norm attention with RoPE and GQA, pre-norm SwiGLU
 * MLP), the final norm; and LlamaRotaryEmbedding (default or llama3 rope):
 *   inv_freq[i] = 1 / theta^(2i / D) (llama3: rescaled, text_encoder.h),
 *   cos/sin(pos * inv_freq[i]),  i < D/2,
 *   q' = q cos + rotate_half(q) sin  (rotate_half pairs x[i] with x[i + D/2]).
 * With an attention mask of right padding (valid tokens 0..n-1), the n
 * valid queries run causal attention over the n valid keys, and the padded
 * queries i >= n plain attention over those same n keys: exactly the keys
 * that the causal mask and the padding mask together leave to each row. */
#include "text/text_encoder.h"

#include "core/config.h"
#include "core/error.h"
#include "core/text_file.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config ------------------------------------------------------------------ */

/* The RoPE object of a config, "rope_parameters" (transformers 5) or
 * "rope_scaling" (transformers 4), re-read and parsed as a config of its own
 * (config.h reads top-level keys only), whose errors then read
 * "FILE rope_parameters: key ...". */
static int open_rope_object(const char *path, const char *key, config **out)
{
    char *text = NULL, name[4200];
    if (text_file_read(path, CONFIG_MAX_BYTES, "config", &text)) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, key);
    char *printed = cJSON_IsObject(params) ? cJSON_PrintUnformatted(params) : NULL;
    cJSON_Delete(root);
    if (!printed) return error_set("%s: key \"%s\" must be an object", path, key);
    snprintf(name, sizeof name, "%s %s", path, key);
    int status = config_parse(out, printed, name);
    free(printed);
    return status;
}

/* rope_type "default" or "llama3" (transformers 4 also spells the key
 * "type"); llama3's four numbers. theta is read by the caller when the
 * object does not hold it (transformers 4). */
static int read_rope_object(text_encoder_config *cfg, const config *top, const config *rope)
{
    const char *name = config_path(rope), *type = NULL;
    if (config_get_string_or(rope, "type", "default", &type) ||
        config_get_string_or(rope, "rope_type", type, &type) ||
        config_get_float_or(rope, "rope_theta", cfg->rope_theta, &cfg->rope_theta))
        return -1;
    if (strcmp(type, "default") == 0) return 0;
    if (strcmp(type, "llama3") != 0)
        return error_set("%s: rope_type \"%s\" is not supported (only \"default\" and \"llama3\")", name, type);
    cfg->rope_llama3 = 1;
    double max_positions = 0;
    if (config_get_float(rope, "factor", &cfg->rope_factor) ||
        config_get_float(rope, "low_freq_factor", &cfg->rope_low_freq_factor) ||
        config_get_float(rope, "high_freq_factor", &cfg->rope_high_freq_factor) ||
        config_get_float_or(top, "max_position_embeddings", 0, &max_positions) ||
        config_get_float_or(rope, "original_max_position_embeddings", max_positions, &max_positions) ||
        config_get_float_or(top, "original_max_position_embeddings", max_positions, &cfg->rope_original_max_positions))
        return -1;
    if (!(cfg->rope_factor > 0) || !(cfg->rope_low_freq_factor > 0) ||
        !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor) || !(cfg->rope_original_max_positions > 0))
        return error_set("%s: llama3 RoPE needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                         "original_max_position_embeddings > 0",
                         name);
    return 0;
}

static int read_rope(text_encoder_config *cfg, const config *c)
{
    const char *path = config_path(c);
    if (config_get_float_or(c, "rope_theta", 10000.0, &cfg->rope_theta)) return -1;
    const char *key = config_has(c, "rope_scaling")      ? "rope_scaling"
                      : config_has(c, "rope_parameters") ? "rope_parameters"
                                                         : NULL;
    if (!key) return 0;
    config *rope = NULL;
    if (open_rope_object(path, key, &rope)) return -1;
    int status = read_rope_object(cfg, c, rope);
    config_free(rope);
    return status;
}

static int require_false(const config *c, const char *key)
{
    int value = 0;
    if (config_get_bool_or(c, key, 0, &value)) return -1;
    return value ? error_set("%s: key \"%s\" is true; moedit's text encoder has no biases", config_path(c), key) : 0;
}

static int read_config(void *out, const config *c)
{
    text_encoder_config *cfg = out;
    const char *path = config_path(c), *model_type = NULL, *act = NULL;
    memset(cfg, 0, sizeof *cfg);
    if (config_get_string_or(c, "model_type", "llama", &model_type)) return -1;
    if (strcmp(model_type, "llama") != 0)
        return error_set("%s: model_type \"%s\" is not supported (the text encoder reads llama configs); for a model "
                         "with HiDream-I1's own encoders give --prompt-embeds FILE made by tools/encode_prompt.py",
                         path, model_type);
    if (config_get_int(c, "hidden_size", &cfg->hidden_size) ||
        config_get_int(c, "intermediate_size", &cfg->intermediate_size) ||
        config_get_int(c, "num_hidden_layers", &cfg->num_layers) ||
        config_get_int(c, "num_attention_heads", &cfg->num_heads) ||
        config_get_int(c, "vocab_size", &cfg->vocab_size) ||
        config_get_int_or(c, "num_key_value_heads", cfg->num_heads, &cfg->num_kv_heads) ||
        config_get_float_or(c, "rms_norm_eps", 1e-6, &cfg->rms_norm_eps) ||
        config_get_string_or(c, "hidden_act", "silu", &act) || require_false(c, "attention_bias") ||
        require_false(c, "mlp_bias"))
        return -1;
    if (strcmp(act, "silu") != 0)
        return error_set("%s: hidden_act \"%s\" is not supported (only silu, as Llama uses)", path, act);
    if (read_rope(cfg, c)) return -1;
    if (cfg->hidden_size < 1 || cfg->intermediate_size < 1 || cfg->num_layers < 1 || cfg->num_heads < 1 ||
        cfg->num_kv_heads < 1 || cfg->vocab_size < 1)
        return error_set("%s: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
                         "num_key_value_heads and vocab_size must be positive",
                         path);
    if (cfg->num_heads % cfg->num_kv_heads != 0)
        return error_set("%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", path,
                         (long long)cfg->num_heads, (long long)cfg->num_kv_heads);
    if (!config_has(c, "head_dim") && cfg->hidden_size % cfg->num_heads != 0)
        return error_set("%s: hidden_size %lld is not a multiple of num_attention_heads %lld and head_dim is not set",
                         path, (long long)cfg->hidden_size, (long long)cfg->num_heads);
    if (config_get_int_or(c, "head_dim", cfg->hidden_size / cfg->num_heads, &cfg->head_dim)) return -1;
    if (cfg->head_dim < 2 || cfg->head_dim % 2 != 0)
        return error_set("%s: head_dim %lld must be even and positive (RoPE rotates pairs)", path,
                         (long long)cfg->head_dim);
    if (!(cfg->rms_norm_eps > 0) || !(cfg->rope_theta > 1))
        return error_set("%s: rms_norm_eps must be > 0 and rope_theta > 1", path);
    return 0;
}

int text_encoder_config_load(text_encoder_config *cfg, const char *path)
{
    return config_read_file(path, read_config, cfg);
}

/* ---- weights ----------------------------------------------------------------- */

/* Llama's RoPE rotates the pair (x[i], x[i + D/2]) of each head; the backend's
 * rope op rotates interleaved pairs (x[2i], x[2i + 1]). Loading q_proj and
 * k_proj with each head's output rows reordered, new row 2i = row i and new
 * row 2i + 1 = row i + D/2, puts Llama's pair i where the op rotates pair i,
 * with the same angle pos * inv_freq[i], so the op computes exactly Llama's
 * rotated q and k, only in a permuted channel order. Attention only uses q and
 * k through the scores q . k, a sum over all D channels, which the same
 * permutation of both leaves unchanged; v and o_proj are untouched, so the
 * attention output equals Llama's. */
static int permute_rope_rows(backend *be, tensor w, int64_t heads, int64_t head_dim)
{
    int64_t cols = tensor_cols(&w), half = head_dim / 2;
    float *original = malloc((size_t)tensor_numel(&w) * sizeof(float));
    float *permuted = malloc((size_t)tensor_numel(&w) * sizeof(float));
    if (!original || !permuted) {
        free(original);
        free(permuted);
        return error_set("out of memory permuting q/k projection rows");
    }
    be->ops->download(be, original, w);
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < half; i++) {
            const float *first = original + (h * head_dim + i) * cols, *second = first + half * cols;
            memcpy(permuted + (h * head_dim + 2 * i) * cols, first, (size_t)cols * sizeof(float));
            memcpy(permuted + (h * head_dim + 2 * i + 1) * cols, second, (size_t)cols * sizeof(float));
        }
    be->ops->upload(be, w, permuted);
    free(original);
    free(permuted);
    return 0;
}

static int load_layer(text_encoder *enc, int index)
{
    const text_encoder_config *cfg = &enc->cfg;
    weight_loader *wl = &enc->weights;
    text_encoder_layer *layer = &enc->layers[index];
    int64_t c = cfg->hidden_size, q = cfg->num_heads * cfg->head_dim, kv = cfg->num_kv_heads * cfg->head_dim;
    int64_t inter = cfg->intermediate_size;
    const struct {
        tensor *out;
        const char *name;
        int64_t rows, cols;
    } weights[] = {
        {&layer->input_norm, "input_layernorm", c, 0},
        {&layer->q_proj, "self_attn.q_proj", q, c},
        {&layer->k_proj, "self_attn.k_proj", kv, c},
        {&layer->v_proj, "self_attn.v_proj", kv, c},
        {&layer->o_proj, "self_attn.o_proj", c, q},
        {&layer->post_attention_norm, "post_attention_layernorm", c, 0},
        {&layer->gate_proj, "mlp.gate_proj", inter, c},
        {&layer->up_proj, "mlp.up_proj", inter, c},
        {&layer->down_proj, "mlp.down_proj", c, inter},
    };
    char name[160];
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++) {
        snprintf(name, sizeof name, "layers.%d.%s.weight", index, weights[i].name);
        if (weight_load(wl, weights[i].out, name, weights[i].rows, weights[i].cols, shard_whole())) return -1;
    }
    /* Random rows are made in the op's order directly: a permutation of them
     * is as random, and a random 8B Llama loads without the host round trip. */
    if (wl->random) return 0;
    if (permute_rope_rows(enc->be, layer->q_proj, cfg->num_heads, cfg->head_dim)) return -1;
    return permute_rope_rows(enc->be, layer->k_proj, cfg->num_kv_heads, cfg->head_dim);
}

static int load_all(text_encoder *enc)
{
    const text_encoder_config *cfg = &enc->cfg;
    if (weight_load(&enc->weights, &enc->embed_tokens, "embed_tokens.weight", cfg->vocab_size, cfg->hidden_size,
                    shard_whole()) ||
        weight_load(&enc->weights, &enc->norm, "norm.weight", cfg->hidden_size, 0, shard_whole()))
        return -1;
    enc->layers = calloc((size_t)cfg->num_layers, sizeof(text_encoder_layer));
    if (!enc->layers) return error_set("out of memory loading the text encoder");
    for (int l = 0; l < cfg->num_layers; l++)
        if (load_layer(enc, l)) return -1;
    return 0;
}

int text_encoder_load_config(text_encoder *enc, backend *be, const text_encoder_config *cfg, const safetensors *st,
                             int random, uint64_t seed)
{
    memset(enc, 0, sizeof *enc);
    int64_t c = cfg->hidden_size, q = cfg->num_heads * cfg->head_dim, kv = cfg->num_kv_heads * cfg->head_dim;
    int64_t parameters = cfg->vocab_size * c + c + cfg->num_layers * (2 * q * c + 2 * kv * c + 3 * cfg->intermediate_size * c + 2 * c);
    if (random && weights_check_random_host_memory(be, parameters, "the text encoder's weights on the CPU (--device cpu)"))
        return -1;
    enc->cfg = *cfg;
    enc->be = be;
    weight_loader_init(&enc->weights, be, st, random, seed);
    /* LlamaForCausalLM saves the same tensors under "model.". */
    if (!random && !safetensors_find(st, "embed_tokens.weight") && safetensors_find(st, "model.embed_tokens.weight"))
        enc->weights.prefix = "model.";
    int status = load_all(enc);
    weight_loader_finish(&enc->weights);
    if (status) {
        error_prefix("loading the text encoder");
        text_encoder_free(enc);
    }
    return status;
}

int text_encoder_load(text_encoder *enc, backend *be, const char *dir, int random, uint64_t seed)
{
    char path[4096];
    text_encoder_config cfg;
    memset(enc, 0, sizeof *enc);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (text_encoder_config_load(&cfg, path)) return -1;
    if (random) return text_encoder_load_config(enc, be, &cfg, NULL, 1, seed);
    safetensors *st = NULL;
    if (safetensors_open_dir(&st, dir, "model")) return -1;
    if (weights_check_host_memory(be, st, "the text encoder's weights on the CPU (--device cpu)")) {
        safetensors_close(st);
        return -1;
    }
    int status = text_encoder_load_config(enc, be, &cfg, st, 0, 0);
    safetensors_close(st);
    return status;
}

void text_encoder_free(text_encoder *enc)
{
    free(enc->layers);
    enc->layers = NULL;
    if (enc->be) weight_loader_free_all(&enc->weights);
}

/* ---- forward ------------------------------------------------------------------ */

/* Activations of one forward pass, all [S, *] on the device. */
typedef struct encoder_buffers {
    tensor x, normed;                            /* [S, C] residual stream and its norm */
    tensor q, k, v, k_heads, v_heads, attention; /* [S, H*D]; k, v [S, KV*D]; *_heads repeated to H */
    tensor gate, up;                             /* [S, I] */
    tensor projected;                            /* [S, C] o_proj or down_proj output */
    tensor cos_sin;                              /* [S, D] interleaved (cos, sin) pairs */
    tensor token_index, kv_index;                /* I32 [S], [S * H] */
} encoder_buffers;

static int alloc_buffers(encoder_buffers *b, arena *scratch, const text_encoder_config *cfg, int64_t s)
{
    int64_t c = cfg->hidden_size, q = cfg->num_heads * cfg->head_dim, kv = cfg->num_kv_heads * cfg->head_dim;
    int grouped = cfg->num_kv_heads != cfg->num_heads;
    b->x = arena_tensor_2d(scratch, s, c);
    b->normed = arena_tensor_2d(scratch, s, c);
    b->q = arena_tensor_2d(scratch, s, q);
    b->k = arena_tensor_2d(scratch, s, kv);
    b->v = arena_tensor_2d(scratch, s, kv);
    b->k_heads = grouped ? arena_tensor_2d(scratch, s, q) : b->k;
    b->v_heads = grouped ? arena_tensor_2d(scratch, s, q) : b->v;
    b->attention = arena_tensor_2d(scratch, s, q);
    b->gate = arena_tensor_2d(scratch, s, cfg->intermediate_size);
    b->up = arena_tensor_2d(scratch, s, cfg->intermediate_size);
    b->projected = arena_tensor_2d(scratch, s, c);
    b->cos_sin = arena_tensor_2d(scratch, s, cfg->head_dim);
    b->token_index = arena_tensor_typed(scratch, DTYPE_I32, s, 1);
    b->kv_index = arena_tensor_typed(scratch, DTYPE_I32, s * cfg->num_heads, 1);
    tensor all[] = {b->x, b->normed, b->q, b->k, b->v, b->k_heads, b->v_heads, b->attention, b->gate, b->up,
                    b->projected, b->cos_sin, b->token_index, b->kv_index};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!all[i].data) return error_prefix("text encoder activations for %lld tokens", (long long)s);
    return 0;
}

/* In float32 operation by operation, as torch does on float32 tensors with
 * Python scalars. */
float text_encoder_inv_freq(const text_encoder_config *cfg, int64_t i)
{
    float inv_freq = 1.0f / powf((float)cfg->rope_theta, (float)(2 * i) / (float)cfg->head_dim);
    if (!cfg->rope_llama3) return inv_freq;
    const double two_pi = 6.283185307179586;
    float factor = (float)cfg->rope_factor, low = (float)cfg->rope_low_freq_factor;
    float old = (float)cfg->rope_original_max_positions;
    float low_freq_wavelen = (float)(cfg->rope_original_max_positions / cfg->rope_low_freq_factor);
    float high_freq_wavelen = (float)(cfg->rope_original_max_positions / cfg->rope_high_freq_factor);
    float wavelen = (float)two_pi / inv_freq;
    float scaled = wavelen > low_freq_wavelen ? inv_freq / factor : inv_freq;
    if (wavelen < high_freq_wavelen || wavelen > low_freq_wavelen) return scaled;
    float smooth = (old / wavelen - low) / (float)(cfg->rope_high_freq_factor - cfg->rope_low_freq_factor);
    return (1.0f - smooth) * scaled / factor + smooth * scaled;
}

/* cos_sin[pos, 2i], [pos, 2i + 1] = cos, sin(pos * inv_freq[i]), computed in
 * float32 as LlamaRotaryEmbedding does. GQA index: row s * H + h of the
 * repeated heads reads row s * KV + h / (H / KV) of k, v seen as [S * KV, D]
 * (transformers' repeat_kv). */
static int upload_tables(const text_encoder *enc, const encoder_buffers *b, const int32_t *ids, int64_t s)
{
    const text_encoder_config *cfg = &enc->cfg;
    int64_t d = cfg->head_dim, heads = cfg->num_heads, group = cfg->num_heads / cfg->num_kv_heads;
    size_t table_floats = (size_t)(s * d), index_count = (size_t)(s * heads);
    float *table = malloc((table_floats > index_count ? table_floats : index_count) * sizeof(float));
    if (!table) return error_set("out of memory building the text encoder's RoPE table");
    for (int64_t i = 0; i < d / 2; i++) {
        float inv_freq = text_encoder_inv_freq(cfg, i);
        for (int64_t pos = 0; pos < s; pos++) {
            float angle = (float)pos * inv_freq;
            table[pos * d + 2 * i] = cosf(angle);
            table[pos * d + 2 * i + 1] = sinf(angle);
        }
    }
    backend *be = enc->be;
    be->ops->upload(be, b->cos_sin, table);
    be->ops->upload(be, b->token_index, (const float *)ids);
    int32_t *index = (int32_t *)table;
    for (int64_t t = 0; t < s; t++)
        for (int64_t h = 0; h < heads; h++) index[t * heads + h] = (int32_t)(t * cfg->num_kv_heads + h / group);
    be->ops->upload(be, b->kv_index, (const float *)index);
    free(table);
    return 0;
}

/* attention = causal attention of q over k, v, with keys >= valid masked
 * (right padding): rows < valid see keys 0..row, rows >= valid keys 0..valid-1. */
static void masked_attention(backend *be, const encoder_buffers *b, int heads, int64_t s, int64_t valid)
{
    if (valid == s) {
        be->ops->attention_causal(be, b->attention, b->q, b->k_heads, b->v_heads, heads);
        return;
    }
    tensor keys = tensor_row_slice(b->k_heads, 0, valid), values = tensor_row_slice(b->v_heads, 0, valid);
    be->ops->attention_causal(be, tensor_row_slice(b->attention, 0, valid), tensor_row_slice(b->q, 0, valid), keys,
                              values, heads);
    be->ops->attention(be, tensor_row_slice(b->attention, valid, s - valid), tensor_none(),
                       tensor_row_slice(b->q, valid, s - valid), keys, values, heads);
}

/* x += o_proj(masked causal attention of rope(q), rope(k), v over rms(x)). */
static void attention_block(const text_encoder *enc, const text_encoder_layer *layer, const encoder_buffers *b,
                            int64_t s, int64_t valid)
{
    const text_encoder_config *cfg = &enc->cfg;
    backend *be = enc->be;
    int heads = (int)cfg->num_heads, kv_heads = (int)cfg->num_kv_heads, d = (int)cfg->head_dim;
    be->ops->rms_norm(be, b->normed, b->x, layer->input_norm, (float)cfg->rms_norm_eps);
    be->ops->linear(be, b->q, b->normed, layer->q_proj, tensor_none());
    be->ops->linear(be, b->k, b->normed, layer->k_proj, tensor_none());
    be->ops->linear(be, b->v, b->normed, layer->v_proj, tensor_none());
    be->ops->rope(be, b->q, b->cos_sin, heads, d);
    be->ops->rope(be, b->k, b->cos_sin, kv_heads, d);
    if (kv_heads != heads) {
        be->ops->gather_rows(be, tensor_reshape_2d(b->k_heads, s * heads, d), tensor_reshape_2d(b->k, s * kv_heads, d),
                             b->kv_index);
        be->ops->gather_rows(be, tensor_reshape_2d(b->v_heads, s * heads, d), tensor_reshape_2d(b->v, s * kv_heads, d),
                             b->kv_index);
    }
    masked_attention(be, b, heads, s, valid);
    be->ops->linear(be, b->projected, b->attention, layer->o_proj, tensor_none());
    be->ops->add(be, b->x, b->x, b->projected);
}

/* x += down_proj(silu(gate_proj(rms(x))) * up_proj(rms(x))). */
static void mlp_block(const text_encoder *enc, const text_encoder_layer *layer, const encoder_buffers *b)
{
    backend *be = enc->be;
    be->ops->rms_norm(be, b->normed, b->x, layer->post_attention_norm, (float)enc->cfg.rms_norm_eps);
    be->ops->linear(be, b->gate, b->normed, layer->gate_proj, tensor_none());
    be->ops->linear(be, b->up, b->normed, layer->up_proj, tensor_none());
    be->ops->swiglu(be, b->gate, b->gate, b->up);
    be->ops->linear(be, b->projected, b->gate, layer->down_proj, tensor_none());
    be->ops->add(be, b->x, b->x, b->projected);
}

/* The hidden states first..N are gathered on the device, [N + 1 - first, S,
 * C] in the activations' dtype, and downloaded once at the end: one
 * download per layer cost a synchronisation and a small transfer each (33
 * per prompt for an 8B Llama; issue 29). The values are the same, as every
 * state is the activation tensor itself, copied in its own dtype. */
static int forward(const text_encoder *enc, arena *scratch, const int32_t *ids, int64_t s, int64_t valid, int64_t first,
                   float *hidden_states)
{
    const text_encoder_config *cfg = &enc->cfg;
    backend *be = enc->be;
    encoder_buffers b;
    if (alloc_buffers(&b, scratch, cfg, s) || upload_tables(enc, &b, ids, s)) return -1;
    tensor states = arena_tensor_2d(scratch, (cfg->num_layers + 1 - first) * s, cfg->hidden_size);
    if (!states.data) return error_prefix("text encoder hidden states for %lld tokens", (long long)s);
    be->ops->gather_rows(be, b.x, enc->embed_tokens, b.token_index);
    if (first == 0) be->ops->copy(be, tensor_row_slice(states, 0, s), b.x);
    for (int64_t l = 0; l < cfg->num_layers; l++) {
        attention_block(enc, &enc->layers[l], &b, s, valid);
        mlp_block(enc, &enc->layers[l], &b);
        if (l + 1 < cfg->num_layers && l + 1 >= first) be->ops->copy(be, tensor_row_slice(states, (l + 1 - first) * s, s), b.x);
    }
    be->ops->rms_norm(be, tensor_row_slice(states, (cfg->num_layers - first) * s, s), b.x, enc->norm,
                      (float)cfg->rms_norm_eps);
    be->ops->download(be, hidden_states, states);
    return be->ops->status(be); /* a device fault in any layer */
}

int text_encoder_forward_states(const text_encoder *enc, arena *scratch, const int32_t *ids, int64_t tokens,
                                int64_t valid, int64_t first, float *hidden_states)
{
    if (tokens < 1) return error_set("text encoder: a prompt needs at least one token");
    if (valid < 1 || valid > tokens)
        return error_set("text encoder: %lld valid tokens of %lld: the attention mask must keep 1..%lld tokens",
                         (long long)valid, (long long)tokens, (long long)tokens);
    if (first < 0 || first > enc->cfg.num_layers)
        return error_set("text encoder: hidden states from %lld asked for; it has 0..%lld", (long long)first,
                         (long long)enc->cfg.num_layers);
    for (int64_t t = 0; t < tokens; t++)
        if (ids[t] < 0 || ids[t] >= enc->cfg.vocab_size)
            return error_set("text encoder: token id %d at position %lld is outside the vocabulary (vocab_size %lld)",
                             ids[t], (long long)t, (long long)enc->cfg.vocab_size);
    arena_mark_t mark = arena_mark(scratch);
    int status = forward(enc, scratch, ids, tokens, valid, first, hidden_states);
    arena_release(scratch, mark);
    return status;
}

int text_encoder_forward_masked(const text_encoder *enc, arena *scratch, const int32_t *ids, int64_t tokens,
                                int64_t valid, float *hidden_states)
{
    return text_encoder_forward_states(enc, scratch, ids, tokens, valid, 0, hidden_states);
}

int text_encoder_forward(const text_encoder *enc, arena *scratch, const int32_t *ids, int64_t tokens,
                         float *hidden_states)
{
    return text_encoder_forward_masked(enc, scratch, ids, tokens, tokens, hidden_states);
}
