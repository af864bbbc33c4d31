/* The native T5 encoder (text/t5_encoder.c) reproduces transformers'
 * T5EncoderModel (T5 v1.1: gated gelu_new feed-forward, RMS norms, relative
 * position buckets, unscaled scores) on the committed fixture
 * tests/fixtures/text_encoders (tools/make_clip_t5_fixtures.py):
 * last_hidden_state of id sequences of 1 to 218 tokens, one of them padded to
 * 128 tokens under an attention mask as HiDream pads its T5 prompt, within
 * 1e-5 of each output's scale on the CPU backend. The relative position
 * buckets equal torch's for every relative position in -600..600 of HiDream's
 * (32 buckets, max distance 128) and another (8, 20) config; a NULL mask is
 * all ones. Bad directories, configs, masks and ids fail with one error
 * naming the file and key or tensor. */
#include "backend/backend.h"
#include "core/error.h"
#include "test_encoder_variant.h"
#include "test_fixture.h"
#include "test_util.h"
#include "text/t5_encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE MOEDIT_FIXTURES "/text_encoders"
#define TOLERANCE 1e-5

static void test_buckets_match_torch(void)
{
    safetensors *io = NULL;
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    if (!io) return;
    const struct {
        const char *name;
        int buckets, distance;
    } configs[] = {{"t5_buckets_hidream", 32, 128}, {"t5_buckets_small", 8, 20}};
    for (int c = 0; c < 2; c++) {
        int64_t n = 0;
        int32_t *want = fixture_read_i32(io, configs[c].name, &n);
        CHECK(want && n == 1201);
        int wrong = 0;
        for (int64_t i = 0; want && i < n; i++) {
            int got = t5_relative_bucket(i - 600, configs[c].buckets, configs[c].distance);
            if (got != want[i] && wrong++ < 5)
                fprintf(stderr, "  bucket(%lld; %d, %d) = %d, torch %d\n", (long long)(i - 600), configs[c].buckets,
                        configs[c].distance, got, want[i]);
        }
        CHECK_MSG(wrong == 0, "%s: %d buckets differ from torch's", configs[c].name, wrong);
        printf("  buckets (%d, %d): relative positions -600..600 all equal torch's\n", configs[c].buckets,
               configs[c].distance);
        free(want);
    }
    safetensors_close(io);
}

static void test_matches_transformers(backend *be)
{
    char name[128];
    t5_encoder *enc = NULL;
    safetensors *io = NULL;
    CHECK_MSG(t5_encoder_load(&enc, FIXTURE "/t5", be, 0, 0) == 0, "%s", error_message());
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    if (!enc || !io) return;
    int c = t5_encoder_hidden_size(enc);
    CHECK(c == 32);
    arena scratch;
    arena_init(&scratch, be);
    int cases = 0, masked = 0;
    for (int i = 0;; i++, cases++) {
        int64_t count = 0, mask_count = 0, numel = 0;
        snprintf(name, sizeof name, "t5_ids_%d", i);
        int32_t *ids = fixture_read_i32(io, name, &count);
        if (!ids) break;
        snprintf(name, sizeof name, "t5_mask_%d", i);
        int32_t *mask = fixture_read_i32(io, name, &mask_count);
        snprintf(name, sizeof name, "t5_hidden_%d", i);
        float *want = fixture_read(io, name, &numel, NULL);
        float *got = malloc((size_t)(count * c) * sizeof(float));
        CHECK(mask && mask_count == count && want && numel == count * c);
        int ones = 0;
        for (int64_t t = 0; mask && t < count; t++) ones += mask[t];
        masked += ones < count;
        CHECK_MSG(t5_encoder_forward(enc, &scratch, ids, (int)count, mask, got) == 0, "%s", error_message());
        if (want && numel == count * c) {
            double diff = test_max_abs_diff(got, want, numel), scale = test_max_abs(want, numel);
            CHECK_MSG(diff <= TOLERANCE * scale, "t5 %s: max abs diff %.3g exceeds %.0e * scale %.3g", name, diff,
                      TOLERANCE, scale);
            printf("  t5 %3lld tokens (%3d unmasked): max abs diff %.3g (scale %.3g, relative %.2g)\n",
                   (long long)count, ones, diff, scale, diff / scale);
        }
        if (ones == count) { /* no mask is a mask of ones */
            float *unmasked = malloc((size_t)(count * c) * sizeof(float));
            CHECK(t5_encoder_forward(enc, &scratch, ids, (int)count, NULL, unmasked) == 0);
            CHECK_MSG(memcmp(got, unmasked, (size_t)(count * c) * sizeof(float)) == 0, "NULL mask differs");
            free(unmasked);
        }
        free(ids);
        free(mask);
        free(want);
        free(got);
    }
    CHECK_MSG(cases >= 5 && masked >= 1, "%d sequences (%d masked) in the fixture", cases, masked);
    arena_free(&scratch);
    safetensors_close(io);
    t5_encoder_free(enc);
}

static void expect_load_error(backend *be, const char *dir, const char *expect, const char *where)
{
    t5_encoder *enc = NULL;
    int status = t5_encoder_load(&enc, dir, be, 0, 0);
    CHECK_MSG(status != 0 && enc == NULL, "%s: loaded", expect);
    CHECK_MSG(strstr(error_message(), expect) && (!where || strstr(error_message(), where)), "want \"%s\", got: %s",
              expect, error_message());
    CHECK_MSG(strchr(error_message(), '\n') == NULL, "more than one line: %s", error_message());
    printf("  -> %s\n", error_message());
    t5_encoder_free(enc);
}

static void expect_variant_error(backend *be, const config_edit *edits, int count, const char *skip,
                                 const char *expect)
{
    char dir[] = "/tmp/moedit_t5_XXXXXX";
    variant_make(dir, FIXTURE "/t5", edits, count, skip);
    expect_load_error(be, dir, expect, dir);
    variant_remove(dir);
}

static void test_bad_inputs(backend *be)
{
    expect_load_error(be, FIXTURE "/no_such_encoder", "no_such_encoder/config.json", NULL);
    const config_edit relu[] = {{"feed_forward_proj", "\"relu\""}};
    expect_variant_error(be, relu, 1, NULL, "feed_forward_proj \"relu\" is not supported");
    const config_edit silu[] = {{"feed_forward_proj", "\"gated-silu\""}};
    expect_variant_error(be, silu, 1, NULL, "activation \"silu\" is not supported");
    const config_edit clip[] = {{"model_type", "\"clip_text_model\""}};
    expect_variant_error(be, clip, 1, NULL, "model_type \"clip_text_model\" is not supported");
    const config_edit no_heads[] = {{"num_heads", NULL}};
    expect_variant_error(be, no_heads, 1, NULL, "\"num_heads\"");
    expect_variant_error(be, NULL, 0, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                         "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    expect_variant_error(be, NULL, 0, "encoder.block.2.layer.1.DenseReluDense.wi_1.weight",
                         "encoder.block.2.layer.1.DenseReluDense.wi_1.weight");
    const config_edit wide[] = {{"d_ff", "65"}};
    expect_variant_error(be, wide, 1, NULL, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight");
    const config_edit buckets[] = {{"relative_attention_num_buckets", "16"}};
    expect_variant_error(be, buckets, 1, NULL, "relative_attention_bias.weight");

    t5_encoder *enc = NULL;
    CHECK_MSG(t5_encoder_load(&enc, FIXTURE "/t5", be, 0, 0) == 0, "%s", error_message());
    if (!enc) return;
    arena scratch;
    arena_init(&scratch, be);
    int32_t ids[4] = {5, 6, 7, 1}, mask[4] = {1, 1, 2, 0};
    float hidden[4 * 32];
    CHECK(t5_encoder_forward(enc, &scratch, ids, 4, mask, hidden) != 0);
    CHECK_MSG(strstr(error_message(), "attention mask value 2 at position 2"), "got: %s", error_message());
    ids[1] = -1;
    CHECK(t5_encoder_forward(enc, &scratch, ids, 4, NULL, hidden) != 0);
    CHECK_MSG(strstr(error_message(), "token id -1 at position 1"), "got: %s", error_message());
    CHECK(t5_encoder_forward(enc, &scratch, ids, 0, NULL, hidden) != 0);
    arena_free(&scratch);
    t5_encoder_free(enc);
}

int main(void)
{
    backend *be = backend_cpu_create();
    test_buckets_match_torch();
    test_matches_transformers(be);
    test_bad_inputs(be);
    backend_destroy(be);
    return test_finish("test_t5_encoder");
}
