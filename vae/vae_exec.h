/* Where a VAE pass runs (the device, scratch memory and, for a patch-parallel
 * pass, the group and this rank's band) and the two activation buffers its
 * stages alternate between. Below the blocks (vae_blocks.h) and the bands
 * (vae_bands.h), which both use them. */
#ifndef MOEDIT_VAE_EXEC_H
#define MOEDIT_VAE_EXEC_H

#include "backend/backend.h"
#include "backend/arena.h"

struct process_group;

/* GroupNorm eps of every norm in AutoencoderKL (resnet_eps, conv_norm_out, attention group_norm). */
#define VAE_NORM_EPS 1e-6f

/* What a pass runs on: the device, scratch memory and, for a patch-parallel
 * pass, the group and this rank's band of latent rows (vae_bands.h). */
typedef struct vae_exec {
    backend *be;
    arena *scratch;
    struct process_group *group; /* NULL or one rank: the whole image here */
    int64_t latent_rows;         /* the whole image's, at the latent resolution */
    int64_t band_first, band_rows;
} vae_exec;

/* 1 when the pass is split over several ranks. */
int vae_banded(const vae_exec *ex);

/* A [C, H, W] view of device memory. */
tensor vae_image(const backend *be, void *data, int64_t channels, int64_t height, int64_t width);

/* A [C, H, W] tensor from the scratch arena (data NULL, error set, when out of memory). */
tensor vae_scratch_image(const vae_exec *ex, int64_t channels, int64_t height, int64_t width);

/* The activation of a pass and the two device buffers its stages alternate
 * between: a stage reads x from one buffer and writes its result into the
 * other (vae_activations_next), which then becomes x (vae_activations_advance).
 * Each buffer holds the pass's largest activation. */
typedef struct vae_activations {
    backend *be;
    void *buffer[2];
    int current; /* the buffer holding x */
    tensor x;
} vae_activations;

/* Both buffers of `capacity` elements from the scratch arena. */
int vae_activations_init(vae_activations *acts, const vae_exec *ex, int64_t capacity);

/* A [C, H, W] view of the buffer that does not hold x. */
tensor vae_activations_next(const vae_activations *acts, int64_t channels, int64_t height, int64_t width);

/* y (from vae_activations_next) becomes x. */
void vae_activations_advance(vae_activations *acts, tensor y);

/* x = the host image [C, H, W], in the first buffer. */
void vae_activations_upload(vae_activations *acts, const float *host, int64_t channels, int64_t height,
                            int64_t width);

#endif
