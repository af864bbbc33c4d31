/* Reading and validating the AutoencoderKL config; see vae_config.h. */
#include "vae/vae_config.h"

#include "core/config.h"
#include "core/error.h"

#include <string.h>

static int read_block_out_channels(vae_config *cfg, const config *c)
{
    if (!config_has(c, "block_out_channels")) {
        cfg->levels = 1;
        cfg->block_out_channels[0] = 64;
        return 0;
    }
    int64_t values[VAE_MAX_LEVELS];
    if (config_get_int_array(c, "block_out_channels", values, VAE_MAX_LEVELS, &cfg->levels) != 0) return -1;
    for (int i = 0; i < cfg->levels; i++) {
        if (values[i] < 1 || values[i] > (1 << 20))
            return error_set("%s: key \"block_out_channels\"[%d] = %lld must be between 1 and %d", config_path(c), i,
                             (long long)values[i], 1 << 20);
        cfg->block_out_channels[i] = (int)values[i];
    }
    return 0;
}

/* Every entry of key (default: one `expected`) must be `expected`, one per level. */
static int check_block_types(const vae_config *cfg, const config *c, const char *key, const char *expected)
{
    const char *types[VAE_MAX_LEVELS] = {expected};
    int count = 1;
    if (config_has(c, key) && config_get_string_array(c, key, types, VAE_MAX_LEVELS, &count) != 0) return -1;
    for (int i = 0; i < count; i++)
        if (strcmp(types[i], expected) != 0)
            return error_set("%s: key \"%s\"[%d] is \"%s\"; moedit's AutoencoderKL supports only %s", config_path(c),
                             key, i, types[i], expected);
    if (count != cfg->levels)
        return error_set("%s: key \"%s\" has %d entries but block_out_channels has %d", config_path(c), key, count,
                         cfg->levels);
    return 0;
}

static int check_names(const config *c)
{
    const char *class_name, *act_fn;
    if (config_get_string_or(c, "_class_name", "AutoencoderKL", &class_name) != 0 ||
        config_get_string_or(c, "act_fn", "silu", &act_fn) != 0)
        return -1;
    if (strcmp(class_name, "AutoencoderKL") != 0)
        return error_set("%s: key \"_class_name\" is \"%s\"; moedit's VAE reads AutoencoderKL only", config_path(c),
                         class_name);
    if (strcmp(act_fn, "silu") != 0 && strcmp(act_fn, "swish") != 0)
        return error_set("%s: key \"act_fn\" is \"%s\"; moedit's VAE supports silu only", config_path(c), act_fn);
    return 0;
}

static int read_fields(void *out, const config *c)
{
    vae_config *cfg = out;
    if (check_names(c) != 0 || config_get_int32_or(c, "in_channels", 3, &cfg->in_channels) ||
        config_get_int32_or(c, "out_channels", 3, &cfg->out_channels) ||
        config_get_int32_or(c, "latent_channels", 4, &cfg->latent_channels) ||
        config_get_int32_or(c, "layers_per_block", 1, &cfg->layers_per_block) ||
        config_get_int32_or(c, "norm_num_groups", 32, &cfg->norm_num_groups) ||
        config_get_float_or(c, "scaling_factor", 0.18215, &cfg->scaling_factor) ||
        config_get_float_or(c, "shift_factor", 0.0, &cfg->shift_factor) ||
        config_get_bool_or(c, "mid_block_add_attention", 1, &cfg->mid_block_add_attention) ||
        config_get_bool_or(c, "use_quant_conv", 1, &cfg->use_quant_conv) ||
        config_get_bool_or(c, "use_post_quant_conv", 1, &cfg->use_post_quant_conv) || read_block_out_channels(cfg, c))
        return -1;
    if (check_block_types(cfg, c, "down_block_types", "DownEncoderBlock2D") != 0) return -1;
    return check_block_types(cfg, c, "up_block_types", "UpDecoderBlock2D");
}

int vae_config_validate(const vae_config *cfg, const char *source)
{
    if (cfg->in_channels < 1 || cfg->out_channels < 1 || cfg->latent_channels < 1)
        return error_set("%s: in_channels, out_channels and latent_channels must be positive", source);
    if (cfg->levels < 1 || cfg->levels > VAE_MAX_LEVELS)
        return error_set("%s: block_out_channels must have 1 to %d entries", source, VAE_MAX_LEVELS);
    if (cfg->layers_per_block < 1) return error_set("%s: layers_per_block must be positive", source);
    if (cfg->norm_num_groups < 1) return error_set("%s: norm_num_groups must be positive", source);
    for (int i = 0; i < cfg->levels; i++)
        if (cfg->block_out_channels[i] < 1 || cfg->block_out_channels[i] % cfg->norm_num_groups != 0)
            return error_set("%s: block_out_channels[%d] = %d is not a positive multiple of norm_num_groups = %d",
                             source, i, cfg->block_out_channels[i], cfg->norm_num_groups);
    if (!(cfg->scaling_factor != 0)) return error_set("%s: scaling_factor must not be 0", source);
    if (cfg->downscale != 1 << (cfg->levels - 1))
        return error_set("%s: downscale %d does not match %d levels", source, cfg->downscale, cfg->levels);
    return 0;
}

int vae_config_load(vae_config *cfg, const char *path)
{
    memset(cfg, 0, sizeof *cfg);
    if (config_read_file(path, read_fields, cfg)) return -1;
    cfg->downscale = cfg->levels >= 1 && cfg->levels <= VAE_MAX_LEVELS ? 1 << (cfg->levels - 1) : 0;
    return vae_config_validate(cfg, path);
}
