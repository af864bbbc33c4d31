/* The text encoder runs Llama 3.1 as transformers does, on the fixture
 * tests/fixtures/llama3_tiny (tools/make_llama3_fixture.py): a
 * LlamaForCausalLM ("model." names, weights in six shards behind an
 * index.json) with llama3 RoPE rescaling. Its inverse frequencies equal
 * transformers' rotary_emb.inv_freq; a right-padded prompt with its
 * attention mask (as HiDreamImagePipeline feeds tokenizer_4's ids) gives
 * every hidden state of every row, padded rows included, within 1e-4 of
 * each tensor's scale; the unpadded prompt gives the same valid rows. The
 * transformers-4 spelling of the config (rope_scaling with "type") reads
 * to the same RoPE, and bad masks and RoPE objects are one error line. */
#include "core/error.h"
#include "io/safetensors.h"
#include "text/text_encoder.h"
#include "backend/backend.h"
#include "test_fixture.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURE MOEDIT_FIXTURES "/llama3_tiny"

/* Each layer's [rows, C] block of got [N + 1, rows, C] against want [N + 1, S, C] (first `rows` rows). */
static void compare_layers(const char *what, const float *got, const float *want, int64_t layers, int64_t rows,
                           int64_t want_rows, int64_t channels)
{
    for (int64_t l = 0; l < layers; l++) {
        const float *g = got + l * rows * channels, *w = want + l * want_rows * channels;
        double scale = test_max_abs(w, rows * channels), diff = test_max_abs_diff(g, w, rows * channels);
        CHECK_MSG(diff <= 1e-4 * (scale > 1 ? scale : 1), "%s layer %lld: max abs diff %.3g (scale %.3g)", what,
                  (long long)l, diff, scale);
        printf("  %-28s hidden_states[%lld] max abs diff %.3g (scale %.3g)\n", what, (long long)l, diff, scale);
    }
}

static void test_matches_transformers(backend *be)
{
    text_encoder enc;
    safetensors *io = NULL;
    CHECK_MSG(text_encoder_load(&enc, be, FIXTURE "/text_encoder", 0, 0) == 0, "%s", error_message());
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    if (test_failures) return;
    const text_encoder_config *cfg = &enc.cfg;
    CHECK(cfg->rope_llama3 && cfg->rope_factor == 8 && cfg->rope_low_freq_factor == 1 &&
          cfg->rope_high_freq_factor == 4 && cfg->rope_original_max_positions == 64 && cfg->rope_theta == 500000);

    int64_t n = 0;
    float *inv_freq = fixture_expect(io, "inv_freq", &n);
    CHECK(n == cfg->head_dim / 2);
    for (int64_t i = 0; inv_freq && i < n; i++)
        CHECK_MSG(fabsf(text_encoder_inv_freq(cfg, i) - inv_freq[i]) <= 1e-7f * inv_freq[i], "inv_freq[%lld] %.9g vs %.9g",
                  (long long)i, text_encoder_inv_freq(cfg, i), inv_freq[i]);
    free(inv_freq);

    int64_t shape[1] = {12}, one[1] = {1};
    int32_t ids[12], valid = 0;
    CHECK(safetensors_read_i32(io, "ids", 1, shape, ids) == 0 && safetensors_read_i32(io, "valid", 1, one, &valid) == 0);
    int64_t layers = cfg->num_layers + 1, c = cfg->hidden_size;
    float *want = fixture_expect(io, "hidden_states", &n);
    float *want_short = fixture_expect(io, "short_hidden_states", &n);
    float *got = malloc((size_t)(layers * 12 * c) * sizeof(float));
    arena scratch;
    arena_init(&scratch, be);
    CHECK_MSG(text_encoder_forward_masked(&enc, &scratch, ids, 12, valid, got) == 0, "%s", error_message());
    if (want) compare_layers("padded, masked (all 12 rows)", got, want, layers, 12, 12, c);
    CHECK_MSG(text_encoder_forward(&enc, &scratch, ids, valid, got) == 0, "%s", error_message());
    if (want_short) compare_layers("prompt alone (7 rows)", got, want_short, layers, valid, valid, c);

    /* States 1..N only (HiDream's hidden_states[1:]): the same values, bit for bit. */
    float *from_one = malloc((size_t)((layers - 1) * 12 * c) * sizeof(float));
    CHECK_MSG(text_encoder_forward_masked(&enc, &scratch, ids, 12, valid, got) == 0, "%s", error_message());
    CHECK_MSG(text_encoder_forward_states(&enc, &scratch, ids, 12, valid, 1, from_one) == 0, "%s", error_message());
    CHECK(memcmp(from_one, got + 12 * c, (size_t)((layers - 1) * 12 * c) * sizeof(float)) == 0);
    CHECK(text_encoder_forward_states(&enc, &scratch, ids, 12, valid, layers, from_one) != 0);
    CHECK_MSG(strstr(error_message(), "hidden states from"), "got: %s", error_message());
    free(from_one);

    /* A mask keeping no token, or more than there are, is refused. */
    CHECK(text_encoder_forward_masked(&enc, &scratch, ids, 12, 0, got) != 0);
    CHECK_MSG(strstr(error_message(), "0 valid tokens of 12"), "got: %s", error_message());
    CHECK(text_encoder_forward_masked(&enc, &scratch, ids, 12, 13, got) != 0);
    arena_free(&scratch);
    free(got), free(want), free(want_short);
    safetensors_close(io);
    text_encoder_free(&enc);
}

static int write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    fputs(text, fp);
    return fclose(fp);
}

#define BASE_CONFIG                                                                                            \
    "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 3, " \
    "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 16, \"vocab_size\": 96, "         \
    "\"max_position_embeddings\": 512, "

/* text_encoder_config_load of BASE_CONFIG + tail; 0 or -1. */
static int load_config_text(const char *tail, text_encoder_config *cfg)
{
    char path[] = "/tmp/moedit_llama3_config_XXXXXX", text[2048];
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    snprintf(text, sizeof text, "%s%s", BASE_CONFIG, tail);
    int status = write_text(path, text) == 0 ? text_encoder_config_load(cfg, path) : -1;
    unlink(path);
    return status;
}

static void test_config_spellings(void)
{
    text_encoder_config fixture, old;
    CHECK(text_encoder_config_load(&fixture, FIXTURE "/text_encoder/config.json") == 0);
    /* transformers 4, as Llama-3.1-8B's config.json reads (original 8192 there; 64 here). */
    CHECK_MSG(load_config_text("\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": "
                               "1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64, "
                               "\"rope_type\": \"llama3\"}}",
                               &old) == 0,
              "%s", error_message());
    for (int64_t i = 0; i < 8; i++) CHECK(text_encoder_inv_freq(&old, i) == text_encoder_inv_freq(&fixture, i));
    /* "type" instead of "rope_type"; the top-level original_max_position_embeddings wins. */
    CHECK(load_config_text("\"original_max_position_embeddings\": 64, \"rope_scaling\": {\"type\": \"llama3\", "
                           "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                           "\"original_max_position_embeddings\": 99, \"rope_theta\": 500000.0}}",
                           &old) == 0);
    CHECK(old.rope_llama3 && old.rope_original_max_positions == 64);
    /* Without one anywhere: max_position_embeddings. */
    CHECK(load_config_text("\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 8.0, "
                           "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}}",
                           &old) == 0);
    CHECK(old.rope_original_max_positions == 512);
    /* Default RoPE has no rescaling. */
    CHECK(load_config_text("\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}}", &old) == 0);
    CHECK(!old.rope_llama3 && fabsf(text_encoder_inv_freq(&old, 1) - 1.0f / powf(10000.0f, 2.0f / 16)) == 0);

    CHECK(load_config_text("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}", &old) != 0);
    CHECK_MSG(strstr(error_message(), "rope_scaling: rope_type \"linear\" is not supported"), "got: %s", error_message());
    printf("  linear rope          -> %s\n", error_message());
    CHECK(load_config_text("\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0}}", &old) != 0);
    CHECK_MSG(strstr(error_message(), "rope_parameters: key \"factor\""), "got: %s", error_message());
    printf("  llama3 without factor -> %s\n", error_message());
    CHECK(load_config_text("\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, "
                           "\"high_freq_factor\": 1.0}}",
                           &old) != 0);
    CHECK_MSG(strstr(error_message(), "low_freq_factor < high_freq_factor"), "got: %s", error_message());
}

int main(void)
{
    backend *be = backend_cpu_create();
    test_matches_transformers(be);
    test_config_spellings();
    backend_destroy(be);
    return test_finish("test_llama3_encoder");
}
