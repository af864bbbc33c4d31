/* Subcommands of the moedit program and their shared option parser.
 *
 * Options are declared in a table; "--name value" and "--name=value" are
 * accepted, and underscores in a name are read as dashes so the spellings of
 * other tools ("--num_inference_steps") work too. Unknown options, missing
 * values and malformed numbers are errors naming the flag. */
#ifndef MOEDIT_EXAMPLES_CLI_H
#define MOEDIT_EXAMPLES_CLI_H

#include "moedit.h"

#include <stdint.h>

/* OPT_DEVICE is a string option whose value "auto" (give it as the default)
 * becomes moedit_default_device() once parsing is done. OPT_STRING_LIST and
 * OPT_FLOAT_LIST may be given several times: each occurrence appends to a
 * cli_string_list / cli_float_list (more than CLI_MAX_LIST is an error). */
typedef enum { OPT_FLAG, OPT_STRING, OPT_INT, OPT_FLOAT, OPT_DEVICE, OPT_STRING_LIST, OPT_FLOAT_LIST } cli_option_kind;

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

/* The options of generate, which edit takes too, and what they parse into. */
#define CLI_MAX_PROMPTS 1024
#define CLI_GENERATE_OPTIONS 40

typedef struct cli_generate_args {
    moedit_generate_options o;
    cli_string_list loras;     /* --lora, in order */
    cli_float_list lora_scales; /* --lora-scale: the k-th for the k-th LoRA */
    const char *prompt, *prompt_file;
    int64_t seed, tp, ulysses, ring, cfg, dp, vae_patch;
    int64_t max_sequence_length;
    int json;
    const char *prompts[CLI_MAX_PROMPTS];
    char *prompt_buffer; /* --prompt-file's lines */
} cli_generate_args;

/* Sets generate's defaults in `a` and writes its CLI_GENERATE_OPTIONS
 * options to `options`; returns their count. */
int cli_generate_options(cli_generate_args *a, cli_option *options, const char *height_help, const char *width_help);
/* After parsing: the prompts (reading --prompt-file) and the parallel degrees
 * into a->o; the prompt file's lines and the model folder's digest are added
 * to the request, which the ranks then compare (moedit_agree_request). */
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

#endif
