/* Under mpirun: moedit_generate from the prompt on tests/fixtures/hidream_text
 * (HiDream-I1's own four text encoders, tiny and random, before
 * models/tiny-random's transformer; CFG 3 with a negative prompt, 64x64, 3
 * steps) gives the serial run's final latents (max abs diff <= 1e-4 of their
 * scale) and image (every pixel within 1) in every layout the world's size
 * allows, with the serial run's routing replayed. The serial reference runs
 * on rank 0 alone (data parallel over the world with one prompt), capturing
 * its routing.
 *
 * It also shows who encodes: only the first rank of each CFG branch's
 * tp x sp ranks runs the encoders (its result reports each encoder's seconds
 * and peak bytes; the ranks that receive the broadcast embeddings report
 * zero), the CFG branches split the prompt from the negative prompt, and
 * data-parallel replicas take their own prompts: with two prompts on dp2 the
 * second replica's image equals a serial run of the second prompt alone.
 *
 * With "cuda" as its argument (one GPU per rank, NCCL) the images must
 * match one GPU's at a PSNR of at least 40 dB instead; without a GPU it
 * exits 77. */
#include "backend/backend.h"
#include "core/error.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL MOEDIT_FIXTURES "/hidream_text"
#define LATENTS (4 * 8 * 8)

static char dir[64];
static const char *device = "cpu";
static const char *const prompt_a = "a red circle on a blue background", *const prompt_b = "two green squares at dusk";

/* One run: `count` prompts (A, then B) or B alone (count -1), one image each. */
static int generate(const moedit_parallel *par, int count, const char *capture, const char *replay, const char *name,
                    moedit_generate_result *r)
{
    char png[128], latents[128];
    snprintf(png, sizeof png, "%s/%s.png", dir, name);
    snprintf(latents, sizeof latents, "%s/%s.latents", dir, name);
    const char *prompts[2] = {count < 0 ? prompt_b : prompt_a, prompt_b};
    moedit_generate_options o = {
        .model_dir = MODEL, .prompts = prompts, .prompt_count = count < 0 ? 1 : count,
        .negative_prompt = "blurry, low quality, watermark", .height = 64, .width = 64, .steps = 3, .guidance = 3.0,
        .seed = 5, .images_per_prompt = 1, .output = png, .latents_output = latents, .device = device,
        .parallel = *par, .routing_capture = capture, .routing_replay = replay, .quiet = 1,
    };
    memset(r, 0, sizeof *r);
    return moedit_generate(&o, r);
}

static int read_latents(const char *name, float *out)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.latents", dir, name);
    safetensors *st = NULL;
    int64_t shape[3] = {4, 8, 8};
    int status = safetensors_open(&st, path) || safetensors_read_f32(st, "latents", 3, shape, out);
    if (st) safetensors_close(st);
    return status ? -1 : 0;
}

/* Largest difference between two PNGs (256: unreadable), and the PSNR in dB. */
static int pixel_diff(const char *a_name, const char *b_name, double *psnr)
{
    char a_path[128], b_path[128];
    snprintf(a_path, sizeof a_path, "%s/%s.png", dir, a_name);
    snprintf(b_path, sizeof b_path, "%s/%s.png", dir, b_name);
    uint8_t *a = NULL, *b = NULL;
    int64_t aw, ah, bw, bh;
    int worst = 256;
    if (image_read(a_path, 4096, 1 << 24, &a, &aw, &ah) == 0 && image_read(b_path, 4096, 1 << 24, &b, &bw, &bh) == 0 &&
        aw == bw && ah == bh) {
        worst = 0;
        double squares = 0;
        for (int64_t i = 0; i < aw * ah * 3; i++) {
            worst = abs(a[i] - b[i]) > worst ? abs(a[i] - b[i]) : worst;
            squares += (double)(a[i] - b[i]) * (a[i] - b[i]);
        }
        *psnr = squares == 0 ? 99 : 10 * log10(255.0 * 255.0 / (squares / (double)(aw * ah * 3)));
    }
    free(a), free(b);
    return worst;
}

/* This rank ran the encoders iff it is its branch's first rank (tp, ulysses
 * and ring index 0): then every encoder reports time and memory, else none. */
static void check_encoder_figures(const char *name, const moedit_parallel *par, const moedit_generate_result *r)
{
    int per_branch = (par->tensor_parallel ? par->tensor_parallel : 1) * (par->ulysses ? par->ulysses : 1) *
                     (par->ring ? par->ring : 1);
    int encodes = moedit_rank() % per_branch == 0;
    for (int k = 0; k < 4; k++) {
        int reported = r->text_encoder_seconds[k] > 0 && r->text_encoder_peak_bytes[k] > 0;
        int silent = r->text_encoder_seconds[k] == 0 && r->text_encoder_peak_bytes[k] == 0;
        CHECK_MSG(encodes ? reported : silent, "%s: rank %d %s encoder %d (%.3g s, %lld bytes)", name, moedit_rank(),
                  encodes ? "should have run" : "should not have run", k, r->text_encoder_seconds[k],
                  (long long)r->text_encoder_peak_bytes[k]);
    }
}

/* A layout against the serial run; with two prompts (data parallel) the
 * first image is prompt A's, checked like the rest. */
static void check(const char *name, moedit_parallel par, int count, const char *routing, const float *serial)
{
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = generate(&par, count, NULL, routing, name, r);
    CHECK_MSG(status == 0, "%s: %s", name, error_message());
    if (status == 0) check_encoder_figures(name, &par, r);
    moedit_generate_result_free(r);
    free(r);
    MPI_Barrier(MPI_COMM_WORLD);
    if (moedit_rank() != 0 || status) return;
    float got[LATENTS];
    char first[96];
    snprintf(first, sizeof first, "%s%s", name, count > 1 ? "-0" : "");
    CHECK_MSG(read_latents(name, got) == 0, "%s: %s", name, error_message());
    double diff = test_max_abs_diff(got, serial, LATENTS), scale = test_max_abs(serial, LATENTS);
    double psnr = 0;
    int pixels = pixel_diff("serial", first, &psnr);
    if (strcmp(device, "cpu") == 0) {
        CHECK_MSG(diff <= 1e-4 * scale, "%s: final latents differ by %.3g (scale %.3g)", name, diff, scale);
        CHECK_MSG(pixels <= 1, "%s: image differs from serial by %d", name, pixels);
    } else {
        CHECK_MSG(psnr >= 40, "%s: image PSNR %.1f dB vs one GPU", name, psnr);
    }
    printf("  %-22s latents max abs diff %.3g (scale %.3g), max pixel diff %d, PSNR %.1f dB\n", name, diff, scale,
           pixels, psnr);
}

/* dp2 with prompts A and B: replica 1 (one rank, free routing) draws B's
 * image exactly as a serial run of B alone does. */
static void check_second_replica(void)
{
    moedit_parallel alone = {.data_parallel = 2}, dp2 = {.data_parallel = 2};
    moedit_generate_result *r = calloc(1, sizeof *r);
    CHECK_MSG(generate(&alone, -1, NULL, NULL, "serial-b", r) == 0, "serial B: %s", error_message());
    moedit_generate_result_free(r);
    CHECK_MSG(generate(&dp2, 2, NULL, NULL, "dp2-free", r) == 0, "dp2 A, B: %s", error_message());
    moedit_generate_result_free(r);
    free(r);
    MPI_Barrier(MPI_COMM_WORLD);
    if (moedit_rank() != 0) return;
    double psnr = 0;
    int pixels = pixel_diff("serial-b", "dp2-free-1", &psnr);
    if (strcmp(device, "cpu") == 0)
        CHECK_MSG(pixels == 0, "dp2: replica 1's image of prompt B differs from the serial one by %d", pixels);
    else
        CHECK_MSG(psnr >= 40, "dp2: replica 1's image of prompt B: PSNR %.1f dB vs one GPU", psnr);
    printf("  %-22s max pixel diff %d, PSNR %.1f dB against prompt B alone\n", "dp2 replica 1", pixels, psnr);
}

static void run_layouts(int n, const char *routing)
{
    moedit_parallel serial_layout = {.data_parallel = n};
    moedit_generate_result *r = calloc(1, sizeof *r);
    CHECK_MSG(generate(&serial_layout, 1, routing, NULL, "serial", r) == 0, "serial: %s", error_message());
    if (moedit_rank() == 0) check_encoder_figures("serial", &serial_layout, r);
    moedit_generate_result_free(r);
    free(r);
    if (n > 1) MPI_Barrier(MPI_COMM_WORLD);
    float serial[LATENTS];
    CHECK_MSG(read_latents("serial", serial) == 0, "%s", error_message());

    if (n == 2) {
        check("cfg2", (moedit_parallel){.cfg_parallel = 2}, 1, routing, serial);
        check("tp2", (moedit_parallel){.tensor_parallel = 2}, 1, routing, serial);
        check("ulysses2", (moedit_parallel){.ulysses = 2}, 1, routing, serial);
        check("ring2 +EP", (moedit_parallel){.ring = 2, .expert_parallel = 1}, 1, routing, serial);
        check("tp2 +EP", (moedit_parallel){.tensor_parallel = 2, .expert_parallel = 1}, 1, routing, serial);
        check("dp2 (A, B)", (moedit_parallel){.data_parallel = 2}, 2, routing, serial);
        check_second_replica();
    }
    if (n == 4) {
        check("cfg2 x tp2", (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2}, 1, routing, serial);
        check("cfg2 x tp2 +EP", (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2, .expert_parallel = 1}, 1,
              routing, serial);
        check("cfg2 x ulysses2", (moedit_parallel){.ulysses = 2, .cfg_parallel = 2}, 1, routing, serial);
        check("cfg2 x ring2", (moedit_parallel){.ring = 2, .cfg_parallel = 2}, 1, routing, serial);
        check("tp2 x ring2", (moedit_parallel){.tensor_parallel = 2, .ring = 2}, 1, routing, serial);
        check("ulysses2 x ring2 +EP", (moedit_parallel){.ulysses = 2, .ring = 2, .expert_parallel = 1}, 1, routing,
              serial);
        check("tp2 x dp2 (A, B)", (moedit_parallel){.tensor_parallel = 2, .data_parallel = 2}, 2, routing, serial);
        check("cfg2 x dp2 (A, B)", (moedit_parallel){.cfg_parallel = 2, .data_parallel = 2}, 2, routing, serial);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1) device = argv[1];
    backend *probe = backend_create(device);
    if (!probe) {
        printf("skipped: %s\n", error_message());
        return 77;
    }
    backend_destroy(probe);
    moedit_init(&argc, &argv);
    int n = moedit_world_size();
    if (moedit_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/moedit_hidream_layouts_XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    if (n > 1) MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    char routing[128];
    snprintf(routing, sizeof routing, "%s/routing.safetensors", dir);
    run_layouts(n, routing);
    char name[64];
    snprintf(name, sizeof name, "mpi_hidream_text_layouts (rank %d of %d)", moedit_rank(), n);
    int status = test_finish(name);
    moedit_finalize();
    return status;
}
