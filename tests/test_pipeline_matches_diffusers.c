/* moedit_generate on models/tiny-random reproduces the diffusers pipeline
 * fixtures: final latents within 1e-4 of their scale, and the PNG's pixels
 * within 1 (a value can round the other way) with almost all equal; the PNG
 * carries the run's metadata.
 *   pipeline_tiny (tools/make_tiny_model.py): diffusers' denoising loop on
 *     moedit's text conditioning, 48x64; run from the prompt through the
 *     text encoder, and from the same embeddings read from a file.
 *   pipeline_encoders (tools/make_encoder_fixture.py): diffusers' whole
 *     HiDreamImagePipeline with HiDream's four text encoders (tiny random
 *     CLIP, CLIP, T5, Llama) and HiDream-I1-Full's scheduler (UniPC), 64x64;
 *     moedit runs on the embeddings that tools/encode_prompt.py wrote from
 *     those encoders, with models/tiny-random's transformer and VAE and the
 *     fixture's scheduler/.
 *   pipeline_lora (tools/make_lora_fixture.py): the same pipeline with a
 *     LoRA loaded by diffusers' load_lora_weights at strength 0.7; moedit
 *     runs with --lora at 0.7, from the file in diffusers' names and from
 *     the same adapter in kohya's names with an alpha; and with a second
 *     LoRA at -0.4 beside it (two adapters at once, overlapping on to_q). */
#include "core/error.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "test_model_dir.h"
#include "test_png.h"
#include "test_util.h"

#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL TEST_TINY_MODEL
#define PROMPT "a red circle on a blue background"
#define MAX_SIDE 64

typedef struct fixture {
    const char *dir;
    const char *model; /* the model directory moedit runs */
    double lora_scale; /* with a LoRA */
    int height, width;
    double guidance;
    float pixels[3 * MAX_SIDE * MAX_SIDE], latents[4 * (MAX_SIDE / 8) * (MAX_SIDE / 8)];
} fixture;

static long latent_count(const fixture *f) { return 4L * (f->height / 8) * (f->width / 8); }

static void compare_pixels(const fixture *f, const char *what, const char *path)
{
    unsigned char rgb[MAX_SIDE * MAX_SIDE * 3];
    char prompt[256] = "";
    int h = f->height, w = f->width;
    CHECK_MSG(test_png_read(path, f->width, f->height, rgb, prompt, sizeof prompt) == 0, "%s: cannot read %s", what, path);
    int worst = 0, differing = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int d = abs((int)rgb[(y * w + x) * 3 + c] - (int)f->pixels[(c * h + y) * w + x]);
                worst = d > worst ? d : worst;
                differing += d != 0;
            }
    CHECK_MSG(worst <= 1 && differing <= h * w * 3 / 100, "%s: max pixel diff %d, %d values differ", what, worst,
              differing);
    CHECK_MSG(!strcmp(prompt, PROMPT), "%s: prompt metadata '%s'", what, prompt);
    printf("  %-28s max pixel diff %d (%d of %d values differ)\n", what, worst, differing, h * w * 3);
}

static void compare_latents(const fixture *f, const char *what, const char *path)
{
    safetensors *st = NULL;
    float got[4 * (MAX_SIDE / 8) * (MAX_SIDE / 8)];
    int64_t shape[3] = {4, f->height / 8, f->width / 8};
    CHECK_MSG(safetensors_open(&st, path) == 0 && safetensors_read_f32(st, "latents", 3, shape, got) == 0, "%s",
              error_message());
    if (st) safetensors_close(st);
    long n = latent_count(f);
    double diff = test_max_abs_diff(got, f->latents, n), scale = test_max_abs(f->latents, n);
    CHECK_MSG(diff <= 1e-4 * scale, "%s: final latents differ by %.3g (scale %.3g)", what, diff, scale);
    printf("  %-28s final latents max abs diff %.3g (scale %.3g)\n", what, diff, scale);
}

/* The fixture's initial noise, final latents and pixels (io.safetensors). */
static int load_fixture(fixture *f)
{
    char path[512];
    snprintf(path, sizeof path, "%s/io.safetensors", f->dir);
    safetensors *io = NULL;
    int64_t pixels_shape[3] = {3, f->height, f->width}, latents_shape[3] = {4, f->height / 8, f->width / 8};
    if (safetensors_open(&io, path)) return -1;
    int status = safetensors_read_f32(io, "pixels", 3, pixels_shape, f->pixels) ||
                 safetensors_read_f32(io, "final_latents", 3, latents_shape, f->latents);
    safetensors_close(io);
    return status ? -1 : 0;
}

/* moedit_generate from the prompt (text encoder) or from a --prompt-embeds file, with lora_count LoRAs. */
static void run_with(const fixture *f, const char *what, const char *prompt_embeds, const char *const *loras,
                     const double *lora_scales, int lora_count)
{
    char png[] = "/tmp/moedit_pipeline_XXXXXX.png", latents[] = "/tmp/moedit_latents_XXXXXX", noise[512];
    int fd = mkstemps(png, 4);
    close(fd);
    fd = mkstemp(latents);
    close(fd);
    snprintf(noise, sizeof noise, "%s/io.safetensors", f->dir);
    const char *prompts[1] = {PROMPT};
    moedit_generate_options o = {
        .model_dir = f->model, .prompts = prompts, .prompt_count = 1, /* with embeds: the metadata's prompt */
        .prompt_embeds_path = prompt_embeds, .init_noise_path = noise, .height = f->height, .width = f->width,
        .steps = 4, .guidance = f->guidance, .images_per_prompt = 1, .output = png, .latents_output = latents,
        .device = "cpu", .quiet = 1, .lora_paths = loras, .lora_scales = lora_scales, .lora_count = lora_count,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    CHECK_MSG(moedit_generate(&o, r) == 0, "%s: %s", what, error_message());
    CHECK(r->count == 1 && !strcmp(r->files[0], png));
    compare_latents(f, what, latents);
    compare_pixels(f, what, png);
    moedit_generate_result_free(r);
    free(r);
    unlink(png);
    unlink(latents);
}

static void run(const fixture *f, const char *what, const char *prompt_embeds, const char *lora)
{
    run_with(f, what, prompt_embeds, &lora, &f->lora_scale, lora ? 1 : 0);
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    static char unipc_model[64];
    static fixture tiny = {.dir = MOEDIT_FIXTURES "/pipeline_tiny", .model = MODEL, .height = 48, .width = 64,
                           .guidance = 3.0};
    static fixture encoders = {.dir = MOEDIT_FIXTURES "/pipeline_encoders", .model = unipc_model, .height = 64,
                               .width = 64, .guidance = 3.0};
    snprintf(unipc_model, sizeof unipc_model, "/tmp/moedit_model_XXXXXX");
    CHECK(mkdtemp(unipc_model) && rmdir(unipc_model) == 0 &&
          test_model_with_scheduler(unipc_model, MOEDIT_FIXTURES "/pipeline_encoders/scheduler") == 0);
    CHECK_MSG(load_fixture(&tiny) == 0, "%s", error_message());
    run(&tiny, "text encoder", NULL, NULL);
    run(&tiny, "prompt embeds file", MOEDIT_FIXTURES "/pipeline_tiny/prompt_embeds.safetensors", NULL);
    CHECK_MSG(load_fixture(&encoders) == 0, "%s", error_message());
    run(&encoders, "four encoders, UniPC", MOEDIT_FIXTURES "/pipeline_encoders/prompt_embeds.safetensors", NULL);
    test_model_remove(unipc_model);
    static fixture lora = {.dir = MOEDIT_FIXTURES "/pipeline_lora", .model = MODEL, .height = 64, .width = 64,
                           .guidance = 3.0, .lora_scale = 0.7};
    CHECK_MSG(load_fixture(&lora) == 0, "%s", error_message());
    run(&lora, "LoRA, diffusers' names", MOEDIT_FIXTURES "/pipeline_encoders/prompt_embeds.safetensors",
        MOEDIT_FIXTURES "/pipeline_lora/lora.safetensors");
    run(&lora, "LoRA, kohya's names", MOEDIT_FIXTURES "/pipeline_encoders/prompt_embeds.safetensors",
        MOEDIT_FIXTURES "/pipeline_lora/lora_kohya.safetensors");
    static fixture two = {.dir = MOEDIT_FIXTURES "/pipeline_lora/two", .model = MODEL, .height = 64, .width = 64,
                          .guidance = 3.0};
    const char *both[2] = {MOEDIT_FIXTURES "/pipeline_lora/lora.safetensors",
                           MOEDIT_FIXTURES "/pipeline_lora/lora_second.safetensors"};
    const double scales[2] = {0.7, -0.4};
    CHECK_MSG(load_fixture(&two) == 0, "%s", error_message());
    run_with(&two, "two LoRAs, 0.7 and -0.4", MOEDIT_FIXTURES "/pipeline_encoders/prompt_embeds.safetensors", both,
             scales, 2);
    moedit_finalize();
    return test_finish("test_pipeline_matches_diffusers");
}
