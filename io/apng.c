/* Animated PNG (APNG) writing through libpng.
 *
 * An APNG is a PNG whose first frame is the ordinary image (IDAT), preceded
 * by an acTL chunk (frame count, loop forever) and an fcTL chunk (size,
 * delay); every later frame is an fcTL chunk followed by fdAT chunks: a
 * sequence number and the frame's zlib stream of filtered scanlines, exactly
 * as IDAT holds it. libpng writes the signature, IHDR, text, IDAT and the
 * custom chunks; zlib compresses the later frames. Browsers and most viewers
 * play the result; others show the first frame. */
#define _POSIX_C_SOURCE 200809L
#include "io/apng.h"

#include "core/error.h"
#include "io/png_sink.h"
#include "io/temp_file.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put32(uint8_t *at, uint32_t v)
{
    at[0] = (uint8_t)(v >> 24), at[1] = (uint8_t)(v >> 16), at[2] = (uint8_t)(v >> 8), at[3] = (uint8_t)v;
}

/* fcTL: sequence, size, offset 0, delay 1/fps s, dispose none, blend source. */
static void frame_control(png_structp png, uint32_t sequence, int64_t w, int64_t h, int fps)
{
    uint8_t fctl[26] = {0};
    put32(fctl, sequence);
    put32(fctl + 4, (uint32_t)w);
    put32(fctl + 8, (uint32_t)h);
    fctl[20] = 0, fctl[21] = 1; /* delay numerator 1 */
    fctl[22] = (uint8_t)(fps >> 8), fctl[23] = (uint8_t)fps;
    png_write_chunk(png, (png_const_bytep) "fcTL", fctl, sizeof fctl);
}

/* zlib stream of rows with filter type 0, after a 4-byte sequence number. */
static uint8_t *frame_data(const uint8_t *rgb, int64_t w, int64_t h, uint32_t sequence, size_t *size)
{
    size_t raw_size = (size_t)(h * (w * 3 + 1));
    uint8_t *raw = malloc(raw_size);
    uLongf bound = compressBound((uLong)raw_size);
    uint8_t *out = malloc(4 + bound);
    if (!raw || !out) {
        free(raw), free(out);
        return NULL;
    }
    for (int64_t y = 0; y < h; y++) {
        raw[y * (w * 3 + 1)] = 0;
        memcpy(raw + y * (w * 3 + 1) + 1, rgb + y * w * 3, (size_t)(w * 3));
    }
    put32(out, sequence);
    int status = compress2(out + 4, &bound, raw, (uLong)raw_size, 6);
    free(raw);
    if (status != Z_OK) {
        free(out);
        return NULL;
    }
    *size = 4 + bound;
    return out;
}

/* The frames after the first: fcTL then fdAT each. *pending holds the chunk
 * being written, for the caller to free if libpng fails. */
static void write_later_frames(png_structp png, const uint8_t *const *frames, int count, int64_t w, int64_t h, int fps,
                               uint32_t sequence, uint8_t *volatile *pending)
{
    for (int f = 1; f < count; f++) {
        frame_control(png, sequence++, w, h, fps);
        size_t size = 0;
        *pending = frame_data(frames[f], w, h, sequence++, &size);
        if (!*pending) png_error(png, "compressing a frame failed");
        png_write_chunk(png, (png_const_bytep) "fdAT", *pending, size);
        free(*pending);
        *pending = NULL;
    }
}

static int write_frames(temp_file *file, const uint8_t *const *frames, int count, int64_t w, int64_t h, int fps,
                        const image_metadata *meta)
{
    png_sink sink = {file};
    png_structp png = png_sink_create(&sink);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile data = NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        return png ? error_set("writing %s: out of memory in libpng", file->target) : -1;
    }
    if (setjmp(png_jmpbuf(png))) { /* the sink set the error */
        free(rows), free(data);
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_filter(png, 0, PNG_FILTER_NONE);
    png_text text[IMAGE_MAX_METADATA];
    for (int i = 0; meta && i < meta->count; i++) {
        memset(&text[i], 0, sizeof text[i]);
        text[i].compression = PNG_TEXT_COMPRESSION_NONE;
        text[i].key = (png_charp)meta->keys[i];
        text[i].text = (png_charp)meta->values[i];
    }
    if (meta && meta->count) png_set_text(png, info, text, meta->count);
    png_write_info(png, info);
    uint8_t actl[8];
    put32(actl, (uint32_t)count);
    put32(actl + 4, 0); /* loop forever */
    png_write_chunk(png, (png_const_bytep) "acTL", actl, sizeof actl);
    frame_control(png, 0, w, h, fps);
    rows = malloc((size_t)h * sizeof *rows);
    if (!rows) png_error(png, "out of memory");
    for (int64_t y = 0; y < h; y++) rows[y] = (png_bytep)(frames[0] + y * w * 3);
    png_write_image(png, rows);
    write_later_frames(png, frames, count, w, h, fps, 1, &data);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return 0;
}

int apng_write(const char *path, const uint8_t *const *frames, int count, int64_t width, int64_t height, int fps,
               const image_metadata *meta)
{
    if (count < 1 || fps < 1 || fps > 1000) return error_set("animated PNG %s: %d frames at %d fps", path, count, fps);
    temp_file file;
    if (temp_file_open(&file, path)) return -1;
    if (write_frames(&file, frames, count, width, height, fps, meta)) {
        temp_file_discard(&file);
        return -1;
    }
    return temp_file_commit(&file, 0);
}
