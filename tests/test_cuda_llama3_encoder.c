/* The text encoder on the GPU (BF16) against the CPU (F32) on
 * tests/fixtures/llama3_tiny: Llama 3.1's llama3 RoPE and the right-padding
 * mask (causal attention over the 7 valid rows, plain attention of the 5
 * padded rows over the valid keys: a key count the GPU kernels see as an
 * odd length), each hidden state within 3e-2 of its scale, through the
 * counting backend view (backend/backend_memory.h) that the HiDream text
 * side runs encoders on, which must give every byte back. Without a GPU the
 * test exits 77 (ctest: skipped). */
#include "backend/backend_memory.h"
#include "backend/cuda/backend_cuda.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "text/text_encoder.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#define FIXTURE MOEDIT_FIXTURES "/llama3_tiny"

static float *run(backend *be, const int32_t *ids, int64_t tokens, int64_t valid)
{
    text_encoder enc;
    CHECK_MSG(text_encoder_load(&enc, be, FIXTURE "/text_encoder", 0, 0) == 0, "%s", error_message());
    if (test_failures) return NULL;
    float *hidden = malloc((size_t)((enc.cfg.num_layers + 1) * tokens * enc.cfg.hidden_size) * sizeof(float));
    arena scratch;
    arena_init(&scratch, be);
    CHECK_MSG(text_encoder_forward_masked(&enc, &scratch, ids, tokens, valid, hidden) == 0, "%s", error_message());
    arena_free(&scratch);
    text_encoder_free(&enc);
    return hidden;
}

int main(void)
{
    backend *gpu = backend_cuda_create(0);
    if (!gpu) {
        printf("test_cuda_llama3_encoder: skipped (%s)\n", error_message());
        return 77;
    }
    backend *view = backend_memory_wrap(gpu), *cpu = backend_cpu_create();
    safetensors *io = NULL;
    int32_t ids[12], valid = 0;
    int64_t shape[1] = {12}, one[1] = {1};
    CHECK(safetensors_open(&io, FIXTURE "/io.safetensors") == 0 && safetensors_read_i32(io, "ids", 1, shape, ids) == 0 &&
          safetensors_read_i32(io, "valid", 1, one, &valid) == 0);
    float *want = run(cpu, ids, 12, valid), *got = run(view, ids, 12, valid);
    CHECK_MSG(backend_cuda_status(gpu) == 0, "%s", error_message());
    for (int64_t l = 0; want && got && l < 4; l++) {
        const float *g = got + l * 12 * 64, *w = want + l * 12 * 64;
        double scale = test_max_abs(w, 12 * 64), diff = test_max_abs_diff(g, w, 12 * 64);
        CHECK_MSG(diff <= 3e-2 * scale, "hidden_states[%lld]: max abs diff %.3g (scale %.3g)", (long long)l, diff, scale);
        printf("  hidden_states[%lld] GPU vs CPU max abs diff %.3g (scale %.3g)\n", (long long)l, diff, scale);
    }
    CHECK_MSG(backend_memory_in_use(view) == 0 && backend_memory_peak(view) > 0, "view: %lld in use, peak %lld",
              (long long)backend_memory_in_use(view), (long long)backend_memory_peak(view));
    free(want), free(got);
    if (io) safetensors_close(io);
    backend_destroy(view);
    backend_destroy(cpu);
    backend_destroy(gpu);
    return test_finish("test_cuda_llama3_encoder");
}
