/* The text encoder reproduces transformers' LlamaModel (GQA, RoPE theta
 * 500000, BF16 weights) on the committed fixture tests/fixtures/text_tiny
 * (tools/make_text_fixtures.py): for three prompts, the tokenizer gives the
 * fixture's ids and every hidden state (embeddings, each layer, the final
 * normed one) and the HiDream conditioning (llama3, t5, pooled) are within
 * 1e-4 of each tensor's scale. The same weights under LlamaForCausalLM's
 * "model." prefix and a transformers-4 style config give identical results;
 * unsupported configs and bad weights fail naming the file and key. */
#include "core/config.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "core/text_file.h"
#include "text/text_conditioning.h"
#include "test_encoder_variant.h"
#include "test_fixture.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIXTURE MOEDIT_FIXTURES "/text_tiny"

static void compare(const char *what, const float *got, const float *want, int64_t n)
{
    double scale = test_max_abs(want, n), diff = test_max_abs_diff(got, want, n);
    CHECK_MSG(diff <= 1e-4 * (scale > 1 ? scale : 1), "%s: max abs diff %.3g (scale %.3g)", what, diff, scale);
    printf("  %-34s max abs diff %.3g (scale %.3g)\n", what, diff, scale);
}

/* The conditioning of prompt p equals the fixture's, tensor by tensor. */
static void check_prompt(const safetensors *io, int p, const text_conditioning *c)
{
    char name[128], what[128];
    int64_t n = 0, per_layer = c->tokens * c->channels;
    snprintf(name, sizeof name, "prompt_%d_hidden_states", p);
    float *want = fixture_expect(io, name, &n);
    CHECK(n == (c->layers + 1) * per_layer);
    if (want && n == (c->layers + 1) * per_layer)
        for (int64_t l = 0; l <= c->layers; l++) {
            snprintf(what, sizeof what, "prompt %d hidden_states[%lld]", p, (long long)l);
            compare(what, c->hidden_states + l * per_layer, want + l * per_layer, per_layer);
        }
    free(want);
    const char *names[3] = {"prompt_embeds_llama3", "prompt_embeds_t5", "pooled_prompt_embeds"};
    const float *got[3] = {c->llama, c->t5, c->pooled};
    int64_t sizes[3] = {c->layers * per_layer, per_layer, c->channels};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "prompt_%d_%s", p, names[i]);
        want = fixture_expect(io, name, &n);
        CHECK(n == sizes[i]);
        snprintf(what, sizeof what, "prompt %d %s", p, names[i]);
        if (want && n == sizes[i]) compare(what, got[i], want, n);
        free(want);
    }
}

static int32_t *read_ids(const safetensors *io, int p, int64_t *count)
{
    char name[64];
    snprintf(name, sizeof name, "prompt_%d_ids", p);
    int32_t *ids = fixture_read_i32(io, name, count);
    CHECK_MSG(ids != NULL, "fixture lacks %s", name);
    return ids;
}

static void test_matches_transformers(backend *be)
{
    text_encoder enc;
    tokenizer *tok = NULL;
    safetensors *io = NULL;
    config *info = NULL;
    const char *prompts[8];
    int prompt_count = 0;
    CHECK_MSG(text_encoder_load(&enc, be, FIXTURE "/text_encoder", 0, 0) == 0, "%s", error_message());
    CHECK_MSG(tokenizer_load(&tok, FIXTURE "/tokenizer/tokenizer.json") == 0, "%s", error_message());
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    CHECK_MSG(config_load(&info, FIXTURE "/fixture.json") == 0, "%s", error_message());
    CHECK(info && config_get_string_array(info, "prompts", prompts, 8, &prompt_count) == 0 && prompt_count == 3);
    if (test_failures) return;
    CHECK(enc.cfg.hidden_size == 32 && enc.cfg.num_layers == 2 && enc.cfg.num_heads == 4 &&
          enc.cfg.num_kv_heads == 2 && enc.cfg.head_dim == 8 && enc.cfg.rope_theta == 500000.0);

    arena scratch;
    arena_init(&scratch, be);
    for (int p = 0; p < prompt_count; p++) {
        int64_t n = 0;
        int32_t *want_ids = read_ids(io, p, &n);
        text_conditioning c;
        CHECK_MSG(text_conditioning_encode(&c, &enc, tok, prompts[p], TEXT_CONDITIONING_DEFAULT_MAX_TOKENS,
                                           &scratch) == 0,
                  "%s", error_message());
        CHECK_MSG(c.tokens == n && want_ids && memcmp(c.ids, want_ids, (size_t)n * sizeof(int32_t)) == 0,
                  "prompt %d \"%s\": ids differ from the fixture", p, prompts[p]);
        CHECK(c.layers == 2 && c.channels == 32 && c.prompt_tokens == c.tokens);
        if (c.tokens == n) check_prompt(io, p, &c);
        text_conditioning_free(&c);
        free(want_ids);
    }
    /* The empty prompt (fixture prompt 2) is the BOS alone. */
    CHECK(prompt_count == 3 && strcmp(prompts[2], "") == 0);

    /* Later prompts reuse the scratch arena without allocating. */
    text_conditioning c;
    CHECK(text_conditioning_encode(&c, &enc, tok, prompts[1], 128, &scratch) == 0);
    text_conditioning_free(&c);
    size_t blocks = scratch.block_allocations;
    CHECK(text_conditioning_encode(&c, &enc, tok, prompts[0], 128, &scratch) == 0);
    text_conditioning_free(&c);
    CHECK(text_conditioning_encode(&c, &enc, tok, prompts[1], 128, &scratch) == 0);
    CHECK_MSG(scratch.block_allocations == blocks, "arena allocated %zu blocks on reuse",
              scratch.block_allocations - blocks);
    text_conditioning_free(&c);

    /* Truncation keeps the BOS and says how long the prompt was. */
    CHECK(text_conditioning_encode(&c, &enc, tok, prompts[1], 4, &scratch) == 0);
    CHECK(c.tokens == 4 && c.ids[0] == 1 && c.prompt_tokens > 4);
    text_conditioning_free(&c);

    /* An id outside the vocabulary is an error naming it. */
    int32_t bad[2] = {1, 64};
    CHECK(text_conditioning_from_ids(&c, &enc, bad, 2, &scratch) != 0);
    CHECK_MSG(strstr(error_message(), "token id 64 at position 1") != NULL, "got: %s", error_message());

    arena_free(&scratch);
    config_free(info);
    safetensors_close(io);
    tokenizer_free(tok);
    text_encoder_free(&enc);
}

/* ---- variants written to a temporary model directory ---------------------- */

static float *encode_ids(backend *be, const char *dir, const int32_t *ids, int64_t n)
{
    text_encoder enc;
    if (text_encoder_load(&enc, be, dir, 0, 0) != 0) return NULL;
    float *hidden = malloc((size_t)((enc.cfg.num_layers + 1) * n * enc.cfg.hidden_size) * sizeof(float));
    arena scratch;
    arena_init(&scratch, be);
    CHECK_MSG(text_encoder_forward(&enc, &scratch, ids, n, hidden) == 0, "%s", error_message());
    arena_free(&scratch);
    text_encoder_free(&enc);
    return hidden;
}

/* LlamaForCausalLM's "model." names and a transformers-4 config (top-level
 * rope_theta, rope_scaling null, no head_dim) load to the same encoder. */
static void test_prefix_and_old_config(backend *be)
{
    char dir[] = "/tmp/moedit_text_encoder_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const config_edit old_style[] = {{"rope_parameters", NULL},
                              {"head_dim", NULL},
                              {"rope_theta", "500000.0"},
                              {"rope_scaling", "null"},
                              {"architectures", "[\"LlamaForCausalLM\"]"}};
    variant_write_config(FIXTURE "/text_encoder", dir, old_style, 5);
    variant_write_weights(FIXTURE "/text_encoder", dir, "model.", NULL);
    const int32_t ids[5] = {1, 39, 4, 15, 42};
    float *want = encode_ids(be, FIXTURE "/text_encoder", ids, 5);
    float *got = encode_ids(be, dir, ids, 5);
    CHECK_MSG(want && got, "%s", error_message());
    if (want && got) {
        int64_t n = 3 * 5 * 32;
        CHECK_MSG(test_max_abs_diff(got, want, n) == 0, "\"model.\" prefix: max abs diff %.3g",
                  test_max_abs_diff(got, want, n));
    }
    free(want);
    free(got);

    /* A missing tensor names itself and the file. */
    variant_write_weights(FIXTURE "/text_encoder", dir, "model.", "layers.1.mlp.up_proj.weight");
    text_encoder enc;
    CHECK(text_encoder_load(&enc, be, dir, 0, 0) != 0);
    CHECK_MSG(strstr(error_message(), "model.layers.1.mlp.up_proj.weight") && strstr(error_message(), dir),
              "got: %s", error_message());
    printf("  missing tensor -> %s\n", error_message());
    variant_remove(dir);
}

static void expect_config_error(const config_edit *edits, int count, const char *expect)
{
    char dir[] = "/tmp/moedit_text_encoder_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    variant_write_config(FIXTURE "/text_encoder", dir, edits, count);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    text_encoder_config cfg;
    CHECK_MSG(text_encoder_config_load(&cfg, path) != 0, "%s = %s accepted", edits[0].key, edits[0].json);
    CHECK_MSG(strstr(error_message(), path) && strstr(error_message(), expect), "%s: got: %s", edits[0].key,
              error_message());
    printf("  %-20s -> %s\n", edits[0].key, error_message());
    variant_remove(dir);
}

static void test_unsupported_configs(void)
{
    const config_edit scaling[] = {{"rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}"}};
    expect_config_error(scaling, 1, "rope_type \"linear\" is not supported");
    const config_edit yarn_rope[] = {{"rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 500000.0}"}};
    expect_config_error(yarn_rope, 1, "rope_type \"yarn\" is not supported");
    const config_edit bad_theta[] = {{"rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": \"big\"}"}};
    expect_config_error(bad_theta, 1, "rope_parameters: key \"rope_theta\" must be a number");
    const config_edit gelu[] = {{"hidden_act", "\"gelu\""}};
    expect_config_error(gelu, 1, "hidden_act \"gelu\" is not supported");
    const config_edit bias[] = {{"attention_bias", "true"}};
    expect_config_error(bias, 1, "\"attention_bias\" is true");
    const config_edit mlp_bias[] = {{"mlp_bias", "true"}};
    expect_config_error(mlp_bias, 1, "\"mlp_bias\" is true");
    const config_edit groups[] = {{"num_key_value_heads", "3"}};
    expect_config_error(groups, 1, "not a multiple of num_key_value_heads 3");
    const config_edit mistral[] = {{"model_type", "\"mistral\""}};
    expect_config_error(mistral, 1, "model_type \"mistral\" is not supported");
    const config_edit no_hidden[] = {{"hidden_size", NULL}};
    expect_config_error(no_hidden, 1, "key \"hidden_size\" is missing");
    const config_edit odd_head[] = {{"head_dim", "7"}};
    expect_config_error(odd_head, 1, "head_dim 7 must be even");
    const config_edit uneven[] = {{"head_dim", NULL}, {"num_attention_heads", "6"}, {"num_key_value_heads", "2"}};
    expect_config_error(uneven, 3, "hidden_size 32 is not a multiple of num_attention_heads 6");
}

/* --random-weights: the config alone builds an encoder whose outputs are finite. */
static void test_random_weights(backend *be)
{
    text_encoder enc;
    CHECK_MSG(text_encoder_load(&enc, be, FIXTURE "/text_encoder", 1, 7) == 0, "%s", error_message());
    const int32_t ids[3] = {1, 63, 0};
    float hidden[3 * 3 * 32];
    arena scratch;
    arena_init(&scratch, be);
    CHECK(text_encoder_forward(&enc, &scratch, ids, 3, hidden) == 0);
    int finite = 1;
    for (int i = 0; i < 3 * 3 * 32; i++) finite &= isfinite(hidden[i]) != 0;
    CHECK(finite && test_max_abs(hidden, 3 * 3 * 32) > 0);
    arena_free(&scratch);
    text_encoder_free(&enc);
}

int main(void)
{
    backend *be = backend_cpu_create();
    test_matches_transformers(be);
    test_random_weights(be);
    test_prefix_and_old_config(be);
    test_unsupported_configs();
    backend_destroy(be);
    return test_finish("test_text_encoder");
}
