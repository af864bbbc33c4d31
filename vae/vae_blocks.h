/* The building blocks the AutoencoderKL encoder and decoder share, on the
 * backend interface. Images are [C, H, W] tensors of one sample.
 *
 * Every block is written so that a patch-parallel decode (row bands with halo
 * rows, GroupNorm statistics all-reduced over the bands, attention K/V
 * all-gathered) can reuse it: GroupNorm goes through vae_group_norm_forward
 * (local statistics -> [all-reduce] -> apply), every convolution through
 * vae_conv_forward (explicit padding per side: where halo rows will be
 * exchanged), the attention through vae_attention_forward.
 *
 * Blocks write their result into a caller-given tensor `y` that never aliases
 * `x`; scratch tensors come from ex->scratch after a mark and are released
 * before the block returns. Functions that allocate return 0, or -1 with the
 * error set (out of memory). */
#ifndef MOEDIT_VAE_BLOCKS_H
#define MOEDIT_VAE_BLOCKS_H

#include "vae/vae_exec.h"
#include "vae/vae_model.h"

/* y = conv(x): conv->kernel with the given stride and padding {top, bottom,
 * left, right}. In a banded pass the top and bottom padding are the
 * neighbours' halo rows (zeros only at the image's edges). */
int vae_conv_forward(const vae_exec *ex, tensor y, tensor x, const vae_conv *conv, int stride, const int pad[4]);

/* "Same" convolution: kernel k, stride 1, padding k / 2 on every side (3x3 pad 1, 1x1 pad 0). */
int vae_conv_same(const vae_exec *ex, tensor y, tensor x, const vae_conv *conv);

/* y = GroupNorm(x) (eps 1e-6, affine), then SiLU when silu. */
int vae_group_norm_forward(const vae_exec *ex, tensor y, tensor x, const vae_group_norm *norm, int silu);

/* ResnetBlock2D (no time embedding, output_scale_factor 1):
 *   y = shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))
 * shortcut = conv_shortcut (1x1) when channels change, else identity. */
int vae_resnet_forward(const vae_exec *ex, tensor y, tensor x, const vae_resnet *resnet);

/* The mid-block Attention (one head of dimension C, residual connection,
 * rescale_output_factor 1), on the image as a sequence of S = H * W tokens:
 *   t = GroupNorm(x)^T [S, C];  q, k, v = t Wq^T + bq, ...
 *   y = x + (softmax(q k^T / sqrt(C)) v Wo^T + bo)^T */
int vae_attention_forward(const vae_exec *ex, tensor y, tensor x, const vae_attention *attention);

/* x = conv(x) with "same" padding (vae_conv_same). */
int vae_conv_stage(const vae_exec *ex, vae_activations *acts, const vae_conv *conv);

/* x = silu(GroupNorm(x)): conv_norm_out and conv_act. */
int vae_norm_silu_stage(const vae_exec *ex, vae_activations *acts, const vae_group_norm *norm);

/* The resnets of one down or up block, in order. */
int vae_level_resnets_forward(const vae_exec *ex, vae_activations *acts, const vae_level *level);

/* UNetMidBlock2D: resnets[0], attention (when present), resnets[1]. */
int vae_mid_block_forward(const vae_exec *ex, vae_activations *acts, const vae_mid_block *mid);


#endif
