/* Under mpirun: moedit_edit on models/tiny-random gives the serial run's
 * final latents (max abs diff <= 1e-4 of their scale) and image (within one
 * level) in every layout the world's size allows, for SDEdit (strength 0.6)
 * and in-context editing: CFG parallel, tensor, Ulysses, ring, expert (over
 * a branch, and over the world: cfg2, dp2, cfg2 x dp2) and data parallel,
 * and patch-parallel VAE for the encode and the decode. The
 * input (tests/fixtures/edit_tiny/input.png, 48 x 64) makes a non-square,
 * padded target of 12 of 16 tokens; context mode adds 12 context tokens, a
 * sequence segment of its own split over the sp ranks. The serial reference
 * runs on rank 0 alone (data parallel over the world with one image),
 * capturing its routing for the others to replay. */
#include "test_layouts.h"

#define MODEL MOEDIT_FIXTURES "/../../models/tiny-random"
#define INPUT MOEDIT_FIXTURES "/edit_tiny/input.png"
#define H 48
#define W 64
#define LATENTS (4 * (H / 8) * (W / 8))

static char dir[64];

typedef struct edit_case {
    const char *name;
    moedit_edit_mode mode;
    double strength;
} edit_case;

static int edit(const edit_case *c, const moedit_parallel *par, int images, const char *capture, const char *replay,
                const char *name)
{
    char png[160], latents[160];
    snprintf(png, sizeof png, "%s/%s-%s.png", dir, c->name, name);
    snprintf(latents, sizeof latents, "%s/%s-%s.latents", dir, c->name, name);
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_edit_options o = {
        .base = {.model_dir = MODEL, .prompts = prompts, .prompt_count = 1, .steps = 3, .guidance = 3.0, .seed = 5,
                 .images_per_prompt = images, .output = png, .latents_output = latents, .device = "cpu",
                 .parallel = *par, .routing_capture = capture, .routing_replay = replay, .quiet = 1},
        .image_path = INPUT, .mode = c->mode, .strength = c->strength,
    };
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = moedit_edit(&o, r);
    moedit_generate_result_free(r);
    free(r);
    return status;
}

static const int64_t latent_shape[3] = {4, H / 8, W / 8};

static void check(const test_layout *layout, const test_serial *serial)
{
    const edit_case *c = serial->more;
    const char *name = layout->label;
    int status = edit(c, &layout->parallel, layout->images, NULL, serial->routing, name);
    char label[96], run[96], serial_png[160], png[200];
    snprintf(label, sizeof label, "%-8s %s", c->name, name);
    snprintf(run, sizeof run, "%s-%s", c->name, name);
    test_layout_figures f;
    if (!test_layout_latents(label, status, dir, run, 3, latent_shape, serial->latents, &f)) return;
    snprintf(serial_png, sizeof serial_png, "%s/%s-serial.png", dir, c->name);
    snprintf(png, sizeof png, "%s/%s%s.png", dir, run, layout->images > 1 ? "-0" : "");
    f.pixels = test_pixel_diff(serial_png, png, &f.psnr);
    test_layout_judge(label, 33, 1, &f);
}

/* Every layout of 2 and of 4 ranks (test_layouts.h reads the labels); "+EP(world)": DP2EP. */
static const char *const layouts[] = {
    "cfg2", "tp2", "ulysses2", "ring2", "ulysses2 +EP", "tp2 +EP", "dp2 (2 images)", "ring2 vae2", "cfg2 +EP(world)",
    "dp2 +EP(world) (2 images)",
    "cfg2 x tp2", "cfg2 x ulysses2", "ulysses2 x ring2", "tp2 x ring2 +EP", "ring4 +EP", "cfg2 x dp2 (2 images)",
    "tp2 x cfg2 vae4", "ring2 x dp2 vae2", "cfg2 x dp2 +EP(world) (2 images)",
};

static void check_layouts(const edit_case *c, int n)
{
    char routing[128];
    snprintf(routing, sizeof routing, "%s/%s-routing.safetensors", dir, c->name);
    moedit_parallel serial_layout = {.data_parallel = n};
    CHECK_MSG(edit(c, &serial_layout, 1, routing, NULL, "serial") == 0, "%s serial: %s", c->name, error_message());
    test_barrier();
    float latents[LATENTS];
    char run[96];
    snprintf(run, sizeof run, "%s-serial", c->name);
    CHECK_MSG(test_read_latents(dir, run, 3, latent_shape, latents) == 0, "%s", error_message());
    test_serial serial = {routing, latents, c};
    test_layouts_run(layouts, sizeof layouts / sizeof layouts[0], check, &serial);
}

int main(int argc, char **argv)
{
    int n = test_layouts_init(&argc, &argv, dir, sizeof dir, "/tmp/moedit_edit_layouts_XXXXXX");
    edit_case cases[2] = {{"sdedit", MOEDIT_EDIT_STRENGTH, 0.6}, {"context", MOEDIT_EDIT_CONTEXT, 0}};
    for (int i = 0; i < 2; i++) check_layouts(&cases[i], n);
    return test_layouts_finish("mpi_edit_layouts");
}
