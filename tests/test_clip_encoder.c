/* The native CLIP text encoder (text/clip_encoder.c) reproduces transformers'
 * CLIPTextModelWithProjection on the committed fixture
 * tests/fixtures/text_encoders (tools/make_clip_t5_fixtures.py): text_embeds
 * of id sequences of 1 to 248 tokens, for a quick_gelu CLIP with 248
 * positions pooling at argmax(ids) (eos_token_id 2, ties included) and a gelu
 * CLIP pooling at the first EOS (or position 0 without one), within 1e-5 of
 * each output's scale on the CPU backend. A second run on the same arena
 * gives the same bits without allocating. Bad directories, configs and ids
 * fail with one error naming the file and key or tensor. */
#include "backend/backend.h"
#include "core/error.h"
#include "test_encoder_variant.h"
#include "test_fixture.h"
#include "test_util.h"
#include "text/clip_encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE MOEDIT_FIXTURES "/text_encoders"
#define TOLERANCE 1e-5

/* Every sequence <model>_ids_<i> of the fixture against <model>_text_embeds_<i>. */
static void test_matches_transformers(backend *be, const char *model)
{
    char dir[512], name[128];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURE, model);
    clip_encoder *enc = NULL;
    safetensors *io = NULL;
    CHECK_MSG(clip_encoder_load(&enc, dir, be, 0, 0) == 0, "%s", error_message());
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    if (!enc || !io) return;
    int p = clip_encoder_projection_dim(enc);
    CHECK(p == 16);
    arena scratch;
    arena_init(&scratch, be);
    float *got = malloc((size_t)p * sizeof(float)), *again = malloc((size_t)p * sizeof(float));
    int cases = 0;
    for (int i = 0;; i++, cases++) {
        int64_t count = 0, numel = 0;
        snprintf(name, sizeof name, "%s_ids_%d", model, i);
        int32_t *ids = fixture_read_i32(io, name, &count);
        if (!ids) break;
        snprintf(name, sizeof name, "%s_text_embeds_%d", model, i);
        float *want = fixture_read(io, name, &numel, NULL);
        CHECK(want && numel == p);
        CHECK_MSG(clip_encoder_forward(enc, &scratch, ids, (int)count, got) == 0, "%s", error_message());
        if (want && numel == p) {
            double diff = test_max_abs_diff(got, want, p), scale = test_max_abs(want, p);
            CHECK_MSG(diff <= TOLERANCE * scale, "%s %s: max abs diff %.3g exceeds %.0e * scale %.3g", model, name,
                      diff, TOLERANCE, scale);
            printf("  %s %3lld tokens: max abs diff %.3g (scale %.3g, relative %.2g)\n", model, (long long)count,
                   diff, scale, diff / scale);
        }
        if (i == 0) { /* the arena has grown to this length: a rerun takes nothing new */
            size_t blocks = scratch.block_allocations;
            CHECK(clip_encoder_forward(enc, &scratch, ids, (int)count, again) == 0);
            CHECK_MSG(memcmp(got, again, (size_t)p * sizeof(float)) == 0, "%s: rerun differs", model);
            CHECK(scratch.block_allocations == blocks);
        }
        free(ids);
        free(want);
    }
    CHECK_MSG(cases >= 4, "%s: %d sequences in the fixture", model, cases);
    free(got);
    free(again);
    arena_free(&scratch);
    safetensors_close(io);
    clip_encoder_free(enc);
}

/* Loading dir fails with an error holding `expect` (and `where`, when given). */
static void expect_load_error(backend *be, const char *dir, const char *expect, const char *where)
{
    clip_encoder *enc = NULL;
    int status = clip_encoder_load(&enc, dir, be, 0, 0);
    CHECK_MSG(status != 0 && enc == NULL, "%s: loaded", expect);
    CHECK_MSG(strstr(error_message(), expect) && (!where || strstr(error_message(), where)), "want \"%s\", got: %s",
              expect, error_message());
    CHECK_MSG(strchr(error_message(), '\n') == NULL, "more than one line: %s", error_message());
    printf("  -> %s\n", error_message());
    clip_encoder_free(enc);
}

static void expect_variant_error(backend *be, const config_edit *edits, int count, const char *skip,
                                 const char *expect)
{
    char dir[] = "/tmp/moedit_clip_XXXXXX";
    variant_make(dir, FIXTURE "/clip_g", edits, count, skip);
    expect_load_error(be, dir, expect, dir);
    variant_remove(dir);
}

static void test_bad_inputs(backend *be)
{
    expect_load_error(be, FIXTURE "/no_such_encoder", "no_such_encoder/config.json", NULL);
    const config_edit relu[] = {{"hidden_act", "\"relu\""}};
    expect_variant_error(be, relu, 1, NULL, "hidden_act \"relu\" is not supported");
    const config_edit t5[] = {{"model_type", "\"t5\""}};
    expect_variant_error(be, t5, 1, NULL, "model_type \"t5\" is not supported");
    const config_edit uneven[] = {{"num_attention_heads", "5"}};
    expect_variant_error(be, uneven, 1, NULL, "hidden_size 32 is not a multiple of num_attention_heads 5");
    expect_variant_error(be, NULL, 0, "text_model.encoder.layers.1.mlp.fc2.bias",
                         "text_model.encoder.layers.1.mlp.fc2.bias");
    const config_edit wide[] = {{"projection_dim", "17"}};
    expect_variant_error(be, wide, 1, NULL, "text_projection.weight");
    const config_edit deep[] = {{"num_hidden_layers", "4"}};
    expect_variant_error(be, deep, 1, NULL, "text_model.encoder.layers.3.layer_norm1.weight");

    /* Ids the model cannot take: past max_position_embeddings, outside the vocabulary. */
    clip_encoder *enc = NULL;
    CHECK_MSG(clip_encoder_load(&enc, FIXTURE "/clip_g", be, 0, 0) == 0, "%s", error_message());
    if (!enc) return;
    CHECK(clip_encoder_max_positions(enc) == 77);
    arena scratch;
    arena_init(&scratch, be);
    int32_t ids[78] = {0};
    float pooled[16];
    CHECK(clip_encoder_forward(enc, &scratch, ids, 78, pooled) != 0);
    CHECK_MSG(strstr(error_message(), "78 tokens exceed max_position_embeddings 77"), "got: %s", error_message());
    ids[3] = 512;
    CHECK(clip_encoder_forward(enc, &scratch, ids, 5, pooled) != 0);
    CHECK_MSG(strstr(error_message(), "token id 512 at position 3"), "got: %s", error_message());
    CHECK(clip_encoder_forward(enc, &scratch, ids, 0, pooled) != 0);
    arena_free(&scratch);
    clip_encoder_free(enc);
}

int main(void)
{
    backend *be = backend_cpu_create();
    test_matches_transformers(be, "clip_l");
    test_matches_transformers(be, "clip_g");
    test_bad_inputs(be);
    backend_destroy(be);
    return test_finish("test_clip_encoder");
}
