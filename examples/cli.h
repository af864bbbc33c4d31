/* Subcommands of the moedit program and their shared option parser.
 *
 * Options are declared in a table; "--name value" and "--name=value" are
 * accepted, and underscores in a name are read as dashes so the spellings of
 * other tools ("--num_inference_steps") work too. Unknown options, missing
 * values and malformed numbers are errors naming the flag; an unknown option
 * close to a known one (edit distance, or a part of exactly one name) gets
 * "did you mean --X?". Every command also takes --threads N (the CPU
 * backend's OpenMP threads on each rank). An entry whose help is NULL is an
 * old spelling kept as an alias: parsed, not listed. */
#ifndef MOEDIT_EXAMPLES_CLI_H
#define MOEDIT_EXAMPLES_CLI_H

#include "moedit.h"

#include <stdint.h>
#include <stdio.h>

/* OPT_DEVICE is a string option whose value "auto" (give it as the default)
 * becomes moedit_default_device() once parsing is done. OPT_STRING_LIST and
 * OPT_FLOAT_LIST may be given several times: each occurrence appends to a
 * cli_string_list / cli_float_list (more than CLI_MAX_LIST is an error). */
/* OPT_OPTIONAL_STRING: "--name" alone sets the string to "-" (stdout);
 * "--name=VALUE" or "--name VALUE" (VALUE not starting with "--") sets VALUE. */
typedef enum {
    OPT_FLAG, OPT_STRING, OPT_INT, OPT_FLOAT, OPT_DEVICE, OPT_STRING_LIST, OPT_FLOAT_LIST, OPT_OPTIONAL_STRING
} cli_option_kind;

#define CLI_MAX_LIST 8
typedef struct cli_string_list {
    const char *values[CLI_MAX_LIST];
    int count;
} cli_string_list;
typedef struct cli_float_list {
    double values[CLI_MAX_LIST];
    int count;
} cli_float_list;

/* The --device option of every command that runs a model. */
#define CLI_DEVICE_OPTION(target) \
    {"device", OPT_DEVICE, (target), "cpu, cuda or auto (default auto: cuda when a GPU is present)", "DEV"}

typedef struct cli_option {
    const char *name; /* without the leading dashes */
    cli_option_kind kind;
    void *target;     /* int* for flags, const char** / int64_t* / double* / cli_string_list* / cli_float_list* */
    const char *help;
    const char *metavar;
} cli_option;

/* Parses argv[1..argc) (argv[0] is the command name). Returns 1 when --help
 * was printed, 0 on success, -1 on error. The command and every option's
 * parsed value (defaults too; --device auto as resolved) are added to the
 * request the ranks compare (moedit_request_add). */
int cli_parse(int argc, char **argv, const char *usage, const cli_option *options, int count);

/* Before anything else in main (before the OpenMP runtime reads its
 * environment, which it does as the program loads): unless the user set
 * OMP_WAIT_POLICY, the program runs again with it "passive", so that idle
 * OpenMP threads sleep instead of spinning against a busy machine's other
 * processes (docs/benchmarks.md). Returns only when it does not re-run. */
void cli_passive_threads(char **argv);

/* The option named `name` in a table, or NULL (for changing a help text). */
cli_option *cli_find_option(cli_option *options, int count, const char *name);

/* The step cache's options (--cache and its knobs, moedit_cache_options):
 * sets the defaults in `cache` and writes CLI_CACHE_OPTIONS options. */
#define CLI_CACHE_OPTIONS 9
int cli_cache_options(moedit_cache_options *cache, cli_option *options);
/* With --json: ,"cache":{...} (the schedule, steps, FLOPs saved, bytes) when the run cached. */
void cli_cache_report(FILE *out, const moedit_generate_result *r);

/* The options of generate, which edit takes too, and what they parse into. */
#define CLI_MAX_PROMPTS 1024
#define CLI_GENERATE_OPTIONS (45 + CLI_CACHE_OPTIONS)
#define CLI_UNSET INT64_MIN /* an integer option not given */

typedef struct cli_generate_args {
    moedit_generate_options o;
    int overwrite;
    cli_string_list loras;     /* --lora, in order */
    cli_float_list lora_scales; /* --lora-scale: the k-th for the k-th LoRA */
    const char *command; /* "generate", "edit" or "video" */
    const char *prompt, *prompt_file, *seed;
    int64_t tp, ulysses, ring, cfg, dp, vae_patch;
    const char *expert_scope; /* --expert-parallel-scope: branch or world */
    int64_t max_sequence_length;
    int json;
    const char *prompts[CLI_MAX_PROMPTS];
    char *prompt_buffer; /* --prompt-file's lines */
} cli_generate_args;

/* Sets generate's defaults in `a` and writes its CLI_GENERATE_OPTIONS
 * options to `options` (their help worded for `command`: generate, edit or
 * video); returns their count. Height, width, steps and guidance stay unset
 * (CLI_UNSET, NAN) until cli_generate_finish. */
int cli_generate_options(cli_generate_args *a, cli_option *options, const char *command);
/* After parsing: what was left out from the model (moedit_model_defaults:
 * size, steps, guidance; edit's size stays 0, the input's), the seed (-1 or
 * none: a random one, the same on every rank), the prompts (reading
 * --prompt-file) and the parallel degrees into a->o (no layout flags on N
 * ranks: data parallel N, said once); the prompt file's lines and the model
 * folder's digest are added to the request, which the ranks then compare
 * (moedit_agree_request). */
int cli_generate_finish(cli_generate_args *a);
/* "wrote FILE (seed S)" lines on stderr, or with --json one JSON line. */
void cli_generate_report(const cli_generate_args *a, const moedit_generate_result *r);
void cli_generate_free(cli_generate_args *a);

int cli_inspect(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_edit(int argc, char **argv);
int cli_video(int argc, char **argv);
int cli_bench_vae(int argc, char **argv);
int cli_bench_comm(int argc, char **argv);
int cli_bench_text(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_quantize(int argc, char **argv);

#endif
