/* Reading and validating the transformer config; see dit_config.h. */
#include "dit/dit_config.h"

#include "core/config.h"
#include "core/error.h"

#include <string.h>

int64_t dit_swiglu_hidden(int64_t h)
{
    const int64_t multiple_of = 256;
    h = 2 * h / 3;
    return multiple_of * ((h + multiple_of - 1) / multiple_of);
}

int dit_num_blocks(const dit_config *cfg) { return cfg->num_double_blocks + cfg->num_single_blocks; }

int dit_is_moe(const dit_config *cfg) { return cfg->num_routed_experts > 0; }

int64_t dit_image_tokens(const dit_config *cfg, int64_t latent_h, int64_t latent_w)
{
    int64_t p = cfg->patch_size;
    if (latent_h == latent_w) return (latent_h / p) * (latent_w / p);
    return (int64_t)cfg->max_resolution[0] * cfg->max_resolution[1] / (p * p);
}

static int get_int_list(const config *c, const char *key, int *out, int max, int *count)
{
    int64_t values[DIT_MAX_BLOCKS];
    if (max > DIT_MAX_BLOCKS) max = DIT_MAX_BLOCKS;
    if (config_get_int_array(c, key, values, max, count) != 0) return -1;
    for (int i = 0; i < *count; i++) {
        if (values[i] < -DIT_MAX_SIZE || values[i] > DIT_MAX_SIZE)
            return error_set("%s: key \"%s\" holds %lld; values beyond +-%d are not supported", config_path(c), key,
                             (long long)values[i], DIT_MAX_SIZE);
        out[i] = (int)values[i];
    }
    return 0;
}

static int read_fields(void *out, const config *c)
{
    dit_config *cfg = out;
    int count = 0;
    int caption[2];
    if (config_get_int32(c, "patch_size", &cfg->patch_size) || config_get_int32_or(c, "in_channels", 64, &cfg->in_channels) ||
        config_get_int32_or(c, "out_channels", cfg->in_channels, &cfg->out_channels) ||
        config_get_int32_or(c, "num_layers", 16, &cfg->num_double_blocks) ||
        config_get_int32_or(c, "num_single_layers", 32, &cfg->num_single_blocks) ||
        config_get_int32_or(c, "attention_head_dim", 128, &cfg->head_dim) ||
        config_get_int32_or(c, "num_attention_heads", 20, &cfg->heads) ||
        config_get_int32_or(c, "text_emb_dim", 2048, &cfg->text_emb_dim) ||
        config_get_int32_or(c, "num_routed_experts", 4, &cfg->num_routed_experts) ||
        config_get_int32_or(c, "num_activated_experts", 2, &cfg->num_activated_experts))
        return -1;
    if (get_int_list(c, "caption_channels", caption, 2, &count)) return -1;
    if (count != 2) return error_set("%s: key \"caption_channels\" must hold 2 numbers [t5, llama]", config_path(c));
    cfg->caption_channels_t5 = caption[0];
    cfg->caption_channels_llama = caption[1];
    if (get_int_list(c, "axes_dims_rope", cfg->rope_axes_dim, DIT_MAX_ROPE_AXES, &cfg->rope_axes)) return -1;
    if (get_int_list(c, "max_resolution", cfg->max_resolution, 2, &count)) return -1;
    if (count != 2) return error_set("%s: key \"max_resolution\" must hold 2 numbers", config_path(c));
    if (get_int_list(c, "llama_layers", cfg->llama_layers, DIT_MAX_BLOCKS, &count)) return -1;
    if (count != cfg->num_double_blocks + cfg->num_single_blocks)
        return error_set("%s: key \"llama_layers\" has %d entries, expected num_layers + num_single_layers = %d",
                         config_path(c), count, cfg->num_double_blocks + cfg->num_single_blocks);
    return 0;
}

int dit_config_validate(const dit_config *cfg, const char *source)
{
    const int sizes[] = {cfg->patch_size, cfg->in_channels, cfg->out_channels, cfg->heads, cfg->head_dim,
                         cfg->text_emb_dim, cfg->caption_channels_t5, cfg->caption_channels_llama, cfg->dim,
                         cfg->max_resolution[0], cfg->max_resolution[1]};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i] > DIT_MAX_SIZE)
            return error_set("%s: a size of %d (patch_size, channels, heads, dims, max_resolution) is over the %d "
                             "supported", source, sizes[i], DIT_MAX_SIZE);
    if (cfg->patch_size < 1 || cfg->in_channels < 1 || cfg->out_channels < 1 || cfg->heads < 1 ||
        cfg->head_dim < 2 || cfg->text_emb_dim < 1 || cfg->caption_channels_t5 < 1 ||
        cfg->caption_channels_llama < 1)
        return error_set("%s: sizes must be positive (patch_size, channels, heads, head dim, text dims)", source);
    if (cfg->num_double_blocks < 0 || cfg->num_single_blocks < 0 || dit_num_blocks(cfg) < 1 ||
        dit_num_blocks(cfg) > DIT_MAX_BLOCKS)
        return error_set("%s: num_layers + num_single_layers must be between 1 and %d", source, DIT_MAX_BLOCKS);
    if (cfg->num_routed_experts < 0 || cfg->num_activated_experts < 0 ||
        (cfg->num_routed_experts > 0 &&
         (cfg->num_activated_experts < 1 || cfg->num_activated_experts > cfg->num_routed_experts)))
        return error_set("%s: num_activated_experts = %d must be between 1 and num_routed_experts = %d", source,
                         cfg->num_activated_experts, cfg->num_routed_experts);
    if (cfg->num_routed_experts > 1024)
        return error_set("%s: num_routed_experts = %d; at most 1024 are supported", source, cfg->num_routed_experts);
    if (cfg->rope_axes < 1) return error_set("%s: axes_dims_rope is empty", source);
    for (int i = 0; i < cfg->rope_axes; i++)
        if (cfg->rope_axes_dim[i] < 2 || cfg->rope_axes_dim[i] % 2)
            return error_set("%s: axes_dims_rope[%d] = %d must be even and positive", source, i,
                             cfg->rope_axes_dim[i]);
    if (cfg->rope_dim != cfg->head_dim && 2 * cfg->rope_dim != cfg->head_dim)
        return error_set("%s: axes_dims_rope sum to %d; it must equal attention_head_dim (%d) or half of it",
                         source, cfg->rope_dim, cfg->head_dim);
    if (cfg->max_resolution[0] < 1 || cfg->max_resolution[1] < 1)
        return error_set("%s: max_resolution must be positive", source);
    for (int i = 0; i < dit_num_blocks(cfg); i++)
        if (cfg->llama_layers[i] < 0) return error_set("%s: llama_layers[%d] is negative", source, i);
    return 0;
}

int dit_config_load(dit_config *cfg, const char *path)
{
    memset(cfg, 0, sizeof *cfg);
    if (config_read_file(path, read_fields, cfg)) return -1;
    /* Sums and products of the config's sizes must stay far from int's range. */
    int64_t dim = (int64_t)cfg->heads * cfg->head_dim, rope_dim = 0;
    for (int i = 0; i < cfg->rope_axes; i++) rope_dim += cfg->rope_axes_dim[i];
    if (dim > DIT_MAX_SIZE || rope_dim > DIT_MAX_SIZE || rope_dim < -DIT_MAX_SIZE)
        return error_set("%s: num_attention_heads x attention_head_dim = %lld, axes_dims_rope sum to %lld: sizes beyond "
                         "%d are not supported",
                         path, (long long)dim, (long long)rope_dim, DIT_MAX_SIZE);
    cfg->dim = (int)dim;
    cfg->rope_dim = (int)rope_dim;
    cfg->rope_theta = 10000.0;
    cfg->ffn_hidden = dit_swiglu_hidden(4 * (int64_t)cfg->dim);
    cfg->shared_ffn_hidden = dit_swiglu_hidden(2 * (int64_t)cfg->dim);
    return dit_config_validate(cfg, path);
}

static int64_t linear_params(int64_t in, int64_t out, int bias) { return in * out + (bias ? out : 0); }

static int64_t swiglu_params(int64_t dim, int64_t hidden) { return 3 * dim * hidden; }

/* Feed-forward parameters of one image stream; `active` counts top-k experts only. */
static int64_t image_ffn_params(const dit_config *cfg, int active)
{
    int64_t c = cfg->dim;
    if (!dit_is_moe(cfg)) return swiglu_params(c, cfg->ffn_hidden);
    int experts = active ? cfg->num_activated_experts : cfg->num_routed_experts;
    return swiglu_params(c, cfg->shared_ffn_hidden) + experts * swiglu_params(c, cfg->ffn_hidden) +
           (int64_t)cfg->num_routed_experts * c;
}

static int64_t count_params(const dit_config *cfg, int active)
{
    int64_t c = cfg->dim, p = cfg->patch_size;
    int64_t attention = 4 * linear_params(c, c, 1) + 2 * c; /* q, k, v, out + q/k norms */
    int64_t total = linear_params(cfg->in_channels * p * p, c, 1) + linear_params(256, c, 1) +
                    linear_params(c, c, 1) + linear_params(cfg->text_emb_dim, c, 1) + linear_params(c, c, 1);
    total += (int64_t)dit_num_blocks(cfg) * linear_params(cfg->caption_channels_llama, c, 0) +
             linear_params(cfg->caption_channels_t5, c, 0);
    int64_t double_block = linear_params(c, 12 * c, 1) + 2 * attention + image_ffn_params(cfg, active) +
                           swiglu_params(c, cfg->ffn_hidden);
    int64_t single_block = linear_params(c, 6 * c, 1) + attention + image_ffn_params(cfg, active);
    total += cfg->num_double_blocks * double_block + cfg->num_single_blocks * single_block;
    total += linear_params(c, 2 * c, 1) + linear_params(c, p * p * cfg->out_channels, 1);
    return total;
}

int64_t dit_parameter_count(const dit_config *cfg) { return count_params(cfg, 0); }

int64_t dit_active_parameter_count(const dit_config *cfg) { return count_params(cfg, 1); }
