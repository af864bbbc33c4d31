/* Loading the AutoencoderKL's weights by diffusers name; see vae_model.h. */
#include "vae/vae_model.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int remember_conv_weight(vae_model *model, void *data)
{
    if (model->conv_weight_count == model->conv_weight_capacity) {
        int capacity = model->conv_weight_capacity ? 2 * model->conv_weight_capacity : 64;
        void **grown = realloc(model->conv_weights, (size_t)capacity * sizeof *grown);
        if (!grown) return error_set("out of memory tracking VAE weights");
        model->conv_weights = grown;
        model->conv_weight_capacity = capacity;
    }
    model->conv_weights[model->conv_weight_count++] = data;
    return 0;
}

/* weight_load checks 2-D shapes only, and a convolution kernel is stored 4-D
 * [Cout, Cin, k, k]. Until io/weights.h grows an N-d load, the kernel is
 * read here with its full shape checked (safetensors_read_f32 converts any
 * float dtype) and uploaded as [Cout, Cin * k * k]. */
static int load_conv_kernel(vae_model *model, tensor *out, const char *name, int64_t cout, int64_t cin, int kernel)
{
    backend *be = model->be;
    if (model->weights.random) /* Philox on the device, fan-in Cin k^2 as for any [Cout, Cin * k * k] matrix */
        return weight_load(&model->weights, out, name, cout, cin * kernel * kernel, shard_whole());
    int64_t shape[4] = {cout, cin, kernel, kernel}, cols = cin * kernel * kernel;
    float *host = malloc((size_t)(cout * cols) * sizeof(float));
    if (!host) return error_set("out of memory reading tensor %s", name);
    int status = safetensors_read_f32(model->weights.st, name, 4, shape, host);
    *out = tensor_make_2d(be->dtype, be->device, cout, cols);
    out->data = status == 0 ? be->ops->alloc(be, tensor_nbytes(out)) : NULL;
    if (status == 0 && !out->data) status = error_prefix("loading tensor %s", name);
    if (status == 0 && remember_conv_weight(model, out->data) != 0) {
        be->ops->free(be, out->data);
        status = -1;
    }
    if (status == 0) {
        be->ops->upload(be, *out, host);
        model->parameters += cout * cols;
    }
    free(host);
    return status;
}

static int load_conv(vae_model *model, vae_conv *conv, const char *name, int64_t cin, int64_t cout, int kernel)
{
    char full[256];
    conv->in_channels = cin;
    conv->out_channels = cout;
    conv->kernel = kernel;
    snprintf(full, sizeof full, "%s.weight", name);
    if (load_conv_kernel(model, &conv->weight, full, cout, cin, kernel) != 0) return -1;
    snprintf(full, sizeof full, "%s.bias", name);
    return weight_load(&model->weights, &conv->bias, full, cout, 0, shard_whole());
}

static int load_group_norm(vae_model *model, vae_group_norm *norm, const char *name, int64_t channels)
{
    char full[256];
    norm->groups = model->cfg.norm_num_groups;
    snprintf(full, sizeof full, "%s.weight", name);
    if (weight_load(&model->weights, &norm->weight, full, channels, 0, shard_whole()) != 0) return -1;
    snprintf(full, sizeof full, "%s.bias", name);
    return weight_load(&model->weights, &norm->bias, full, channels, 0, shard_whole());
}

static int load_resnet(vae_model *model, vae_resnet *resnet, const char *prefix, int64_t cin, int64_t cout)
{
    char name[256];
    snprintf(name, sizeof name, "%s.norm1", prefix);
    if (load_group_norm(model, &resnet->norm1, name, cin) != 0) return -1;
    snprintf(name, sizeof name, "%s.conv1", prefix);
    if (load_conv(model, &resnet->conv1, name, cin, cout, 3) != 0) return -1;
    snprintf(name, sizeof name, "%s.norm2", prefix);
    if (load_group_norm(model, &resnet->norm2, name, cout) != 0) return -1;
    snprintf(name, sizeof name, "%s.conv2", prefix);
    if (load_conv(model, &resnet->conv2, name, cout, cout, 3) != 0) return -1;
    if (cin == cout) return 0;
    snprintf(name, sizeof name, "%s.conv_shortcut", prefix);
    return load_conv(model, &resnet->conv_shortcut, name, cin, cout, 1);
}

/* One projection of the attention: the diffusers name, or the name that
 * checkpoints saved before diffusers 0.14 use. */
static int load_attention_linear(vae_model *model, vae_linear *layer, const char *prefix, const char *name,
                                 const char *old_name, int64_t channels)
{
    char weight[256], bias[256];
    snprintf(weight, sizeof weight, "%s.%s.weight", prefix, old_name);
    if (model->weights.random || !weight_exists(&model->weights, weight)) old_name = name;
    snprintf(weight, sizeof weight, "%s.%s.weight", prefix, old_name);
    snprintf(bias, sizeof bias, "%s.%s.bias", prefix, old_name);
    if (weight_load(&model->weights, &layer->weight, weight, channels, channels, shard_whole()) != 0) return -1;
    return weight_load(&model->weights, &layer->bias, bias, channels, 0, shard_whole());
}

static int load_mid_block(vae_model *model, vae_mid_block *mid, const char *prefix, int64_t channels)
{
    char name[256];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.resnets.%d", prefix, i);
        if (load_resnet(model, &mid->resnets[i], name, channels, channels) != 0) return -1;
    }
    mid->has_attention = model->cfg.mid_block_add_attention;
    if (!mid->has_attention) return 0;
    vae_attention *attention = &mid->attention;
    attention->channels = channels;
    snprintf(name, sizeof name, "%s.attentions.0", prefix);
    char norm[300];
    snprintf(norm, sizeof norm, "%s.group_norm", name);
    if (load_group_norm(model, &attention->group_norm, norm, channels) != 0) return -1;
    if (load_attention_linear(model, &attention->to_q, name, "to_q", "query", channels) != 0 ||
        load_attention_linear(model, &attention->to_k, name, "to_k", "key", channels) != 0 ||
        load_attention_linear(model, &attention->to_v, name, "to_v", "value", channels) != 0)
        return -1;
    return load_attention_linear(model, &attention->to_out, name, "to_out.0", "proj_attn", channels);
}

/* Resnets of one level, then its resampling conv (when there is one). */
static int load_level(vae_model *model, vae_level *level, const char *prefix, int count, int64_t cin, int64_t cout,
                      int resample, const char *resampler)
{
    char name[256];
    level->resnet_count = count;
    level->resnets = calloc((size_t)count, sizeof(vae_resnet));
    if (!level->resnets) return error_set("out of memory loading the VAE");
    for (int j = 0; j < count; j++) {
        snprintf(name, sizeof name, "%s.resnets.%d", prefix, j);
        if (load_resnet(model, &level->resnets[j], name, j == 0 ? cin : cout, cout) != 0) return -1;
    }
    if (!resample) return 0;
    snprintf(name, sizeof name, "%s.%s.0.conv", prefix, resampler);
    return load_conv(model, &level->resample, name, cout, cout, 3);
}

static int load_encoder(vae_model *model)
{
    const vae_config *cfg = &model->cfg;
    vae_encoder *encoder = &model->encoder;
    const int *channels = cfg->block_out_channels;
    int last = cfg->levels - 1;
    char prefix[128];
    if (load_conv(model, &encoder->conv_in, "encoder.conv_in", cfg->in_channels, channels[0], 3) != 0) return -1;
    for (int i = 0; i <= last; i++) {
        snprintf(prefix, sizeof prefix, "encoder.down_blocks.%d", i);
        if (load_level(model, &encoder->levels[i], prefix, cfg->layers_per_block, channels[i > 0 ? i - 1 : 0],
                       channels[i], i < last, "downsamplers") != 0)
            return -1;
    }
    if (load_mid_block(model, &encoder->mid_block, "encoder.mid_block", channels[last]) != 0 ||
        load_group_norm(model, &encoder->conv_norm_out, "encoder.conv_norm_out", channels[last]) != 0)
        return -1;
    return load_conv(model, &encoder->conv_out, "encoder.conv_out", channels[last], 2 * cfg->latent_channels, 3);
}

static int load_decoder(vae_model *model)
{
    const vae_config *cfg = &model->cfg;
    vae_decoder *decoder = &model->decoder;
    int last = cfg->levels - 1, reversed[VAE_MAX_LEVELS];
    for (int i = 0; i <= last; i++) reversed[i] = cfg->block_out_channels[last - i];
    char prefix[128];
    if (load_conv(model, &decoder->conv_in, "decoder.conv_in", cfg->latent_channels, reversed[0], 3) != 0 ||
        load_mid_block(model, &decoder->mid_block, "decoder.mid_block", reversed[0]) != 0)
        return -1;
    for (int i = 0; i <= last; i++) {
        snprintf(prefix, sizeof prefix, "decoder.up_blocks.%d", i);
        if (load_level(model, &decoder->levels[i], prefix, cfg->layers_per_block + 1, reversed[i > 0 ? i - 1 : 0],
                       reversed[i], i < last, "upsamplers") != 0)
            return -1;
    }
    if (load_group_norm(model, &decoder->conv_norm_out, "decoder.conv_norm_out", reversed[last]) != 0) return -1;
    return load_conv(model, &decoder->conv_out, "decoder.conv_out", reversed[last], cfg->out_channels, 3);
}

static int load_all(vae_model *model)
{
    int64_t latent = model->cfg.latent_channels;
    if (load_encoder(model) != 0 || load_decoder(model) != 0) return -1;
    if (model->cfg.use_quant_conv && load_conv(model, &model->quant_conv, "quant_conv", 2 * latent, 2 * latent, 1))
        return -1;
    if (model->cfg.use_post_quant_conv &&
        load_conv(model, &model->post_quant_conv, "post_quant_conv", latent, latent, 1) != 0)
        return -1;
    model->parameters += model->weights.parameters;
    return 0;
}

int vae_model_load_config(vae_model *model, backend *be, const vae_config *cfg, const safetensors *st, int random,
                          uint64_t seed)
{
    memset(model, 0, sizeof *model);
    if (!st && !random) return error_set("loading the VAE: no weights given");
    if (vae_config_validate(cfg, "VAE config") != 0) return -1;
    model->cfg = *cfg;
    model->be = be;
    weight_loader_init(&model->weights, be, random ? NULL : st, random, seed);
    int status = load_all(model);
    weight_loader_finish(&model->weights);
    if (status != 0) vae_model_free(model);
    return status;
}

int vae_model_load(vae_model *model, backend *be, const char *vae_dir, int random, uint64_t seed)
{
    char path[4096];
    vae_config cfg;
    memset(model, 0, sizeof *model);
    snprintf(path, sizeof path, "%s/config.json", vae_dir);
    if (vae_config_load(&cfg, path) != 0) return -1;
    safetensors *st = NULL;
    if (!random && safetensors_open_dir(&st, vae_dir, "diffusion_pytorch_model") != 0) return -1;
    int status = vae_model_load_config(model, be, &cfg, st, random, seed);
    safetensors_close(st);
    if (status != 0) return error_prefix("loading the VAE from %s", vae_dir);
    return 0;
}

static void free_levels(vae_level *levels)
{
    for (int i = 0; i < VAE_MAX_LEVELS; i++) {
        free(levels[i].resnets);
        levels[i].resnets = NULL;
    }
}

void vae_model_free(vae_model *model)
{
    free_levels(model->encoder.levels);
    free_levels(model->decoder.levels);
    for (int i = 0; i < model->conv_weight_count; i++) model->be->ops->free(model->be, model->conv_weights[i]);
    free(model->conv_weights);
    model->conv_weights = NULL;
    model->conv_weight_count = model->conv_weight_capacity = 0;
    if (model->be) weight_loader_free_all(&model->weights);
}
