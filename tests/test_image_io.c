/* Images are written as PNG (pixels and tEXt metadata read back intact) or
 * JPEG, float pixels map to bytes as diffusers rounds them, and a write that
 * cannot happen fails with a clear message and leaves no file behind. */
#include "core/error.h"
#include "io/image_io.h"
#include "test_util.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void pixels_round_like_diffusers(void)
{
    /* x = -1 -> 0, 1 -> 255, 0 -> round(127.5) = 128, out of range clamps */
    float chw[3 * 4] = {-1, 1, 0, 7, -5, 0.5f, -0.5f, 0.00392157f, 1, 1, 1, 1};
    uint8_t rgb[12];
    image_from_float(chw, 1, 4, rgb);
    CHECK(rgb[0] == 0 && rgb[3] == 255 && rgb[6] == 128 && rgb[9] == 255);
    CHECK(rgb[1] == 0 && rgb[4] == 191 && rgb[7] == 64);
}

static void png_round_trip_with_metadata(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.png", dir);
    uint8_t rgb[5 * 3 * 3];
    for (int i = 0; i < (int)sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    image_metadata meta = {0};
    image_metadata_add(&meta, "prompt", "a red circle on a blue background");
    image_metadata_add(&meta, "seed", "42");
    CHECK_MSG(image_write(path, rgb, 5, 3, &meta) == 0, "%s", error_message());

    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    CHECK(png_get_image_width(png, info) == 5 && png_get_image_height(png, info) == 3);
    png_bytepp rows = png_get_rows(png, info);
    for (int y = 0; y < 3; y++) CHECK(memcmp(rows[y], rgb + y * 15, 15) == 0);
    png_textp text = NULL;
    int count = png_get_text(png, info, &text, NULL);
    CHECK(count == 2);
    CHECK(count == 2 && !strcmp(text[0].key, "prompt") && !strcmp(text[0].text, "a red circle on a blue background"));
    CHECK(count == 2 && !strcmp(text[1].key, "seed") && !strcmp(text[1].text, "42"));
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    unlink(path);
}

static void jpeg_is_written(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.JPG", dir);
    uint8_t rgb[16 * 16 * 3] = {0};
    CHECK_MSG(image_write(path, rgb, 16, 16, NULL) == 0, "%s", error_message());
    FILE *f = fopen(path, "rb");
    unsigned char magic[2] = {0};
    CHECK(f && fread(magic, 1, 2, f) == 2 && magic[0] == 0xff && magic[1] == 0xd8);
    if (f) fclose(f);
    unlink(path);
}

static void failures_leave_no_file(const char *dir)
{
    uint8_t rgb[3] = {1, 2, 3};
    char path[512];
    snprintf(path, sizeof path, "%s/missing/out.png", dir);
    CHECK(image_check_writable(path) != 0);
    CHECK_MSG(strstr(error_message(), "not writable") != NULL, "%s", error_message());
    CHECK(image_write(path, rgb, 1, 1, NULL) != 0);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/out.bmp", dir);
    CHECK(image_check_writable(path) != 0);
    CHECK_MSG(strstr(error_message(), "unsupported image format") != NULL, "%s", error_message());
    CHECK(image_write(path, rgb, 1, 1, NULL) != 0);
    CHECK(access(path, F_OK) != 0);
}

/* Writes a PNG of the given color type and bit depth whose pixel (x, y)
 * has gray/red level 10 x + 40 y (palette: the same as an index); with
 * header_only the file stops after the header, as if truncated. */
static void write_png_variant(const char *path, int color_type, int depth, int width, int height, int header_only)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, width, height, depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color palette[256];
    for (int i = 0; i < 256; i++) palette[i] = (png_color){(png_byte)i, (png_byte)(255 - i), 7};
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, palette, 256);
    png_write_info(png, info);
    if (!header_only) {
        int channels = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGBA ? 4 : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
        int bytes = depth == 16 ? 2 : 1;
        unsigned char row[64 * 4 * 2];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++) {
                    int level = 10 * x + 40 * y;
                    unsigned char *at = row + (x * channels + c) * bytes;
                    at[0] = (unsigned char)level;
                    if (bytes == 2) at[1] = 0x55; /* low byte: dropped when stripped to 8 bits */
                }
            png_write_row(png, row);
        }
        png_write_end(png, NULL);
    }
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void reads_every_png_kind(const char *dir)
{
    struct { int type, depth; const char *name; } kinds[] = {
        {PNG_COLOR_TYPE_GRAY, 8, "gray8"}, {PNG_COLOR_TYPE_GRAY, 16, "gray16"}, {PNG_COLOR_TYPE_GRAY_ALPHA, 8, "graya"},
        {PNG_COLOR_TYPE_RGB, 8, "rgb8"}, {PNG_COLOR_TYPE_RGB, 16, "rgb16"}, {PNG_COLOR_TYPE_RGBA, 8, "rgba8"},
        {PNG_COLOR_TYPE_PALETTE, 8, "palette"},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.png", dir, kinds[k].name);
        write_png_variant(path, kinds[k].type, kinds[k].depth, 5, 3, 0);
        uint8_t *rgb = NULL;
        int64_t w = 0, h = 0;
        CHECK_MSG(image_read(path, 4096, 1 << 24, &rgb, &w, &h) == 0, "%s: %s", kinds[k].name, error_message());
        CHECK(w == 5 && h == 3);
        if (rgb) { /* pixel (2, 1): level 60 */
            uint8_t *p = rgb + (1 * 5 + 2) * 3;
            int palette = kinds[k].type == PNG_COLOR_TYPE_PALETTE;
            CHECK_MSG(p[0] == 60 && p[1] == (palette ? 195 : 60) && p[2] == (palette ? 7 : 60), "%s: %d %d %d",
                      kinds[k].name, p[0], p[1], p[2]);
        }
        free(rgb);
        unlink(path);
    }
}

static void reads_back_written_jpeg(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/flat.jpg", dir);
    uint8_t flat[16 * 8 * 3];
    for (int i = 0; i < (int)sizeof flat; i += 3) flat[i] = 200, flat[i + 1] = 30, flat[i + 2] = 90;
    CHECK(image_write(path, flat, 16, 8, NULL) == 0);
    uint8_t *rgb = NULL;
    int64_t w = 0, h = 0;
    CHECK_MSG(image_read(path, 4096, 1 << 24, &rgb, &w, &h) == 0, "%s", error_message());
    CHECK(w == 16 && h == 8 && rgb && abs(rgb[0] - 200) <= 3 && abs(rgb[1] - 30) <= 3 && abs(rgb[2] - 90) <= 3);
    free(rgb);
    unlink(path);
}

static void expect_read_error(const char *path, const char *needle)
{
    uint8_t *rgb = NULL;
    int64_t w, h;
    CHECK_MSG(image_read(path, 4096, 1 << 24, &rgb, &w, &h) != 0, "%s was read", path);
    CHECK_MSG(strstr(error_message(), needle) && strstr(error_message(), path), "%s: '%s' lacks '%s'", path,
              error_message(), needle);
    CHECK(rgb == NULL);
    printf("  %s\n", error_message());
}

static void bad_images_are_clear_errors(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/missing.png", dir);
    expect_read_error(path, "cannot read image");
    snprintf(path, sizeof path, "%s/empty.png", dir);
    fclose(fopen(path, "wb"));
    expect_read_error(path, "is empty");
    snprintf(path, sizeof path, "%s/text.png", dir);
    FILE *f = fopen(path, "wb");
    fputs("GIF89a definitely not a png", f);
    fclose(f);
    expect_read_error(path, "neither PNG nor JPEG");
    snprintf(path, sizeof path, "%s/huge.png", dir); /* header of a 100000 x 100000 image, no pixels */
    write_png_variant(path, PNG_COLOR_TYPE_RGB, 8, 100000, 100000, 1);
    expect_read_error(path, "larger than moedit accepts");
    snprintf(path, sizeof path, "%s/truncated.png", dir);
    write_png_variant(path, PNG_COLOR_TYPE_RGB, 8, 64, 64, 1); /* the header promises rows that never come */
    expect_read_error(path, "not a readable PNG");
    snprintf(path, sizeof path, "%s/corrupt.jpg", dir);
    f = fopen(path, "wb");
    fputs("\xff\xd8\xff\xe0 garbage after a JPEG signature", f);
    fclose(f);
    expect_read_error(path, "not a readable JPEG");
    const char *names[] = {"empty.png", "text.png", "huge.png", "truncated.png", "corrupt.jpg"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
}

int main(void)
{
    char dir[] = "/tmp/moedit_image_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    pixels_round_like_diffusers();
    png_round_trip_with_metadata(dir);
    jpeg_is_written(dir);
    failures_leave_no_file(dir);
    reads_every_png_kind(dir);
    reads_back_written_jpeg(dir);
    bad_images_are_clear_errors(dir);
    rmdir(dir);
    return test_finish("test_image_io");
}
