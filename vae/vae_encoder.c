/* The AutoencoderKL encoder: image [in_channels, H, W] -> mean [L, H/8, W/8].
 *
 * Mirrors diffusers AutoencoderKL._encode, vae.py's Encoder and
 * DiagonalGaussianDistribution.mean:
 *   x = conv_in(image)                           (3x3 -> block_out_channels[0])
 *   for each down block i:
 *       x = resnet_j(x) for j < layers_per_block
 *       x = conv_stride2(pad(x, right 1, bottom 1))   (Downsample2D, padding 0; all blocks but the last)
 *   x = mid_block(x)                             (resnet, attention, resnet)
 *   moments = conv_out(silu(conv_norm_out(x)))   (3x3 -> 2L)
 *   moments = quant_conv(moments)                (1x1, when use_quant_conv)
 *   mean = moments[:L]                           (logvar = moments[L:] is not needed) */
#include "vae/vae.h"

#include "core/error.h"
#include "vae/vae_bands.h"
#include "vae/vae_blocks.h"

/* The largest activation of an encode, in elements. */
static int64_t encoder_capacity(const vae_config *cfg, int64_t height, int64_t width)
{
    int64_t pixels = height * width, channels = cfg->block_out_channels[0];
    int64_t most = (cfg->in_channels > channels ? cfg->in_channels : channels) * pixels;
    for (int i = 0; i < cfg->levels; i++) {
        int64_t out = cfg->block_out_channels[i], widest = out > channels ? out : channels;
        if (widest * pixels > most) most = widest * pixels;
        channels = out;
        if (i < cfg->levels - 1) pixels /= 4; /* Downsample2D's output */
    }
    if (2 * (int64_t)cfg->latent_channels * pixels > most) most = 2 * (int64_t)cfg->latent_channels * pixels;
    return most;
}

static int check_inputs(const vae_config *cfg, int64_t channels, int64_t height, int64_t width)
{
    if (channels != cfg->in_channels)
        return error_set("VAE encode: the image has %lld channels, the VAE's in_channels is %d", (long long)channels,
                         cfg->in_channels);
    if (height < 1 || width < 1)
        return error_set("VAE encode: image size %lld x %lld is not positive", (long long)height, (long long)width);
    if (height % cfg->downscale || width % cfg->downscale)
        return error_set("VAE encode: image size %lld x %lld is not a multiple of the VAE's downscale factor %d",
                         (long long)height, (long long)width, cfg->downscale);
    if (height > VAE_MAX_IMAGE_SIDE || width > VAE_MAX_IMAGE_SIDE)
        return error_set("VAE encode: image size %lld x %lld has a side over %d pixels", (long long)height,
                         (long long)width, VAE_MAX_IMAGE_SIDE);
    return 0;
}

/* x = conv(x) with stride 2 after zero padding one column right and one row
 * below: Downsample2D(use_conv=True, padding=0). */
static int downsample_stage(const vae_exec *ex, vae_activations *acts, const vae_conv *conv)
{
    const int pad[4] = {0, 1, 0, 1}; /* top, bottom, left, right */
    tensor y = vae_activations_next(acts, conv->out_channels, acts->x.shape[1] / 2, acts->x.shape[2] / 2);
    if (vae_conv_forward(ex, y, acts->x, conv, 2, pad)) return -1;
    vae_activations_advance(acts, y);
    return 0;
}

static int encode_stages(const vae_model *model, const vae_exec *ex, vae_activations *acts)
{
    const vae_encoder *encoder = &model->encoder;
    if (vae_conv_stage(ex, acts, &encoder->conv_in)) return -1;
    for (int i = 0; i < model->cfg.levels; i++) {
        const vae_level *level = &encoder->levels[i];
        if (vae_level_resnets_forward(ex, acts, level) != 0) return -1;
        if (level->resample.weight.data && downsample_stage(ex, acts, &level->resample)) return -1;
    }
    if (vae_mid_block_forward(ex, acts, &encoder->mid_block) != 0 ||
        vae_norm_silu_stage(ex, acts, &encoder->conv_norm_out) != 0 || vae_conv_stage(ex, acts, &encoder->conv_out))
        return -1;
    if (model->quant_conv.weight.data && vae_conv_stage(ex, acts, &model->quant_conv)) return -1;
    return 0;
}

int vae_encode_parallel(const vae_model *model, arena *scratch, process_group *group, const float *image,
                        int64_t channels, int64_t height, int64_t width, float *latents)
{
    if (check_inputs(&model->cfg, channels, height, width) != 0) return -1;
    int64_t f = model->cfg.downscale;
    vae_exec ex = {model->be, scratch, NULL, 0, 0, 0};
    if (vae_band_init(&ex, group, height / f)) return -1;
    arena_mark_t mark = arena_mark(scratch);
    vae_activations acts;
    int status = vae_activations_init(&acts, &ex, encoder_capacity(&model->cfg, ex.band_rows * f, width));
    if (status == 0) status = vae_band_upload(&ex, &acts, image, channels, f, width);
    if (status == 0) status = encode_stages(model, &ex, &acts);
    if (status == 0) {
        /* The mean is the first latent_channels channels of the moments [2L, h, w]. */
        tensor mean = vae_image(model->be, acts.x.data, model->cfg.latent_channels, acts.x.shape[1], acts.x.shape[2]);
        status = vae_band_collect(&ex, mean, latents);
    }
    arena_release(scratch, mark);
    return status == 0 ? 0 : error_prefix("VAE encode of a %lld x %lld image", (long long)height, (long long)width);
}

int vae_encode(const vae_model *model, arena *scratch, const float *image, int64_t channels, int64_t height,
               int64_t width, float *latents)
{
    return vae_encode_parallel(model, scratch, NULL, image, channels, height, width, latents);
}
