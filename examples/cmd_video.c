/* moedit video: a prompt to a short clip (see moedit.h). */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VIDEO_OPTIONS 2

static const char usage[] =
    "usage: moedit video --model DIR --prompt TEXT --num-frames F [--fps N] [--output clip.png | DIR/] [options]\n"
    "\n"
    "The transformer denoises all F frames at once as one token sequence (frame f's tokens carry RoPE ids\n"
    "(f, row, col)), so the sequence-parallel layouts split the clip over frames and rows. Each frame is\n"
    "decoded by the image VAE. --output clip.png writes an animated PNG (browsers play it, in a loop at\n"
    "--fps); --output DIR/ (or an existing directory) writes DIR/frame-0000.png, frame-0001.png, ...\n"
    "Every file carries the prompt, seed, steps, size, frames and fps as PNG text.";

int cli_video(int argc, char **argv)
{
    cli_generate_args *a = malloc(sizeof *a);
    moedit_generate_result *r = calloc(1, sizeof *r);
    if (!a || !r) {
        free(a), free(r);
        return error_set("out of memory");
    }
    moedit_video_options v = {0};
    const int64_t not_given = INT64_MIN; /* so a typed 0 is an error of its own */
    v.frames = not_given;
    int64_t fps = MOEDIT_DEFAULT_FPS;
    cli_option options[VIDEO_OPTIONS + CLI_GENERATE_OPTIONS] = {
        {"num-frames", OPT_INT, &v.frames, "frames of the clip (required, 1..1024)", "F"},
        {"fps", OPT_INT, &fps, "frames per second of the animated PNG (default 8)", "N"},
    };
    int count = VIDEO_OPTIONS + cli_generate_options(a, options + VIDEO_OPTIONS, "video");
    int status = cli_parse(argc, argv, usage, options, count);
    if (status == 0 && v.frames == not_given) status = error_set("video needs --num-frames F");
    if (status == 0 && (fps < 1 || fps > 120)) status = error_set("--fps %lld: must be 1..120", (long long)fps);
    if (status == 0) status = cli_generate_finish(a);
    if (status == 0) {
        v.base = a->o;
        v.fps = (int)fps;
        status = moedit_video(&v, r);
    }
    if (status == 0) cli_generate_report(a, r);
    cli_generate_free(a);
    moedit_generate_result_free(r);
    free(a), free(r);
    return status < 0 ? -1 : 0;
}
