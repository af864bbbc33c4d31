/* moedit_model_defaults_load (see moedit.h): the settings a model folder
 * implies for the options a run leaves out.
 *
 *   height, width = transformer max_resolution (latent pixels) x VAE factor
 *                   (HiDream-I1: 128 x 8 = 1024, as HiDreamImagePipeline's
 *                   default_sample_size x vae_scale_factor; the demo: 256)
 *   steps, guidance = model_index.json "_moedit_num_inference_steps",
 *                   "_moedit_guidance_scale" where the folder has them (the
 *                   demo's are its training's evaluation settings), else 50
 *                   and 5 (HiDreamImagePipeline's defaults)
 *   video size    = "_moedit_video_height", "_moedit_video_width", else 256
 * Keys starting with '_' are private to diffusers: a folder that carries them
 * still loads there. */
#include "moedit.h"

#include "core/config.h"
#include "core/error.h"
#include "dit/dit_config.h"
#include "pipelines/model_bundle.h"
#include "vae/vae_config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_STEPS 50
#define DEFAULT_GUIDANCE 5.0
#define DEFAULT_VIDEO_SIDE 256

static int read_model_index(const char *model_dir, moedit_model_defaults *d)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model_index.json", model_dir);
    if (access(path, F_OK) != 0) return 0; /* a folder without one: the fallbacks */
    config *c;
    if (config_load(&c, path)) return -1;
    int status = config_get_int_or(c, "_moedit_num_inference_steps", DEFAULT_STEPS, &d->steps) ||
                 config_get_float_or(c, "_moedit_guidance_scale", DEFAULT_GUIDANCE, &d->guidance) ||
                 config_get_int_or(c, "_moedit_video_height", DEFAULT_VIDEO_SIDE, &d->video_height) ||
                 config_get_int_or(c, "_moedit_video_width", DEFAULT_VIDEO_SIDE, &d->video_width)
                     ? -1 : 0;
    d->steps_from_model = config_has(c, "_moedit_num_inference_steps");
    d->guidance_from_model = config_has(c, "_moedit_guidance_scale");
    config_free(c);
    if (status == 0 && (d->steps < 1 || d->steps > 10000 || d->guidance < 0 || d->guidance > 100 ||
                        d->video_height < 1 || d->video_width < 1))
        return error_set("%s: a _moedit_ default is out of range (steps 1..10000, guidance 0..100, sizes >= 1)", path);
    return status;
}

int moedit_model_defaults_load(const char *model_dir, moedit_model_defaults *d)
{
    memset(d, 0, sizeof *d);
    d->steps = DEFAULT_STEPS;
    d->guidance = DEFAULT_GUIDANCE;
    d->video_height = d->video_width = DEFAULT_VIDEO_SIDE;
    if (!model_dir) return error_set("no model directory");
    if (model_dir_check(model_dir)) return -1;
    char path[4200];
    dit_config dit;
    vae_config vae;
    snprintf(path, sizeof path, "%s/transformer/config.json", model_dir);
    if (dit_config_load(&dit, path)) return -1;
    snprintf(path, sizeof path, "%s/vae/config.json", model_dir);
    if (vae_config_load(&vae, path)) return -1;
    d->height = (int64_t)dit.max_resolution[0] * vae.downscale;
    d->width = (int64_t)dit.max_resolution[1] * vae.downscale;
    return read_model_index(model_dir, d);
}
