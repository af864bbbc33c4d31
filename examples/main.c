/* The moedit command-line program: dispatches to a subcommand. Every failure
 * ends here as one line "moedit: error: ..." and exit status 1; SIGINT,
 * SIGTERM and SIGHUP remove the temporary files of unfinished outputs and
 * end it with the signal (io/temp_file.h). Under a launcher the ranks agree
 * on the request at the start and on the outcome at the end, so a failure
 * that every rank knows of is one line and no rank is aborted
 * (parallel/world.h). */
#include "examples/cli.h"

#include "core/error.h"
#include "io/temp_file.h"
#include "moedit.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moedit <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate  text to image\n"
            "  edit      an image and a prompt to an image (SDEdit or in-context)\n"
            "  video     text to a short clip (animated PNG or numbered frames)\n"
            "  bench-vae time the VAE decoder of a model\n"
            "  bench-comm time the collectives of the parallel modes over the launcher's ranks\n"
            "  bench-text time HiDream's four text encoders over a prompt and its negative\n"
            "  inspect   print a model's components, configs and parameter counts\n"
            "  bench     time the transformer forward of a model or a random-weight config\n"
            "  tokenize  print the token ids of prompts (transformers' ids) with a model's tokenizer folder\n"
            "  serve     an OpenAI-compatible image server with the model resident (docs/serve.md)\n"
            "  quantize  write a copy of a model whose transformer is FP8 (docs/fp8.md)\n"
            "\n"
            "Run 'moedit <command> --help' for the options of a command.\n");
}

int cli_serve(int argc, char **argv); /* examples/cmd_serve.c */

int main(int argc, char **argv)
{
    cli_passive_threads(argv); /* idle OpenMP threads sleep: the default collapsed on a busy machine */
    temp_file_handle_signals(); /* a signal removes half-written outputs; a file-size limit is a write error */
    if (moedit_init(&argc, &argv) != 0) {
        moedit_agree(-1); /* joined the launcher's world: one line for all its ranks */
        if (error_prints_here()) fprintf(stderr, "moedit: error: %s\n", error_message());
        moedit_finalize();
        return 1;
    }
    const char *command = argc >= 2 ? argv[1] : "";
    int status = 0, first_rank = moedit_rank() == 0; /* help and version print once under mpirun */
    static const char *const commands[] = {"generate",   "edit",    "video", "bench-vae", "bench-comm",
                                           "bench-text", "inspect", "bench", "tokenize", "quantize"};
    int known = 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) known |= !strcmp(command, commands[i]);
    if (!known) moedit_request_add("the command", argc >= 2 ? command : NULL); /* a command's parser adds it */
    if (argc < 2) status = error_set("no command given (try 'moedit --help')");
    else if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        if (first_rank) usage(stdout);
    } else if (!strcmp(command, "--version")) {
        if (first_rank) printf("moedit %s\n", MOEDIT_VERSION);
    } else if (!strcmp(command, "generate")) status = cli_generate(argc - 1, argv + 1);
    else if (!strcmp(command, "edit")) status = cli_edit(argc - 1, argv + 1);
    else if (!strcmp(command, "video")) status = cli_video(argc - 1, argv + 1);
    else if (!strcmp(command, "bench-vae")) status = cli_bench_vae(argc - 1, argv + 1);
    else if (!strcmp(command, "bench-comm")) status = cli_bench_comm(argc - 1, argv + 1);
    else if (!strcmp(command, "bench-text")) status = cli_bench_text(argc - 1, argv + 1);
    else if (!strcmp(command, "inspect")) status = cli_inspect(argc - 1, argv + 1);
    else if (!strcmp(command, "bench")) status = cli_bench(argc - 1, argv + 1);
    else if (!strcmp(command, "tokenize")) status = cli_tokenize(argc - 1, argv + 1);
    else if (!strcmp(command, "serve")) status = cli_serve(argc - 1, argv + 1);
    else if (!strcmp(command, "quantize")) status = cli_quantize(argc - 1, argv + 1);
    else status = error_set("unknown command '%s' (try 'moedit --help')", command);
    /* A command that never created a group (or failed before its first)
     * still agrees with the other ranks, which may be waiting there. */
    status = moedit_agree(status < 0 ? -1 : 0);
    if (status < 0 && !error_is_agreed() && !error_is_shared() && moedit_world_size() > 1) {
        /* One rank's failure while the others may wait for it in a collective. */
        if (error_prints_here()) fprintf(stderr, "moedit: error: [rank %d] %s\n", moedit_rank(), error_message());
        fflush(stderr);
        moedit_abort(1);
    }
    /* Every rank gets here (or was aborted): a failure met alike by the
     * ranks exchanging data is reported once, without an abort. */
    status = moedit_agree_end(status);
    if (status < 0) {
        if (error_prints_here()) fprintf(stderr, "moedit: error: %s\n", error_message());
        fflush(stderr);
        moedit_finalize();
        return 1;
    }
    moedit_finalize();
    return 0;
}
