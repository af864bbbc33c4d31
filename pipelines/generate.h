/* The run behind moedit_generate and moedit_edit (pipelines/edit.c): prompts
 * to images, optionally conditioned on an input image that every job edits.
 * With a condition the run encodes the image once, starts every job from its
 * latents noised to the first step the strength leaves (SDEdit; strength 1:
 * pure noise), and, in context mode, feeds the latents to the transformer as
 * in-context tokens at every step (dit_forward.h). */
#ifndef MOEDIT_PIPELINES_GENERATE_H
#define MOEDIT_PIPELINES_GENERATE_H

#include "moedit.h"

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

/* moedit_generate when condition is NULL; `command` names the subcommand in
 * messages ("edit needs --prompt TEXT"). */
int generate_run(const moedit_generate_options *options, const char *command, const generate_condition *condition,
                 moedit_generate_result *result);

/* The multiple both image sides must be: the VAE factor times the patch
 * size, from model_dir's configs (errors name the directory or file). */
int generate_size_multiple(const char *model_dir, const char *command, int64_t *multiple);

#endif
