/* moedit edit: an input image and a prompt to an image (see moedit.h). */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EDIT_OPTIONS 3

static const char usage[] =
    "usage: moedit edit --model DIR --image FILE --prompt TEXT [--strength S] [--edit-mode MODE] [options]\n"
    "\n"
    "The input image (PNG: 8/16-bit gray, gray+alpha, RGB, RGBA, palette; or JPEG) is resized to the output\n"
    "size with a bilinear filter (PIL's BILINEAR: it widens to average every pixel when shrinking), never\n"
    "cropped. The output size is the input's rounded to the nearest multiple of the model's grid (VAE\n"
    "factor x patch size: 16 for HiDream-style models), unless --height/--width say otherwise (one of\n"
    "them alone keeps the input's aspect ratio).\n"
    "\n"
    "Edit modes:\n"
    "  strength  SDEdit, works with any model: the input's VAE latents are noised to the level of the\n"
    "            first step that --strength leaves (start = int(steps - steps * strength)) and the\n"
    "            remaining steps are run. Low strength keeps the input, 1 ignores it. Default 0.6.\n"
    "  context   in-context editing (FLUX.1 Kontext / HiDream-E1 style): the input's latents enter the\n"
    "            transformer at every step as extra image tokens with their own RoPE index, and the\n"
    "            output starts from noise (default strength 1). Only models trained with in-context\n"
    "            tokens (HiDream-E1-style or Kontext-style edit checkpoints) make real edits this way;\n"
    "            any model runs it mechanically, but one never trained with context tokens gives no\n"
    "            meaningful edit: use strength mode with those.";

static int parse_mode(const char *mode, moedit_edit_mode *out)
{
    if (!strcmp(mode, "strength")) *out = MOEDIT_EDIT_STRENGTH;
    else if (!strcmp(mode, "context")) *out = MOEDIT_EDIT_CONTEXT;
    else return error_set("--edit-mode %s: must be strength or context", mode);
    return 0;
}

int cli_edit(int argc, char **argv)
{
    cli_generate_args *a = malloc(sizeof *a);
    moedit_generate_result *r = calloc(1, sizeof *r);
    if (!a || !r) {
        free(a), free(r);
        return error_set("out of memory");
    }
    moedit_edit_options e = {0};
    const char *mode = "strength";
    double strength = NAN; /* not given */
    cli_option options[EDIT_OPTIONS + CLI_GENERATE_OPTIONS] = {
        {"image", OPT_STRING, &e.image_path, "the image to edit (PNG or JPEG)", "FILE"},
        {"strength", OPT_FLOAT, &strength, "how much to change, in (0, 1] (default 0.6; context mode 1)", "S"},
        {"edit-mode", OPT_STRING, &mode, "strength (SDEdit, any model) or context (models trained for it)", "MODE"},
    };
    int count = EDIT_OPTIONS + cli_generate_options(a, options + EDIT_OPTIONS, "edit");
    int status = cli_parse(argc, argv, usage, options, count);
    if (status == 0) status = cli_generate_finish(a);
    if (status == 0) status = parse_mode(mode, &e.mode);
    /* The API reads strength 0 as "the mode's default"; a typed 0 is an error. */
    if (status == 0 && !isnan(strength) && !(strength > 0 && strength <= 1))
        status = error_set("--strength %g: must be in (0, 1]", strength);
    if (status == 0 && !isnan(strength)) e.strength = strength;
    if (status == 0) {
        e.base = a->o;
        status = moedit_edit(&e, r);
    }
    if (status == 0) cli_generate_report(a, r);
    cli_generate_free(a);
    moedit_generate_result_free(r);
    free(a), free(r);
    return status < 0 ? -1 : 0;
}
