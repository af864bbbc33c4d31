/* The denoising loop; see denoise.h. */
#include "pipelines/denoise.h"

#include "core/error.h"
#include "core/host_parallel.h"
#include "core/timer.h"
#include "dit/dit_step_cache.h"

#include <math.h>
#include <stdlib.h>

/* v = -transformer(latents, t) of the samples (one forward: the CFG
 * branches of every job as one batch), whose outputs lie one after the
 * other from velocity on, n values each. */
static int velocities(dit_run *run, const dit_sample *samples, int count, int step, float timestep, float *velocity,
                      int64_t n)
{
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

/* Whether the latents went non-finite on any rank of these jobs, and
 * which of them any rank was asked to cancel (cancelled[a] for jobs[a],
 * whose index in the caller's jobs is index[a]): the flags summed over the tp,
 * sequence-parallel and CFG groups (their product is the replica's ranks),
 * so every rank of the replica knows that all of them stop at this step and
 * none is left waiting in a collective. An expert group wider than the
 * replica (world scope over data-parallel replicas) sums them too: its ranks
 * meet in every MoE call, so all stop together. */
static int stop_anywhere(const denoise_request *r, int step, const denoise_job *jobs, const int *index, int count,
                         int64_t n, int *non_finite, int *cancelled)
{
    float flags[1 + DIT_MAX_BATCH] = {0.0f};
    for (int j = 0; j < count; j++) {
        if (!all_finite(jobs[j].latents, n)) flags[0] = 1.0f;
        flags[1 + j] = r->cancel && r->cancel(r->cancel_user, index[j], step) ? 1.0f : 0.0f;
    }
    tensor flag = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, 1 + count);
    flag.data = flags;
    process_group *ep = r->run->par.ep;
    int replica_ranks = r->run->par.tp->size * r->run->par.sp->size * (r->cfg ? r->cfg->size : 1);
    process_group *groups[4] = {r->run->par.tp, r->run->par.sp, r->cfg, ep && ep->size > replica_ranks ? ep : NULL};
    for (int i = 0; i < 4; i++)
        if (groups[i] && groups[i]->size > 1 && groups[i]->ops->all_reduce_sum(groups[i], flag)) return -1;
    *non_finite = flags[0] > 0;
    for (int j = 0; j < count; j++) cancelled[j] = flags[1 + j] > 0;
    return 0;
}

/* This step's velocities of every job, guided: job j's at velocity +
 * j * stride * n. Without CFG parallelism one forward runs every job's
 * branches (stride 2 with guidance, else 1); under it this rank runs its
 * branch of every job and one all-gather brings the other (stride 1: the
 * conditional rows come first, then the unconditional ones). */
static int guided_velocities(const denoise_request *r, const denoise_job *jobs, int count, int step, float t,
                             float *velocity, int64_t n, int *stride)
{
    dit_sample samples[DIT_MAX_BATCH];
    if (r->cfg && r->cfg->size == 2) {
        int branch = r->cfg->rank;
        float *mine_data = velocity + 2 * count * n; /* MPI forbids gathering in place */
        for (int j = 0; j < count; j++)
            samples[j] = (dit_sample){branch == 0 ? jobs[j].cond : jobs[j].uncond, jobs[j].latents, mine_data + j * n,
                                      branch};
        int64_t rows[2] = {1, 1};
        tensor mine = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, count * n);
        tensor all = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 2, count * n);
        mine.data = mine_data;
        all.data = velocity;
        *stride = 1;
        if (velocities(r->run, samples, count, step, t, mine_data, n) || r->cfg->ops->all_gather_rows(r->cfg, all, mine, rows))
            return -1;
        for (int j = 0; j < count; j++) guide(velocity + j * n, velocity + (count + j) * n, r->guidance, n);
        return 0;
    }
    int guided = jobs[0].uncond != NULL;
    *stride = 1 + guided;
    for (int j = 0; j < count; j++)
        for (int branch = 0; branch <= guided; branch++) {
            int b = j * *stride + branch;
            samples[b] = (dit_sample){branch ? jobs[j].uncond : jobs[j].cond, jobs[j].latents, velocity + b * n, branch};
        }
    if (velocities(r->run, samples, count * *stride, step, t, velocity, n)) return -1;
    for (int j = 0; j < count && guided; j++) guide(velocity + 2 * j * n, velocity + (2 * j + 1) * n, r->guidance, n);
    return 0;
}

/* Drops the cancelled ones of the count running jobs (marking the caller's
 * job), keeping the others' order, latents and scheduler state; returns the
 * count left. */
static int drop_cancelled(denoise_job *caller_jobs, denoise_job *jobs, int *index, scheduler_history *history,
                          const int *cancelled, int count)
{
    int kept = 0;
    for (int j = 0; j < count; j++) {
        if (cancelled[j]) {
            caller_jobs[index[j]].cancelled = 1;
            scheduler_history_free(&history[j]);
            continue;
        }
        jobs[kept] = jobs[j], index[kept] = index[j], history[kept] = history[j];
        kept++;
    }
    return kept;
}

int denoise_batch(const denoise_request *r, denoise_job *caller_jobs, int count)
{
    const dit_config *cfg = &r->run->model->cfg;
    int64_t n = r->run->frames * cfg->in_channels * r->run->latent_h * r->run->latent_w;
    int split = r->cfg && r->cfg->size == 2, per_job = split ? 1 : (caller_jobs[0].uncond ? 2 : 1);
    if (count < 1 || count * per_job > r->run->max_samples)
        return error_set("%d images denoised together need %d samples a forward; the transformer run holds %d", count,
                         count * per_job, r->run->max_samples);
    /* Every job's [cond | uncond] (its one output without guidance), and
     * under CFG parallelism this rank's branch of every job after them. */
    float *velocity = malloc((size_t)((split ? 3 : per_job) * count * n) * sizeof(float));
    scheduler_history history[DIT_MAX_BATCH]; /* a multistep scheduler's outputs of the steps before, per job */
    denoise_job jobs[DIT_MAX_BATCH];          /* the jobs still running, in order; index: each one's caller index */
    int index[DIT_MAX_BATCH], made = 0;
    if (!velocity) return error_set("out of memory for velocities");
    for (int j = 0; j < count; j++) {
        jobs[j] = caller_jobs[j], index[j] = j;
        caller_jobs[j].cancelled = 0;
    }
    for (; made < count; made++)
        if (scheduler_history_init(&history[made], r->sched, n, jobs[made].noise_seed)) break;
    int status = made == count ? 0 : -1;
    for (int i = r->first_step; i < r->sched->steps && status == 0; i++) {
        double step_start = timer_seconds();
        float t = (float)scheduler_timestep(r->sched, i);
        int stride = 1;
        status = guided_velocities(r, jobs, count, i, t, velocity, n, &stride);
        for (int j = 0; j < count && status == 0; j++)
            scheduler_step(r->sched, &history[j], i, velocity + j * stride * n, jobs[j].latents, n);
        /* Every rank stops here alike (no picture of NaN), and knows the others do. */
        int non_finite = 0, cancelled[DIT_MAX_BATCH] = {0};
        if (status == 0) status = stop_anywhere(r, i, jobs, index, count, n, &non_finite, cancelled);
        if (status == 0 && non_finite) {
            status = error_set("denoising step %d of %d made non-finite latents (inf or NaN): the transformer "
                               "overflowed (too strong a LoRA, damaged weights or inputs out of range)",
                               i + 1, r->sched->steps);
            error_mark_shared();
        }
        if (status == 0 && r->on_step) r->on_step(r->on_step_user, i, timer_seconds() - step_start);
        if (r->bar) progress_advance(r->bar, 1);
        if (status == 0 && made == count) made = count = drop_cancelled(caller_jobs, jobs, index, history, cancelled, count);
        if (status == 0 && count == 0) status = DENOISE_CANCELLED;
    }
    for (int j = 0; j < made; j++) scheduler_history_free(&history[j]);
    free(velocity);
    return status;
}

int denoise(const denoise_request *r, float *latents)
{
    denoise_job job = {r->cond, r->uncond, latents, r->noise_seed, 0};
    return denoise_batch(r, &job, 1);
}
