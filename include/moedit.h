/* moedit's public C API: what the moedit program itself is built on.
 * Every function returns 0 on success and -1 on failure, with the message in
 * moedit_error(). */
#ifndef MOEDIT_H
#define MOEDIT_H

#include <stdint.h>
#include <stdio.h>

/* The message of the last failure on this thread. */
const char *moedit_error(void);

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

#endif
