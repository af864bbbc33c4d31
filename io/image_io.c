/* PNG/JPEG writing with temporary file and rename; see image_io.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/image_io.h"

#include "core/error.h"
#include "io/output_check.h"
#include "io/png_sink.h"
#include "io/temp_file.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stb/stb_image_write.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void image_metadata_add(image_metadata *meta, const char *key, const char *value)
{
    if (meta->count == IMAGE_MAX_METADATA || !value) return;
    meta->keys[meta->count] = key;
    meta->values[meta->count] = value;
    meta->count++;
}

void image_from_float(const float *chw, int64_t height, int64_t width, uint8_t *rgb)
{
    int64_t plane = height * width;
    for (int64_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float v = chw[c * plane + i] / 2.0f + 0.5f;
            v = v >= 0 ? (v > 1 ? 1 : v) : 0; /* NaN to 0: a cast of NaN is undefined (callers refuse NaN first) */
            rgb[i * 3 + c] = (uint8_t)rintf(v * 255.0f); /* half to even, like numpy's round */
        }
}

static const char *extension(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    return (dot && (!slash || dot > slash)) ? dot + 1 : "";
}

static int is_png(const char *path) { return strcasecmp(extension(path), "png") == 0; }

static int is_jpeg(const char *path)
{
    return strcasecmp(extension(path), "jpg") == 0 || strcasecmp(extension(path), "jpeg") == 0;
}

int image_format_supported(const char *path) { return is_png(path) || is_jpeg(path); }

int image_check_writable(const char *path)
{
    if (output_check_writable(path, NULL)) return -1; /* a directory, or one that cannot be written */
    if (image_format_supported(path)) return 0;
    if (!*extension(path)) return error_set("output %s has no .png or .jpg extension", path);
    return error_set("output %s: unsupported image format '.%s' (use .png or .jpg)", path, extension(path));
}

static int write_png(temp_file *file, const uint8_t *rgb, int64_t width, int64_t height, const image_metadata *meta)
{
    png_sink sink = {file};
    png_structp png = png_sink_create(&sink);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        return png ? error_set("writing %s: out of memory in libpng", file->target) : -1;
    }
    png_bytep *rows = malloc((size_t)height * sizeof *rows);
    if (!rows || setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_write_struct(&png, &info);
        return rows ? -1 : error_set("writing %s: out of memory", file->target); /* the sink set the error */
    }
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text[IMAGE_MAX_METADATA];
    int count = meta ? meta->count : 0;
    for (int i = 0; i < count; i++) {
        memset(&text[i], 0, sizeof text[i]);
        text[i].compression = PNG_TEXT_COMPRESSION_NONE;
        text[i].key = (png_charp)meta->keys[i];
        text[i].text = (png_charp)meta->values[i];
    }
    if (count) png_set_text(png, info, text, count);
    for (int64_t y = 0; y < height; y++) rows[y] = (png_bytep)(rgb + y * width * 3);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return 0;
}

static void jpeg_to_file(void *context, void *data, int size) { temp_file_write(context, data, (size_t)size); }

int image_write(const char *path, const uint8_t *rgb, int64_t width, int64_t height, const image_metadata *meta)
{
    if (!image_format_supported(path)) return image_check_writable(path);
    temp_file file;
    if (temp_file_open(&file, path)) return -1;
    int status = 0;
    if (is_png(path)) status = write_png(&file, rgb, width, height, meta);
    else if (!stbi_write_jpg_to_func(jpeg_to_file, &file, (int)width, (int)height, 3, rgb, 95))
        status = error_set("writing %s: JPEG encoder failed", path);
    if (status != 0) {
        temp_file_discard(&file);
        return -1;
    }
    return temp_file_commit(&file, 0);
}
