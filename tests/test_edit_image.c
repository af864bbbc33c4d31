/* The input image of an edit (pipelines/edit_image.c): resampling equals
 * PIL's resize(BILINEAR) (tools/make_edit_fixture.py) within one 8-bit level
 * when shrinking, enlarging and both at once; an unchanged size is an exact
 * copy; sizes round to the nearest grid multiple and keep the aspect ratio
 * when one side is given; pixels are x / 127.5 - 1; oversized requests are
 * refused before allocation. */
#include "core/error.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "pipelines/edit_image.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define INPUT MOEDIT_FIXTURES "/edit_tiny/input.png"

static uint8_t *rgb;
static int64_t in_w, in_h;

static void matches_pil(const char *name, int64_t w, int64_t h)
{
    float *want = malloc((size_t)(3 * w * h) * sizeof(float)), *got = malloc((size_t)(3 * w * h) * sizeof(float));
    safetensors *io = NULL;
    int64_t shape[3] = {3, h, w};
    CHECK_MSG(safetensors_open(&io, MOEDIT_FIXTURES "/edit_tiny/io.safetensors") == 0 &&
                  safetensors_read_f32(io, name, 3, shape, want) == 0,
              "%s", error_message());
    if (io) safetensors_close(io);
    CHECK(edit_image_resample(rgb, in_w, in_h, w, h, got) == 0);
    double diff = test_max_abs_diff(got, want, 3 * w * h);
    long differing = 0;
    for (int64_t i = 0; i < 3 * w * h; i++) differing += got[i] != want[i];
    CHECK_MSG(diff <= 1, "%s: max diff %.0f levels from PIL", name, diff);
    printf("  %-16s %lld x %lld -> %lld x %lld: max diff %.0f from PIL (%ld of %lld values differ)\n", name,
           (long long)in_w, (long long)in_h, (long long)w, (long long)h, diff, differing, (long long)(3 * w * h));
    free(want), free(got);
}

static void same_size_is_a_copy(void)
{
    float *got = malloc((size_t)(3 * in_w * in_h) * sizeof(float));
    CHECK(edit_image_resample(rgb, in_w, in_h, in_w, in_h, got) == 0);
    int exact = 1;
    for (int64_t y = 0; y < in_h; y++)
        for (int64_t x = 0; x < in_w; x++)
            for (int c = 0; c < 3; c++) exact &= got[(c * in_h + y) * in_w + x] == rgb[(y * in_w + x) * 3 + c];
    CHECK_MSG(exact, "resampling to the same size changed pixels");
    free(got);
}

static void sizes_and_scaling(void)
{
    CHECK(edit_image_round_to_grid(48, 16) == 48);
    CHECK(edit_image_round_to_grid(55, 16) == 48);
    CHECK(edit_image_round_to_grid(56, 16) == 64); /* half rounds away from zero */
    CHECK(edit_image_round_to_grid(3, 16) == 16);  /* never below one multiple */
    edit_image image;
    CHECK_MSG(edit_image_load(&image, INPUT, 0, 0, 16, 4096, 1 << 24) == 0, "%s", error_message());
    CHECK(image.width == 64 && image.height == 48 && image.source_width == 64 && image.source_height == 48);
    int exact = 1;
    for (int64_t i = 0; i < 48 * 64 && image.pixels; i++)
        exact &= image.pixels[i] == (float)rgb[i * 3] / 127.5f - 1.0f; /* red plane */
    CHECK_MSG(exact, "pixels are not x / 127.5 - 1");
    edit_image_free(&image);
    CHECK(edit_image_load(&image, INPUT, 96, 0, 16, 4096, 1 << 24) == 0 && image.width == 128 && image.height == 96);
    edit_image_free(&image);
    CHECK(edit_image_load(&image, INPUT, 0, 32, 16, 4096, 1 << 24) == 0 && image.width == 32 && image.height == 32);
    edit_image_free(&image);
    CHECK(edit_image_load(&image, INPUT, 32, 160, 16, 4096, 1 << 24) == 0 && image.width == 160 && image.height == 32);
    edit_image_free(&image);
    /* The file fits the limits, the requested size does not. */
    CHECK(edit_image_load(&image, INPUT, 8192, 0, 16, 4096, 1 << 24) != 0);
    CHECK_MSG(strstr(error_message(), "larger than moedit accepts") != NULL, "got: %s", error_message());
    /* The file itself is over the limits: refused from its header. */
    CHECK(edit_image_load(&image, INPUT, 0, 0, 16, 32, 1 << 24) != 0);
    CHECK_MSG(strstr(error_message(), "is 64 x 48: larger than") != NULL, "got: %s", error_message());
}

int main(void)
{
    CHECK_MSG(image_read(INPUT, 4096, 1 << 24, &rgb, &in_w, &in_h) == 0, "%s", error_message());
    if (!rgb) return test_finish("test_edit_image");
    matches_pil("resized_37x29", 37, 29);
    matches_pil("resized_100x80", 100, 80);
    matches_pil("resized_64x16", 64, 16);
    same_size_is_a_copy();
    sizes_and_scaling();
    free(rgb);
    return test_finish("test_edit_image");
}
