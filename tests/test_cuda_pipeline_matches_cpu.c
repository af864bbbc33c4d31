/* moedit generate on the GPU (bf16) gives the CPU (fp32) picture on
 * models/tiny-random: PSNR >= 35 dB over the image, with the CPU run's
 * routing replayed so a near-tie in the gate cannot flip an expert. Skipped
 * (exit 77) without a GPU. */
#include "backend/backend.h"
#include "core/error.h"
#include "io/image_io.h"
#include "moedit.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL MOEDIT_FIXTURES "/../../models/tiny-random"

static int run(const char *device, const char *png, const char *capture, const char *replay)
{
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {
        .model_dir = MODEL, .prompts = prompts, .prompt_count = 1, .height = 128, .width = 128, .steps = 8,
        .guidance = 4.0, .seed = 3, .images_per_prompt = 1, .output = png, .device = device,
        .routing_capture = capture, .routing_replay = replay, .quiet = 1,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = moedit_generate(&o, r);
    moedit_generate_result_free(r);
    free(r);
    return status;
}

/* PSNR in dB of b against a, 8-bit pixels. */
static double psnr(const uint8_t *a, const uint8_t *b, int64_t n)
{
    double squares = 0;
    for (int64_t i = 0; i < n; i++) squares += (double)(a[i] - b[i]) * (a[i] - b[i]);
    return squares == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (squares / (double)n));
}

int main(int argc, char **argv)
{
    backend *gpu = backend_create("cuda");
    if (!gpu) {
        printf("skipped: %s\n", error_message());
        return 77;
    }
    backend_destroy(gpu);
    moedit_init(&argc, &argv);
    char dir[] = "/tmp/moedit_cuda_pipeline_XXXXXX", cpu_png[128], gpu_png[128], routing[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cpu_png, sizeof cpu_png, "%s/cpu.png", dir);
    snprintf(gpu_png, sizeof gpu_png, "%s/gpu.png", dir);
    snprintf(routing, sizeof routing, "%s/routing.safetensors", dir);
    CHECK_MSG(run("cpu", cpu_png, routing, NULL) == 0, "cpu: %s", error_message());
    CHECK_MSG(run("cuda", gpu_png, NULL, routing) == 0, "cuda: %s", error_message());
    uint8_t *a = NULL, *b = NULL;
    int64_t w, h, w2, h2;
    CHECK(image_read(cpu_png, 4096, 1 << 24, &a, &w, &h) == 0 && image_read(gpu_png, 4096, 1 << 24, &b, &w2, &h2) == 0);
    if (a && b && w == w2 && h == h2) {
        double db = psnr(a, b, w * h * 3);
        printf("GPU vs CPU on tiny-random: PSNR %.1f dB\n", db);
        CHECK_MSG(db >= 35, "PSNR %.1f dB < 35", db);
    }
    free(a), free(b);
    unlink(cpu_png), unlink(gpu_png), unlink(routing), rmdir(dir);
    moedit_finalize();
    return test_finish("test_cuda_pipeline_matches_cpu");
}
