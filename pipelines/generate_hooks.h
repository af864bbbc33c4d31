/* Optional probes into moedit_generate, for moedit bench
 * (bench/bench_layouts.c): it times every denoising step and every
 * collective of a layout, and reads the memory a run holds, without a second
 * copy of the pipeline. A run without hooks (generate_plan.hooks NULL) is
 * exactly the run with them, less the probes. moedit serve (serve/) also
 * keeps the model between runs and gives each job its own seed, so that
 * several requests run as one run's jobs. */
#ifndef MOEDIT_PIPELINES_GENERATE_HOOKS_H
#define MOEDIT_PIPELINES_GENERATE_HOOKS_H

#include "backend/backend.h"
#include "moedit.h"
#include "parallel/process_group.h"

#include <stdint.h>

typedef struct generate_hooks {
    void *user;
    /* Each process group of the layout, once made, is replaced by what this
     * returns, which then owns it (NULL: failure, error set). May be NULL. */
    process_group *(*wrap_group)(void *user, process_group *group);
    /* After every denoising step: its index and wall seconds (every CFG
     * branch on this rank, the guidance all-gather and the Euler update).
     * May be NULL. */
    void (*on_step)(void *user, int step, double seconds);
    /* Keep the loaded model for the next run with the same model and shard
     * (model_bundle_keep); the caller drops it with model_bundle_drop_kept. */
    int keep_model;
    /* [prompt_count * images_per_prompt]: the seed of each job (job j is
     * prompt j / images_per_prompt); NULL: seed + image index, as always.
     * moedit serve batches requests with their own seeds this way. */
    const uint64_t *job_seeds;
    /* On the rank that writes the files, once job `job`'s file is written
     * (moedit serve answers a batched request as soon as its images are
     * in). May be NULL. */
    void (*on_image)(void *user, int job, const char *path, uint64_t seed);
    /* On every rank after each denoising step of job `job`: non-zero on any
     * rank of the job's replica cancels the job there, on all its ranks at
     * that step boundary (the flag rides the step's agreement on finite
     * latents, pipelines/denoise.c): it makes no image, and the run goes on
     * with its other jobs (those denoised with it too, from the next step
     * on without its rows). moedit serve: the job's client left. May be NULL. */
    int (*cancel_job)(void *user, int job, int step);

    /* Filled by moedit_generate for this rank: */
    char host_warning[640];        /* a tp or Ulysses group across hosts (layout_host_warning), which
                                    * the run does not print under hooks; "" when none */
    double vae_seconds;            /* VAE decode alone (no scaling, PNG or latents file) */
    int64_t weight_bytes;          /* transformer (this rank's shard), VAE and text encoder weights */
    int64_t expert_weight_bytes;   /* of which the routed experts' (dit_model_expert_bytes) */
    int64_t activation_peak_bytes; /* high-water marks of the run's arenas: transformer, text, VAE */
    int64_t device_peak_bytes;     /* the most device memory held at once, counted at the backend (weights, arenas) */
    backend_memory_use device_memory; /* the model's backend at the run's end (backend_ops.memory); its peak
                                       * runs from the backend's start, over the runs of a kept model */
    /* Given by the caller (or NULL): [expert_capacity], receives the rows this
     * rank's routed experts computed in each MoE call, in call order
     * (moe_scratch.call_rows); expert_calls counts them (may pass the capacity). */
    int64_t *expert_rows;
    int64_t expert_capacity, expert_calls;
} generate_hooks;

/* moedit_generate with the probes. */
int generate_with_hooks(const moedit_generate_options *options, generate_hooks *hooks,
                        moedit_generate_result *result);

/* moedit_edit with the hooks (pipelines/edit.c). */
int edit_with_hooks(const moedit_edit_options *options, generate_hooks *hooks, moedit_generate_result *result);

#endif
