/* Reading PNG (libpng) and JPEG (stb_image) into 8-bit RGB; see image_io.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/image_io.h"

#include "core/error.h"
#include "core/file_open.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stb/stb_image.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_size(const char *path, int64_t width, int64_t height, int64_t max_side, int64_t max_pixels)
{
    if (width < 1 || height < 1) return error_set("image %s has no pixels (%lld x %lld)", path, (long long)width, (long long)height);
    if (width > max_side || height > max_side || width * height > max_pixels)
        return error_set("image %s is %lld x %lld: larger than moedit accepts (side %lld, %lld pixels)", path,
                         (long long)width, (long long)height, (long long)max_side, (long long)max_pixels);
    return 0;
}

/* libpng's warnings (a damaged chunk it reads past) would print on stderr
 * beside moedit's one error line; what libpng cannot read is an error. */
static void png_ignore_warning(png_structp png, png_const_charp message)
{
    (void)png, (void)message;
}

/* libpng reports errors by longjmp; the message goes to the error path. */
static void png_error_message(png_structp png, png_const_charp message)
{
    error_set("%s", message);
    png_longjmp(png, 1);
}

static int read_png(FILE *f, const char *path, int64_t max_side, int64_t max_pixels, uint8_t **rgb, int64_t *w,
                    int64_t *h)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_error_message, png_ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return error_set("reading %s: out of memory in libpng", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return error_prefix("image %s is not a readable PNG", path);
    }
    png_init_io(png, f);
    png_read_info(png, info);
    int64_t width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (check_size(path, width, height, max_side, max_pixels)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    /* Everything to 8-bit RGB: expand palette and low-bit gray, strip 16 bits and alpha, gray to RGB. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_read_update_info(png, info);
    pixels = malloc((size_t)(width * height * 3));
    rows = malloc((size_t)height * sizeof *rows);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (int64_t y = 0; y < height; y++) rows[y] = pixels + y * width * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *rgb = pixels;
    *w = width;
    *h = height;
    return 0;
}

static int read_jpeg(FILE *f, const char *path, int64_t max_side, int64_t max_pixels, uint8_t **rgb, int64_t *w,
                     int64_t *h)
{
    int width, height, channels;
    /* stb_image probes every format in turn, so its last reason names
     * another format's failure ("bad png sig"): say what failed instead. */
    if (!stbi_info_from_file(f, &width, &height, &channels))
        return error_set("image %s is not a readable JPEG: its header is truncated or corrupt", path);
    if (check_size(path, width, height, max_side, max_pixels)) return -1;
    unsigned char *pixels = stbi_load_from_file(f, &width, &height, &channels, 3);
    if (!pixels) return error_set("image %s is not a readable JPEG: its data is truncated or corrupt", path);
    *rgb = malloc((size_t)width * height * 3);
    if (!*rgb) {
        stbi_image_free(pixels);
        return error_set("out of memory reading %s", path);
    }
    memcpy(*rgb, pixels, (size_t)width * height * 3);
    stbi_image_free(pixels);
    *w = width;
    *h = height;
    return 0;
}

int image_read(const char *path, int64_t max_side, int64_t max_pixels, uint8_t **rgb, int64_t *width, int64_t *height)
{
    *rgb = NULL;
    struct stat st;
    int fd = file_open_read(path, &st); /* a FIFO would block a plain open forever */
    const char *why = fd < 0 ? strerror(errno) : file_not_regular(&st);
    FILE *f = why ? NULL : fdopen(fd, "rb");
    if (!f) {
        if (!why) why = strerror(errno);
        if (fd >= 0) close(fd);
        return error_set("cannot read image %s: %s", path, why);
    }
    unsigned char magic[24] = {0};
    errno = 0;
    size_t got = fread(magic, 1, sizeof magic, f);
    int read_errno = ferror(f) ? errno : 0; /* e.g. EISDIR: fopen opens a directory for reading */
    rewind(f);
    int status;
    if (got >= 8 && png_sig_cmp(magic, 0, 8) == 0) {
        /* The size sits in the IHDR chunk (bytes 16..23): refuse huge images
         * before libpng reads further. */
        int64_t w = got == 24 ? ((int64_t)magic[16] << 24 | magic[17] << 16 | magic[18] << 8 | magic[19]) : 1;
        int64_t h = got == 24 ? ((int64_t)magic[20] << 24 | magic[21] << 16 | magic[22] << 8 | magic[23]) : 1;
        status = check_size(path, w, h, max_side, max_pixels);
        if (status == 0) status = read_png(f, path, max_side, max_pixels, rgb, width, height);
    }
    else if (got >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff)
        status = read_jpeg(f, path, max_side, max_pixels, rgb, width, height);
    else if (got == 0 && read_errno) status = error_set("cannot read image %s: %s", path, strerror(read_errno));
    else if (got == 0) status = error_set("image %s is empty", path);
    else status = error_set("image %s is neither PNG nor JPEG", path);
    fclose(f);
    return status;
}
