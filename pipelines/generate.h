/* The run behind moedit_generate and moedit_edit (pipelines/edit.c): prompts
 * to images, optionally conditioned on an input image that every job edits.
 * With a condition the run encodes the image once, starts every job from its
 * latents noised to the first step the strength leaves (SDEdit; strength 1:
 * pure noise), and, in context mode, feeds the latents to the transformer as
 * in-context tokens at every step (dit_forward.h). */
#ifndef MOEDIT_PIPELINES_GENERATE_H
#define MOEDIT_PIPELINES_GENERATE_H

#include "core/image_io.h"
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

/* A clip instead of an image (moedit video; pipelines/video.c): every job
 * denoises latents [frames, C, h, w] as one token sequence (dit_forward.h)
 * and writes an animated PNG, or numbered PNG frames into a directory. */
typedef struct generate_clip {
    int64_t frames;
    int fps;
    int frames_dir; /* the output is a directory of frames */
} generate_clip;

/* video.c: the clip's memory estimated against this machine before any
 * weight is loaded; and its files: an animated PNG at path, or with
 * frames_dir the frames path/frame-0000.png... (path/clipJ-frame-0000.png
 * for job J of several). */
int clip_check_memory(const generate_clip *clip, const dit_config *dit, const vae_config *vae,
                      const moedit_generate_options *options);
int clip_write(const generate_clip *clip, const char *path, int job, int total, const uint8_t *const *frames,
               int64_t width, int64_t height, const image_metadata *meta);

/* moedit_generate when condition and clip are NULL; `command` names the
 * subcommand in messages ("edit needs --prompt TEXT"). */
int generate_run(const moedit_generate_options *options, const char *command, const generate_condition *condition,
                 const generate_clip *clip, moedit_generate_result *result);

/* The multiple both image sides must be: the VAE factor times the patch
 * size, from model_dir's configs (errors name the directory or file). */
int generate_size_multiple(const char *model_dir, const char *command, int64_t *multiple);

#endif
