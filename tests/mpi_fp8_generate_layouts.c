/* Under mpirun: moedit_generate with --precision fp8 (docs/fp8.md) on
 * models/tiny-random gives the serial FP8 run's final latents in the layouts
 * that split no weight but other work: CFG parallel (the branches on two
 * rank halves), data parallel (two images, one per replica), those combined
 * with tensor and Ulysses parallel, and expert parallel over the world
 * (--expert-parallel-scope world: the CFG branches or the replicas run other
 * tokens through FP8 experts dealt over every rank). The serial FP8 run is
 * rank 0 alone (data parallel over the world, one image), capturing its
 * routing for the others to replay. The tolerance is mpi_dit_layouts' FP8
 * policy: max abs diff <= 1e-4 of the latents' scale, unless an activation
 * within an ulp of an E4M3 tie rounds the other way in the layout (other
 * sum orders of tp/sp), then within FP8_FLIP_RMS relative rms. A two-image
 * layout's second image is held to the two-image run of plain data
 * parallel (within one level of 255 where the first image matched exactly).
 * On one rank: the serial FP8 latents are not the F32 ones, yet near them. */
#include "core/error.h"
#include "io/directory_tree.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "test_model_dir.h"
#include "test_util.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LATENTS (4 * 8 * 8) /* [C, h, w] of a 64 x 64 image */
#define FP8_FLIP_RMS 0.03    /* as mpi_dit_layouts */

static char dir[64];

/* One run of `images` images in `precision`; its first image's latents in dir/<name>.latents. */
static int generate(const moedit_parallel *par, const char *precision, int images, const char *capture,
                    const char *replay, const char *name)
{
    char png[128], latents[128];
    snprintf(png, sizeof png, "%s/%s.png", dir, name);
    snprintf(latents, sizeof latents, "%s/%s.latents", dir, name);
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {
        .model_dir = TEST_TINY_MODEL, .prompts = prompts, .prompt_count = 1, .height = 64, .width = 64, .steps = 3,
        .guidance = 3.0, .seed = 5, .images_per_prompt = images, .output = png, .latents_output = latents,
        .device = "cpu", .precision = precision, .parallel = *par, .routing_capture = capture,
        .routing_replay = replay, .quiet = 1,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = r ? moedit_generate(&o, r) : error_set("out of memory");
    moedit_generate_result_free(r);
    free(r);
    return status;
}

static int read_latents(const char *name, float *out)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.latents", dir, name);
    safetensors *st = NULL;
    int status = safetensors_open(&st, path) || safetensors_read_f32(st, "latents", 3, (int64_t[]){4, 8, 8}, out);
    if (st) safetensors_close(st);
    return status ? -1 : 0;
}

/* Largest difference between image 1 of runs a and b (256: unreadable). */
static int second_image_diff(const char *a, const char *b)
{
    char a_path[128], b_path[128];
    snprintf(a_path, sizeof a_path, "%s/%s-1.png", dir, a);
    snprintf(b_path, sizeof b_path, "%s/%s-1.png", dir, b);
    uint8_t *x = NULL, *y = NULL;
    int64_t xw, xh, yw, yh;
    int worst = 256;
    if (image_read(a_path, 4096, 1 << 24, &x, &xw, &xh) == 0 && image_read(b_path, 4096, 1 << 24, &y, &yw, &yh) == 0 &&
        xw == yw && xh == yh) {
        worst = 0;
        for (int64_t i = 0; i < xw * xh * 3; i++) worst = abs(x[i] - y[i]) > worst ? abs(x[i] - y[i]) : worst;
    }
    free(x), free(y);
    return worst;
}

static int flipped_layouts;

static void check(const char *name, moedit_parallel par, int images, const char *routing, const float *serial)
{
    int status = generate(&par, "fp8", images, NULL, routing, name);
    CHECK_MSG(status == 0, "%s: %s", name, error_message());
    MPI_Barrier(MPI_COMM_WORLD);
    if (moedit_rank() != 0 || status) return;
    float got[LATENTS];
    CHECK_MSG(read_latents(name, got) == 0, "%s: %s", name, error_message());
    double diff = test_max_abs_diff(got, serial, LATENTS), scale = test_max_abs(serial, LATENTS);
    double rms = test_relative_rms(got, serial, LATENTS);
    int exact = diff <= 1e-4 * scale;
    CHECK_MSG(exact || rms <= FP8_FLIP_RMS, "%s fp8: final latents differ by %.3g (scale %.3g), relative rms %.3g",
              name, diff, scale, rms);
    flipped_layouts += !exact;
    printf("  %-36s latents max abs diff %.3g (scale %.3g)%s", name, diff, scale, exact ? "" : " (FP8 rounding flips)");
    if (images > 1) {
        int pixels = second_image_diff(name, "dp-pair");
        CHECK_MSG(pixels <= 1 || (!exact && pixels < 256), "%s fp8: image 1 differs from dp2's by %d", name, pixels);
        printf(", image 1 max pixel diff %d", pixels);
    }
    printf("\n");
}

/* The serial FP8 run is not the F32 one (the precision is in use), yet near it. */
static void check_fp8_near_f32(const float *fp8)
{
    moedit_parallel serial = {.data_parallel = moedit_world_size()};
    CHECK_MSG(generate(&serial, NULL, 1, NULL, NULL, "serial-f32") == 0, "serial f32: %s", error_message());
    float f32[LATENTS];
    CHECK_MSG(read_latents("serial-f32", f32) == 0, "%s", error_message());
    double relative = test_relative_rms(fp8, f32, LATENTS);
    CHECK_MSG(relative > 1e-4 && relative < 0.25, "serial fp8 vs f32: relative rms difference %.3g", relative);
    printf("  serial fp8 vs f32: relative rms difference %.4f\n", relative);
}

/* The layouts, by world size: CFG and data parallel, with tp or Ulysses,
 * and expert parallel over the world (W). */
#define W .expert_parallel = 1, .expert_parallel_scope = MOEDIT_EXPERT_SCOPE_WORLD
static const struct {
    int ranks;
    const char *name;
    moedit_parallel par;
    int images;
} layouts[] = {
    {2, "cfg2", {.cfg_parallel = 2}, 1},
    {2, "dp2 (2 images)", {.data_parallel = 2}, 2},
    {2, "cfg2 +EP(world)", {.cfg_parallel = 2, W}, 1},
    {2, "dp2 +EP(world) (2 images)", {.data_parallel = 2, W}, 2},
    {4, "cfg2 x tp2", {.tensor_parallel = 2, .cfg_parallel = 2}, 1},
    {4, "ulysses2 x cfg2", {.ulysses = 2, .cfg_parallel = 2}, 1},
    {4, "cfg2 x dp2 (2 images)", {.cfg_parallel = 2, .data_parallel = 2}, 2},
    {4, "tp2 x dp2 (2 images)", {.tensor_parallel = 2, .data_parallel = 2}, 2},
    {4, "cfg2 x tp2 +EP(world)", {.tensor_parallel = 2, .cfg_parallel = 2, W}, 1},
    {4, "cfg2 x dp2 +EP(world) (2 images)", {.cfg_parallel = 2, .data_parallel = 2, W}, 2},
    {4, "ulysses2 x dp2 +EP(world) (2 images)", {.ulysses = 2, .data_parallel = 2, W}, 2},
};
#undef W

static void run_layouts(int n, const char *routing)
{
    moedit_parallel serial_layout = {.data_parallel = n};
    CHECK_MSG(generate(&serial_layout, "fp8", 1, routing, NULL, "serial") == 0, "serial: %s", error_message());
    if (n > 1) MPI_Barrier(MPI_COMM_WORLD);
    float serial[LATENTS];
    CHECK_MSG(read_latents("serial", serial) == 0, "%s", error_message());
    if (n == 1) check_fp8_near_f32(serial);
    if (n > 1) { /* image 1's reference: plain data parallel, the same routing replayed */
        CHECK_MSG(generate(&serial_layout, "fp8", 2, NULL, routing, "dp-pair") == 0, "dp-pair: %s", error_message());
        MPI_Barrier(MPI_COMM_WORLD);
    }
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].ranks == n) check(layouts[i].name, layouts[i].par, layouts[i].images, routing, serial);
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    int n = moedit_world_size();
    if (moedit_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/moedit_fp8_layouts_XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    if (n > 1) MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    char routing[128];
    snprintf(routing, sizeof routing, "%s/routing.safetensors", dir);
    run_layouts(n, routing);
    if (n > 1) MPI_Barrier(MPI_COMM_WORLD);
    if (moedit_rank() == 0) printf("  %d layout(s) with FP8 rounding flips\n", flipped_layouts);
    if (moedit_rank() == 0) directory_tree_remove(dir);
    char name[64];
    snprintf(name, sizeof name, "mpi_fp8_generate_layouts (rank %d of %d)", moedit_rank(), n);
    int status = test_finish(name);
    moedit_finalize();
    return status;
}
