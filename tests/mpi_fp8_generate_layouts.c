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
 * sum orders), then within FP8_FLIP_RMS relative rms (test_layout_judge_fp8). A two-image
 * layout's second image is held to the two-image run of plain data
 * parallel (within one level of 255 where the first image matched exactly).
 * On one rank: the serial FP8 latents are not the F32 ones, yet near them. */
#include "io/directory_tree.h"
#include "test_layouts.h"
#include "test_model_dir.h"

#define LATENTS (4 * 8 * 8) /* [C, h, w] of a 64 x 64 image */

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

static const int64_t latent_shape[3] = {4, 8, 8};

/* Largest difference between image 1 of runs a and b (256: unreadable). */
static int second_image_diff(const char *a, const char *b)
{
    char a_path[128], b_path[128];
    snprintf(a_path, sizeof a_path, "%s/%s-1.png", dir, a);
    snprintf(b_path, sizeof b_path, "%s/%s-1.png", dir, b);
    double psnr = 0;
    return test_pixel_diff(a_path, b_path, &psnr);
}

static int flipped_layouts;

/* A layout against the serial FP8 run: mpi_dit_layouts' FP8 bar (see the top), not test_layout_judge's. */
static void check(const test_layout *layout, const test_serial *serial_run)
{
    const char *name = layout->label;
    int images = layout->images, status = generate(&layout->parallel, "fp8", images, NULL, serial_run->routing, name);
    test_layout_figures f;
    if (!test_layout_latents(name, status, dir, name, 3, latent_shape, serial_run->latents, &f)) return;
    int exact = test_layout_judge_fp8(name, 36, &f);
    flipped_layouts += !exact;
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
    CHECK_MSG(test_read_latents(dir, "serial-f32", 3, latent_shape, f32) == 0, "%s", error_message());
    double relative = test_relative_rms(fp8, f32, LATENTS);
    CHECK_MSG(relative > 1e-4 && relative < 0.25, "serial fp8 vs f32: relative rms difference %.3g", relative);
    printf("  serial fp8 vs f32: relative rms difference %.4f\n", relative);
}

/* CFG and data parallel, with tp or Ulysses, and expert parallel over the
 * world, on 2 and on 4 ranks (test_layouts.h reads the labels). */
static const char *const layouts[] = {
    "cfg2", "dp2 (2 images)", "cfg2 +EP(world)", "dp2 +EP(world) (2 images)",
    "cfg2 x tp2", "ulysses2 x cfg2", "cfg2 x dp2 (2 images)", "tp2 x dp2 (2 images)", "cfg2 x tp2 +EP(world)",
    "cfg2 x dp2 +EP(world) (2 images)", "ulysses2 x dp2 +EP(world) (2 images)",
};

static void run_layouts(int n, const char *routing)
{
    moedit_parallel serial_layout = {.data_parallel = n};
    CHECK_MSG(generate(&serial_layout, "fp8", 1, routing, NULL, "serial") == 0, "serial: %s", error_message());
    test_barrier();
    float serial[LATENTS];
    CHECK_MSG(test_read_latents(dir, "serial", 3, latent_shape, serial) == 0, "%s", error_message());
    if (n == 1) check_fp8_near_f32(serial);
    if (n > 1) { /* image 1's reference: plain data parallel, the same routing replayed */
        CHECK_MSG(generate(&serial_layout, "fp8", 2, NULL, routing, "dp-pair") == 0, "dp-pair: %s", error_message());
        MPI_Barrier(MPI_COMM_WORLD);
    }
    test_serial serial_run = {routing, serial, NULL};
    test_layouts_run(layouts, sizeof layouts / sizeof layouts[0], check, &serial_run);
}

int main(int argc, char **argv)
{
    int n = test_layouts_init(&argc, &argv, dir, sizeof dir, "/tmp/moedit_fp8_layouts_XXXXXX");
    char routing[128];
    snprintf(routing, sizeof routing, "%s/routing.safetensors", dir);
    run_layouts(n, routing);
    test_barrier();
    if (moedit_rank() == 0) printf("  %d layout(s) with FP8 rounding flips\n", flipped_layouts);
    if (moedit_rank() == 0) directory_tree_remove(dir);
    return test_layouts_finish("mpi_fp8_generate_layouts");
}
