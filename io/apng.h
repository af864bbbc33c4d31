/* Animated PNG (APNG) output for video: frames of 8-bit RGB, played in a
 * loop at fps frames per second; written to a temporary name and renamed. */
#ifndef MOEDIT_IO_APNG_H
#define MOEDIT_IO_APNG_H

#include "io/image_io.h"

#include <stdint.h>

int apng_write(const char *path, const uint8_t *const *frames, int count, int64_t width, int64_t height, int fps,
               const image_metadata *meta);

#endif
