/* The denoising loop; see denoise.h. */
#include "pipelines/denoise.h"

#include "core/error.h"
#include "core/host_parallel.h"
#include "core/timer.h"
#include "dit/dit_step_cache.h"

#include <math.h>
#include <stdlib.h>

/* v = -transformer(latents, t) of the given branches (one forward: both
 * CFG branches run as one batch), into velocity + i * n for branches[i]. */
static int velocities(dit_run *run, const dit_text *const *texts, const int *branches, int count, int step,
                      float timestep, const float *latents, float *velocity, int64_t n)
{
    dit_sample samples[DIT_MAX_BATCH];
    for (int i = 0; i < count; i++) samples[i] = (dit_sample){texts[i], latents, velocity + i * n, branches[i]};
    if (run->routing) run->routing->step = step;
    if (run->step_cache) run->step_cache->step = step;
    if (dit_forward_batch(run, samples, count, timestep)) return -1;
    /* Between forwards the device idles: 2M values at 2048x2048 with CFG. */
#pragma omp parallel for if (count * n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t i = 0; i < count * n; i++) velocity[i] = -velocity[i];
    return 0;
}

static void guide(float *cond, const float *uncond, double guidance, int64_t n)
{
    float g = (float)guidance;
#pragma omp parallel for if (n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t i = 0; i < n; i++) cond[i] = uncond[i] + g * (cond[i] - uncond[i]);
}

static int all_finite(const float *x, int64_t n)
{
    int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) if (n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad == 0;
}

/* Whether the latents went non-finite on any rank of this job, and whether
 * any rank was asked to cancel it: both flags summed over the tp,
 * sequence-parallel and CFG groups (their product is the replica's ranks),
 * so every rank of the replica knows that all of them stop at this step and
 * none is left waiting in a collective. An expert group wider than the
 * replica (world scope over data-parallel replicas) sums them too: its ranks
 * meet in every MoE call, so all stop together. */
static int stop_anywhere(const denoise_request *r, int step, const float *latents, int64_t n, int *non_finite,
                         int *cancelled)
{
    float flags[2] = {all_finite(latents, n) ? 0.0f : 1.0f, r->cancel && r->cancel(r->cancel_user, step) ? 1.0f : 0.0f};
    tensor flag = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, 2);
    flag.data = flags;
    process_group *ep = r->run->par.ep;
    int replica_ranks = r->run->par.tp->size * r->run->par.sp->size * (r->cfg ? r->cfg->size : 1);
    process_group *groups[4] = {r->run->par.tp, r->run->par.sp, r->cfg, ep && ep->size > replica_ranks ? ep : NULL};
    for (int i = 0; i < 4; i++)
        if (groups[i] && groups[i]->size > 1 && groups[i]->ops->all_reduce_sum(groups[i], flag)) return -1;
    *non_finite = flags[0] > 0;
    *cancelled = flags[1] > 0;
    return 0;
}

int denoise(const denoise_request *r, float *latents)
{
    const dit_config *cfg = &r->run->model->cfg;
    int64_t n = r->run->frames * cfg->in_channels * r->run->latent_h * r->run->latent_w;
    int split = r->cfg && r->cfg->size == 2;
    /* [cond | uncond | this rank's branch]: MPI forbids gathering in place. */
    float *both = malloc((size_t)(3 * n) * sizeof(float));
    if (!both) return error_set("out of memory for velocities");
    scheduler_history history; /* a multistep scheduler's outputs of the steps before */
    if (scheduler_history_init(&history, r->sched, n, r->noise_seed)) {
        free(both);
        return -1;
    }
    int status = 0;
    for (int i = r->first_step; i < r->sched->steps && status == 0; i++) {
        double step_start = timer_seconds();
        float t = (float)scheduler_timestep(r->sched, i);
        if (split) {
            /* This rank computes its branch; the all-gather brings the other. */
            int branch = r->cfg->rank;
            const dit_text *text = branch == 0 ? r->cond : r->uncond;
            int64_t rows[2] = {1, 1};
            tensor mine = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, n), all = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 2, n);
            mine.data = both + 2 * n;
            all.data = both;
            status = velocities(r->run, &text, &branch, 1, i, t, latents, both + 2 * n, n);
            if (status == 0) status = r->cfg->ops->all_gather_rows(r->cfg, all, mine, rows);
            if (status == 0) guide(both, both + n, r->guidance, n);
        } else {
            const dit_text *texts[2] = {r->cond, r->uncond};
            int branches[2] = {0, 1};
            status = velocities(r->run, texts, branches, r->uncond ? 2 : 1, i, t, latents, both, n);
            if (status == 0 && r->uncond) guide(both, both + n, r->guidance, n);
        }
        if (status == 0) scheduler_step(r->sched, &history, i, both, latents, n);
        /* Every rank stops here alike (no picture of NaN), and knows the others do. */
        int non_finite = 0, cancelled = 0;
        if (status == 0) status = stop_anywhere(r, i, latents, n, &non_finite, &cancelled);
        if (status == 0 && non_finite) {
            status = error_set("denoising step %d of %d made non-finite latents (inf or NaN): the transformer "
                               "overflowed (too strong a LoRA, damaged weights or inputs out of range)",
                               i + 1, r->sched->steps);
            error_mark_shared();
        }
        if (status == 0 && r->on_step) r->on_step(r->on_step_user, i, timer_seconds() - step_start);
        if (r->bar) progress_advance(r->bar, 1);
        if (status == 0 && cancelled) status = DENOISE_CANCELLED;
    }
    scheduler_history_free(&history);
    free(both);
    return status;
}
