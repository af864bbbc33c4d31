/* The state of one generate run, shared by the files of pipelines/generate*.c
 * (internal to them): generate.c runs the jobs, generate_outputs.c names and
 * checks the files they write, generate_text.c encodes HiDream's prompts per
 * CFG branch. */
#ifndef MOEDIT_PIPELINES_GENERATE_STATE_H
#define MOEDIT_PIPELINES_GENERATE_STATE_H

#include "moedit.h"

#include "dit/dit_step_cache.h"
#include "moe/moe_routing.h"
#include "parallel/layout.h"
#include "parallel/world.h"
#include "pipelines/denoise.h"
#include "pipelines/generate.h"
#include "pipelines/generate_hooks.h"
#include "pipelines/model_bundle.h"
#include "pipelines/scheduler.h"
#include "text/hidream_prompt.h"
#include "text/prompt_embeds.h"

typedef struct generate_state {
    const moedit_generate_options *o;
    const generate_condition *condition;  /* the input image of an edit, or NULL */
    const generate_output *output;        /* a video's writer, or NULL: one image file per job */
    generate_hooks *hooks;                /* moedit bench's probes, or NULL */
    int64_t frames;                       /* 1 for images */
    float *condition_latents;             /* [C, h, w]: its scaled VAE latents */
    int first_step;                       /* the first denoising step of every job */
    const world *w;
    parallel_context par;
    int have_par;
    model_bundle bundle;
    model_bundle_options bundle_options;
    int have_bundle;
    scheduler sched;
    moe_routing routing;
    dit_cache_settings cache_settings; /* with step caching (o->cache) */
    uint8_t *cache_replay;             /* [steps]: the replayed schedule, or NULL */
    int cache_saved;                   /* the captured schedule is written */
    int64_t latent_h, latent_w, latent_count; /* latent_count: every frame's */
    int leader;  /* first rank of its data-parallel replica: writes the files */
    int decoder; /* in the leader's VAE group: decodes (in bands when there are several) */
    int64_t vae_peak_bytes; /* the last decode's arena peak, for the hooks */
    int64_t max_device_bytes, activation_bytes; /* --max-gpu-memory (0: none) and the run's activations' estimate */
    hidream_prompt_embeds *hidream_cond; /* [prompt_count] (HiDream text side), encoded where this rank needs them */
    hidream_prompt_embeds hidream_uncond; /* the negative prompt's */
    char layout_text[128];
    const char *output_name;  /* o->output, or with keep_existing the next free name */
    char free_name[4200];
    int name_suffix;          /* 0: o->output itself; n: the name with "-n" before its extension */
    int64_t trained_h, trained_w, trained_pixels; /* the transformer's max_resolution in pixels */
} generate_state;

/* Output files (generate_outputs.c). */
/* The file job `job` of `total` writes (a writer that names its files per
 * job, like a video's frames directory, gets the output as given). */
void generate_job_path(const generate_state *g, int job, int total, char *path, size_t size);
/* Use o->output with "-n" before its extension (n 0: as given). */
void generate_use_name_suffix(generate_state *g, int n);
/* With keep_existing: the first numbered name whose files are all free. */
int generate_choose_output_name(generate_state *g, int total);
/* Every file the run will write, checked before any model loads. */
int generate_check_output_paths(const generate_state *g, int total);
/* After a failure: the message names the files the run had written. */
void generate_note_written(const moedit_generate_result *r);

/* HiDream's prompts per CFG branch (generate_text.c). */
/* The CFG branch this rank runs: -1 both, 0 the prompt's, 1 the negative's. */
int generate_cfg_branch(const generate_state *g);
/* Encodes the prompts this rank needs into g->hidream_cond / hidream_uncond. */
int generate_encode_hidream_prompts(generate_state *g, moedit_generate_result *r);
void generate_free_hidream_prompts(generate_state *g);
/* Text inputs of one branch: the embeds file, HiDream's encoded prompts, or
 * the demo's encoder on `prompt`. */
int generate_branch_embeds(generate_state *g, prompt_embeds *e, int prompt_index, const char *prompt, int negative,
                           arena *scratch);

#endif
