/* The transformer under a device memory budget (dit/dit_weight_stream.h),
 * on any backend: the dit_moe fixture's blocks packed into host memory and
 * streamed through the double buffer give bit for bit the output of the
 * resident model, over several forwards (buffers refilled, the next
 * forward's first block prefetched by the last); the device memory counted
 * at the backend stays within the budget; the plan streams the fewest
 * blocks that fit; and a budget below the all-streamed minimum is one error
 * naming that minimum. tests/test_dit_weight_stream.c runs it on the CPU,
 * tests/test_cuda_dit_weight_stream.c on a GPU. */
#ifndef MOEDIT_TESTS_TEST_DIT_WEIGHT_STREAM_H
#define MOEDIT_TESTS_TEST_DIT_WEIGHT_STREAM_H

#include "backend/backend_memory.h"
#include "core/error.h"
#include "dit/dit_forward.h"
#include "io/safetensors.h"
#include "test_dit_fixture.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define DIR MOEDIT_FIXTURES "/dit_moe"
#define FORWARDS 3

/* FORWARDS forwards of the fixture's inputs (different timesteps) into out[FORWARDS * n]. */
static inline void run_forwards(dit_model *model, const dit_fixture *f, float *out, int64_t n)
{
    dit_text text;
    dit_run run;
    CHECK_MSG(dit_text_encode(&text, model, &f->text) == 0, "%s", error_message());
    CHECK_MSG(dit_run_init(&run, model, f->latent_shape[1], f->latent_shape[2], f->t5_shape[0], f->llama_shape[1],
                           NULL) == 0,
              "%s", error_message());
    if (test_failures) return;
    for (int i = 0; i < FORWARDS; i++)
        CHECK_MSG(dit_forward(&run, &text, f->latents, f->timestep[0] * (1.0f - 0.25f * (float)i), out + i * n) == 0,
                  "%s", error_message());
    dit_run_free(&run);
    dit_text_free(&text);
}

/* The streamed model on a counting view; its output and memory checked. */
static inline void check_streamed(backend *be, const dit_fixture *f, const float *want, int64_t n, int64_t activations)
{
    backend *view = backend_memory_wrap(be);
    dit_shard shard = {0, 1, 0, 1, NULL, NULL, 0, 1};
    dit_model model;
    CHECK_MSG(dit_model_load(&model, view, DIR, 0, 0, &shard) == 0, "%s", error_message());
    if (test_failures) return;
    dit_weight_stream *s = model.stream;
    int blocks = s->blocks;
    int64_t in_use = backend_memory_in_use(view), smallest = INT64_MAX;
    for (int b = 0; b < blocks; b++)
        if ((int64_t)s->image_bytes[b] < smallest) smallest = (int64_t)s->image_bytes[b];
    /* Loading held at most the resident weights and one block on the device. */
    CHECK_MSG(in_use > 0 && backend_memory_peak(view) <= in_use + (int64_t)s->image_bytes[0] * 2,
              "loading peaked at %lld bytes with %lld resident", (long long)backend_memory_peak(view),
              (long long)in_use);

    /* One byte short of the minimum: refused, naming it; nothing placed. */
    dit_stream_plan plan;
    CHECK(dit_weight_stream_place(s, view, 1, "1", in_use, activations, 0, &plan) != 0);
    int64_t minimum = plan.minimum;
    CHECK(dit_weight_stream_place(s, view, minimum - 1, "TEST", in_use, activations, 0, &plan) != 0);
    CHECK_MSG(strstr(error_message(), "--max-gpu-memory TEST: too small") && strstr(error_message(), "needs at least"),
              "got: %s", error_message());
    printf("  %d blocks, minimum %lld bytes (resident %lld, activations %lld): %s\n", blocks, (long long)minimum,
           (long long)in_use, (long long)activations, error_message());

    /* Room for the smallest block beside the buffers: every other block streams. */
    int64_t budget = minimum + smallest;
    CHECK_MSG(dit_weight_stream_place(s, view, budget, "TEST", in_use, activations, 0, &plan) == 0, "%s",
              error_message());
    CHECK_MSG(plan.streamed == blocks - 1, "streamed %d of %d blocks", plan.streamed, blocks);
    float *got = calloc((size_t)(FORWARDS * n), sizeof(float));
    run_forwards(&model, f, got, n);
    CHECK_MSG(memcmp(got, want, (size_t)(FORWARDS * n) * sizeof(float)) == 0,
              "streamed output differs from the resident one (max abs diff %.3g)",
              test_max_abs_diff(got, want, FORWARDS * n));
    /* More streamed blocks than buffers: every forward after the first refills one at least. */
    CHECK_MSG(s->uploads >= plan.streamed + (FORWARDS - 1), "%lld copies for %d forwards of %d streamed blocks",
              (long long)s->uploads, FORWARDS, plan.streamed);
    int64_t peak = backend_memory_peak(view);
    printf("  budget %lld bytes: %d blocks streamed, %lld copies, device peak %lld bytes\n", (long long)budget,
           plan.streamed, (long long)s->uploads, (long long)peak);
    CHECK_MSG(peak <= budget, "device peak %lld bytes over the budget %lld", (long long)peak, (long long)budget);
    free(got);
    dit_model_free(&model);
    CHECK_MSG(backend_memory_in_use(view) == 0, "%lld bytes left on the device", (long long)backend_memory_in_use(view));
    backend_destroy(view);
}

/* The whole check on `be` (destroyed here); returns test_finish(name). */
static inline int dit_weight_stream_test(backend *be, const char *name)
{
    backend *view = backend_memory_wrap(be);
    dit_model model;
    safetensors *io = NULL;
    dit_fixture f;
    if (dit_fixture_setup(view, DIR "/io.safetensors", DIR, &io, &model, &f)) return test_finish(name);
    int64_t n = f.n_output, weights = backend_memory_in_use(view);
    float *want = calloc((size_t)(FORWARDS * n), sizeof(float));
    run_forwards(&model, &f, want, n);
    /* The activations' bound: what the resident run's arenas held beyond its weights. */
    int64_t activations = backend_memory_peak(view) - weights;
    dit_model_free(&model);
    backend_destroy(view);

    check_streamed(be, &f, want, n, activations);

    free(want);
    dit_fixture_free(&f);
    safetensors_close(io);
    backend_destroy(be);
    return test_finish(name);
}

#endif
