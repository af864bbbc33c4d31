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
#include "test_layouts.h"

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

static const int64_t latent_shape[3] = {4, 8, 8};

/* test_pixel_diff of two runs' PNGs in dir. */
static int pixel_diff(const char *a_name, const char *b_name, double *psnr)
{
    char a_path[128], b_path[128];
    snprintf(a_path, sizeof a_path, "%s/%s.png", dir, a_name);
    snprintf(b_path, sizeof b_path, "%s/%s.png", dir, b_name);
    return test_pixel_diff(a_path, b_path, psnr);
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
static void check(const test_layout *layout, const test_serial *serial)
{
    const char *name = layout->label;
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = generate(&layout->parallel, layout->images, NULL, serial->routing, name, r);
    if (status == 0) check_encoder_figures(name, &layout->parallel, r);
    moedit_generate_result_free(r);
    free(r);
    test_layout_figures f;
    if (!test_layout_latents(name, status, dir, name, 3, latent_shape, serial->latents, &f)) return;
    char first[96];
    snprintf(first, sizeof first, "%s%s", name, layout->images > 1 ? "-0" : "");
    f.pixels = pixel_diff("serial", first, &f.psnr);
    test_layout_judge(name, 22, strcmp(device, "cpu") == 0, &f);
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

/* Every layout of 2 and of 4 ranks (test_layouts.h reads the labels); "(A, B)": prompts A and B. */
static const char *const layouts[] = {
    "cfg2", "tp2", "ulysses2", "ring2 +EP", "tp2 +EP", "dp2 (A, B)",
    "cfg2 x tp2", "cfg2 x tp2 +EP", "cfg2 x ulysses2", "cfg2 x ring2", "tp2 x ring2", "ulysses2 x ring2 +EP",
    "tp2 x dp2 (A, B)", "cfg2 x dp2 (A, B)",
};

static void run_layouts(int n)
{
    char routing[128];
    snprintf(routing, sizeof routing, "%s/routing.safetensors", dir);
    moedit_parallel serial_layout = {.data_parallel = n};
    moedit_generate_result *r = calloc(1, sizeof *r);
    CHECK_MSG(generate(&serial_layout, 1, routing, NULL, "serial", r) == 0, "serial: %s", error_message());
    if (moedit_rank() == 0) check_encoder_figures("serial", &serial_layout, r);
    moedit_generate_result_free(r);
    free(r);
    test_barrier();
    float latents[LATENTS];
    CHECK_MSG(test_read_latents(dir, "serial", 3, latent_shape, latents) == 0, "%s", error_message());
    test_serial serial = {routing, latents, NULL};
    test_layouts_run(layouts, sizeof layouts / sizeof layouts[0], check, &serial);
    if (n == 2) check_second_replica();
}

int main(int argc, char **argv)
{
    device = test_layouts_device(argc, argv);
    if (!device) return 77;
    int n = test_layouts_init(&argc, &argv, dir, sizeof dir, "/tmp/moedit_hidream_layouts_XXXXXX");
    run_layouts(n);
    return test_layouts_finish("mpi_hidream_text_layouts");
}
