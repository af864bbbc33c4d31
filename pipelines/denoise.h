/* The flow-matching denoising loop of one image, as diffusers'
 * HiDreamImagePipeline runs it:
 *   for each scheduler step i with timestep t_i (0..1000):
 *     v = -transformer(latents, t_i, cond)
 *     with guidance g > 1: v = v_uncond + g * (v - v_uncond)
 *     latents += (sigma_{i+1} - sigma_i) * v          (Euler; or UniPC's multistep or LCM's noisy update)
 * Without CFG parallelism both branches run as one forward of two samples
 * (dit_forward_batch), as diffusers batches them.
 * Under CFG parallelism the two branches run on the two halves of the ranks
 * (cfg group rank 0: cond, 1: uncond) and one all-gather per step gives both
 * velocities to every rank, so all ranks keep identical latents. */
#ifndef MOEDIT_PIPELINES_DENOISE_H
#define MOEDIT_PIPELINES_DENOISE_H

#include "core/progress.h"
#include "dit/dit_forward.h"
#include "pipelines/scheduler.h"

typedef struct denoise_request {
    dit_run *run;
    const dit_text *cond;
    const dit_text *uncond;  /* NULL when guidance <= 1 (or this rank runs cond only) */
    double guidance;
    const scheduler *sched;
    int first_step;          /* > 0 for strength-based editing */
    process_group *cfg;      /* size 2: the branches are split over ranks */
    progress *bar;           /* may be NULL */
    /* Optional: called after every step with its wall seconds (moedit bench). */
    void (*on_step)(void *user, int step, double seconds);
    void *on_step_user;
    uint64_t noise_seed;     /* a stochastic scheduler's (FlowMatchLCMScheduler): the run's seed */
    /* Optional: asked after every step (its index) of each job still
     * running (its index in denoise_batch's jobs; 0 for denoise): non-zero
     * on any rank of the job drops the job there, on every rank alike
     * (moedit serve: its client left); the others go on. May be NULL. */
    int (*cancel)(void *user, int job, int step);
    void *cancel_user;
} denoise_request;

enum { DENOISE_CANCELLED = 1 };

/* One image of a batch denoised together: its own texts, latents and
 * stochastic scheduler seed (the request's cond, uncond and noise_seed are
 * then unused). Every job has guidance or none. */
typedef struct denoise_job {
    const dit_text *cond, *uncond; /* under CFG parallelism: this rank's branch's set, the other NULL */
    float *latents;
    uint64_t noise_seed;
    int cancelled;                 /* out: dropped at a step boundary (request->cancel); its latents half-denoised */
} denoise_job;

/* latents[F, C, h, w] (host; F = run->frames, 1 for an image) are denoised
 * in place. 0; DENOISE_CANCELLED when request->cancel asked to stop every
 * job (the latents are then half-denoised); -1 on failure. */
int denoise(const denoise_request *request, float *latents);

/* Several images of one shape denoised together: each step runs the
 * samples of all of them (their CFG branches) through one transformer
 * forward, so its products have count times the rows; each image then takes
 * its own guidance and scheduler update. The run must hold count x 2 samples
 * a forward (count under CFG parallelism; dit_run_shape.samples). Each
 * image's latents are those of denoise() on it alone, up to the rounding of
 * the larger products (docs/serve.md gives the measured difference). A job
 * cancelled at a step boundary leaves the forwards from the next step on
 * (its rows are no longer computed; jobs[j].cancelled is set). */
int denoise_batch(const denoise_request *request, denoise_job *jobs, int count);

#endif
