/* moedit_generate on models/tiny-random reproduces the diffusers pipeline
 * fixture (tools/make_tiny_model.py: same weights, same initial noise, CFG,
 * 4 Euler steps, VAE decode): final latents within 1e-4 of their scale, and
 * the PNG's pixels within 1 (a value can round the other way) with almost
 * all equal; prompt embeddings read from a file give the same image as the
 * text encoder; the PNG carries the run's metadata. */
#include "core/error.h"
#include "core/safetensors.h"
#include "moedit.h"
#include "test_util.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL MOEDIT_FIXTURES "/../../models/tiny-random"
#define FIXTURE MOEDIT_FIXTURES "/pipeline_tiny"
#define H 48
#define W 64

static float expected_pixels[3 * H * W], expected_latents[4 * (H / 8) * (W / 8)];

static int read_png(const char *path, unsigned char *rgb, char *prompt, size_t prompt_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    int ok = png_get_image_width(png, info) == W && png_get_image_height(png, info) == H;
    png_bytepp rows = png_get_rows(png, info);
    for (int y = 0; ok && y < H; y++) memcpy(rgb + y * W * 3, rows[y], W * 3);
    png_textp text;
    int count = png_get_text(png, info, &text, NULL);
    for (int i = 0; i < count; i++)
        if (!strcmp(text[i].key, "prompt")) snprintf(prompt, prompt_size, "%s", text[i].text);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return ok ? 0 : -1;
}

static void compare_pixels(const char *what, const char *path)
{
    unsigned char rgb[H * W * 3];
    char prompt[256] = "";
    CHECK_MSG(read_png(path, rgb, prompt, sizeof prompt) == 0, "%s: cannot read %s", what, path);
    int worst = 0, differing = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                int d = abs((int)rgb[(y * W + x) * 3 + c] - (int)expected_pixels[(c * H + y) * W + x]);
                worst = d > worst ? d : worst;
                differing += d != 0;
            }
    CHECK_MSG(worst <= 1 && differing <= H * W * 3 / 100, "%s: max pixel diff %d, %d values differ", what, worst,
              differing);
    CHECK_MSG(!strcmp(prompt, "a red circle on a blue background"), "%s: prompt metadata '%s'", what, prompt);
    printf("  %-22s max pixel diff %d (%d of %d values differ)\n", what, worst, differing, H * W * 3);
}

static void compare_latents(const char *what, const char *path)
{
    safetensors *st = NULL;
    float got[4 * (H / 8) * (W / 8)];
    int64_t shape[3] = {4, H / 8, W / 8};
    CHECK_MSG(safetensors_open(&st, path) == 0 && safetensors_read_f32(st, "latents", 3, shape, got) == 0, "%s",
              error_message());
    if (st) safetensors_close(st);
    long n = 4 * (H / 8) * (W / 8);
    double diff = test_max_abs_diff(got, expected_latents, n), scale = test_max_abs(expected_latents, n);
    CHECK_MSG(diff <= 1e-4 * scale, "%s: final latents differ by %.3g (scale %.3g)", what, diff, scale);
    printf("  %-22s final latents max abs diff %.3g (scale %.3g)\n", what, diff, scale);
}

static void run(const char *what, const char *prompt_embeds)
{
    char png[] = "/tmp/moedit_pipeline_XXXXXX.png", latents[] = "/tmp/moedit_latents_XXXXXX";
    int fd = mkstemps(png, 4);
    close(fd);
    fd = mkstemp(latents);
    close(fd);
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {
        .model_dir = MODEL, .prompts = prompts, .prompt_count = prompt_embeds ? 0 : 1,
        .prompt_embeds_path = prompt_embeds, .init_noise_path = FIXTURE "/io.safetensors", .height = H, .width = W,
        .steps = 4, .guidance = 3.0, .images_per_prompt = 1, .output = png, .latents_output = latents,
        .device = "cpu", .quiet = 1,
    };
    if (prompt_embeds) o.prompt_count = 1; /* the prompt text still goes into the metadata */
    moedit_generate_result *r = calloc(1, sizeof *r);
    CHECK_MSG(moedit_generate(&o, r) == 0, "%s: %s", what, error_message());
    CHECK(r->count == 1 && !strcmp(r->files[0], png));
    compare_latents(what, latents);
    compare_pixels(what, png);
    free(r);
    unlink(png);
    unlink(latents);
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    safetensors *io = NULL;
    int64_t pixels_shape[3] = {3, H, W}, latents_shape[3] = {4, H / 8, W / 8};
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    CHECK(safetensors_read_f32(io, "pixels", 3, pixels_shape, expected_pixels) == 0);
    CHECK(safetensors_read_f32(io, "final_latents", 3, latents_shape, expected_latents) == 0);
    safetensors_close(io);
    run("text encoder", NULL);
    run("prompt embeds file", FIXTURE "/prompt_embeds.safetensors");
    moedit_finalize();
    return test_finish("test_pipeline_matches_diffusers");
}
