/* HiDream-I1's own text side, native, against diffusers' whole
 * HiDreamImagePipeline on tests/fixtures/hidream_text
 * (tools/make_hidream_text_fixture.py: tiny random CLIP-L, CLIP-G, T5 and
 * Llama 3.1 with real-format tokenizers, models/tiny-random's transformer
 * and VAE):
 *   - hidream_text_encode from the prompt strings gives encode_prompt's
 *     prompt_embeds_t5, prompt_embeds_llama3 and pooled_prompt_embeds for
 *     every case (plain, negative, empty, truncated at 128 tokens, distinct
 *     prompt_2/3/4) within 1e-4 of each tensor's scale; from the pipeline's
 *     own padded ids too (hidream_text_encode_ids: the encoders alone);
 *   - a Llama narrower than the transformer's caption channels is one error;
 *   - moedit_generate --prompt on the folder (CFG 3, 64x64, 4 steps, the
 *     fixture's noise) gives the pipeline's final latents within 1e-4 of
 *     their scale and every pixel within 1, and reports each encoder's time
 *     and peak memory. */
#include "core/error.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "text/hidream_prompt.h"
#include "test_png.h"
#include "test_util.h"

#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURE MOEDIT_FIXTURES "/hidream_text"
#define CASES 5
#define SIDE 64

static void compare(const char *what, int c, const float *got, const float *want, long n)
{
    double scale = test_max_abs(want, n), diff = test_max_abs_diff(got, want, n);
    CHECK_MSG(diff <= 1e-4 * (scale > 1 ? scale : 1), "case %d %s: max abs diff %.3g (scale %.3g)", c, what, diff,
              scale);
    printf("  case %d %-22s max abs diff %.3g (scale %.3g)\n", c, what, diff, scale);
}

static void compare_case(const safetensors *io, int c, const hidream_prompt_embeds *e)
{
    static const char *const names[3] = {"prompt_embeds_t5", "prompt_embeds_llama3", "pooled_prompt_embeds"};
    const float *got[3] = {e->t5, e->llama, e->pooled};
    long sizes[3] = {(long)(e->t5_tokens * e->t5_channels), (long)(e->llama_layers * e->llama_tokens * e->llama_channels),
                     (long)e->pooled_channels};
    CHECK(e->t5_tokens == 128 && e->t5_channels == 32 && e->llama_layers == 2 && e->llama_tokens == 128 &&
          e->llama_channels == 32 && e->pooled_channels == 32);
    for (int i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof name, "case_%d_%s", c, names[i]);
        const safetensors_entry *entry = safetensors_find(io, name);
        float *want = malloc((size_t)sizes[i] * sizeof(float));
        CHECK_MSG(entry && safetensors_read_f32(io, name, entry->ndim, entry->shape, want) == 0, "%s", name);
        if (entry) compare(names[i], c, got[i], want, sizes[i]);
        free(want);
    }
}

/* fixture.json's cases as hidream_prompts (null: NULL, the default). */
static int read_cases(hidream_prompt *prompts, cJSON **root)
{
    char *text = NULL;
    if (text_file_read(FIXTURE "/fixture.json", 1 << 20, "fixture", &text)) return -1;
    *root = cJSON_Parse(text);
    free(text);
    const cJSON *cases = cJSON_GetObjectItem(*root, "cases"), *item;
    static const char *const keys[4] = {"prompt", "prompt_2", "prompt_3", "prompt_4"};
    int c = 0;
    cJSON_ArrayForEach(item, cases)
    {
        for (int k = 0; k < 4 && c < CASES; k++) {
            const cJSON *v = cJSON_GetObjectItem(item, keys[k]);
            prompts[c].text[k] = cJSON_IsString(v) ? v->valuestring : NULL;
        }
        c++;
    }
    return c == CASES ? 0 : -1;
}

static void test_encode_prompt(backend *be, const safetensors *io, const dit_config *dit)
{
    hidream_prompt prompts[CASES];
    cJSON *root = NULL;
    CHECK(read_cases(prompts, &root) == 0);
    hidream_text t;
    hidream_text_options o = {FIXTURE, NULL, 0, 1, 0, 0};
    CHECK_MSG(hidream_text_open(&t, be, &o, dit) == 0, "%s", error_message());
    if (test_failures) {
        cJSON_Delete(root);
        return;
    }
    hidream_prompt_embeds out[CASES];
    CHECK_MSG(hidream_text_encode(&t, prompts, CASES, out) == 0, "%s", error_message());
    for (int c = 0; c < CASES && !test_failures; c++) compare_case(io, c, &out[c]);
    for (int c = 0; c < CASES; c++) hidream_prompt_embeds_free(&out[c]);

    /* The pipeline's own ids, through the encoders alone (kept loaded). */
    int32_t ids[4][128], valid32[4];
    int64_t valid[4], shape[1] = {128}, four[1] = {4};
    char name[64];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "case_3_ids_%d", k + 1);
        CHECK(safetensors_read_i32(io, name, 1, shape, ids[k]) == 0);
    }
    CHECK(safetensors_read_i32(io, "case_3_valid", 1, four, valid32) == 0);
    for (int k = 0; k < 4; k++) valid[k] = valid32[k];
    const int32_t *const id_rows[4] = {ids[0], ids[1], ids[2], ids[3]};
    CHECK_MSG(hidream_text_encode_ids(&t, id_rows, valid, out) == 0, "%s", error_message());
    if (!test_failures) compare_case(io, 3, out);
    hidream_prompt_embeds_free(out);
    for (int k = 0; k < HIDREAM_ENCODERS; k++)
        printf("  %-8s %.3f s, peak %lld B, %d prompts\n", k == 0 ? "CLIP-L" : k == 1 ? "CLIP-G" : k == 2 ? "T5" : "Llama",
               t.usage[k].seconds, (long long)t.usage[k].peak_bytes, t.usage[k].prompts);
    hidream_text_close(&t);

    /* A Llama of another width than the transformer reads: one error line. */
    dit_config wide = *dit;
    wide.caption_channels_llama = 64;
    CHECK(hidream_text_open(&t, be, &o, &wide) != 0);
    CHECK_MSG(strstr(error_message(), "hidden_size 32 differs from the transformer's caption_channels[1] 64"),
              "got: %s", error_message());
    printf("  wide transformer -> %s\n", error_message());
    cJSON_Delete(root);
}

static void test_generate(const safetensors *io)
{
    char png[] = "/tmp/moedit_hidream_XXXXXX.png", latents[] = "/tmp/moedit_hidream_latents_XXXXXX";
    close(mkstemps(png, 4));
    close(mkstemp(latents));
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {
        .model_dir = FIXTURE, .prompts = prompts, .prompt_count = 1, .negative_prompt = "blurry, low quality, watermark",
        .init_noise_path = FIXTURE "/io.safetensors", .height = SIDE, .width = SIDE, .steps = 4, .guidance = 3.0,
        .images_per_prompt = 1, .output = png, .latents_output = latents, .device = "cpu", .quiet = 1,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    CHECK_MSG(moedit_generate(&o, r) == 0, "%s", error_message());
    for (int k = 0; k < 4; k++) CHECK(r->text_encoder_seconds[k] > 0 && r->text_encoder_peak_bytes[k] > 0);

    static float want[4 * 8 * 8], got[4 * 8 * 8], pixels[3 * SIDE * SIDE];
    int64_t shape[3] = {4, 8, 8}, pixel_shape[3] = {3, SIDE, SIDE};
    safetensors *st = NULL;
    CHECK(safetensors_read_f32(io, "final_latents", 3, shape, want) == 0 &&
          safetensors_read_f32(io, "pixels", 3, pixel_shape, pixels) == 0);
    CHECK_MSG(safetensors_open(&st, latents) == 0 && safetensors_read_f32(st, "latents", 3, shape, got) == 0, "%s",
              error_message());
    if (st) safetensors_close(st);
    double diff = test_max_abs_diff(got, want, 256), scale = test_max_abs(want, 256);
    CHECK_MSG(diff <= 1e-4 * scale, "final latents differ by %.3g (scale %.3g)", diff, scale);
    printf("  generate --prompt: final latents max abs diff %.3g (scale %.3g)\n", diff, scale);

    static unsigned char rgb[SIDE * SIDE * 3];
    CHECK_MSG(test_png_read(png, SIDE, SIDE, rgb, NULL, 0) == 0, "cannot read %s", png);
    int worst = 0;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            for (int c = 0; c < 3; c++) {
                int d = abs((int)rgb[(y * SIDE + x) * 3 + c] - (int)pixels[(c * SIDE + y) * SIDE + x]);
                worst = d > worst ? d : worst;
            }
    CHECK_MSG(worst <= 1, "max pixel diff %d", worst);
    printf("  generate --prompt: max pixel diff %d\n", worst);
    moedit_generate_result_free(r);
    free(r);
    unlink(png);
    unlink(latents);
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    backend *be = backend_cpu_create();
    safetensors *io = NULL;
    dit_config dit;
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0 &&
                  dit_config_load(&dit, FIXTURE "/transformer/config.json") == 0,
              "%s", error_message());
    if (io && !test_failures) {
        test_encode_prompt(be, io, &dit);
        test_generate(io);
    }
    if (io) safetensors_close(io);
    backend_destroy(be);
    moedit_finalize();
    return test_finish("test_hidream_text_matches_diffusers");
}
