/* The CPU transformer reproduces diffusers' HiDreamImageTransformer2DModel on
 * the committed fixtures (tools/make_dit_fixtures.py): every intermediate the
 * fixture recorded (embeddings, each block's output, final layer) and the
 * output, within 1e-4 of each tensor's scale. dit_moe: 4 experts top-2,
 * non-square padded latent, full RoPE; dit_dense: no experts, square latent,
 * half RoPE. */
#include "core/error.h"
#include "io/safetensors.h"
#include "dit/dit_forward.h"
#include "test_dit_fixture.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct trace_check {
    const safetensors *io;
    const char *fixture;
    int compared;
} trace_check;

static void compare(const char *fixture, const char *name, const float *got, const float *want, int64_t n)
{
    double scale = test_max_abs(want, n), diff = test_max_abs_diff(got, want, n);
    CHECK_MSG(diff <= 1e-4 * (scale > 1 ? scale : 1), "%s %s: max abs diff %.3g (scale %.3g)", fixture, name, diff,
              scale);
    printf("  %-16s %-18s max abs diff %.3g (scale %.3g)\n", fixture, name, diff, scale);
}

static void on_trace(void *user, const char *name, tensor value)
{
    trace_check *check = user;
    const safetensors_entry *want = safetensors_find(check->io, name);
    if (!want) return;
    int64_t n = tensor_numel(&value);
    float *got = malloc((size_t)n * sizeof(float)), *expected = malloc((size_t)n * sizeof(float));
    int64_t shape[2] = {tensor_rows(&value), tensor_cols(&value)};
    CHECK_MSG(safetensors_read_f32(check->io, name, 2, shape, expected) == 0, "%s", error_message());
    memcpy(got, value.data, (size_t)n * sizeof(float));
    compare(check->fixture, name, got, expected, n);
    check->compared++;
    free(got);
    free(expected);
}

/* The experts chosen in the first double and first single block equal the
 * fixture's; replaying a capture reproduces the output. */
static void check_routing(dit_run *run, const dit_text *text, const safetensors *io, const float *latents,
                          float timestep, float *out, const float *want, int64_t n_out)
{
    moe_routing capture;
    moe_routing_init(&capture, ROUTING_CAPTURE);
    run->routing = &capture;
    CHECK(dit_forward(run, text, latents, timestep, out) == 0);
    const char *names[2] = {"double_0_topk_idx", "single_0_topk_idx"};
    int layers[2] = {0, run->model->cfg.num_double_blocks};
    for (int i = 0; i < 2; i++) {
        const safetensors_entry *e = safetensors_find(io, names[i]);
        CHECK_MSG(e != NULL, "fixture lacks %s", names[i]);
        if (!e) continue;
        int32_t *expected = malloc(e->nbytes);
        CHECK(safetensors_read_i32(io, names[i], 2, e->shape, expected) == 0);
        /* diffusers also routes the per-block llama tokens of single blocks,
         * whose outputs it then drops; moedit routes only the kept rows. */
        int64_t kept = i == 0 ? run->image_tokens : run->image_tokens + text->t5_tokens + text->llama_tokens;
        const int32_t *got = NULL;
        CHECK_MSG(moe_routing_lookup(&capture, 0, layers[i], 0, kept, (int)e->shape[1], &got) == 0, "%s",
                  error_message());
        CHECK_MSG(got && memcmp(got, expected, (size_t)(kept * e->shape[1]) * sizeof(int32_t)) == 0,
                  "routing of %s differs from diffusers", names[i]);
        free(expected);
    }
    /* Save, load and replay: same output. */
    char path[] = "/tmp/moedit_routing_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_MSG(moe_routing_save(&capture, path) == 0, "%s", error_message());
    moe_routing replay;
    moe_routing_init(&replay, ROUTING_REPLAY);
    CHECK_MSG(moe_routing_load(&replay, path) == 0, "%s", error_message());
    CHECK(replay.count == capture.count);
    run->routing = &replay;
    CHECK_MSG(dit_forward(run, text, latents, timestep, out) == 0, "%s", error_message());
    compare("dit_moe", "output (replayed)", out, want, n_out);
    /* A replay that lacks a step is a clear error, not a silent free run. */
    replay.step = 7;
    CHECK(dit_forward(run, text, latents, timestep, out) != 0);
    CHECK_MSG(strstr(error_message(), "no record for step 7") != NULL, "got: %s", error_message());
    run->routing = NULL;
    moe_routing_free(&replay);
    moe_routing_free(&capture);
    unlink(path);
}

static void check_fixture(const char *fixture, int expected_traces)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", MOEDIT_FIXTURES, fixture);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    backend *be = backend_cpu_create();
    dit_model model;
    safetensors *io = NULL;
    dit_fixture f;
    if (dit_fixture_setup(be, path, dir, &io, &model, &f)) return;
    float *latents = f.latents, *want = f.output, *timestep = f.timestep;
    int64_t n_out = f.n_output, *latent_shape = f.latent_shape;
    dit_text_inputs inputs = f.text;
    dit_text text;
    dit_run run;
    CHECK_MSG(dit_text_encode(&text, &model, &inputs) == 0, "%s", error_message());
    CHECK_MSG(dit_run_init(&run, &model, latent_shape[1], latent_shape[2], f.t5_shape[0], f.llama_shape[1], NULL) == 0, "%s",
              error_message());
    trace_check check = {io, fixture, 0};
    run.trace = on_trace;
    run.trace_user = &check;
    float *out = calloc((size_t)n_out, sizeof(float));
    CHECK_MSG(dit_forward(&run, &text, latents, timestep[0], out) == 0, "%s", error_message());
    compare(fixture, "output", out, want, n_out);
    CHECK_MSG(check.compared == expected_traces, "%s: compared %d intermediates, expected %d", fixture,
              check.compared, expected_traces);
    run.trace = NULL;
    if (model.cfg.num_routed_experts > 0) check_routing(&run, &text, io, latents, timestep[0], out, want, n_out);

    /* A second forward on the same run reuses the arena without allocating. */
    size_t allocations = run.scratch.block_allocations;
    CHECK(dit_forward(&run, &text, latents, timestep[0], out) == 0);
    CHECK(dit_forward(&run, &text, latents, timestep[0], out) == 0);
    CHECK_MSG(run.scratch.block_allocations <= allocations + 1, "arena allocated %zu blocks after warm-up",
              run.scratch.block_allocations - allocations);
    size_t steady = run.scratch.block_allocations;
    CHECK(dit_forward(&run, &text, latents, timestep[0], out) == 0);
    CHECK(run.scratch.block_allocations == steady);
    compare(fixture, "output (again)", out, want, n_out);

    free(out);
    dit_fixture_free(&f);
    dit_run_free(&run);
    dit_text_free(&text);
    dit_model_free(&model);
    safetensors_close(io);
    backend_destroy(be);
}

int main(void)
{
    /* x_embed, temb, 2 x (double image, double text), 2 x single, final */
    check_fixture("dit_moe", 2 + 4 + 2 + 1);
    /* x_embed, temb, double image + text, 2 x single, final */
    check_fixture("dit_dense", 2 + 2 + 2 + 1);
    return test_finish("test_dit_matches_diffusers");
}
