/* Running an AutoencoderKL: decode latents to an image, encode an image to
 * latents. One sample, host F32 in and out, computed on the model's backend
 * with activations from a caller-owned scratch arena (marked on entry and
 * released on return, so a warm arena does not allocate again).
 *
 * Scaling stays with the caller, as in diffusers pipelines:
 *   decode input = latents / scaling_factor + shift_factor
 *   encode output is the raw posterior mean; the DiT sees (mean - shift_factor) * scaling_factor
 * The encoder returns the mean of the latent distribution (the first
 * latent_channels of its 2 * latent_channels moments): moedit encodes
 * deterministically, with no sampling. */
#ifndef MOEDIT_VAE_VAE_H
#define MOEDIT_VAE_VAE_H

#include "backend/arena.h"
#include "parallel/process_group.h"
#include "vae/vae_model.h"

/* Largest image side, in pixels, either direction accepts. */
#define VAE_MAX_IMAGE_SIDE 65536

/* image[out_channels, downscale * h, downscale * w] = decoder(latents[channels, h, w]),
 * not clamped (about [-1, 1]). channels must equal latent_channels. */
int vae_decode(const vae_model *model, arena *scratch, const float *latents, int64_t channels, int64_t h, int64_t w,
               float *image);

/* latents[latent_channels, H / downscale, W / downscale] = mean of encoder(image[channels, H, W]),
 * image in [-1, 1]. channels must equal in_channels; H and W multiples of downscale. */
int vae_encode(const vae_model *model, arena *scratch, const float *image, int64_t channels, int64_t height,
               int64_t width, float *latents);

/* The same split over the ranks of `group` in bands of rows (vae_bands.h);
 * every rank passes the whole input and receives the whole output. A NULL
 * group or one of one rank is the serial pass. */
int vae_decode_parallel(const vae_model *model, arena *scratch, struct process_group *group, const float *latents,
                        int64_t channels, int64_t h, int64_t w, float *image);
int vae_encode_parallel(const vae_model *model, arena *scratch, struct process_group *group, const float *image,
                        int64_t channels, int64_t height, int64_t width, float *latents);

#endif
