/* The run behind moedit_generate and moedit_edit (pipelines/edit.c): prompts
 * to images, optionally conditioned on an input image that every job edits.
 * With a condition the run encodes the image once, starts every job from its
 * latents noised to the first step the strength leaves (SDEdit; strength 1:
 * pure noise), and, in context mode, feeds the latents to the transformer as
 * in-context tokens at every step (dit_forward.h). */
#ifndef MOEDIT_PIPELINES_GENERATE_H
#define MOEDIT_PIPELINES_GENERATE_H

#include "io/image_io.h"
#include "dit/dit_config.h"
#include "moedit.h"
#include "vae/vae_config.h"

#include <stdint.h>

/* Largest image side and pixel count a run accepts (output and input). */
#define GENERATE_MAX_SIDE 16384
#define GENERATE_MAX_PIXELS ((int64_t)64 << 20)

typedef struct generate_condition {
    const float *pixels;    /* [3, height, width] in [-1, 1], at the run's size */
    const char *image_path; /* for messages and the output's metadata */
    double strength;        /* (0, 1] */
    int in_context;         /* the latents also enter the transformer as context tokens */
} generate_condition;

/* Where a run's pictures go, when not one image file per job (moedit
 * video composes the run with one: pipelines/video.c). Every job denoises
 * latents [frames, C, h, w] as one token sequence (dit_forward.h) and hands
 * its frames to `write`. */
typedef struct generate_output generate_output;
struct generate_output {
    int64_t frames;         /* per job */
    int one_path;           /* every job gets options->output; write names the files per job */
    /* Writes job `job` of `total` to path; may add to meta (the run's settings). */
    int (*write)(const generate_output *out, const char *path, int job, int total, const uint8_t *const *frames,
                 int64_t width, int64_t height, image_metadata *meta);
    const void *user;       /* the writer's own settings */
    /* Checks, before any weight is loaded, that job `job` of `total` can be
     * written to path (every file it would make); NULL: no check. */
    int (*check_path)(const generate_output *out, const char *path, int job, int total);
    /* After every rank's checks passed, before loading, on rank 0 only: makes
     * room for the run's files at path (a frames directory emptied of an
     * earlier run's frames); NULL: nothing to do. */
    int (*prepare)(const generate_output *out, const char *path, int total);
};

/* What moedit_generate's run is composed with: each NULL for plain
 * text-to-image (one image file per job, no probes). */
typedef struct generate_plan {
    const char *command;                 /* the subcommand in messages ("edit needs --prompt TEXT") */
    const generate_condition *condition; /* edit: the input image */
    const generate_output *output;       /* video: the writer of its frames */
    struct generate_hooks *hooks;        /* moedit bench's probes (generate_hooks.h) */
} generate_plan;

int generate_run(const moedit_generate_options *options, const generate_plan *plan, moedit_generate_result *result);

/* The multiple both image sides must be: the VAE factor times the patch
 * size, from model_dir's configs (errors name the directory or file). */
int generate_size_multiple(const char *model_dir, const char *command, int64_t *multiple);

/* The most pixels a non-square image may have: the transformer pads such an
 * image's patches to max_resolution's, so height x width must stay within
 * max_resolution[0] x max_resolution[1] latent pixels times the VAE factor
 * squared (a square image has no such bound). */
int generate_nonsquare_max_pixels(const char *model_dir, const char *command, int64_t *pixels);

#endif
