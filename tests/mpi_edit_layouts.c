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
#include "core/error.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "moedit.h"
#include "test_util.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int read_latents(const edit_case *c, const char *name, float *out)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s-%s.latents", dir, c->name, name);
    safetensors *st = NULL;
    int64_t shape[3] = {4, H / 8, W / 8};
    int status = safetensors_open(&st, path) || safetensors_read_f32(st, "latents", 3, shape, out);
    if (st) safetensors_close(st);
    return status ? -1 : 0;
}

/* Largest difference between two PNGs (256: unreadable or different sizes). */
static int pixel_diff(const char *a_path, const char *b_path)
{
    uint8_t *a = NULL, *b = NULL;
    int64_t aw, ah, bw, bh;
    int worst = 256;
    if (image_read(a_path, 4096, 1 << 24, &a, &aw, &ah) == 0 && image_read(b_path, 4096, 1 << 24, &b, &bw, &bh) == 0 &&
        aw == bw && ah == bh) {
        worst = 0;
        for (int64_t i = 0; i < aw * ah * 3; i++) worst = abs(a[i] - b[i]) > worst ? abs(a[i] - b[i]) : worst;
    }
    free(a), free(b);
    return worst;
}

static void check(const edit_case *c, const char *name, moedit_parallel par, int images, const char *routing,
                  const float *serial)
{
    int status = edit(c, &par, images, NULL, routing, name);
    CHECK_MSG(status == 0, "%s %s: %s", c->name, name, error_message());
    MPI_Barrier(MPI_COMM_WORLD);
    if (moedit_rank() != 0 || status) return;
    float got[LATENTS];
    CHECK_MSG(read_latents(c, name, got) == 0, "%s %s: %s", c->name, name, error_message());
    double diff = test_max_abs_diff(got, serial, LATENTS), scale = test_max_abs(serial, LATENTS);
    char serial_png[160], png[160];
    snprintf(serial_png, sizeof serial_png, "%s/%s-serial.png", dir, c->name);
    snprintf(png, sizeof png, "%s/%s-%s%s.png", dir, c->name, name, images > 1 ? "-0" : "");
    int pixels = pixel_diff(serial_png, png);
    CHECK_MSG(diff <= 1e-4 * scale, "%s %s: final latents differ by %.3g (scale %.3g)", c->name, name, diff, scale);
    CHECK_MSG(pixels <= 1, "%s %s: image differs from serial by %d", c->name, name, pixels);
    printf("  %-8s %-24s latents max abs diff %.3g (scale %.3g), max pixel diff %d\n", c->name, name, diff, scale,
           pixels);
}

static void check_layouts(const edit_case *c, int n)
{
    char routing[128];
    snprintf(routing, sizeof routing, "%s/%s-routing.safetensors", dir, c->name);
    moedit_parallel serial_layout = {.data_parallel = n};
    CHECK_MSG(edit(c, &serial_layout, 1, routing, NULL, "serial") == 0, "%s serial: %s", c->name, error_message());
    if (n > 1) MPI_Barrier(MPI_COMM_WORLD);
    float serial[LATENTS];
    CHECK_MSG(read_latents(c, "serial", serial) == 0, "%s", error_message());
    const int world = MOEDIT_EXPERT_SCOPE_WORLD; /* the experts over every rank (DP2EP) */
    if (n == 2) {
        check(c, "cfg2", (moedit_parallel){.cfg_parallel = 2}, 1, routing, serial);
        check(c, "tp2", (moedit_parallel){.tensor_parallel = 2}, 1, routing, serial);
        check(c, "ulysses2", (moedit_parallel){.ulysses = 2}, 1, routing, serial);
        check(c, "ring2", (moedit_parallel){.ring = 2}, 1, routing, serial);
        check(c, "ulysses2 +EP", (moedit_parallel){.ulysses = 2, .expert_parallel = 1}, 1, routing, serial);
        check(c, "tp2 +EP", (moedit_parallel){.tensor_parallel = 2, .expert_parallel = 1}, 1, routing, serial);
        check(c, "dp2 (2 images)", (moedit_parallel){.data_parallel = 2}, 2, routing, serial);
        check(c, "ring2 vae2", (moedit_parallel){.ring = 2, .vae_patch_parallel = 2}, 1, routing, serial);
        check(c, "cfg2 +EP(world)",
              (moedit_parallel){.cfg_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world}, 1, routing,
              serial);
        check(c, "dp2 +EP(world) (2 images)",
              (moedit_parallel){.data_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world}, 2, routing,
              serial);
    }
    if (n == 4) {
        check(c, "cfg2 x tp2", (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2}, 1, routing, serial);
        check(c, "cfg2 x ulysses2", (moedit_parallel){.ulysses = 2, .cfg_parallel = 2}, 1, routing, serial);
        check(c, "ulysses2 x ring2", (moedit_parallel){.ulysses = 2, .ring = 2}, 1, routing, serial);
        check(c, "tp2 x ring2 +EP", (moedit_parallel){.tensor_parallel = 2, .ring = 2, .expert_parallel = 1}, 1,
              routing, serial);
        check(c, "ring4 +EP", (moedit_parallel){.ring = 4, .expert_parallel = 1}, 1, routing, serial);
        check(c, "cfg2 x dp2 (2 images)", (moedit_parallel){.cfg_parallel = 2, .data_parallel = 2}, 2, routing,
              serial);
        check(c, "tp2 x cfg2 vae4", (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2, .vae_patch_parallel = 4},
              1, routing, serial);
        check(c, "ring2 x dp2 vae2", (moedit_parallel){.ring = 2, .data_parallel = 2, .vae_patch_parallel = 2}, 1,
              routing, serial);
        check(c, "cfg2 x dp2 +EP(world) (2 images)",
              (moedit_parallel){.cfg_parallel = 2, .data_parallel = 2, .expert_parallel = 1,
                                .expert_parallel_scope = world},
              2, routing, serial);
    }
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    int n = moedit_world_size();
    if (moedit_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/moedit_edit_layouts_XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    if (n > 1) MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    edit_case cases[2] = {{"sdedit", MOEDIT_EDIT_STRENGTH, 0.6}, {"context", MOEDIT_EDIT_CONTEXT, 0}};
    for (int i = 0; i < 2; i++) check_layouts(&cases[i], n);
    char name[64];
    snprintf(name, sizeof name, "mpi_edit_layouts (rank %d of %d)", moedit_rank(), n);
    int status = test_finish(name);
    moedit_finalize();
    return status;
}
