/* Patch-parallel VAE: the image split into bands of rows over a process
 * group, each rank computing its band at every resolution.
 *
 * Bands are cut at the latent resolution (layout_split_rows of the latent
 * rows) and scale with the image: at a resolution s times the latent one,
 * rank p holds rows [s * first_p, s * (first_p + rows_p)). Where a
 * convolution reaches past the band it gets halo rows from the neighbours
 * (zeros at the image's top and bottom, exactly as serial padding); GroupNorm
 * statistics are summed over the group; the mid-block attention gathers every
 * band's keys and values. The result equals the serial pass. */
#ifndef MOEDIT_VAE_BANDS_H
#define MOEDIT_VAE_BANDS_H

#include "parallel/process_group.h"
#include "vae/vae_exec.h"

/* This rank's latent rows; fails naming the group when a rank would get none. */
int vae_band_init(vae_exec *ex, process_group *group, int64_t latent_rows);

/* Rows of the whole image at the resolution where this rank holds `local_rows`. */
int64_t vae_band_global_rows(const vae_exec *ex, int64_t local_rows);

/* Rows rank p holds at the resolution where this rank holds `local_rows`. */
int64_t vae_band_rows_of(const vae_exec *ex, int p, int64_t local_rows);

/* from_above[C, top, W] and from_below[C, bottom, W]: the rows of the bands
 * above and below next to this one's x[C, hb, W] (zeros at the image's
 * edges), exchanged with the neighbours. */
int vae_band_halos(const vae_exec *ex, tensor x, int top, int bottom, tensor *from_above, tensor *from_below);

/* padded[C, top + hb + bottom, W] = x[C, hb, W] with `top` rows of the band
 * above and `bottom` rows of the band below (zeros at the image's edges). */
int vae_band_pad_rows(const vae_exec *ex, tensor x, int top, int bottom, tensor *padded);

/* out[rows of every band, ...] = the bands' rows of x, in band order; rows
 * are counted in units of `width` elements. */
int vae_band_gather_tokens(const vae_exec *ex, tensor out, tensor x, int64_t local_rows);

/* acts->x = this rank's band of the host image full[C, global rows, W]
 * (global rows = latent rows * scale). */
int vae_band_upload(const vae_exec *ex, vae_activations *acts, const float *full, int64_t channels, int64_t scale,
                    int64_t width);

/* full[C, global rows, W] (host) = every band of x[C, band rows, W], on every rank. */
int vae_band_collect(const vae_exec *ex, tensor x, float *full);

#endif
