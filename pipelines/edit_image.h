/* The input image of an edit: read, sized to the grid, resampled and scaled
 * to [-1, 1], as the VAE encoder takes it.
 *
 * Size: a requested side of 0 is the input's own rounded to the nearest
 * multiple m of the grid (VAE factor x patch size), at least m. With one side
 * requested, the other keeps the input's aspect ratio (rounded the same way).
 *
 * Resampling: PIL's Image.resize(BILINEAR), which diffusers' image
 * processors use, in floating point: separable, rows then columns; output
 * pixel i of a side scaled by s = in / out is centred at (i + 0.5) * s in the
 * input, and input pixel j (centre j + 0.5) weighs
 *   max(0, 1 - |j + 0.5 - centre| / support),  support = max(s, 1),
 * normalised over the pixels inside the image. Enlarging is bilinear
 * interpolation; shrinking widens the triangle to cover every input pixel
 * (an area-like average, no aliasing); an unchanged side is copied exactly.
 * The result is rounded to 8 bits as PIL's is, then x / 127.5 - 1. */
#ifndef MOEDIT_PIPELINES_EDIT_IMAGE_H
#define MOEDIT_PIPELINES_EDIT_IMAGE_H

#include <stdint.h>

typedef struct edit_image {
    int64_t source_width, source_height; /* the file's */
    int64_t width, height;               /* on the grid */
    float *pixels;                       /* [3, height, width] in [-1, 1] */
} edit_image;

/* Reads path (PNG or JPEG, size checked from the header against max_side
 * and max_pixels before any pixel memory) and prepares it at height x width
 * (0: as above). The chosen size is checked against the same limits. */
int edit_image_load(edit_image *image, const char *path, int64_t height, int64_t width, int64_t multiple,
                    int64_t max_side, int64_t max_pixels);
void edit_image_free(edit_image *image);

/* The nearest multiple of `multiple` to `side` (at least one multiple). */
int64_t edit_image_round_to_grid(double side, int64_t multiple);

/* chw[3, out_h, out_w] = rgb[in_h, in_w, 3] resampled as above, as 8-bit
 * values (0..255, not yet scaled). */
int edit_image_resample(const uint8_t *rgb, int64_t in_w, int64_t in_h, int64_t out_w, int64_t out_h, float *chw);

#endif
