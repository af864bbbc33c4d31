/* The AutoencoderKL decoder: latents [L, h, w] -> image [out_channels, 8h, 8w].
 *
 * Mirrors diffusers AutoencoderKL._decode and vae.py's Decoder:
 *   z = post_quant_conv(z)                       (1x1, when use_post_quant_conv)
 *   x = conv_in(z)                               (3x3 -> block_out_channels[-1])
 *   x = mid_block(x)                             (resnet, attention, resnet)
 *   for each up block i (channels reversed(block_out_channels)):
 *       x = resnet_j(x) for j < layers_per_block + 1
 *       x = conv(upsample_nearest_2x(x))         (Upsample2D; all blocks but the last)
 *   image = conv_out(silu(conv_norm_out(x)))
 *
 * A patch-parallel decode will run the same stages on a band of latent rows:
 * its halo rows enter through vae_conv_forward's padding, its GroupNorm
 * statistics are all-reduced in vae_group_norm_forward. */
#include "vae/vae.h"

#include "core/error.h"
#include "vae/vae_bands.h"
#include "vae/vae_blocks.h"

/* The largest activation of a decode, in elements: the size of each of the
 * two buffers the stages alternate between. */
static int64_t decoder_capacity(const vae_config *cfg, int64_t h, int64_t w)
{
    int last = cfg->levels - 1;
    int64_t pixels = h * w, channels = cfg->block_out_channels[last];
    int64_t most = (cfg->latent_channels > channels ? cfg->latent_channels : channels) * pixels;
    for (int i = 0; i <= last; i++) {
        int64_t out = cfg->block_out_channels[last - i], widest = out > channels ? out : channels;
        if (widest * pixels > most) most = widest * pixels;
        channels = out;
        if (i == last) break;
        pixels *= 4; /* Upsample2D's output */
        if (out * pixels > most) most = out * pixels;
    }
    if (cfg->out_channels * pixels > most) most = cfg->out_channels * pixels;
    return most;
}

static int check_inputs(const vae_config *cfg, int64_t channels, int64_t h, int64_t w)
{
    if (channels != cfg->latent_channels)
        return error_set("VAE decode: latents have %lld channels, the VAE's latent_channels is %d", (long long)channels,
                         cfg->latent_channels);
    if (h < 1 || w < 1) return error_set("VAE decode: latent size %lld x %lld is not positive", (long long)h, (long long)w);
    if (h > VAE_MAX_IMAGE_SIDE / cfg->downscale || w > VAE_MAX_IMAGE_SIDE / cfg->downscale)
        return error_set("VAE decode: latent size %lld x %lld gives an image side over %d pixels", (long long)h,
                         (long long)w, VAE_MAX_IMAGE_SIDE);
    return 0;
}

/* x = conv(nearest_2x(x)): Upsample2D with use_conv. */
static int upsample_stage(const vae_exec *ex, vae_activations *acts, const vae_conv *conv)
{
    int64_t c = acts->x.shape[0], h = 2 * acts->x.shape[1], w = 2 * acts->x.shape[2];
    arena_mark_t mark = arena_mark(ex->scratch);
    tensor upsampled = vae_scratch_image(ex, c, h, w);
    if (!upsampled.data) return error_prefix("VAE upsampling to %lld x %lld", (long long)h, (long long)w);
    ex->be->ops->upsample_nearest2x(ex->be, upsampled, acts->x);
    tensor y = vae_activations_next(acts, conv->out_channels, h, w);
    if (vae_conv_same(ex, y, upsampled, conv)) return -1;
    vae_activations_advance(acts, y);
    arena_release(ex->scratch, mark);
    return 0;
}

static int decode_stages(const vae_model *model, const vae_exec *ex, vae_activations *acts)
{
    const vae_decoder *decoder = &model->decoder;
    if (model->post_quant_conv.weight.data && vae_conv_stage(ex, acts, &model->post_quant_conv)) return -1;
    if (vae_conv_stage(ex, acts, &decoder->conv_in) || vae_mid_block_forward(ex, acts, &decoder->mid_block) != 0)
        return -1;
    for (int i = 0; i < model->cfg.levels; i++) {
        const vae_level *level = &decoder->levels[i];
        if (vae_level_resnets_forward(ex, acts, level) != 0) return -1;
        if (level->resample.weight.data && upsample_stage(ex, acts, &level->resample) != 0) return -1;
    }
    if (vae_norm_silu_stage(ex, acts, &decoder->conv_norm_out) != 0) return -1;
    return vae_conv_stage(ex, acts, &decoder->conv_out);
}

int vae_decode_parallel(const vae_model *model, arena *scratch, process_group *group, const float *latents,
                        int64_t channels, int64_t h, int64_t w, float *image)
{
    if (check_inputs(&model->cfg, channels, h, w) != 0) return -1;
    vae_exec ex = {model->be, scratch, NULL, 0, 0, 0};
    if (vae_band_init(&ex, group, h)) return -1;
    arena_mark_t mark = arena_mark(scratch);
    vae_activations acts;
    int status = vae_activations_init(&acts, &ex, decoder_capacity(&model->cfg, ex.band_rows, w));
    if (status == 0) status = vae_band_upload(&ex, &acts, latents, channels, 1, w);
    if (status == 0) status = decode_stages(model, &ex, &acts);
    if (status == 0) status = vae_band_collect(&ex, acts.x, image);
    arena_release(scratch, mark);
    return status == 0 ? 0 : error_prefix("VAE decode of %lld x %lld latents", (long long)h, (long long)w);
}

int vae_decode(const vae_model *model, arena *scratch, const float *latents, int64_t channels, int64_t h, int64_t w,
               float *image)
{
    return vae_decode_parallel(model, scratch, NULL, latents, channels, h, w, image);
}
