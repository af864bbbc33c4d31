/* Under mpirun: the patch-parallel VAE (bands of rows over all ranks, halo
 * rows, GroupNorm statistics summed, attention over every band's keys)
 * decodes and encodes exactly like the serial pass, within 1e-4 of the
 * output's scale, on the diffusers fixtures (uneven bands: 5 latent rows over
 * 2 or 4 ranks); more ranks than latent rows is a clear error. */
#include "core/error.h"
#include "io/safetensors.h"
#include "parallel/world.h"
#include "test_fixture.h"
#include "test_util.h"
#include "vae/vae.h"

#include <stdlib.h>
#include <string.h>

static void compare(const char *what, const float *got, const float *want, int64_t n, int rank)
{
    double diff = test_max_abs_diff(got, want, n), scale = test_max_abs(want, n);
    CHECK_MSG(diff <= 1e-4 * scale, "%s: max abs diff %.3g (scale %.3g)", what, diff, scale);
    if (rank == 0) printf("  %-30s max abs diff %.3g (scale %.3g)\n", what, diff, scale);
}

static void check_fixture(const char *name, process_group *group, backend *be)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s/vae", MOEDIT_FIXTURES, name);
    snprintf(path, sizeof path, "%s/%s/io.safetensors", MOEDIT_FIXTURES, name);
    vae_model model;
    safetensors *io = NULL;
    CHECK_MSG(vae_model_load(&model, be, dir, 0, 0) == 0 && safetensors_open(&io, path) == 0, "%s", error_message());
    if (test_failures) return;
    int64_t ls[3], is[3];
    float *latents = fixture_read(io, "latents", NULL, ls), *image = fixture_read(io, "image", NULL, is);
    int64_t f = model.cfg.downscale, n_image = 3 * ls[1] * f * ls[2] * f, n_latents = model.cfg.latent_channels * (is[1] / f) * (is[2] / f);
    float *serial_image = malloc((size_t)n_image * 4), *banded_image = malloc((size_t)n_image * 4);
    float *serial_latents = malloc((size_t)n_latents * 4), *banded_latents = malloc((size_t)n_latents * 4);
    arena scratch;
    arena_init(&scratch, be);
    CHECK(vae_decode(&model, &scratch, latents, ls[0], ls[1], ls[2], serial_image) == 0);
    CHECK_MSG(vae_decode_parallel(&model, &scratch, group, latents, ls[0], ls[1], ls[2], banded_image) == 0, "%s",
              error_message());
    CHECK(vae_encode(&model, &scratch, image, is[0], is[1], is[2], serial_latents) == 0);
    CHECK_MSG(vae_encode_parallel(&model, &scratch, group, image, is[0], is[1], is[2], banded_latents) == 0, "%s",
              error_message());
    char what[128];
    snprintf(what, sizeof what, "%s decode over %d ranks", name, group->size);
    compare(what, banded_image, serial_image, n_image, group->rank);
    snprintf(what, sizeof what, "%s encode over %d ranks", name, group->size);
    compare(what, banded_latents, serial_latents, n_latents, group->rank);
    if (group->size > 1) { /* latents of fewer rows than ranks */
        CHECK(vae_decode_parallel(&model, &scratch, group, latents, ls[0], group->size - 1, ls[2], banded_image) != 0);
        CHECK_MSG(strstr(error_message(), "more VAE ranks than"), "%s", error_message());
    }
    arena_free(&scratch);
    free(latents), free(image), free(serial_image), free(banded_image), free(serial_latents), free(banded_latents);
    safetensors_close(io);
    vae_model_free(&model);
}

int main(int argc, char **argv)
{
    world w;
    if (world_init(&w, &argc, &argv)) return 1;
    backend *be = backend_cpu_create();
    parallel_degrees d = {.ulysses = w.size, .vae_patch = w.size};
    parallel_context ctx;
    CHECK_MSG(parallel_context_init(&ctx, &w, d, be) == 0, "%s", error_message());
    check_fixture("vae_sd", ctx.groups[GROUP_VAE], be);
    check_fixture("vae_flux", ctx.groups[GROUP_VAE], be);
    parallel_context_free(&ctx);
    backend_destroy(be);
    int status = test_finish_rank("mpi_vae_bands", w.rank, w.size);
    world_finalize(&w);
    return status;
}
