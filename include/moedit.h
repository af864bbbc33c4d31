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
 * at once after a failure on one of them. */
int moedit_init(int *argc, char ***argv);
void moedit_finalize(void);
void moedit_abort(int code);
int moedit_rank(void);
int moedit_world_size(void);

/* Parallel layout of a run: every degree defaults to 1 (0 means 1). */
typedef struct moedit_parallel {
    int tensor_parallel, ulysses, ring, cfg_parallel, data_parallel;
    int expert_parallel;
    int vae_patch_parallel;
} moedit_parallel;

/* moedit generate: text to image. */
typedef struct moedit_generate_options {
    const char *model_dir;
    const char *const *prompts; /* prompt_count prompts */
    int prompt_count;
    const char *negative_prompt;    /* NULL: "" */
    const char *prompt_embeds_path; /* instead of the text encoder */
    const char *init_noise_path;    /* `latents` [C, h, w] instead of Philox noise */
    int64_t height, width;
    int64_t steps;
    double guidance;
    uint64_t seed;
    int64_t images_per_prompt;
    const char *output;             /* .png or .jpg; numbered when several */
    const char *latents_output;     /* also save the final latents [C, h, w] (safetensors), NULL: no */
    const char *device;             /* "cpu" (default) or "cuda" */
    int random_weights;             /* transformer weights from Philox */
    moedit_parallel parallel;
    const char *routing_capture, *routing_replay;
    int quiet;
} moedit_generate_options;

#define MOEDIT_MAX_OUTPUTS 1024

typedef struct moedit_generate_result {
    int count;                        /* images written by this rank */
    char files[MOEDIT_MAX_OUTPUTS][512];
    unsigned long long seeds[MOEDIT_MAX_OUTPUTS];
    double load_seconds, text_seconds, denoise_seconds, decode_seconds, total_seconds;
} moedit_generate_result;

int moedit_generate(const moedit_generate_options *options, moedit_generate_result *result);

/* Prints a model directory's components: class, key config, parameter counts
 * (total; and active per token for a MoE transformer), dtypes and size on
 * disk. json: one JSON object instead of text. check: also load every
 * transformer weight on the CPU, which validates names, shapes and dtypes. */
int moedit_inspect(const char *model_dir, int json, int check, FILE *out);

/* Timing of the transformer alone: `iterations` forwards of one sample at
 * height x width pixels (latents height/8 x width/8) after `warmup` untimed
 * ones, on random inputs. Weights from model_dir, or random weights of the
 * shape in config_path (a transformer config.json). */
typedef struct moedit_transformer_bench_options {
    const char *model_dir;
    const char *config_path;
    int random_weights;
    const char *device;
    int64_t height, width;
    int64_t t5_tokens, llama_tokens;
    int64_t warmup, iterations;
    uint64_t seed;
} moedit_transformer_bench_options;

typedef struct moedit_transformer_bench_result {
    double median_ms, p10_ms, p90_ms;
    double tflops;             /* achieved, from the median */
    double forward_flops;
    long long parameters, active_parameters;
    long long image_tokens, text_tokens;
    double weight_mib, scratch_peak_mib;
    double load_seconds;
} moedit_transformer_bench_result;

int moedit_bench_transformer(const moedit_transformer_bench_options *options,
                             moedit_transformer_bench_result *result);

/* Timing of the VAE decoder alone: `iterations` decodes of random latents
 * for a height x width image after `warmup` untimed ones. */
typedef struct moedit_vae_bench_options {
    const char *vae_dir; /* a model's vae/ folder (config.json + weights) */
    const char *device;
    int64_t height, width;
    int64_t warmup, iterations;
} moedit_vae_bench_options;

typedef struct moedit_vae_bench_result {
    double median_ms, p10_ms, p90_ms;
    double scratch_peak_mib;
} moedit_vae_bench_result;

int moedit_bench_vae(const moedit_vae_bench_options *options, moedit_vae_bench_result *result);

#endif
