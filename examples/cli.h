/* Subcommands of the moedit program and their shared option parser.
 *
 * Options are declared in a table; "--name value" and "--name=value" are
 * accepted, and underscores in a name are read as dashes so the spellings of
 * other tools ("--num_inference_steps") work too. Unknown options, missing
 * values and malformed numbers are errors naming the flag. */
#ifndef MOEDIT_EXAMPLES_CLI_H
#define MOEDIT_EXAMPLES_CLI_H

#include <stdint.h>

typedef enum { OPT_FLAG, OPT_STRING, OPT_INT, OPT_FLOAT } cli_option_kind;

typedef struct cli_option {
    const char *name; /* without the leading dashes */
    cli_option_kind kind;
    void *target;     /* int* for flags, const char** / int64_t* / double* */
    const char *help;
    const char *metavar;
} cli_option;

/* Parses argv[1..argc) (argv[0] is the command name). Returns 1 when --help
 * was printed, 0 on success, -1 on error. */
int cli_parse(int argc, char **argv, const char *usage, const cli_option *options, int count);

int cli_inspect(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_bench_vae(int argc, char **argv);

#endif
