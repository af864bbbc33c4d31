/* --random-weights for every component but the transformer (which
 * test_random_weights covers): the CLIP, T5 and Llama encoders, the VAE, and
 * HiDream's whole text side, built from folders that hold config.json files
 * only (copies of tests/fixtures/hidream_text's), so no weight file can be
 * read. Each: the same seed gives the same output bit for bit, another seed
 * another output, the shapes are the config's and every value is finite. */
#define _XOPEN_SOURCE 700
#include "backend/backend.h"
#include "core/error.h"
#include "core/text_file.h"
#include "text/hidream_prompt.h"
#include "vae/vae.h"
#include "vae/vae_model.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIXTURE MOEDIT_FIXTURES "/hidream_text"

static const char *const PARTS[] = {"text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4", "vae",
                                    "transformer"};

static int copy_file(const char *from, const char *to)
{
    char *text = NULL;
    if (text_file_read(from, 1 << 20, "config", &text)) return -1;
    FILE *f = fopen(to, "w");
    int status = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f) fclose(f);
    free(text);
    return status;
}

/* dir/<part>/config.json for every part, and links to the fixture's tokenizers: a model folder without weights. */
static void make_config_folder(const char *dir)
{
    char from[512], to[512];
    for (size_t i = 0; i < sizeof PARTS / sizeof PARTS[0]; i++) {
        snprintf(to, sizeof to, "%s/%s", dir, PARTS[i]);
        CHECK(mkdir(to, 0755) == 0);
        snprintf(from, sizeof from, "%s/%s/config.json", FIXTURE, PARTS[i]);
        snprintf(to, sizeof to, "%s/%s/config.json", dir, PARTS[i]);
        CHECK_MSG(copy_file(from, to) == 0, "%s: %s", from, error_message());
    }
    const char *const tokenizers[] = {"tokenizer", "tokenizer_2", "tokenizer_3", "tokenizer_4"};
    for (int k = 0; k < 4; k++) {
        char *real = realpath(FIXTURE, NULL);
        snprintf(from, sizeof from, "%s/%s", real ? real : FIXTURE, tokenizers[k]);
        snprintf(to, sizeof to, "%s/%s", dir, tokenizers[k]);
        CHECK(symlink(from, to) == 0);
        free(real);
    }
}

static int all_finite(const float *x, long n)
{
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static const int32_t IDS[6] = {3000, 320, 1125, 6, 1, 1}; /* ids inside every fixture vocabulary (the smallest: 3100) */

static int clip_pooled(backend *be, const char *dir, uint64_t seed, float *pooled)
{
    clip_encoder *enc = NULL;
    arena scratch;
    arena_init(&scratch, be);
    int status = clip_encoder_load(&enc, dir, be, 1, seed);
    if (!status) status = clip_encoder_forward(enc, &scratch, IDS, 6, pooled);
    if (!status && clip_encoder_projection_dim(enc) != 16) status = error_set("projection_dim %d", clip_encoder_projection_dim(enc));
    clip_encoder_free(enc);
    arena_free(&scratch);
    return status;
}

static void test_clip(backend *be, const char *root)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text_encoder_2", root);
    float a[16], b[16], c[16];
    CHECK_MSG(clip_pooled(be, dir, 3, a) == 0 && clip_pooled(be, dir, 3, b) == 0 && clip_pooled(be, dir, 4, c) == 0,
              "%s", error_message());
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(a, c, sizeof a) != 0);
    CHECK(all_finite(a, 16) && test_max_abs(a, 16) > 0);
    /* The same folder without --random-weights: there is no weight file to read. */
    clip_encoder *enc = NULL;
    CHECK(clip_encoder_load(&enc, dir, be, 0, 0) != 0 && enc == NULL);
    printf("  CLIP random: pooled[0..2] %.4f %.4f %.4f; without random: %s\n", a[0], a[1], a[2], error_message());
}

static int t5_hidden(backend *be, const char *dir, uint64_t seed, float *hidden)
{
    t5_encoder *enc = NULL;
    arena scratch;
    arena_init(&scratch, be);
    const int32_t mask[6] = {1, 1, 1, 1, 0, 0};
    int status = t5_encoder_load(&enc, dir, be, 1, seed);
    if (!status) status = t5_encoder_forward(enc, &scratch, IDS, 6, mask, hidden);
    if (!status && t5_encoder_hidden_size(enc) != 32) status = error_set("d_model %d", t5_encoder_hidden_size(enc));
    t5_encoder_free(enc);
    arena_free(&scratch);
    return status;
}

static void test_t5(backend *be, const char *root)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text_encoder_3", root);
    float a[6 * 32], b[6 * 32], c[6 * 32];
    CHECK_MSG(t5_hidden(be, dir, 5, a) == 0 && t5_hidden(be, dir, 5, b) == 0 && t5_hidden(be, dir, 6, c) == 0, "%s",
              error_message());
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(a, c, sizeof a) != 0);
    CHECK(all_finite(a, 6 * 32) && test_max_abs(a, 6 * 32) > 0);
}

static int llama_hidden(backend *be, const char *dir, uint64_t seed, float *hidden)
{
    text_encoder enc;
    arena scratch;
    arena_init(&scratch, be);
    int status = text_encoder_load(&enc, be, dir, 1, seed);
    if (!status) status = text_encoder_forward_masked(&enc, &scratch, IDS, 6, 4, hidden);
    if (!status) text_encoder_free(&enc);
    arena_free(&scratch);
    return status;
}

static void test_llama(backend *be, const char *root)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text_encoder_4", root);
    enum { N = 3 * 6 * 32 }; /* [layers + 1, S, C] */
    float a[N], b[N], c[N];
    CHECK_MSG(llama_hidden(be, dir, 7, a) == 0 && llama_hidden(be, dir, 7, b) == 0 && llama_hidden(be, dir, 8, c) == 0,
              "%s", error_message());
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(a, c, sizeof a) != 0);
    CHECK(all_finite(a, N) && test_max_abs(a, N) > 0);
}

static int vae_image(backend *be, const char *dir, uint64_t seed, float *image)
{
    vae_model model;
    arena scratch;
    arena_init(&scratch, be);
    float latents[4 * 4 * 4];
    for (int i = 0; i < 64; i++) latents[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    int status = vae_model_load(&model, be, dir, 1, seed);
    if (!status) status = vae_decode(&model, &scratch, latents, 4, 4, 4, image);
    if (!status) vae_model_free(&model);
    arena_free(&scratch);
    return status;
}

static void test_vae(backend *be, const char *root)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/vae", root);
    enum { N = 3 * 32 * 32 }; /* 4x4 latents, factor 8 */
    static float a[N], b[N], c[N];
    CHECK_MSG(vae_image(be, dir, 1, a) == 0 && vae_image(be, dir, 1, b) == 0 && vae_image(be, dir, 2, c) == 0, "%s",
              error_message());
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(a, c, sizeof a) != 0);
    CHECK(all_finite(a, N) && test_max_abs(a, N) > 0);
    vae_model model;
    CHECK(vae_model_load(&model, be, dir, 0, 0) != 0);
}

/* HiDream's text side as generate and bench-text run it: tokenizers from
 * their files, every encoder random. */
static int encode_random(backend *be, const char *root, uint64_t seed, hidream_prompt_embeds out[2])
{
    hidream_text t;
    hidream_text_options o = {root, NULL, 0, 0, 1, seed};
    if (hidream_text_open(&t, be, &o, NULL)) return -1;
    hidream_prompt prompts[2] = {{{"a red circle", NULL, NULL, NULL}}, {{"", NULL, NULL, NULL}}};
    int status = hidream_text_encode(&t, prompts, 2, out);
    for (int k = 0; k < HIDREAM_ENCODERS && !status; k++)
        if (t.usage[k].peak_bytes <= 0 || t.usage[k].prompts != 2) status = error_set("encoder %d not counted", k);
    hidream_text_close(&t);
    return status;
}

static void test_hidream_text(backend *be, const char *root)
{
    hidream_prompt_embeds a[2], b[2], c[2];
    CHECK_MSG(encode_random(be, root, 9, a) == 0, "%s", error_message());
    CHECK_MSG(encode_random(be, root, 9, b) == 0, "%s", error_message());
    CHECK_MSG(encode_random(be, root, 10, c) == 0, "%s", error_message());
    if (test_failures) return;
    CHECK(a[0].t5_tokens == 128 && a[0].t5_channels == 32 && a[0].llama_layers == 2 && a[0].llama_tokens == 128 &&
          a[0].llama_channels == 32 && a[0].pooled_channels == 32);
    long t5 = 128 * 32, llama = 2 * 128 * 32;
    for (int i = 0; i < 2; i++) {
        CHECK(memcmp(a[i].t5, b[i].t5, (size_t)t5 * sizeof(float)) == 0);
        CHECK(memcmp(a[i].llama, b[i].llama, (size_t)llama * sizeof(float)) == 0);
        CHECK(memcmp(a[i].pooled, b[i].pooled, 32 * sizeof(float)) == 0);
        CHECK(memcmp(a[i].pooled, c[i].pooled, 32 * sizeof(float)) != 0);
        CHECK(all_finite(a[i].t5, t5) && all_finite(a[i].llama, llama) && all_finite(a[i].pooled, 32));
    }
    /* CLIP-L and CLIP-G share their tensor names: their own seeds keep them apart. */
    CHECK(memcmp(a[0].pooled, a[0].pooled + 16, 16 * sizeof(float)) != 0);
    for (int i = 0; i < 2; i++) {
        hidream_prompt_embeds_free(&a[i]);
        hidream_prompt_embeds_free(&b[i]);
        hidream_prompt_embeds_free(&c[i]);
    }
}

static void remove_folder(const char *root)
{
    char path[512];
    for (size_t i = 0; i < sizeof PARTS / sizeof PARTS[0]; i++) {
        snprintf(path, sizeof path, "%s/%s/config.json", root, PARTS[i]);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s", root, PARTS[i]);
        rmdir(path);
    }
    const char *const tokenizers[] = {"tokenizer", "tokenizer_2", "tokenizer_3", "tokenizer_4"};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s", root, tokenizers[k]);
        unlink(path);
    }
    rmdir(root);
}

int main(void)
{
    char root[] = "/tmp/moedit_random_XXXXXX";
    if (!mkdtemp(root)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    make_config_folder(root);
    backend *be = backend_cpu_create();
    if (!test_failures) {
        test_clip(be, root);
        test_t5(be, root);
        test_llama(be, root);
        test_vae(be, root);
        test_hidream_text(be, root);
    }
    backend_destroy(be);
    remove_folder(root);
    return test_finish("test_random_components");
}
