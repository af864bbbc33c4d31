/* Images are written as PNG (pixels and tEXt metadata read back intact) or
 * JPEG, float pixels map to bytes as diffusers rounds them, and a write that
 * cannot happen fails with a clear message and leaves no file behind. */
#include "core/error.h"
#include "core/image_io.h"
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

int main(void)
{
    char dir[] = "/tmp/moedit_image_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    pixels_round_like_diffusers();
    png_round_trip_with_metadata(dir);
    jpeg_is_written(dir);
    failures_leave_no_file(dir);
    rmdir(dir);
    return test_finish("test_image_io");
}
