/* moedit_bench_vae: times the AutoencoderKL decoder alone, on one rank or
 * split in row bands over every rank of the launcher; see moedit.h. */
#include "bench/bench.h"

#include "core/error.h"
#include "core/philox.h"
#include "core/timer.h"
#include "pipelines/runtime.h"
#include "vae/vae.h"

#include <stdlib.h>
#include <string.h>

int moedit_bench_vae(const moedit_vae_bench_options *o, moedit_vae_bench_result *r)
{
    memset(r, 0, sizeof *r);
    if (o->iterations < 1 || o->warmup < 0) return error_set("--iterations must be >= 1 and --warmup >= 0");
    backend *be = backend_create(o->device);
    if (!be) return -1;
    vae_model model;
    if (vae_model_load(&model, be, o->vae_dir, 0, 0)) {
        backend_destroy(be);
        return -1;
    }
    const world *launcher = runtime_world();
    const vae_config *cfg = &model.cfg;
    int status = -1;
    int64_t h = o->height / cfg->downscale, w = o->width / cfg->downscale;
    float *latents = malloc((size_t)(cfg->latent_channels * h * w) * sizeof(float));
    float *image = malloc((size_t)(cfg->out_channels * o->height * o->width) * sizeof(float));
    double *times = calloc((size_t)o->iterations, sizeof(double));
    process_group *group = NULL;
    arena scratch;
    arena_init(&scratch, be);
    if (o->height % cfg->downscale || o->width % cfg->downscale || h < 1 || w < 1) {
        error_set("--height/--width must be positive multiples of the VAE's factor %d", cfg->downscale);
        goto done;
    }
    if (!latents || !image || !times) {
        error_set("out of memory for a %lldx%lld decode", (long long)o->height, (long long)o->width);
        goto done;
    }
    /* After the checks every rank makes alike: the group's creation is where
     * the ranks agree whether all of them got this far (world_agree). */
    if (!(group = world_group(launcher, "vae", be))) goto done;
    r->ranks = launcher->size;
    philox_fill_normal(0, 5, 0, cfg->latent_channels * h * w, latents);
    for (int64_t i = 0; i < o->warmup + o->iterations; i++) {
        double start = timer_seconds();
        /* Every rank ends holding the whole image, so each rank's time is the
         * decode's. */
        if (vae_decode_parallel(&model, &scratch, group, latents, cfg->latent_channels, h, w, image)) goto done;
        if (i >= o->warmup) times[i - o->warmup] = 1e3 * (timer_seconds() - start); /* download synchronizes */
    }
    r->median_ms = timer_percentile(times, o->iterations, 50);
    r->p10_ms = timer_percentile(times, o->iterations, 10);
    r->p90_ms = timer_percentile(times, o->iterations, 90);
    r->scratch_peak_mib = (double)scratch.peak / 1048576.0;
    status = 0;
done:
    arena_free(&scratch);
    free(latents), free(image), free(times);
    vae_model_free(&model);
    pg_destroy(group);
    backend_destroy(be);
    return status;
}
