/* The transformer's video mode reproduces diffusers' HiDreamImageTransformer2DModel
 * run on a clip as one sequence (tools/make_video_fixture.py, tests/fixtures/
 * dit_video): the dit_moe weights, 3 non-square frames [4, 6, 10] whose 45
 * tokens carry RoPE ids (frame, row, col) and are not padded (the config's
 * max_seq is 24); the output [3, 4, 6, 10] within 1e-4 of its scale. Each
 * frame run alone as an image gives another result (the frames attend to
 * each other), and warm forwards do not allocate. */
#include "core/error.h"
#include "io/safetensors.h"
#include "dit/dit_forward.h"
#include "test_dit_fixture.h"
#include "test_util.h"

#include <stdlib.h>

#define FIXTURE MOEDIT_FIXTURES "/dit_video/io.safetensors"

int main(void)
{
    backend *be = backend_cpu_create();
    dit_model model;
    safetensors *io = NULL;
    dit_fixture f;
    if (dit_fixture_setup(be, FIXTURE, MOEDIT_FIXTURES "/dit_moe", &io, &model, &f))
        return test_finish("test_dit_video_matches_diffusers");
    float *latents = f.latents, *want = f.output, *timestep = f.timestep;
    int64_t n_out = f.n_output, *latent_shape = f.latent_shape, *t5_shape = f.t5_shape, *llama_shape = f.llama_shape;
    dit_text_inputs inputs = f.text;
    dit_text text;
    CHECK_MSG(dit_text_encode(&text, &model, &inputs) == 0, "%s", error_message());
    float *out = calloc((size_t)n_out, sizeof(float));
    int64_t frames = latent_shape[0], h = latent_shape[2], w = latent_shape[3];

    dit_run run;
    dit_run_shape shape = {h, w, 0, 0, t5_shape[0], llama_shape[1], frames};
    CHECK_MSG(dit_run_init_shape(&run, &model, &shape, NULL) == 0, "%s", error_message());
    CHECK_MSG(run.image_tokens == frames * (h / 2) * (w / 2), "%lld image tokens: a clip is never padded",
              (long long)run.image_tokens);
    CHECK_MSG(dit_forward(&run, &text, latents, timestep[0], out) == 0, "%s", error_message());
    double scale = test_max_abs(want, n_out), diff = test_max_abs_diff(out, want, n_out);
    CHECK_MSG(diff <= 1e-4 * scale, "clip output: max abs diff %.3g (scale %.3g)", diff, scale);
    printf("  %lld frames, %lld tokens: max abs diff %.3g (scale %.3g)\n", (long long)frames,
           (long long)run.image_tokens, diff, scale);
    size_t allocations = run.scratch.block_allocations;
    CHECK(dit_forward(&run, &text, latents, timestep[0], out) == 0);
    CHECK(dit_forward(&run, &text, latents, timestep[0], out) == 0);
    CHECK_MSG(run.scratch.block_allocations <= allocations + 1, "arena allocated %zu blocks after warm-up",
              run.scratch.block_allocations - allocations);
    dit_run_free(&run);

    /* Frame 1 alone, as an image (padded to max_seq like any non-square image): another result. */
    int64_t frame = n_out / frames;
    CHECK_MSG(dit_run_init(&run, &model, h, w, t5_shape[0], llama_shape[1], NULL) == 0, "%s", error_message());
    CHECK_MSG(dit_forward(&run, &text, latents + frame, timestep[0], out) == 0, "%s", error_message());
    double alone = test_max_abs_diff(out, want + frame, frame);
    CHECK_MSG(alone > 0.05, "frame 1 alone equals frame 1 of the clip (diff %.3g): the frames do not interact", alone);
    printf("  frame 1 alone differs from the clip's frame 1 by %.3g\n", alone);
    dit_run_free(&run);

    free(out);
    dit_fixture_free(&f);
    dit_text_free(&text);
    dit_model_free(&model);
    safetensors_close(io);
    backend_destroy(be);
    return test_finish("test_dit_video_matches_diffusers");
}
