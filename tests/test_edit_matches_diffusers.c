/* moedit_edit on models/tiny-random reproduces diffusers
 * (tools/make_edit_fixture.py, tests/fixtures/edit_tiny) from the same input
 * picture, prompt embeddings and noise, 4 steps with CFG 3:
 *   SDEdit, strength 0.5: the VAE mean of the input, scaled, noised by
 *     scale_noise to sigma of step 2, steps 2 and 3 run, decoded;
 *   in-context editing: from the noise, the input's latents as context
 *     tokens (RoPE index 1) at every step, through a non-square padded
 *     target;
 * final latents within 1e-4 of their scale and the PNG's pixels within 1.
 * Strength 1 is generate: the same final latents, bit for bit, from the same
 * noise. The output carries the edit's metadata. */
#include "core/error.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "test_util.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL MOEDIT_FIXTURES "/../../models/tiny-random"
#define FIXTURE MOEDIT_FIXTURES "/edit_tiny"
#define EMBEDS MOEDIT_FIXTURES "/pipeline_tiny/prompt_embeds.safetensors"
#define H 48
#define W 64
#define LATENTS (4 * (H / 8) * (W / 8))

static int read_fixture(const char *name, float *out, int64_t c, int64_t h, int64_t w)
{
    safetensors *io = NULL;
    int64_t shape[3] = {c, h, w};
    int status = safetensors_open(&io, FIXTURE "/io.safetensors") || safetensors_read_f32(io, name, 3, shape, out);
    if (io) safetensors_close(io);
    return status ? -1 : 0;
}

static int read_latents(const char *path, float *out)
{
    safetensors *st = NULL;
    int64_t shape[3] = {4, H / 8, W / 8};
    int status = safetensors_open(&st, path) || safetensors_read_f32(st, "latents", 3, shape, out);
    if (st) safetensors_close(st);
    return status ? -1 : 0;
}

/* The value of a PNG text key ("" if none). */
static void read_png_text(const char *path, const char *key, char *value, size_t size)
{
    value[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_read_info(png, info);
    png_textp text;
    int count = png_get_text(png, info, &text, NULL);
    for (int i = 0; i < count; i++)
        if (!strcmp(text[i].key, key)) snprintf(value, size, "%s", text[i].text);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
}

static void compare_pixels(const char *what, const char *path, const char *fixture_name)
{
    static float want[3 * H * W];
    uint8_t *rgb = NULL;
    int64_t w = 0, h = 0;
    CHECK_MSG(read_fixture(fixture_name, want, 3, H, W) == 0, "%s", error_message());
    CHECK_MSG(image_read(path, 4096, 1 << 24, &rgb, &w, &h) == 0 && w == W && h == H, "%s: %s", what,
              error_message());
    if (!rgb) return;
    int worst = 0, differing = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                int d = abs((int)rgb[(y * W + x) * 3 + c] - (int)want[(c * H + y) * W + x]);
                worst = d > worst ? d : worst;
                differing += d != 0;
            }
    free(rgb);
    CHECK_MSG(worst <= 1 && differing <= H * W * 3 / 100, "%s: max pixel diff %d, %d values differ", what, worst,
              differing);
    printf("  %-26s max pixel diff %d (%d of %d values differ)\n", what, worst, differing, H * W * 3);
}

/* Runs an edit (mode, strength) or, with image NULL, a generate; the final latents into `latents`. */
static int run(const char *image, moedit_edit_mode mode, double strength, const char *png, float *latents)
{
    char latents_path[] = "/tmp/moedit_edit_latents_XXXXXX";
    close(mkstemp(latents_path));
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {
        .model_dir = MODEL, .prompts = prompts, .prompt_count = 1, .prompt_embeds_path = EMBEDS,
        .init_noise_path = FIXTURE "/io.safetensors", .height = image ? 0 : H, .width = image ? 0 : W, .steps = 4,
        .guidance = 3.0, .images_per_prompt = 1, .output = png, .latents_output = latents_path, .device = "cpu",
        .quiet = 1,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    moedit_edit_options e = {o, image, mode, strength};
    int status = image ? moedit_edit(&e, r) : moedit_generate(&o, r);
    if (status == 0) status = read_latents(latents_path, latents);
    if (status == 0 && r->count != 1) status = error_set("%d files written", r->count);
    moedit_generate_result_free(r);
    free(r);
    unlink(latents_path);
    return status;
}

static void check_edit(const char *what, moedit_edit_mode mode, double strength, const char *latents_name,
                       const char *pixels_name)
{
    char png[] = "/tmp/moedit_edit_XXXXXX.png";
    close(mkstemps(png, 4));
    float got[LATENTS], want[LATENTS];
    CHECK_MSG(run(FIXTURE "/input.png", mode, strength, png, got) == 0, "%s: %s", what, error_message());
    CHECK_MSG(read_fixture(latents_name, want, 4, H / 8, W / 8) == 0, "%s", error_message());
    double diff = test_max_abs_diff(got, want, LATENTS), scale = test_max_abs(want, LATENTS);
    CHECK_MSG(diff <= 1e-4 * scale, "%s: final latents differ by %.3g (scale %.3g)", what, diff, scale);
    printf("  %-26s final latents max abs diff %.3g (scale %.3g)\n", what, diff, scale);
    compare_pixels(what, png, pixels_name);
    char value[256];
    read_png_text(png, "edit_mode", value, sizeof value);
    CHECK_MSG(!strcmp(value, mode == MOEDIT_EDIT_CONTEXT ? "context" : "strength"), "%s: edit_mode '%s'", what, value);
    read_png_text(png, "input_image", value, sizeof value);
    CHECK_MSG(strstr(value, "input.png") != NULL, "%s: input_image '%s'", what, value);
    unlink(png);
}

static void strength_one_is_generate(void)
{
    char png[] = "/tmp/moedit_edit_XXXXXX.png";
    close(mkstemps(png, 4));
    float edited[LATENTS], generated[LATENTS];
    CHECK_MSG(run(FIXTURE "/input.png", MOEDIT_EDIT_STRENGTH, 1.0, png, edited) == 0, "%s", error_message());
    CHECK_MSG(run(NULL, MOEDIT_EDIT_STRENGTH, 0, png, generated) == 0, "%s", error_message());
    double diff = test_max_abs_diff(edited, generated, LATENTS);
    CHECK_MSG(diff == 0, "strength 1 differs from generate by %.3g", diff);
    printf("  %-26s final latents max abs diff %.3g vs generate\n", "SDEdit strength 1", diff);
    unlink(png);
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    check_edit("SDEdit strength 0.5", MOEDIT_EDIT_STRENGTH, 0.5, "sdedit_final_latents", "sdedit_pixels");
    check_edit("in-context", MOEDIT_EDIT_CONTEXT, 0, "context_final_latents", "context_pixels");
    strength_one_is_generate();
    moedit_finalize();
    return test_finish("test_edit_matches_diffusers");
}
