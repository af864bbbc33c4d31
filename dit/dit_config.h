/* Configuration of a HiDreamImageTransformer2DModel, read from a diffusers
 * transformer/config.json with the same key names:
 *   patch_size, in_channels, out_channels, num_layers (double-stream blocks),
 *   num_single_layers, attention_head_dim, num_attention_heads,
 *   caption_channels [t5, llama], text_emb_dim, num_routed_experts,
 *   num_activated_experts, axes_dims_rope, max_resolution, llama_layers.
 * Derived sizes follow diffusers: inner dim C = heads * head_dim; SwiGLU hidden
 * sizes are int(2h/3) rounded up to a multiple of 256 for h = 4C (dense and
 * routed experts) and h = 2C (shared expert). */
#ifndef MOEDIT_DIT_CONFIG_H
#define MOEDIT_DIT_CONFIG_H

#include <stdint.h>

#define DIT_MAX_ROPE_AXES 4
#define DIT_MAX_BLOCKS 256
#define DIT_MAX_SIZE (1 << 20) /* any one size of a config (channels, dims, resolution): far from int's range */

typedef struct dit_config {
    int patch_size;
    int in_channels;
    int out_channels;
    int num_double_blocks;
    int num_single_blocks;
    int head_dim;
    int heads;
    int dim; /* heads * head_dim */
    int caption_channels_t5;
    int caption_channels_llama;
    int text_emb_dim;
    int num_routed_experts; /* 0: dense feed-forward */
    int num_activated_experts;
    int rope_axes;
    int rope_axes_dim[DIT_MAX_ROPE_AXES];
    int rope_dim; /* sum of rope_axes_dim: head_dim (full) or head_dim / 2 */
    double rope_theta;
    int max_resolution[2];
    int llama_layers[DIT_MAX_BLOCKS]; /* one per block, double then single */
    int64_t ffn_hidden;        /* dense FFN and each routed expert */
    int64_t shared_ffn_hidden; /* the shared expert */
} dit_config;

/* Reads and validates path (a transformer config.json). */
int dit_config_load(dit_config *cfg, const char *path);

/* Validates a filled config; errors name `source`. */
int dit_config_validate(const dit_config *cfg, const char *source);

/* diffusers' HiDreamImageFeedForwardSwiGLU hidden size for hidden_dim h. */
int64_t dit_swiglu_hidden(int64_t h);

int dit_num_blocks(const dit_config *cfg);
int dit_is_moe(const dit_config *cfg);

/* Image tokens the transformer sees for a latent grid: pH * pW for square
 * latents; max_seq = max_resolution[0] * max_resolution[1] / patch^2 for
 * non-square ones (diffusers pads them and masks the padded keys). */
int64_t dit_image_tokens(const dit_config *cfg, int64_t latent_h, int64_t latent_w);

/* Parameter counts: total, and active per image token (shared + top-k experts). */
int64_t dit_parameter_count(const dit_config *cfg);
int64_t dit_active_parameter_count(const dit_config *cfg);

#endif
