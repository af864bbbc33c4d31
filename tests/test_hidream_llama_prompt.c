/* The parts of HiDream's native text side that need no CLIP or T5 encoder,
 * against diffusers on tests/fixtures/hidream_text
 * (tools/make_hidream_text_fixture.py):
 *   - the four tokenizer folders' padding settings read as transformers
 *     does: pad ids equal the padding in the ids the pipeline fed (CLIP-L
 *     pads with its eos, CLIP-G with "!", T5 with <pad>, the Llama with its
 *     eos <|eot_id|>), and model_max_length;
 *   - the Llama (text_encoder_4: llama3 RoPE) on each case's padded ids with
 *     its attention mask gives prompt_embeds_llama3 (hidden_states[1:] of
 *     every row, padded rows too) within 1e-4 of its scale;
 *   - the counting backend view (backend/backend_memory.h) sees the
 *     Llama's weights and activations and gives every byte back. */
#include "backend/backend_memory.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "text/text_encoder.h"
#include "text/tokenizer.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE MOEDIT_FIXTURES "/hidream_text"
#define CASES 5
#define LENGTH 128

static void test_tokenizer_settings(const safetensors *io)
{
    const char *dirs[4] = {FIXTURE "/tokenizer", FIXTURE "/tokenizer_2", FIXTURE "/tokenizer_3", FIXTURE "/tokenizer_4"};
    const int64_t max_length[4] = {77, 77, 512, 131072};
    for (int k = 0; k < 4; k++) {
        tokenizer *tok = NULL;
        CHECK_MSG(tokenizer_load_dir(&tok, dirs[k]) == 0, "%s", error_message());
        if (!tok) continue;
        int32_t pad = k == 3 ? tokenizer_eos_id(tok) : tokenizer_pad_id(tok); /* the pipeline pads the Llama with eos */
        CHECK_MSG(tokenizer_model_max_length(tok) == max_length[k] && !tokenizer_pads_left(tok),
                  "%s: model_max_length %d", dirs[k], tokenizer_model_max_length(tok));
        printf("  %-40s pad %d eos %d model_max_length %d\n", dirs[k], pad, tokenizer_eos_id(tok),
               tokenizer_model_max_length(tok));
        tokenizer_free(tok);
        /* Every case's padding is that id. */
        for (int c = 0; c < CASES; c++) {
            char name[64];
            int32_t ids[LENGTH], valid[4];
            int64_t shape[1] = {LENGTH}, four[1] = {4};
            snprintf(name, sizeof name, "case_%d_ids_%d", c, k + 1);
            CHECK(safetensors_read_i32(io, name, 1, shape, ids) == 0);
            snprintf(name, sizeof name, "case_%d_valid", c);
            CHECK(safetensors_read_i32(io, name, 1, four, valid) == 0);
            for (int i = valid[k]; i < LENGTH; i++) CHECK_MSG(ids[i] == pad, "case %d tokenizer %d id %d", c, k + 1, i);
        }
    }
}

static void test_llama_matches_pipeline(backend *be, const safetensors *io)
{
    backend *view = backend_memory_wrap(be);
    text_encoder enc;
    CHECK_MSG(text_encoder_load(&enc, view, FIXTURE "/text_encoder_4", 0, 0) == 0, "%s", error_message());
    if (test_failures) return;
    CHECK(enc.cfg.rope_llama3 && enc.cfg.num_layers == 2 && enc.cfg.hidden_size == 32);
    int64_t weights = backend_memory_in_use(view), per_layer = LENGTH * enc.cfg.hidden_size;
    CHECK_MSG(weights == enc.weights.bytes_on_device, "view counts %lld, the loader %lld", (long long)weights,
              (long long)enc.weights.bytes_on_device);
    float *hidden = malloc((size_t)(3 * per_layer) * sizeof(float)), *want = malloc((size_t)(2 * per_layer) * sizeof(float));
    arena scratch;
    arena_init(&scratch, view);
    for (int c = 0; c < CASES; c++) {
        char name[64];
        int32_t ids[LENGTH], valid[4];
        int64_t shape[1] = {LENGTH}, four[1] = {4}, want_shape[3] = {2, LENGTH, 32};
        snprintf(name, sizeof name, "case_%d_ids_4", c);
        CHECK(safetensors_read_i32(io, name, 1, shape, ids) == 0);
        snprintf(name, sizeof name, "case_%d_valid", c);
        CHECK(safetensors_read_i32(io, name, 1, four, valid) == 0);
        snprintf(name, sizeof name, "case_%d_prompt_embeds_llama3", c);
        CHECK_MSG(safetensors_read_f32(io, name, 3, want_shape, want) == 0, "%s", error_message());
        CHECK_MSG(text_encoder_forward_masked(&enc, &scratch, ids, LENGTH, valid[3], hidden) == 0, "%s",
                  error_message());
        double scale = test_max_abs(want, 2 * per_layer);
        double diff = test_max_abs_diff(hidden + per_layer, want, 2 * per_layer);
        CHECK_MSG(diff <= 1e-4 * (scale > 1 ? scale : 1), "case %d: max abs diff %.3g (scale %.3g)", c, diff, scale);
        printf("  case %d (%3d of %d Llama tokens)  prompt_embeds_llama3 max abs diff %.3g (scale %.3g)\n", c,
               valid[3], LENGTH, diff, scale);
    }
    arena_free(&scratch);
    CHECK(backend_memory_peak(view) > weights);
    printf("  Llama on the counting view: weights %lld B, peak %lld B\n", (long long)weights,
           (long long)backend_memory_peak(view));
    text_encoder_free(&enc);
    CHECK_MSG(backend_memory_in_use(view) == 0, "%lld bytes left", (long long)backend_memory_in_use(view));
    backend_destroy(view);
    free(hidden), free(want);
}

int main(void)
{
    backend *be = backend_cpu_create();
    safetensors *io = NULL;
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    if (io) {
        test_tokenizer_settings(io);
        test_llama_matches_pipeline(be, io);
        safetensors_close(io);
    }
    backend_destroy(be);
    return test_finish("test_hidream_llama_prompt");
}
