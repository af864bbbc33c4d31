/* moedit bench, bench-vae and bench-comm: the benchmarks' options, results
 * and reports, for the moedit program (examples/cmd_bench*.c) and the tests.
 * Every function returns 0 on success and -1 on failure, with the message in
 * moedit_error(). */
#ifndef MOEDIT_BENCH_BENCH_H
#define MOEDIT_BENCH_BENCH_H

#include "moedit.h"

/* Timing of the transformer alone: `iterations` forwards of one sample at
 * height x width pixels (latents height/8 x width/8; with frames > 1 a clip
 * of that many frames, moedit video's sequence) after `warmup` untimed
 * ones, on random inputs. Weights from model_dir, or random weights of the
 * shape in config_path (a transformer config.json). */
typedef struct moedit_transformer_bench_options {
    const char *model_dir;
    const char *config_path;
    int random_weights;
    const char *device;
    const char *precision; /* moedit.h's: NULL, "native" or "fp8" */
    const char *max_gpu_memory; /* NULL, or a device budget: blocks that do not fit streamed (docs/memory-budget.md) */
    int64_t height, width;
    int64_t t5_tokens, llama_tokens;
    int64_t warmup, iterations;
    uint64_t seed;
    int64_t frames; /* 1: an image; up to MOEDIT_MAX_FRAMES: a clip */
    int64_t batch;  /* 1: one sample; 2: two (a CFG step's two branches) in one forward */
} moedit_transformer_bench_options;

/* Random prompt embeddings of the benchmarks: t5 and llama tokens each. */
#define MOEDIT_MAX_TEXT_TOKENS 4096
/* The benchmarks' bounds: timed steps or forwards and warm-ups each, and a side in pixels. */
#define MOEDIT_BENCH_MAX_REPEATS 10000
#define MOEDIT_BENCH_MAX_SIDE 16384

typedef struct moedit_transformer_bench_result {
    double median_ms, p10_ms, p90_ms;
    double tflops;             /* achieved, from the median */
    double forward_flops;      /* of one forward, every sample of the batch */
    int batch;                 /* samples in the forward */
    long long parameters, active_parameters;
    long long image_tokens, text_tokens;
    double weight_mib, scratch_peak_mib;
    double load_seconds;
    double device_peak_mib; /* the most device memory held at once, counted at the backend */
    int streamed_blocks;    /* under max_gpu_memory */
} moedit_transformer_bench_result;

int moedit_bench_transformer(const moedit_transformer_bench_options *options,
                             moedit_transformer_bench_result *result);

/* moedit bench over parallel layouts: every layout of a list (or every one
 * the world's size allows, "auto") runs the pipeline after a warm-up run,
 * timed per step and per phase, and its final latents and image are compared
 * with the serial run's (rank 0 alone, its MoE routing captured and replayed
 * in every layout). Layouts the model or the world cannot run are listed as
 * skipped with the reason. Call on every rank; the result is complete on
 * rank 0 (the other ranks get the list of layouts only). */
typedef struct moedit_bench_options {
    const char *model_dir;   /* the full pipeline through moedit_generate */
    const char *config_path; /* instead: a transformer config.json, random weights, transformer only */
    int random_weights;      /* with model_dir: random transformer weights */
    const char *device;      /* "cpu" or "cuda" */
    const char *precision;   /* moedit.h's: NULL, "native" or "fp8" */
    const char *max_gpu_memory; /* moedit.h's --max-gpu-memory (model_dir runs only); NULL: none */
    const char *prompt;      /* NULL: a default prompt */
    const char *prompt_embeds_path; /* instead of the text encoder; NULL and no encoder: random embeddings */
    int64_t text_tokens;     /* t5 and llama tokens of random embeddings (default 128) */
    int64_t height, width, steps;
    double guidance;
    uint64_t seed;
    const char *layouts;     /* "auto", "auto:vaeN" or a list: see moedit bench --help */
    int64_t warmup_steps;    /* steps of an untimed run of each layout before its timed run; 0: none */
    const char *work_dir;    /* images, latents, routing file; NULL: a temporary directory, removed after */
    int quiet;               /* no progress lines on stderr */
    /* Time every collective: 0 = default (on for the CPU; off for GPUs, where
     * timing means synchronising around each op, which slows the run), 1 = on, -1 = off. */
    int comm_timing;
    /* EP layouts: "reference" (place experts by the reference run's routing)
     * or a routing file (moedit generate --expert-placement); NULL: id order. */
    const char *expert_placement;
    /* Step caching (moedit.h): the serial reference decides and its schedule
     * is replayed by every timed run; its schedule fields are the bench's own. */
    moedit_cache_options cache;
} moedit_bench_options;

#define MOEDIT_BENCH_GROUPS 8 /* tp, ulysses, ring, sp, cfg, dp, ep, vae */

typedef struct moedit_bench_layout {
    char name[80];           /* canonical list syntax: "tp2xcfg2+ep:vae2"; "serial" */
    char description[128];   /* "tp2 x cfg2 x vae2 +EP" */
    int reference;           /* the serial reference run */
    int skipped, failed;     /* with the reason */
    char reason[512];
    int tp, ulysses, ring, cfg, dp, expert_parallel, vae_patch; /* as listed (dp: images in parallel) */
    int expert_scope;        /* with expert_parallel: MOEDIT_EXPERT_SCOPE_BRANCH ("+ep") or _WORLD ("+epw") */
    int ranks;               /* ranks that work; the others of the world idle */
    int run_order;           /* when it ran: 0 the reference; layouts run grouped by weight sharding */
    int images;
    /* Timing: steps are the max over ranks of each step's wall time. */
    double step_ms_median, step_ms_p10, step_ms_p90;
    double load_seconds, text_seconds, denoise_seconds, vae_seconds, end_to_end_seconds; /* max over ranks */
    double images_per_second, speedup, efficiency, step_speedup; /* vs the reference */
    double comm_seconds, comm_share; /* mean over working ranks; share of their end-to-end time */
    double comm_group_seconds[MOEDIT_BENCH_GROUPS];
    double comm_mib;         /* bytes handed to collectives, summed over ranks */
    /* Expert parallel layouts: over every MoE call of the timed run, the sum of
     * the rows the busiest rank's routed experts computed over the sum of the
     * ranks' mean (1 = even); NAN otherwise. Each call waits for its busiest rank. */
    double expert_load;
    /* Memory per rank: weights + activation arena peaks (device memory on GPUs);
     * rss: peak resident set of the process during the run (Linux, else -1). */
    double memory_mib_max, weights_mib_max, activations_mib_max, rss_mib_max;
    double device_peak_mib_max; /* measured: the most device memory a rank held at once (model_dir runs; else 0) */
    /* The routed experts' weights on the rank holding most of them: expert
     * parallelism's promise is 1/ep of the serial run's per rank. */
    double expert_weights_mib_max;
    double *rank_memory_mib; /* [world_size] */
    /* Check against the reference: final latents, and the image (8-bit). */
    double latent_max_diff, latent_scale, latent_psnr_db;
    double image_psnr_db;    /* INFINITY when identical; NAN without an image */
    int max_pixel_diff;      /* -1 without an image */
    int correct;
    int fastest;             /* the highest images_per_second of the correct layouts */
} moedit_bench_layout;

typedef struct moedit_bench_result {
    int world_size;
    int transformer_only;    /* no VAE: --config without a model directory */
    int comm_measured;       /* collectives were timed (comm_* of the layouts are NAN otherwise) */
    char model[512], device[16], note[512];
    int64_t height, width, steps, warmup_steps;
    double guidance;
    uint64_t seed;
    char tolerance[160];     /* what "correct" means on this device */
    char host[256];          /* machine: CPU count, threads per rank */
    char cache[320];         /* the step cache and the reference's schedule; "" without one */
    moedit_bench_layout *layouts; /* [count]; layouts[0] is the reference */
    int count;
    int fastest;             /* index, -1 if none */
} moedit_bench_result;

int moedit_bench_layouts(const moedit_bench_options *options, moedit_bench_result *result);
void moedit_bench_free(moedit_bench_result *result);

/* Reports of a result (rank 0): JSON, a markdown table, an SVG bar chart of
 * images per second; written to a temporary name and renamed. "-": stdout. */
int moedit_bench_write_json(const moedit_bench_result *result, const char *path);
int moedit_bench_write_markdown(const moedit_bench_result *result, const char *path);
int moedit_bench_write_svg(const moedit_bench_result *result, const char *path);

/* Timing of the VAE decoder alone: `iterations` decodes of random latents
 * for a height x width image after `warmup` untimed ones. Under a launcher
 * with N ranks, each decode is split in row bands over all N (the VAE patch
 * parallelism of `generate --vae-patch-parallel-size N`). */
typedef struct moedit_vae_bench_options {
    const char *vae_dir; /* a model's vae/ folder (config.json + weights) */
    const char *device;
    int64_t height, width;
    int64_t warmup, iterations;
} moedit_vae_bench_options;

typedef struct moedit_vae_bench_result {
    double median_ms, p10_ms, p90_ms;
    double scratch_peak_mib; /* this rank's */
    int ranks;
} moedit_vae_bench_result;

int moedit_bench_vae(const moedit_vae_bench_options *options, moedit_vae_bench_result *result);

/* Timing of HiDream-I1's four text encoders (CLIP-L, CLIP-G, T5, Llama 3.1)
 * as moedit generate runs them (text/hidream_prompt.h): a model folder's
 * tokenizers and encoder configs (with random_weights no weight file is
 * read), the prompt and the negative prompt (CFG's two) each padded to
 * max_sequence_length as HiDreamImagePipeline pads them. The first `warmup`
 * passes (at least 1) load the encoders, which then stay on the device; each
 * timed pass runs every encoder over both prompts: tokenizing, the forward
 * and the copy of its outputs to the host (what generate hands the
 * transformer). Per encoder: the median and spread of a pass, the first
 * pass (load included) and the peak device memory (weights and activations,
 * counted at the backend seam). */
typedef struct moedit_text_bench_options {
    const char *model_dir;   /* tokenizer, text_encoder and their _2.._4 folders (HiDream's layout) */
    const char *llama_dir;   /* NULL: model_dir's text_encoder_4/ and tokenizer_4/ */
    const char *device;
    int random_weights;
    uint64_t seed;
    const char *prompt, *negative_prompt;
    int64_t max_sequence_length; /* 0: 128 */
    int64_t warmup, iterations;
} moedit_text_bench_options;

#define MOEDIT_TEXT_ENCODERS 4

typedef struct moedit_text_bench_encoder {
    const char *name;       /* "clip_l", "clip_g", "t5", "llama" */
    int64_t tokens;         /* the padded length of each prompt */
    double median_ms, p10_ms, p90_ms; /* one pass over both prompts */
    double first_seconds;   /* the first pass: random or file weights loaded, and run */
    int64_t peak_bytes;     /* device memory it held at once (first pass: weights and activations) */
} moedit_text_bench_encoder;

typedef struct moedit_text_bench_result {
    moedit_text_bench_encoder encoders[MOEDIT_TEXT_ENCODERS];
    double total_median_ms; /* the median of the four encoders' sum per pass */
    int prompts;            /* 2 */
} moedit_text_bench_result;

int moedit_bench_text(const moedit_text_bench_options *options, moedit_text_bench_result *result);

/* Timing of the collectives the parallel modes use, over every rank of the
 * launcher, on the device's transport (NCCL on GPUs, MPI on CPUs):
 * all-to-all (Ulysses, EP dispatch), all-gather (ring keys, VAE bands),
 * all-reduce (tensor parallel, GroupNorm statistics) and send/receive to the
 * next rank (ring passes, VAE halos), at each size: the bytes every rank
 * contributes. Each timed run starts after a barrier and ends when the
 * device is done; a run's time is its slowest rank's. */
#define MOEDIT_COMM_MAX_SIZES 16
#define MOEDIT_COMM_OPS 4

typedef struct moedit_comm_bench_options {
    const char *device;
    int64_t sizes[MOEDIT_COMM_MAX_SIZES]; /* bytes per rank */
    int size_count;
    int64_t warmup, iterations;
} moedit_comm_bench_options;

typedef struct moedit_comm_bench_row {
    const char *op;          /* "all_to_all", "all_gather", "all_reduce", "send_recv" */
    int64_t bytes;           /* per rank */
    double median_ms, p10_ms, p90_ms;
    double algbw_gbs;        /* bytes per rank / median time (0 on one rank: nothing is exchanged) */
    double busbw_gbs;        /* what each rank's links carried / median time (nccl-tests' convention) */
} moedit_comm_bench_row;

typedef struct moedit_comm_bench_result {
    int ranks;
    const char *transport; /* "nccl", "mpi" or "self" */
    int count;
    moedit_comm_bench_row rows[MOEDIT_COMM_MAX_SIZES * MOEDIT_COMM_OPS];
} moedit_comm_bench_result;

int moedit_bench_comm(const moedit_comm_bench_options *options, moedit_comm_bench_result *result);

#endif
