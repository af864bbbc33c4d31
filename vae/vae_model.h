/* The weights of a diffusers AutoencoderKL, by diffusers name.
 *
 *   encoder.conv_in                                   3x3, in_channels -> block_out_channels[0]
 *   encoder.down_blocks.<i>.resnets.<j>               ResnetBlock2D (layers_per_block per level)
 *   encoder.down_blocks.<i>.downsamplers.0.conv       3x3 stride 2 (all levels but the last)
 *   encoder.mid_block.resnets.{0,1}, .attentions.0    UNetMidBlock2D (attention optional)
 *   encoder.conv_norm_out, encoder.conv_out           GroupNorm, 3x3 -> 2 * latent_channels
 *   quant_conv                                        1x1, 2L -> 2L (when use_quant_conv)
 *   post_quant_conv                                   1x1, L -> L (when use_post_quant_conv)
 *   decoder.conv_in                                   3x3, latent_channels -> block_out_channels[-1]
 *   decoder.mid_block.*                               as in the encoder
 *   decoder.up_blocks.<i>.resnets.<j>                 layers_per_block + 1 per level, channels
 *                                                     reversed(block_out_channels)
 *   decoder.up_blocks.<i>.upsamplers.0.conv           3x3 after nearest 2x (all levels but the last)
 *   decoder.conv_norm_out, decoder.conv_out           GroupNorm, 3x3 -> out_channels
 * A ResnetBlock2D holds norm1, conv1, norm2, conv2 and, when its channels
 * change, the 1x1 conv_shortcut. The mid-block Attention holds group_norm,
 * to_q, to_k, to_v, to_out.0 (older checkpoints: query, key, value, proj_attn,
 * accepted too). Convolution weights are stored [Cout, Cin, k, k] and kept
 * flattened as [Cout, Cin * k * k], the layout of the backend's conv2d. */
#ifndef MOEDIT_VAE_MODEL_H
#define MOEDIT_VAE_MODEL_H

#include "io/weights.h"
#include "vae/vae_config.h"

typedef struct vae_conv {
    tensor weight; /* [Cout, Cin * kernel * kernel] */
    tensor bias;   /* [Cout] */
    int64_t in_channels, out_channels;
    int kernel;
} vae_conv;

typedef struct vae_group_norm {
    tensor weight, bias; /* [C] */
    int groups;
} vae_group_norm;

typedef struct vae_linear {
    tensor weight; /* [out, in] */
    tensor bias;   /* [out] */
} vae_linear;

typedef struct vae_resnet {
    vae_group_norm norm1, norm2;
    vae_conv conv1, conv2;
    vae_conv conv_shortcut; /* weight.data NULL when in == out channels */
} vae_resnet;

typedef struct vae_attention {
    vae_group_norm group_norm;
    vae_linear to_q, to_k, to_v, to_out;
    int64_t channels; /* one head of dimension channels */
} vae_attention;

typedef struct vae_mid_block {
    vae_resnet resnets[2];
    vae_attention attention;
    int has_attention;
} vae_mid_block;

/* One down block of the encoder or up block of the decoder. */
typedef struct vae_level {
    vae_resnet *resnets;
    int resnet_count;
    vae_conv resample; /* downsamplers.0.conv / upsamplers.0.conv; weight.data NULL on the last level */
} vae_level;

typedef struct vae_encoder {
    vae_conv conv_in;
    vae_level levels[VAE_MAX_LEVELS];
    vae_mid_block mid_block;
    vae_group_norm conv_norm_out;
    vae_conv conv_out;
} vae_encoder;

typedef struct vae_decoder {
    vae_conv conv_in;
    vae_mid_block mid_block;
    vae_level levels[VAE_MAX_LEVELS];
    vae_group_norm conv_norm_out;
    vae_conv conv_out;
} vae_decoder;

typedef struct vae_model {
    vae_config cfg;
    backend *be;
    vae_encoder encoder;
    vae_decoder decoder;
    vae_conv quant_conv;      /* weight.data NULL unless use_quant_conv */
    vae_conv post_quant_conv; /* weight.data NULL unless use_post_quant_conv */
    weight_loader weights;    /* norms, linears, conv biases */
    void **conv_weights;      /* device buffers of the 4-D conv kernels (see vae_model.c) */
    int conv_weight_count, conv_weight_capacity;
    int64_t parameters;
} vae_model;

/* Loads <vae_dir>/config.json and its safetensors (vae_dir is a model's vae/
 * folder). Fails naming the file, key or tensor. With random set no weight
 * file is opened: every tensor comes from the Philox stream of (seed, its
 * name) on the device (io/weights.h; --random-weights). */
int vae_model_load(vae_model *model, backend *be, const char *vae_dir, int random, uint64_t seed);

/* Same with an already parsed config and an open safetensors set (NULL when random). */
int vae_model_load_config(vae_model *model, backend *be, const vae_config *cfg, const safetensors *st, int random,
                          uint64_t seed);

void vae_model_free(vae_model *model);

#endif
