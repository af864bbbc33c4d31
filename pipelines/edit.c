/* moedit_edit (see moedit.h): checks the request, prepares the input image
 * (edit_image.h) and runs the generate pipeline conditioned on it
 * (generate.h), which encodes it, noises it (SDEdit) and, in context mode,
 * feeds it to the transformer as in-context tokens. Everything that can be
 * checked without weights is checked first: flags, the image's header, the
 * sizes against the configs. */
#include "moedit.h"

#include "core/error.h"
#include "pipelines/edit_image.h"
#include "pipelines/generate.h"
#include "pipelines/generate_hooks.h"
#include "pipelines/scheduler.h"

#include <math.h>
#include <string.h>

static double strength_of(const moedit_edit_options *e)
{
    if (e->strength != 0) return e->strength;
    return e->mode == MOEDIT_EDIT_CONTEXT ? 1.0 : MOEDIT_EDIT_DEFAULT_STRENGTH;
}

static int validate_edit(const moedit_edit_options *e, double strength)
{
    const moedit_generate_options *b = &e->base;
    if (!e->image_path) return error_set("edit needs --image FILE");
    if (e->mode != MOEDIT_EDIT_STRENGTH && e->mode != MOEDIT_EDIT_CONTEXT)
        return error_set("unknown edit mode %d (strength or context)", (int)e->mode);
    if (!(strength > 0 && strength <= 1)) return error_set("--strength %g: must be in (0, 1]", strength);
    if (b->steps >= 1 && b->steps <= SCHEDULER_MAX_STEPS) {
        /* The same rule the run applies, before any weight is loaded. */
        scheduler probe = {.steps = (int)b->steps};
        int start;
        if (scheduler_start_index(&probe, strength, &start))
            return error_set("--strength %g leaves none of the %lld inference steps to run; raise --strength or "
                             "--num-inference-steps",
                             strength, (long long)b->steps);
    }
    if (b->height < 0 || b->width < 0 || b->height > GENERATE_MAX_SIDE || b->width > GENERATE_MAX_SIDE)
        return error_set("--height %lld --width %lld: each side must be 1..%d (or 0: the input image's)",
                         (long long)b->height, (long long)b->width, GENERATE_MAX_SIDE);
    return 0;
}

/* moedit_edit, with moedit serve's hooks (generate_hooks.h) or none. */
static int edit_run(const moedit_edit_options *e, generate_hooks *hooks, moedit_generate_result *r)
{
    memset(r, 0, sizeof *r);
    const moedit_generate_options *b = &e->base;
    double strength = strength_of(e);
    int64_t multiple;
    if (validate_edit(e, strength) || generate_size_multiple(b->model_dir, "edit", &multiple)) return -1;
    /* 0 is a side left out (the input's): only a given side is named. */
    if (b->height % multiple)
        return error_set("--height %lld: must be a multiple of %lld (VAE factor x patch size)", (long long)b->height,
                         (long long)multiple);
    if (b->width % multiple)
        return error_set("--width %lld: must be a multiple of %lld (VAE factor x patch size)", (long long)b->width,
                         (long long)multiple);
    edit_image image;
    if (edit_image_load(&image, e->image_path, b->height, b->width, multiple, GENERATE_MAX_SIDE, GENERATE_MAX_PIXELS))
        return -1;
    moedit_generate_options o = *b;
    o.height = image.height;
    o.width = image.width;
    generate_condition condition = {image.pixels, e->image_path, strength, e->mode == MOEDIT_EDIT_CONTEXT};
    generate_plan plan = {"edit", &condition, NULL, hooks};
    int status = generate_run(&o, &plan, r);
    edit_image_free(&image);
    return status;
}

int moedit_edit(const moedit_edit_options *e, moedit_generate_result *r) { return edit_run(e, NULL, r); }

int edit_with_hooks(const moedit_edit_options *e, generate_hooks *hooks, moedit_generate_result *r)
{
    return edit_run(e, hooks, r);
}
