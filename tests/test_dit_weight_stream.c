/* --max-gpu-memory's streaming on the CPU backend (tests/test_dit_weight_stream.h):
 * streamed == resident bit for bit, the counted device peak within the budget,
 * the all-streamed minimum named when the budget is below it; and the resident
 * run matches diffusers' output, so the comparison is against a right answer. */
#include "test_dit_weight_stream.h"

int main(void)
{
    backend *cpu = backend_cpu_create();
    dit_model model;
    safetensors *io = NULL;
    dit_fixture f;
    if (dit_fixture_setup(cpu, DIR "/io.safetensors", DIR, &io, &model, &f) == 0) {
        float *out = calloc((size_t)(FORWARDS * f.n_output), sizeof(float));
        run_forwards(&model, &f, out, f.n_output);
        CHECK_MSG(test_max_abs_diff(out, f.output, f.n_output) <= 1e-4 * test_max_abs(f.output, f.n_output),
                  "resident run differs from diffusers");
        free(out);
        dit_model_free(&model);
    }
    dit_fixture_free(&f);
    safetensors_close(io);
    return dit_weight_stream_test(cpu, "test_dit_weight_stream");
}
