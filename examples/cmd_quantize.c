/* moedit quantize --model DIR --output DIR2 [--precision fp8] */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <stdio.h>

int cli_quantize(int argc, char **argv)
{
    const char *model = NULL, *output = NULL, *precision = "fp8";
    int quiet = 0;
    cli_option options[] = {
        {"model", OPT_STRING, &model, "diffusers-format model directory", "DIR"},
        {"output", OPT_STRING, &output, "the new model folder (must not exist)", "DIR2"},
        {"precision", OPT_STRING, &precision, "fp8 (the default and only one): F8_E4M3 weights, F32 scales per "
                                              "output channel (docs/fp8.md)", "P"},
        {"quiet", OPT_FLAG, &quiet, "no summary line", NULL},
    };
    int parsed = cli_parse(argc, argv,
                           "usage: moedit quantize --model DIR --output DIR2 [--precision fp8]\n"
                           "\n"
                           "Writes DIR2, a copy of the model whose transformer's linear layers are FP8; the other\n"
                           "components are hard-linked (or copied). Run it with --precision fp8 (no requantizing).",
                           options, (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    if (moedit_world_size() > 1) return error_set("quantize runs on one rank: start it without mpirun");
    int64_t quantized = 0;
    if (moedit_quantize(model, output, precision, &quantized)) return -1;
    if (!quiet) fprintf(stderr, "wrote %s (%lld transformer weights in FP8)\n", output, (long long)quantized);
    return 0;
}
