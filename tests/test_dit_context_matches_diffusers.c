/* In-context tokens in the CPU transformer reproduce diffusers'
 * HiDreamImageTransformer2DModel run on the concatenation [target tokens |
 * context tokens] with RoPE ids (0, r, c) and (1, r, c)
 * (tools/make_edit_fixture.py, tests/fixtures/dit_context): the dit_moe
 * weights, a non-square padded target [4, 6, 10] and a context of another
 * size [4, 8, 6]; every intermediate (the image stream includes the context
 * rows) and the output within 1e-4 of each tensor's scale. The same run
 * without context equals the plain transformer, a run that lacks its context
 * image is a clear error, and warm forwards do not allocate. */
#include "core/error.h"
#include "io/safetensors.h"
#include "dit/dit_forward.h"
#include "test_dit_fixture.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define FIXTURE MOEDIT_FIXTURES "/dit_context/io.safetensors"

typedef struct trace_check {
    const safetensors *io;
    int compared;
} trace_check;

static void compare(const char *name, const float *got, const float *want, int64_t n)
{
    double scale = test_max_abs(want, n), diff = test_max_abs_diff(got, want, n);
    CHECK_MSG(diff <= 1e-4 * (scale > 1 ? scale : 1), "%s: max abs diff %.3g (scale %.3g)", name, diff, scale);
    printf("  %-24s max abs diff %.3g (scale %.3g)\n", name, diff, scale);
}

static void on_trace(void *user, const char *name, tensor value)
{
    trace_check *check = user;
    int64_t n, shape[2];
    float *want = fixture_read(check->io, name, &n, shape);
    CHECK_MSG(want != NULL, "fixture lacks %s", name);
    if (!want) return;
    CHECK_MSG(shape[0] == tensor_rows(&value) && shape[1] == tensor_cols(&value), "%s: %lld x %lld rows, fixture %lld x %lld",
              name, (long long)tensor_rows(&value), (long long)tensor_cols(&value), (long long)shape[0],
              (long long)shape[1]);
    if (n == tensor_numel(&value)) compare(name, value.data, want, n);
    check->compared++;
    free(want);
}

int main(void)
{
    backend *be = backend_cpu_create();
    dit_model model;
    safetensors *io = NULL;
    dit_fixture f;
    int64_t n_context, n_plain, context_shape[3];
    if (dit_fixture_setup(be, FIXTURE, MOEDIT_FIXTURES "/dit_moe", &io, &model, &f))
        return test_finish("test_dit_context_matches_diffusers");
    float *context = fixture_read(io, "context_latents", &n_context, context_shape);
    float *plain = fixture_read(io, "output_without_context", &n_plain, NULL);
    CHECK(context && plain);
    if (test_failures) return test_finish("test_dit_context_matches_diffusers");
    float *latents = f.latents, *want = f.output, *timestep = f.timestep;
    int64_t n_out = f.n_output, *latent_shape = f.latent_shape, *t5_shape = f.t5_shape, *llama_shape = f.llama_shape;
    dit_text_inputs inputs = f.text;
    dit_text text;
    CHECK_MSG(dit_text_encode(&text, &model, &inputs) == 0, "%s", error_message());
    float *out = calloc((size_t)n_out, sizeof(float));

    dit_run run;
    dit_run_shape shape = {latent_shape[1], latent_shape[2], context_shape[1], context_shape[2], t5_shape[0],
                           llama_shape[1], 1};
    CHECK_MSG(dit_run_init_shape(&run, &model, &shape, NULL) == 0, "%s", error_message());
    CHECK_MSG(dit_forward(&run, &text, latents, timestep[0], out) != 0 &&
                  strstr(error_message(), "no context image") != NULL,
              "a forward without the context image: %s", error_message());
    CHECK_MSG(dit_run_set_context(&run, context) == 0, "%s", error_message());
    trace_check check = {io, 0};
    run.trace = on_trace;
    run.trace_user = &check;
    CHECK_MSG(dit_forward(&run, &text, latents, timestep[0], out) == 0, "%s", error_message());
    compare("output", out, want, n_out);
    /* x_embed, temb, 2 x (double image, double text), 2 x single, final */
    CHECK_MSG(check.compared == 2 + 4 + 2 + 1, "compared %d intermediates", check.compared);
    run.trace = NULL;
    size_t allocations = run.scratch.block_allocations;
    CHECK(dit_forward(&run, &text, latents, timestep[0], out) == 0);
    CHECK(dit_forward(&run, &text, latents, timestep[0], out) == 0);
    CHECK_MSG(run.scratch.block_allocations <= allocations + 1, "arena allocated %zu blocks after warm-up",
              run.scratch.block_allocations - allocations);
    compare("output (again)", out, want, n_out);
    dit_run_free(&run);

    /* The plain run on the same inputs: diffusers without the context. */
    CHECK_MSG(dit_run_init(&run, &model, latent_shape[1], latent_shape[2], t5_shape[0], llama_shape[1], NULL) == 0,
              "%s", error_message());
    CHECK_MSG(dit_run_set_context(&run, context) != 0, "a run without context accepted a context image");
    CHECK_MSG(dit_forward(&run, &text, latents, timestep[0], out) == 0, "%s", error_message());
    compare("output without context", out, plain, n_plain);
    double moved = test_max_abs_diff(want, plain, n_out);
    CHECK_MSG(moved > 0.1, "context tokens changed the output by only %.3g", moved);
    dit_run_free(&run);

    free(out);
    dit_fixture_free(&f);
    free(context), free(plain);
    dit_text_free(&text);
    dit_model_free(&model);
    safetensors_close(io);
    backend_destroy(be);
    return test_finish("test_dit_context_matches_diffusers");
}
