/* Under mpirun: moedit_generate on models/tiny-random gives the serial
 * run's final latents (max abs diff <= 1e-4 of their scale) in every
 * layout the world's size allows: CFG parallel, tensor, Ulysses, ring,
 * expert and data parallel, alone and combined, with the serial run's routing
 * replayed. The serial reference runs on rank 0 alone (data parallel over
 * the world with one image), capturing its routing for the others. Expert
 * parallelism over the world (DP2EP: the CFG branches or dp replicas run
 * other tokens through the same layers, each holding 1 / ranks of the
 * experts) is held to the same bar; a layout that makes two images also
 * matches, image by image, the two-image run of plain data parallel. Then the
 * same for a clip of 3 frames (moedit_video: one sequence of 3 x 16 image
 * tokens, a frame count no rank count divides; with 2 VAE ranks each
 * decodes whole frames, with 4 each frame is decoded in bands), every frame
 * written as its own PNG and compared. Then the images again with the
 * schedulers of HiDream-I1-Full (UniPC: a history of steps on every rank)
 * and -Dev (LCM: fresh noise in every step, which every rank must draw
 * alike): models/tiny-random with tests/fixtures/scheduler_runs' configs. */
#include "backend/backend.h"
#include "core/error.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "test_model_dir.h"
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL TEST_TINY_MODEL
#define FRAMES 3
#define LATENTS (FRAMES * 4 * 8 * 8) /* an image uses the first frame's share */

static char dir[64];
static const char *model = MODEL;
static const char *device = "cpu";
static int64_t frames = 1; /* > 1: a clip through moedit_video */

static int generate(const moedit_parallel *par, int images, const char *capture, const char *replay, const char *name)
{
    char png[128], latents[128];
    snprintf(png, sizeof png, frames > 1 ? "%s/%s/" : "%s/%s.png", dir, name); /* a clip: a frames directory */
    snprintf(latents, sizeof latents, "%s/%s.latents", dir, name);
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {
        .model_dir = model, .prompts = prompts, .prompt_count = 1, .height = 64, .width = 64, .steps = 3,
        .guidance = 3.0, .seed = 5, .images_per_prompt = images, .output = png, .latents_output = latents,
        .device = device, .parallel = *par, .routing_capture = capture, .routing_replay = replay, .quiet = 1,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    moedit_video_options video = {o, frames, 4};
    int status = frames > 1 ? moedit_video(&video, r) : moedit_generate(&o, r);
    moedit_generate_result_free(r);
    free(r);
    return status;
}

static int read_latents(const char *name, float *out)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.latents", dir, name);
    safetensors *st = NULL;
    int64_t shape[4] = {frames, 4, 8, 8};
    int status = safetensors_open(&st, path) ||
                 safetensors_read_f32(st, "latents", frames > 1 ? 4 : 3, frames > 1 ? shape : shape + 1, out);
    if (st) safetensors_close(st);
    return status ? -1 : 0;
}

/* Largest difference between two PNGs (256: unreadable), and the PSNR in dB. */
static int pixel_diff(const char *a_path, const char *b_path, double *psnr)
{
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

/* Frame f of image `image` of the run `name` that made `images` images. */
static void image_path(const char *name, int image, int images, int64_t f, char *path, size_t size)
{
    char prefix[16] = "";
    if (images > 1) snprintf(prefix, sizeof prefix, frames > 1 ? "clip%d-" : "-%d", image);
    if (frames > 1) snprintf(path, size, "%s/%s/%sframe-%04lld.png", dir, name, prefix, (long long)f);
    else snprintf(path, size, "%s/%s%s.png", dir, name, prefix);
}

static void check(const char *name, moedit_parallel par, int images, const char *routing, const float *serial)
{
    char label[64];
    snprintf(label, sizeof label, "%s%s", frames > 1 ? "clip " : "", name);
    int status = generate(&par, images, NULL, routing, name);
    CHECK_MSG(status == 0, "%s: %s", label, error_message());
    MPI_Barrier(MPI_COMM_WORLD);
    if (moedit_rank() != 0 || status) return;
    float got[LATENTS];
    CHECK_MSG(read_latents(name, got) == 0, "%s: %s", label, error_message());
    long n = (long)frames * 4 * 8 * 8;
    double diff = test_max_abs_diff(got, serial, n), scale = test_max_abs(serial, n), psnr = 0;
    /* The first image of the layout against the serial one; every frame of a clip. */
    int pixels = 0;
    psnr = 99;
    /* Image 0 against the serial run; with two images, image 1 too, against
     * the two-image data-parallel run ("dp-pair"). */
    for (int image = 0; image < images && image < 2; image++)
        for (int64_t f = 0; f < frames; f++) {
            char a[256], b[256];
            double frame_psnr = 0;
            image_path(image ? "dp-pair" : "serial", image, image ? 2 : 1, f, a, sizeof a);
            image_path(name, image, images, f, b, sizeof b);
            int worst = pixel_diff(a, b, &frame_psnr);
            pixels = worst > pixels ? worst : pixels;
            psnr = frame_psnr < psnr ? frame_psnr : psnr;
        }
    if (strcmp(device, "cpu") == 0) {
        CHECK_MSG(diff <= 1e-4 * scale, "%s: final latents differ by %.3g (scale %.3g)", label, diff, scale);
        CHECK_MSG(pixels <= 1, "%s: image differs from serial by %d", label, pixels);
    } else {
        CHECK_MSG(psnr >= 40, "%s: image PSNR %.1f dB vs one GPU", label, psnr);
    }
    printf("  %-28s latents max abs diff %.3g (scale %.3g), max pixel diff %d, PSNR %.1f dB\n", label, diff, scale,
           pixels, psnr);
}

/* The serial run (capturing routing), then every layout of n ranks against it. */
static void run_layouts(int n, const char *routing)
{
    moedit_parallel serial_layout = {.data_parallel = n};
    CHECK_MSG(generate(&serial_layout, 1, routing, NULL, "serial") == 0, "serial: %s", error_message());
    if (n > 1) MPI_Barrier(MPI_COMM_WORLD);
    float serial[LATENTS];
    CHECK_MSG(read_latents("serial", serial) == 0, "%s", error_message());
    if (n > 1) { /* the second image's reference: plain data parallel, the same routing replayed */
        moedit_parallel pair = {.data_parallel = n};
        CHECK_MSG(generate(&pair, 2, NULL, routing, "dp-pair") == 0, "dp-pair: %s", error_message());
        MPI_Barrier(MPI_COMM_WORLD);
    }
    const int world = MOEDIT_EXPERT_SCOPE_WORLD;

    if (n == 2) {
        check("cfg2", (moedit_parallel){.cfg_parallel = 2}, 1, routing, serial);
        check("tp2", (moedit_parallel){.tensor_parallel = 2}, 1, routing, serial);
        check("ulysses2", (moedit_parallel){.ulysses = 2}, 1, routing, serial);
        check("ring2", (moedit_parallel){.ring = 2}, 1, routing, serial);
        check("ulysses2 +EP", (moedit_parallel){.ulysses = 2, .expert_parallel = 1}, 1, routing, serial);
        check("tp2 +EP", (moedit_parallel){.tensor_parallel = 2, .expert_parallel = 1}, 1, routing, serial);
        check("dp2 (2 images)", (moedit_parallel){.data_parallel = 2}, 2, routing, serial);
        check("cfg2 vae2", (moedit_parallel){.cfg_parallel = 2, .vae_patch_parallel = 2}, 1, routing, serial);
        check("cfg2 +EP(world)", (moedit_parallel){.cfg_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world},
              1, routing, serial);
        check("dp2 +EP(world) (2 images)",
              (moedit_parallel){.data_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world}, 2, routing,
              serial);
    }
    if (n == 4) {
        check("cfg2 x tp2", (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2}, 1, routing, serial);
        check("cfg2 x ulysses2", (moedit_parallel){.ulysses = 2, .cfg_parallel = 2}, 1, routing, serial);
        check("ulysses2 x ring2", (moedit_parallel){.ulysses = 2, .ring = 2}, 1, routing, serial);
        check("tp2 x ring2 +EP", (moedit_parallel){.tensor_parallel = 2, .ring = 2, .expert_parallel = 1}, 1, routing,
              serial);
        check("ring4 +EP", (moedit_parallel){.ring = 4, .expert_parallel = 1}, 1, routing, serial);
        check("cfg2 x tp2 +EP", (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2, .expert_parallel = 1}, 1,
              routing, serial);
        check("cfg2 x dp2 (2 images)", (moedit_parallel){.cfg_parallel = 2, .data_parallel = 2}, 2, routing, serial);
        check("tp2 x cfg2 vae4", (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2, .vae_patch_parallel = 4}, 1,
              routing, serial);
        check("ring2 x dp2 vae2", (moedit_parallel){.ring = 2, .data_parallel = 2, .vae_patch_parallel = 2}, 1, routing,
              serial);
        check("cfg2 x tp2 +EP(world)",
              (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2, .expert_parallel = 1,
                                .expert_parallel_scope = world},
              1, routing, serial);
        check("cfg2 x dp2 +EP(world) (2 images)",
              (moedit_parallel){.cfg_parallel = 2, .data_parallel = 2, .expert_parallel = 1,
                                .expert_parallel_scope = world},
              2, routing, serial);
        check("ulysses2 x dp2 +EP(world) (2 images)",
              (moedit_parallel){.ulysses = 2, .data_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world},
              2, routing, serial);
    }
}

/* dir/<name>: models/tiny-random with the scheduler of fixtures/scheduler_runs/<config> (rank 0 makes it). */
static const char *model_with_scheduler(const char *name, const char *config)
{
    static char path[128];
    char scheduler[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(scheduler, sizeof scheduler, "%s/scheduler_runs/%s", MOEDIT_FIXTURES, config);
    if (moedit_rank() == 0) CHECK(test_model_with_scheduler(path, scheduler) == 0);
    if (moedit_world_size() > 1) MPI_Barrier(MPI_COMM_WORLD);
    return path;
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
        snprintf(dir, sizeof dir, "/tmp/moedit_layouts_XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    if (n > 1) MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    char routing[128];
    snprintf(routing, sizeof routing, "%s/routing.safetensors", dir);

    run_layouts(n, routing);
    frames = FRAMES; /* a clip: PNG comparisons read each APNG's first frame */
    snprintf(routing, sizeof routing, "%s/clip-routing.safetensors", dir);
    run_layouts(n, routing);
    frames = 1;
    static const char *const schedulers[][2] = {{"unipc", "hidream_full"}, {"lcm", "hidream_dev_lcm"}};
    for (int i = 0; i < 2; i++) {
        if (moedit_rank() == 0) printf("%s (tests/fixtures/scheduler_runs/%s):\n", schedulers[i][0], schedulers[i][1]);
        model = model_with_scheduler(schedulers[i][0], schedulers[i][1]);
        snprintf(routing, sizeof routing, "%s/%s-routing.safetensors", dir, schedulers[i][0]);
        run_layouts(n, routing);
    }
    char name[64];
    snprintf(name, sizeof name, "mpi_generate_layouts (rank %d of %d)", moedit_rank(), n);
    int status = test_finish(name);
    moedit_finalize();
    return status;
}
