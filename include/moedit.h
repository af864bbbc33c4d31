/* moedit's public C API: what the moedit program itself is built on.
 * Every function returns 0 on success and -1 on failure, with the message in
 * moedit_error(). */
#ifndef MOEDIT_H
#define MOEDIT_H

#include <stdint.h>
#include <stdio.h>

/* The message of the last failure on this thread. */
const char *moedit_error(void);

/* Joins the launcher's world when started by mpirun/srun (one rank
 * otherwise). Call first; moedit_finalize last. moedit_abort ends every rank
 * at once after a failure on one of them. A collective that waits longer
 * than MOEDIT_COLLECTIVE_TIMEOUT seconds (default 600; 0 or "off": no limit)
 * for its ranks ends the run, naming the ranks that did not arrive
 * (parallel/mpi_wait.h, parallel/nccl_watchdog.h); a malformed value is an
 * error of moedit_init. */
int moedit_init(int *argc, char ***argv);
void moedit_finalize(void);
void moedit_abort(int code);
int moedit_rank(void);
int moedit_world_size(void);

/* The device of `--device auto` (the moedit program's default): "cuda" when
 * this build has the CUDA backend and the driver reports a GPU, else "cpu".
 * The options structs below take "cpu" or "cuda"; NULL there means "cpu". */
const char *moedit_default_device(void);

/* OpenMP threads of the CPU backend on this rank (the moedit program's
 * --threads; by default the machine's CPUs shared among the ranks on it, or
 * OMP_NUM_THREADS). The CPU backend's results are the same for any count. */
int moedit_set_threads(int threads);
int moedit_threads(void);

/* A seed drawn from the OS random source at moedit_init: rank 0 draws it and
 * every rank gets the same (the moedit program's --seed -1, and its default). */
uint64_t moedit_random_seed(void);

/* Under a launcher, a rank that fails before the run's first process group
 * exists (bad options, unreadable model) calls this with -1, and a command
 * that never creates a group calls it with its status when done: the ranks
 * learn whether any failed (creating the first group does the same), so a
 * failure common to all of them is reported once and no rank is aborted.
 * Returns -1 on every rank if any failed; after the first agreement it
 * returns `status` as given. */
int moedit_agree(int status);

/* Under a launcher every rank must be given the same request: an MPMD line
 * with other steps, sizes, prompts, layouts or models per rank would hang
 * or draw a wrong picture. A program lists what it was asked, in a fixed
 * order: moedit_request_add for each parsed value (name "--seed", value
 * "7"; NULL: not given), moedit_request_add_model for a model folder (a
 * digest of its files, parallel/world_request.h and
 * pipelines/model_digest.h). moedit_agree_request then agrees as
 * moedit_agree does and, when no rank failed, compares the lists: where they
 * differ, every rank returns -1 with one message naming the first item that
 * differs and which ranks had which value (rank 0 prints it). Call it as soon
 * as the request is known, before loading anything; moedit_agree makes it
 * first when it was not made. With one rank these do nothing. */
void moedit_request_add(const char *name, const char *value);
void moedit_request_add_model(const char *model_dir);
int moedit_agree_request(int status);

/* The run's last agreement, made by every rank that was not aborted: a
 * failure that every rank exchanging data with the failing one met alike
 * (non-finite latents under tp, cfg or sequence parallelism: the check is
 * all-reduced over them) is reported once, by the lowest failing rank, and
 * no rank is aborted; every rank returns -1 if any failed. A failure agreed
 * before is returned as it is. */
int moedit_agree_end(int status);

/* Parallel layout of a run: every degree defaults to 1 (0 means 1).
 * expert_parallel_scope (with expert_parallel): which ranks share the
 * routed experts, each holding 1 / (their count) of them. BRANCH: the
 * tensor x sequence parallel ranks of one CFG branch of one replica; WORLD:
 * every rank, across the CFG branches and data-parallel replicas (DP2EP),
 * each rank's own tokens travel to the experts' owners and back. */
#define MOEDIT_EXPERT_SCOPE_BRANCH 0
#define MOEDIT_EXPERT_SCOPE_WORLD 1
typedef struct moedit_parallel {
    int tensor_parallel, ulysses, ring, cfg_parallel, data_parallel;
    int expert_parallel;
    int vae_patch_parallel;
    int expert_parallel_scope;
} moedit_parallel;

/* Step caching (docs/step-cache.md): on denoising steps where the output
 * residual of the first `first_blocks` transformer blocks changed by at most
 * `threshold` (relative L2, over the whole sequence and both CFG branches)
 * since the last computed step, the middle blocks are skipped and their
 * residual of that step reused ("block") or extrapolated by finite
 * differences over the last computed steps ("taylor", of `taylor_order`).
 * The first `warmup_steps` steps and every step after `max_consecutive`
 * cached ones are computed; the last `last_blocks` blocks always are.
 * schedule_capture writes the computed steps of the run's first image
 * (safetensors, I32 "computed" [steps]: 1 computed, 0 cached, -1 not run);
 * schedule_replay forces such a schedule on every image instead of deciding,
 * so that parallel layouts skip the same steps as the run that wrote it.
 * mode NULL or "none": no caching, the other fields unused. */
typedef struct moedit_cache_options {
    const char *mode; /* NULL, "none", "block" or "taylor" */
    int64_t first_blocks, last_blocks;
    double threshold;
    int64_t warmup_steps, max_consecutive, taylor_order;
    const char *schedule_capture, *schedule_replay;
} moedit_cache_options;

/* The defaults of the moedit program, chosen from docs/step-cache.md. */
#define MOEDIT_CACHE_FIRST_BLOCKS 1
#define MOEDIT_CACHE_LAST_BLOCKS 1
#define MOEDIT_CACHE_THRESHOLD 0.2
#define MOEDIT_CACHE_WARMUP_STEPS 3
#define MOEDIT_CACHE_MAX_CONSECUTIVE 3
#define MOEDIT_CACHE_TAYLOR_ORDER 1
#define MOEDIT_CACHE_DEFAULTS                                                                                      \
    {"none", MOEDIT_CACHE_FIRST_BLOCKS, MOEDIT_CACHE_LAST_BLOCKS, MOEDIT_CACHE_THRESHOLD, MOEDIT_CACHE_WARMUP_STEPS, \
     MOEDIT_CACHE_MAX_CONSECUTIVE, MOEDIT_CACHE_TAYLOR_ORDER, NULL, NULL}

/* moedit generate: text to image. */
typedef struct moedit_generate_options {
    const char *model_dir;
    const char *const *prompts; /* prompt_count prompts */
    int prompt_count;
    const char *negative_prompt;    /* NULL: "" */
    /* HiDream-I1's own text side (text_encoder..text_encoder_4 in the model
     * folder): the prompts of its second, third and fourth encoder (CLIP-G,
     * T5, Llama) and the negative prompt's, as diffusers' prompt_2..4 and
     * negative_prompt_2..4 (NULL or "": the prompt, or the negative prompt;
     * one value for every prompt of the run). */
    const char *prompt_2, *prompt_3, *prompt_4;
    const char *negative_prompt_2, *negative_prompt_3, *negative_prompt_4;
    const char *llama_dir;          /* a Llama 3.1 folder when the model has no text_encoder_4 */
    int max_sequence_length;        /* 0: 128 (HiDreamImagePipeline's default) */
    int keep_text_encoders;         /* keep them loaded after encoding (default: freed) */
    const char *text_device;        /* the encoders' device; NULL: `device` */
    const char *prompt_embeds_path; /* instead of the text encoder */
    const char *init_noise_path;    /* `latents` [C, h, w] instead of Philox noise */
    int64_t height, width;
    int64_t steps;
    double guidance;
    uint64_t seed;
    int64_t images_per_prompt;
    int64_t batch_size;         /* images denoised together, their samples in one transformer forward a step (0, 1: one at a time;
                                 * at most MOEDIT_MAX_BATCH_SIZE) */
    const char *output;             /* .png or .jpg; numbered when several */
    /* An existing output is kept: the run writes to the next free name
     * (name-1.png, name-2.png, ...; for numbered outputs name-1-0.png, ...),
     * decided before loading, the same on every rank. 0: overwrite. */
    int keep_existing;
    const char *latents_output;     /* also save the final latents [C, h, w] (safetensors), NULL: no */
    const char *device;             /* "cpu" (default) or "cuda" */
    /* NULL or "native": the device's precision (CPU F32, CUDA BF16); "fp8":
     * the transformer's linear layers in FP8 E4M3 with F32 scales
     * (docs/fp8.md; the CPU runs them as the reference, the GPU path is not
     * built yet). An FP8 folder (moedit quantize) loads as stored. */
    const char *precision;
    /* NULL, or the device memory the run may take ("24G", "512M"): the
     * transformer's blocks that do not fit stay in host memory and are
     * copied in ahead of use (docs/memory-budget.md). */
    const char *max_gpu_memory;
    int random_weights;             /* every component's weights from Philox (no weight files; tokenizers still read theirs) */
    moedit_parallel parallel;
    const char *routing_capture, *routing_replay;
    /* With expert_parallel: a routing file (--routing-capture) whose loads
     * decide which experts share a rank, layer by layer; NULL: id order. */
    const char *expert_placement;
    /* LoRAs (safetensors: diffusers/PEFT or kohya names, io/lora.h) merged
     * into the transformer's weights as they load, each W += scale * (alpha /
     * r) B A; lora_scales[i] is the i-th's strength (NULL: all 1, as
     * trained). At most MOEDIT_MAX_LORAS. */
    const char *const *lora_paths;
    const double *lora_scales;
    int lora_count;
    moedit_cache_options cache;     /* step caching; mode NULL: none */
    int quiet;
} moedit_generate_options;

#define MOEDIT_MAX_OUTPUTS 1024
#define MOEDIT_MAX_BATCH_SIZE 8 /* --batch-size: images in one forward (both CFG branches of each: 16 samples) */
#define MOEDIT_MAX_LORAS 8

/* What a run wrote. The call fills it from scratch; free it with
 * moedit_generate_result_free after every call, failed or not. */
typedef struct moedit_generate_result {
    int count;                        /* images written by this rank */
    char **files;                     /* [count] paths */
    unsigned long long *seeds;        /* [count] the seed of each */
    double load_seconds, text_seconds, denoise_seconds, decode_seconds, total_seconds;
    double encode_seconds;            /* edit: VAE encode of the input image */
    /* HiDream's four text encoders (CLIP-L, CLIP-G, T5, Llama) on this
     * rank: seconds loading and running each, and the most device memory
     * each held at once (weights and activations); 0 when not used. This
     * rank's own, never summed: only the first rank of a CFG branch's
     * tp x sp ranks runs them (the others receive the embeddings), and
     * under CFG parallelism the negative prompt runs on the other branch's
     * first rank at the same time, so it is not in a leader's figures. */
    double text_encoder_seconds[4];
    int64_t text_encoder_peak_bytes[4];
    /* Step caching, on the ranks that run the transformer (all zero without it). */
    int cache_steps;                 /* scheduler steps of the first image of this rank */
    signed char *cache_computed;     /* [cache_steps]: its schedule, 1 computed, 0 cached, -1 not run */
    int64_t cache_computed_steps, cache_cached_steps; /* over every image of this rank */
    double cache_flops_saved;        /* share of the transformer's FLOPs the cached steps skipped */
    int64_t cache_bytes;             /* device memory of the cached residuals on this rank (the most of one image) */
    /* The most device memory this rank's run held at once (every allocation
     * through the backend: weights, buffers, arenas; not what the device's
     * libraries keep to themselves), and the transformer blocks it streamed
     * under --max-gpu-memory. */
    int64_t peak_device_bytes;
    int streamed_blocks;
} moedit_generate_result;

int moedit_generate(const moedit_generate_options *options, moedit_generate_result *result);
void moedit_generate_result_free(moedit_generate_result *result);

/* The settings a model folder implies for what a run leaves out
 * (pipelines/model_defaults.c): the transformer's trained size (its
 * max_resolution in latent pixels x the VAE factor), and steps, guidance and
 * a clip's size from model_index.json's "_moedit_num_inference_steps",
 * "_moedit_guidance_scale", "_moedit_video_height", "_moedit_video_width"
 * (else 50, 5 and 256: diffusers' HiDream pipeline's and moedit video's). */
typedef struct moedit_model_defaults {
    int64_t height, width;             /* the trained size */
    int64_t steps;
    double guidance;
    int64_t video_height, video_width;
    int steps_from_model, guidance_from_model; /* the folder says so (not the fallback) */
} moedit_model_defaults;

int moedit_model_defaults_load(const char *model_dir, moedit_model_defaults *defaults);

/* moedit edit: an input image and prompts to images.
 *
 * The input (PNG of any kind, or JPEG; size checked from its header) is
 * resampled to base.height x base.width with a bilinear filter that widens to
 * cover every source pixel when shrinking (PIL's BILINEAR), and mapped to
 * [-1, 1] as x / 127.5 - 1. A size of 0 means the input's own, rounded to the
 * nearest multiple of the VAE factor x patch size (16 for HiDream); with only
 * one side given the other keeps the input's aspect ratio. The VAE encodes it
 * (the posterior mean; patch-parallel over --vae-patch-parallel-size ranks)
 * and latents = (mean - shift_factor) * scaling_factor. Then:
 *   MOEDIT_EDIT_STRENGTH  SDEdit, any model: every job starts from the latents
 *       noised to the sigma of the first step the strength leaves
 *       (diffusers' img2img: start = int(steps - steps * strength)) and runs
 *       the remaining steps. strength 1: from pure noise (= generate).
 *   MOEDIT_EDIT_CONTEXT  in-context editing (FLUX.1 Kontext / HiDream-E1) for
 *       models trained with it: the latents enter the transformer at every step
 *       as extra image tokens after the target's, RoPE ids (1, row, col)
 *       against the target's (0, row, col); the target starts from noise
 *       (strength < 1: from the noised input as above).
 * Everything else (prompts, seeds, CFG, parallel layouts, outputs) is
 * moedit_generate's, from base. */
typedef enum { MOEDIT_EDIT_STRENGTH = 0, MOEDIT_EDIT_CONTEXT = 1 } moedit_edit_mode;

typedef struct moedit_edit_options {
    moedit_generate_options base; /* height, width 0: from the input image */
    const char *image_path;
    moedit_edit_mode mode;
    double strength;               /* (0, 1]; 0: the mode's default, 0.6 (strength) or 1 (context) */
} moedit_edit_options;

#define MOEDIT_EDIT_DEFAULT_STRENGTH 0.6

int moedit_edit(const moedit_edit_options *options, moedit_generate_result *result);

/* moedit video: prompts to short clips with the same engine. Every job
 * denoises latents [frames, C, h, w] (Philox noise in that order, or
 * --init-noise [F, C, h, w]) as one token sequence: frame f's tokens carry
 * RoPE ids (f, row, col) (dit_forward.h), so every parallel layout splits the
 * clip over frames and rows like a longer image. Each frame is decoded by the
 * image VAE (in row bands over the VAE ranks). base.output is an animated PNG
 * ("clip.png", played in a loop at fps) or, ending in '/' or naming an
 * existing directory, a directory of numbered PNG frames. Frame counts,
 * sizes and the clip's memory (estimated from the configs, before loading)
 * are checked up front. */
#define MOEDIT_MAX_FRAMES 1024
#define MOEDIT_DEFAULT_FPS 8

typedef struct moedit_video_options {
    moedit_generate_options base; /* output: clip.png or DIR/ */
    int64_t frames;               /* 1..MOEDIT_MAX_FRAMES */
    int fps;                      /* 1..120; 0: MOEDIT_DEFAULT_FPS */
} moedit_video_options;

int moedit_video(const moedit_video_options *options, moedit_generate_result *result);

/* Prints a model directory's components: class, key config, parameter counts
 * (total; and active per token for a MoE transformer), dtypes and size on
 * disk. json: one JSON object instead of text. check: also load every
 * transformer weight on the CPU, which validates names, shapes and dtypes.
 * out NULL: the checks only, nothing printed. */
int moedit_inspect(const char *model_dir, int json, int check, FILE *out);

/* moedit quantize: writes output_dir, a new folder (never an existing one),
 * as a copy of model_dir whose transformer's linear weights are FP8
 * (F8_E4M3 codes + F32 scales per output channel, docs/fp8.md) and whose
 * other components are hard-linked or copied; made in a hidden folder
 * beside it and renamed at the end. precision NULL or "fp8". *quantized:
 * the weights written in FP8. */
int moedit_quantize(const char *model_dir, const char *output_dir, const char *precision, int64_t *quantized);

#endif
