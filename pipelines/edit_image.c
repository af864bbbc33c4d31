/* The input image of an edit; see edit_image.h. */
#include "pipelines/edit_image.h"

#include "core/error.h"
#include "io/image_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t edit_image_round_to_grid(double side, int64_t multiple)
{
    int64_t steps = (int64_t)llround(side / (double)multiple);
    return (steps < 1 ? 1 : steps) * multiple;
}

/* The filter taps of one side: output pixel i reads count[i] input pixels
 * from first[i] with weights[i * width ...]. */
typedef struct taps {
    int64_t width;
    int64_t *first, *count;
    double *weights;
} taps;

static void taps_free(taps *t)
{
    free(t->first);
    free(t->count);
    free(t->weights);
    memset(t, 0, sizeof *t);
}

static double triangle(double x)
{
    x = fabs(x);
    return x < 1 ? 1 - x : 0;
}

/* PIL's precompute_coeffs for the bilinear filter (support 1). */
static int taps_make(taps *t, int64_t in, int64_t out)
{
    double scale = (double)in / (double)out, filter_scale = scale > 1 ? scale : 1, support = filter_scale;
    t->width = (int64_t)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out * sizeof *t->first);
    t->count = malloc((size_t)out * sizeof *t->count);
    t->weights = calloc((size_t)(out * t->width), sizeof *t->weights);
    if (!t->first || !t->count || !t->weights) {
        taps_free(t);
        return error_set("out of memory resizing an image");
    }
    for (int64_t i = 0; i < out; i++) {
        double centre = ((double)i + 0.5) * scale, total = 0;
        int64_t first = (int64_t)(centre - support + 0.5), last = (int64_t)(centre + support + 0.5);
        if (first < 0) first = 0;
        if (last > in) last = in;
        double *w = t->weights + i * t->width;
        for (int64_t x = 0; x < last - first; x++) {
            w[x] = triangle(((double)(x + first) - centre + 0.5) / filter_scale);
            total += w[x];
        }
        for (int64_t x = 0; x < last - first && total > 0; x++) w[x] /= total;
        t->first[i] = first;
        t->count[i] = last - first;
    }
    return 0;
}

/* PIL keeps 8 bits between and after the passes, rounding half up. */
static uint8_t to_8bit(double v)
{
    v = floor(v + 0.5);
    return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

int edit_image_resample(const uint8_t *rgb, int64_t in_w, int64_t in_h, int64_t out_w, int64_t out_h, float *chw)
{
    taps across = {0}, down = {0};
    uint8_t *rows = malloc((size_t)(in_h * out_w * 3));
    if (!rows || taps_make(&across, in_w, out_w) || taps_make(&down, in_h, out_h)) {
        free(rows);
        taps_free(&across);
        taps_free(&down);
        return error_set("out of memory resizing a %lld x %lld image", (long long)in_w, (long long)in_h);
    }
    for (int64_t y = 0; y < in_h; y++)
        for (int64_t x = 0; x < out_w; x++)
            for (int c = 0; c < 3; c++) {
                const double *w = across.weights + x * across.width;
                double sum = 0;
                for (int64_t k = 0; k < across.count[x]; k++) sum += w[k] * rgb[(y * in_w + across.first[x] + k) * 3 + c];
                rows[(y * out_w + x) * 3 + c] = to_8bit(sum);
            }
    for (int64_t y = 0; y < out_h; y++)
        for (int64_t x = 0; x < out_w; x++)
            for (int c = 0; c < 3; c++) {
                const double *w = down.weights + y * down.width;
                double sum = 0;
                for (int64_t k = 0; k < down.count[y]; k++) sum += w[k] * rows[((down.first[y] + k) * out_w + x) * 3 + c];
                chw[(c * out_h + y) * out_w + x] = to_8bit(sum);
            }
    free(rows);
    taps_free(&across);
    taps_free(&down);
    return 0;
}

/* The size to prepare: requested sides as given, the others from the input. */
static void choose_size(edit_image *image, int64_t height, int64_t width, int64_t multiple)
{
    double h = (double)image->source_height, w = (double)image->source_width;
    if (height > 0 && width > 0) {
        image->height = height;
        image->width = width;
    } else if (height > 0) {
        image->height = height;
        image->width = edit_image_round_to_grid((double)height * w / h, multiple);
    } else if (width > 0) {
        image->width = width;
        image->height = edit_image_round_to_grid((double)width * h / w, multiple);
    } else {
        image->height = edit_image_round_to_grid(h, multiple);
        image->width = edit_image_round_to_grid(w, multiple);
    }
}

int edit_image_load(edit_image *image, const char *path, int64_t height, int64_t width, int64_t multiple,
                    int64_t max_side, int64_t max_pixels)
{
    memset(image, 0, sizeof *image);
    uint8_t *rgb = NULL;
    if (image_read(path, max_side, max_pixels, &rgb, &image->source_width, &image->source_height)) return -1;
    choose_size(image, height, width, multiple);
    if (image->height > max_side || image->width > max_side || image->height * image->width > max_pixels) {
        free(rgb);
        return error_set("image %s would be edited at %lld x %lld: larger than moedit accepts (side %lld, %lld "
                         "pixels); pass a smaller --height/--width",
                         path, (long long)image->width, (long long)image->height, (long long)max_side,
                         (long long)max_pixels);
    }
    int64_t plane = image->height * image->width;
    image->pixels = malloc((size_t)(3 * plane) * sizeof(float));
    if (!image->pixels) {
        free(rgb);
        return error_set("out of memory for image %s at %lld x %lld", path, (long long)image->width,
                         (long long)image->height);
    }
    int status = edit_image_resample(rgb, image->source_width, image->source_height, image->width, image->height,
                                     image->pixels);
    free(rgb);
    if (status) {
        edit_image_free(image);
        return -1;
    }
    for (int64_t i = 0; i < 3 * plane; i++) image->pixels[i] = image->pixels[i] / 127.5f - 1.0f;
    return 0;
}

void edit_image_free(edit_image *image)
{
    free(image->pixels);
    image->pixels = NULL;
}
