/* Both CFG branches as one forward (dit_forward_batch) give what one forward
 * per branch gives: outputs within float rounding, and the same routing
 * decisions, filed under each sample's branch. The two samples differ in
 * latents, text and text length, so each keeps its own sequence plan while
 * their feed-forward rows share every expert product. */
#include "core/error.h"
#include "io/safetensors.h"
#include "dit/dit_forward.h"
#include "test_dit_fixture.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

typedef struct sample_inputs {
    dit_text text;
    float *latents;
    float *single, *batched; /* outputs of the one-sample and the batched forward */
} sample_inputs;

/* The routing records of both branches hold the same experts in a and b. */
static void check_same_routing(const moe_routing *a, const moe_routing *b, const dit_config *cfg)
{
    CHECK_MSG(a->count == b->count, "batched capture has %d records, one per branch %d", b->count, a->count);
    int layers = dit_num_blocks(cfg);
    for (int i = 0; i < a->count; i++) {
        const routing_record *ra = &a->records[i];
        const int32_t *got = NULL;
        CHECK(ra->layer < layers);
        CHECK_MSG(moe_routing_lookup(b, ra->branch, ra->layer, 0, ra->rows, ra->top_k, &got) == 0, "%s",
                  error_message());
        CHECK_MSG(got && memcmp(got, ra->experts, (size_t)(ra->rows * ra->top_k) * sizeof(int32_t)) == 0,
                  "branch %d layer %d: batched routing differs", ra->branch, ra->layer);
    }
}

static void forward_each(dit_run *run, sample_inputs *in, float timestep, int batched)
{
    dit_sample samples[2];
    for (int b = 0; b < 2; b++) samples[b] = (dit_sample){&in[b].text, in[b].latents, in[b].batched, b};
    if (batched) {
        CHECK_MSG(dit_forward_batch(run, samples, 2, timestep) == 0, "%s", error_message());
        return;
    }
    for (int b = 0; b < 2; b++) {
        dit_sample alone = {&in[b].text, in[b].latents, in[b].single, b};
        CHECK_MSG(dit_forward_batch(run, &alone, 1, timestep) == 0, "%s", error_message());
    }
}

int main(void)
{
    backend *be = backend_cpu_create();
    dit_model model;
    safetensors *io = NULL;
    dit_fixture f;
    if (dit_fixture_setup(be, MOEDIT_FIXTURES "/dit_moe/io.safetensors", MOEDIT_FIXTURES "/dit_moe", &io, &model, &f))
        return test_finish("test_dit_batch");
    float *latents = f.latents, *want = f.output, timestep = f.timestep[0];
    int64_t n_latents = f.n_latents, n_t5 = f.n_t5, n_llama = f.n_llama, n_pooled = f.n_pooled, n_out = f.n_output;

    /* Sample 1: other latents, other text values, fewer t5 tokens. */
    sample_inputs in[2];
    float *latents2 = malloc((size_t)n_latents * sizeof(float)), *t5b = malloc((size_t)n_t5 * sizeof(float));
    float *llama2 = malloc((size_t)n_llama * sizeof(float)), *pooled2 = malloc((size_t)n_pooled * sizeof(float));
    for (int64_t i = 0; i < n_latents; i++) latents2[i] = 0.7f * latents[n_latents - 1 - i] - 0.1f;
    for (int64_t i = 0; i < n_t5; i++) t5b[i] = -0.5f * f.t5[i];
    for (int64_t i = 0; i < n_llama; i++) llama2[i] = f.llama[n_llama - 1 - i];
    for (int64_t i = 0; i < n_pooled; i++) pooled2[i] = 0.3f * f.pooled[i] + 0.05f;
    dit_text_inputs inputs[2] = {f.text, f.text};
    inputs[1].t5 = t5b, inputs[1].t5_tokens /= 2, inputs[1].llama = llama2, inputs[1].pooled = pooled2;
    for (int b = 0; b < 2; b++) {
        CHECK_MSG(dit_text_encode(&in[b].text, &model, &inputs[b]) == 0, "%s", error_message());
        in[b].latents = b == 0 ? latents : latents2;
        in[b].single = calloc((size_t)n_out, sizeof(float));
        in[b].batched = calloc((size_t)n_out, sizeof(float));
    }
    dit_run run;
    CHECK_MSG(dit_run_init(&run, &model, f.latent_shape[1], f.latent_shape[2], f.t5_shape[0], f.llama_shape[1], NULL) == 0, "%s",
              error_message());
    if (test_failures) return test_finish("test_dit_batch");

    /* Outputs and routing: one forward per branch vs one batched forward. */
    moe_routing single, batched;
    moe_routing_init(&single, ROUTING_CAPTURE);
    moe_routing_init(&batched, ROUTING_CAPTURE);
    run.routing = &single;
    forward_each(&run, in, timestep, 0);
    run.routing = &batched;
    forward_each(&run, in, timestep, 1);
    double scale = test_max_abs(want, n_out);
    CHECK_MSG(test_max_abs_diff(in[0].single, want, n_out) <= 1e-4 * scale, "sample 0 alone differs from diffusers");
    for (int b = 0; b < 2; b++) {
        double diff = test_max_abs_diff(in[b].batched, in[b].single, n_out), s = test_max_abs(in[b].single, n_out);
        printf("  sample %d: batched vs alone max abs diff %.3g (scale %.3g)\n", b, diff, s);
        CHECK_MSG(diff <= 1e-5 * (s > 1 ? s : 1), "sample %d: batched output differs by %.3g", b, diff);
    }
    CHECK_MSG(test_max_abs_diff(in[0].single, in[1].single, n_out) > 1e-2 * scale, "the two samples are too alike");
    check_same_routing(&single, &batched, &model.cfg);

    /* A batched forward replays the routing of one forward per branch. */
    single.mode = ROUTING_REPLAY;
    run.routing = &single;
    forward_each(&run, in, timestep, 1);
    for (int b = 0; b < 2; b++)
        CHECK_MSG(test_max_abs_diff(in[b].batched, in[b].single, n_out) <= 1e-5 * test_max_abs(in[b].single, n_out),
                  "sample %d: replayed batch differs", b);
    run.routing = NULL;

    /* Batch sizes outside 1..DIT_MAX_BATCH are a clear error. */
    dit_sample three[3] = {{&in[0].text, latents, in[0].batched, 0}, {&in[1].text, latents2, in[1].batched, 1},
                           {&in[0].text, latents, in[0].batched, 0}};
    CHECK(dit_forward_batch(&run, three, 3, timestep) != 0);
    CHECK_MSG(strstr(error_message(), "1 to 2 samples") != NULL, "got: %s", error_message());
    CHECK(dit_forward_batch(&run, three, 0, timestep) != 0);

    moe_routing_free(&single);
    moe_routing_free(&batched);
    for (int b = 0; b < 2; b++) {
        dit_text_free(&in[b].text);
        free(in[b].single);
        free(in[b].batched);
    }
    dit_fixture_free(&f);
    free(latents2), free(t5b), free(llama2), free(pooled2);
    dit_run_free(&run);
    dit_model_free(&model);
    safetensors_close(io);
    backend_destroy(be);
    return test_finish("test_dit_batch");
}
