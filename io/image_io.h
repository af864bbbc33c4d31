/* Writing images: PNG through libpng (with tEXt metadata) and JPEG through
 * stb_image_write, chosen by the file extension. Every file is written to a
 * temporary name beside the target and renamed into place, so a failed write
 * leaves no partial file and never replaces a good one.
 *
 * Pixels come from the VAE as [3, H, W] floats in [-1, 1]; they become 8-bit
 * RGB as round(clamp(x / 2 + 0.5, 0, 1) * 255), rounding half to even, as
 * diffusers' image processor (numpy) does. */
#ifndef MOEDIT_IO_IMAGE_IO_H
#define MOEDIT_IO_IMAGE_IO_H

#include <stdint.h>

#define IMAGE_MAX_METADATA 24

typedef struct image_metadata {
    const char *keys[IMAGE_MAX_METADATA];
    const char *values[IMAGE_MAX_METADATA];
    int count;
} image_metadata;

/* Adds a key/value pair (both copied by reference: keep them alive). */
void image_metadata_add(image_metadata *meta, const char *key, const char *value);

/* rgb[H * W * 3] (interleaved) from chw[3, H, W] in [-1, 1]. */
void image_from_float(const float *chw, int64_t height, int64_t width, uint8_t *rgb);

/* 1 if path ends with an extension moedit can write (.png, .jpg, .jpeg). */
int image_format_supported(const char *path);

/* Checks up front that path's directory exists and is writable and the
 * extension is supported, so a long run does not fail at its very end. */
int image_check_writable(const char *path);

int image_write(const char *path, const uint8_t *rgb, int64_t width, int64_t height, const image_metadata *meta);

/* Reads a PNG (8 or 16 bit; gray, gray+alpha, RGB, RGBA or palette) or a JPEG
 * into 8-bit RGB (alpha dropped), *rgb malloc'ed [H * W * 3]. The size is
 * checked from the header before any pixel memory is allocated: images with
 * a side over max_side or more than max_pixels pixels are refused. Missing,
 * truncated, corrupt or unsupported files are errors naming the file. */
int image_read(const char *path, int64_t max_side, int64_t max_pixels, uint8_t **rgb, int64_t *width, int64_t *height);

#endif
