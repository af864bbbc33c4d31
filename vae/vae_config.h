/* Configuration of a diffusers AutoencoderKL, read from vae/config.json with
 * the same key names and the same defaults as AutoencoderKL.__init__:
 *   in_channels 3, out_channels 3, latent_channels 4, block_out_channels [64],
 *   layers_per_block 1, norm_num_groups 32, act_fn "silu",
 *   scaling_factor 0.18215, shift_factor null (-> 0),
 *   mid_block_add_attention true, use_quant_conv true, use_post_quant_conv true,
 *   down_block_types ["DownEncoderBlock2D"], up_block_types ["UpDecoderBlock2D"].
 * Only DownEncoderBlock2D / UpDecoderBlock2D blocks exist in moedit; any other
 * block type, class or activation is an error naming the key.
 *
 * Derived: levels = len(block_out_channels); the encoder halves the image
 * levels - 1 times, so downscale = 2^(levels - 1) (8 for every released VAE). */
#ifndef MOEDIT_VAE_CONFIG_H
#define MOEDIT_VAE_CONFIG_H

#include <stdint.h>

#define VAE_MAX_LEVELS 8

typedef struct vae_config {
    int in_channels;     /* image channels into the encoder */
    int out_channels;    /* image channels out of the decoder */
    int latent_channels;
    int levels;          /* len(block_out_channels) */
    int block_out_channels[VAE_MAX_LEVELS];
    int layers_per_block; /* resnets per encoder level; the decoder has one more */
    int norm_num_groups;
    double scaling_factor;
    double shift_factor;  /* 0 when null or absent */
    int mid_block_add_attention;
    int use_quant_conv;
    int use_post_quant_conv;
    int downscale; /* 2^(levels - 1) */
} vae_config;

/* Reads and validates path (a vae config.json). */
int vae_config_load(vae_config *cfg, const char *path);

/* Validates a filled config (downscale included); errors name `source`. */
int vae_config_validate(const vae_config *cfg, const char *source);

#endif
