/* moedit inspect --model DIR [--json] */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <stdio.h>

int cli_inspect(int argc, char **argv)
{
    const char *model = NULL;
    int json = 0, check = 0;
    cli_option options[] = {
        {"model", OPT_STRING, &model, "diffusers-format model directory", "DIR"},
        {"json", OPT_FLAG, &json, "print one JSON object", NULL},
        {"check", OPT_FLAG, &check, "load every transformer weight to validate names and shapes", NULL},
    };
    int parsed = cli_parse(argc, argv, "usage: moedit inspect --model DIR [--json] [--check]", options,
                           (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    if (!model) return error_set("inspect needs --model DIR");
    /* Under mpirun every rank checks its view of the model; rank 0 prints. */
    return moedit_inspect(model, json, check, moedit_rank() == 0 ? stdout : NULL);
}
