/* The CPU transformer under --precision fp8 reproduces the PyTorch FP8
 * reference (tools/make_fp8_dit_fixture.py: diffusers' model on the dit_moe
 * weights and inputs with every quantized linear layer computed by the rule
 * of docs/fp8.md): the weights quantized at load from the bf16 file, each
 * activation row quantized as it enters the product. Compared: every
 * intermediate the fixture recorded and the output, each within 1e-4 of its
 * scale or, where the two programs' F32 sums rounded one activation to the
 * other side of an E4M3 tie (FP8 turns a last-bit difference into a step of
 * 1/16 of a value), within FLIP_RMS relative rms; and the output is farther
 * from the F32 model's than from the FP8 reference (FP8 really ran). */
#include "core/error.h"
#include "dit/dit_forward.h"
#include "test_dit_fixture.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define FLIP_RMS 0.01

static int flipped;

static void compare(const char *name, const float *got, const float *want, int64_t n)
{
    double scale = test_max_abs(want, n), diff = test_max_abs_diff(got, want, n), rms = test_relative_rms(got, want, n);
    int exact = diff <= 1e-4 * (scale > 1 ? scale : 1);
    CHECK_MSG(exact || rms <= FLIP_RMS, "%s: max abs diff %.3g (scale %.3g), relative rms %.3g", name, diff, scale, rms);
    flipped += !exact;
    printf("  %-18s max abs diff %.3g (scale %.3g), relative rms %.3g%s\n", name, diff, scale, rms,
           exact ? "" : " (E4M3 rounding flips)");
}

static void on_trace(void *user, const char *name, tensor value)
{
    const safetensors *io = user;
    const safetensors_entry *want = safetensors_find(io, name);
    if (!want) return;
    int64_t n = tensor_numel(&value), shape[2] = {tensor_rows(&value), tensor_cols(&value)};
    float *expected = malloc((size_t)n * sizeof(float));
    CHECK_MSG(safetensors_read_f32(io, name, 2, shape, expected) == 0, "%s", error_message());
    compare(name, value.data, expected, n);
    free(expected);
}

int main(void)
{
    backend *be = backend_cpu_create();
    safetensors *io = NULL;
    dit_model model;
    dit_fixture f;
    dit_shard fp8 = {0, 1, 0, 1, NULL, NULL, 1, 0};
    CHECK_MSG(safetensors_open(&io, MOEDIT_FIXTURES "/dit_fp8/io.safetensors") == 0, "%s", error_message());
    CHECK_MSG(dit_model_load(&model, be, MOEDIT_FIXTURES "/dit_moe", 0, 0, &fp8) == 0, "%s", error_message());
    if (test_failures) return test_finish("test_dit_fp8_matches_torch");
    CHECK(dit_fixture_read(io, &f) == 0);
    int64_t n = f.n_output;
    float *want_f32 = fixture_read(io, "output_f32", NULL, NULL), *out = calloc((size_t)n, sizeof(float));
    CHECK(want_f32 != NULL);
    /* 1 byte per quantized weight: the model holds far less than its F32 size. */
    CHECK(model.weights.bytes_on_device < model.weights.parameters * 2);
    dit_text text;
    dit_run run;
    CHECK_MSG(dit_text_encode(&text, &model, &f.text) == 0, "%s", error_message());
    CHECK_MSG(dit_run_init(&run, &model, f.latent_shape[1], f.latent_shape[2], f.t5_shape[0], f.llama_shape[1], NULL) ==
                  0, "%s", error_message());
    run.trace = on_trace;
    run.trace_user = io;
    CHECK_MSG(dit_forward(&run, &text, f.latents, f.timestep[0], out) == 0, "%s", error_message());
    compare("output", out, f.output, n);
    double to_fp8 = test_relative_rms(out, f.output, n), to_f32 = want_f32 ? test_relative_rms(out, want_f32, n) : 0;
    CHECK_MSG(to_f32 > 3 * to_fp8 && to_f32 > 1e-3, "output: relative rms %.3g from the FP8 reference, %.3g from F32",
              to_fp8, to_f32);
    printf("  output: relative rms %.3g from the PyTorch FP8 reference, %.3g from the F32 model; %d of the "
           "comparisons saw E4M3 rounding flips\n", to_fp8, to_f32, flipped);
    free(out);
    free(want_f32);
    dit_fixture_free(&f);
    dit_run_free(&run);
    dit_text_free(&text);
    dit_model_free(&model);
    safetensors_close(io);
    backend_destroy(be);
    return test_finish("test_dit_fp8_matches_torch");
}
