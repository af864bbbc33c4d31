/* Host-side embedding helpers of the transformer: the pieces that are pure
 * index arithmetic or small per-call tables.
 *
 *   timestep sinusoid   diffusers Timesteps(256, flip_sin_to_cos=True, shift=0):
 *                       f_i = exp(-ln(10000) i / 128), emb = [cos(t f), sin(t f)]
 *   rope table          HiDreamImageEmbedND: image token (row r, col c) has ids
 *                       (i, r, c), i = 0 for the target image and 1 for an
 *                       in-context image (FLUX.1 Kontext's index);
 *                       axis a of dim d_a contributes d_a / 2 pairs
 *                       (cos, sin)(id_a * theta^(-2j / d_a)), computed in float64;
 *                       text tokens have ids 0 (identity) and need no table
 *   patchify            latents [C, H, W] -> tokens [pH * pW, p * p * C] with
 *                       feature (py * p + px) * C + c; unpatchify is its inverse */
#ifndef MOEDIT_DIT_EMBED_H
#define MOEDIT_DIT_EMBED_H

#include "dit/dit_config.h"

#include <stdint.h>

#define DIT_TIMESTEP_CHANNELS 256

void dit_timestep_sinusoid(float timestep, float out[DIT_TIMESTEP_CHANNELS]);

/* out[grid_h * grid_w, rope_dim]: the (cos, sin) pairs of every token of the
 * image with index `index` (axis 0 id). */
void dit_rope_table(const dit_config *cfg, int index, int64_t grid_h, int64_t grid_w, float *out);

/* tokens[token_rows, p*p*C]; rows past pH*pW (padding) are zero. */
void dit_patchify(const float *latents, int64_t channels, int64_t height, int64_t width, int patch,
                  int64_t token_rows, float *tokens);
void dit_unpatchify(const float *tokens, int64_t channels, int64_t height, int64_t width, int patch,
                    float *latents);

#endif
