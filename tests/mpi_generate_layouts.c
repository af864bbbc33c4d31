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
#include "test_layouts.h"
#include "test_model_dir.h"

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

/* A run's final latents: [4, 8, 8], a clip's [frames, 4, 8, 8]. */
static const int64_t *latent_shape(int *ndim)
{
    static int64_t shape[4] = {0, 4, 8, 8};
    shape[0] = frames;
    *ndim = frames > 1 ? 4 : 3;
    return frames > 1 ? shape : shape + 1;
}

/* Frame f of image `image` of the run `name` that made `images` images. */
static void image_path(const char *name, int image, int images, int64_t f, char *path, size_t size)
{
    char prefix[16] = "";
    if (images > 1) snprintf(prefix, sizeof prefix, frames > 1 ? "clip%d-" : "-%d", image);
    if (frames > 1) snprintf(path, size, "%s/%s/%sframe-%04lld.png", dir, name, prefix, (long long)f);
    else snprintf(path, size, "%s/%s%s.png", dir, name, prefix);
}

/* Every layout of 2 and of 4 ranks (test_layouts.h reads the labels). */
static const char *const layouts[] = {
    "cfg2", "tp2", "ulysses2", "ring2", "ulysses2 +EP", "tp2 +EP", "dp2 (2 images)", "cfg2 vae2", "cfg2 +EP(world)",
    "dp2 +EP(world) (2 images)",
    "cfg2 x tp2", "cfg2 x ulysses2", "ulysses2 x ring2", "tp2 x ring2 +EP", "ring4 +EP", "cfg2 x tp2 +EP",
    "cfg2 x dp2 (2 images)", "tp2 x cfg2 vae4", "ring2 x dp2 vae2", "cfg2 x tp2 +EP(world)",
    "cfg2 x dp2 +EP(world) (2 images)", "ulysses2 x dp2 +EP(world) (2 images)",
};

static void check(const test_layout *layout, const test_serial *serial)
{
    char label[64];
    snprintf(label, sizeof label, "%s%s", frames > 1 ? "clip " : "", layout->label);
    int status = generate(&layout->parallel, layout->images, NULL, serial->routing, layout->label), ndim;
    const int64_t *shape = latent_shape(&ndim);
    test_layout_figures f;
    if (!test_layout_latents(label, status, dir, layout->label, ndim, shape, serial->latents, &f)) return;
    /* Image 0 against the serial run, every frame of a clip; with two images,
     * image 1 too, against the two-image data-parallel run ("dp-pair"). */
    f.pixels = 0;
    f.psnr = 99;
    for (int image = 0; image < layout->images && image < 2; image++)
        for (int64_t frame = 0; frame < frames; frame++) {
            char a[256], b[256];
            double frame_psnr = 0;
            image_path(image ? "dp-pair" : "serial", image, image ? 2 : 1, frame, a, sizeof a);
            image_path(layout->label, image, layout->images, frame, b, sizeof b);
            int worst = test_pixel_diff(a, b, &frame_psnr);
            f.pixels = worst > f.pixels ? worst : f.pixels;
            f.psnr = frame_psnr < f.psnr ? frame_psnr : f.psnr;
        }
    test_layout_judge(label, 28, strcmp(device, "cpu") == 0, &f);
}

/* The serial run (capturing routing), then every layout of n ranks against it. */
static void run_layouts(int n, const char *routing)
{
    moedit_parallel serial_layout = {.data_parallel = n};
    CHECK_MSG(generate(&serial_layout, 1, routing, NULL, "serial") == 0, "serial: %s", error_message());
    test_barrier();
    float latents[LATENTS];
    int ndim;
    const int64_t *shape = latent_shape(&ndim);
    CHECK_MSG(test_read_latents(dir, "serial", ndim, shape, latents) == 0, "%s", error_message());
    if (n > 1) { /* the second image's reference: plain data parallel, the same routing replayed */
        moedit_parallel pair = {.data_parallel = n};
        CHECK_MSG(generate(&pair, 2, NULL, routing, "dp-pair") == 0, "dp-pair: %s", error_message());
        MPI_Barrier(MPI_COMM_WORLD);
    }
    test_serial serial = {routing, latents, NULL};
    test_layouts_run(layouts, sizeof layouts / sizeof layouts[0], check, &serial);
}

/* dir/<name>: models/tiny-random with the scheduler of fixtures/scheduler_runs/<config> (rank 0 makes it). */
static const char *model_with_scheduler(const char *name, const char *config)
{
    static char path[128];
    char scheduler[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(scheduler, sizeof scheduler, "%s/scheduler_runs/%s", MOEDIT_FIXTURES, config);
    if (moedit_rank() == 0) CHECK(test_model_with_scheduler(path, scheduler) == 0);
    test_barrier();
    return path;
}

int main(int argc, char **argv)
{
    device = test_layouts_device(argc, argv);
    if (!device) return 77;
    int n = test_layouts_init(&argc, &argv, dir, sizeof dir, "/tmp/moedit_layouts_XXXXXX");
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
    return test_layouts_finish("mpi_generate_layouts");
}
