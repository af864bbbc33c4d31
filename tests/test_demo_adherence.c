/* The shipped demo model (models/demo) draws what the prompt says, judged from
 * pixels: moedit_generate makes 256 x 256 pictures of a fixed set of prompts
 * and the pixel judge (demo_judge.h) checks the background color, each
 * object's color, its position on the 3 x 3 grid and the object count,
 * against thresholds set from measurement (docs/demo-model.md).
 *
 * `test_demo_adherence --judge LIST` (LIST lines "FILE.png<TAB>prompt") runs
 * the judge alone: tools/eval/eval_adherence.py uses it. */
#include "core/error.h"
#include "io/image_io.h"
#include "demo_judge.h"
#include "moedit.h"
#include "test_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL MOEDIT_FIXTURES "/../../models/demo"

/* --judge LIST: one "FILE<TAB>prompt" a line. */
static int judge_list(const char *list)
{
    FILE *f = fopen(list, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", list);
        return 2;
    }
    char line[1024];
    demo_verdict sum = {0};
    int images = 0, status = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        if (demo_judge_file(line, tab + 1, &sum, NULL)) status = 2;
        images++;
    }
    fclose(f);
    demo_judge_print_totals(&sum, images);
    return status;
}


/* ---------------------------------------------------------------- the ctest */

/* Fixed prompts: the README's, held-out color/shape/background combinations
 * (tools/train/data.py HELDOUT) at several positions, and a positioned pair. */
static const char *PROMPTS[] = {
    "a red circle on a blue background",
    "a black star on the left on a pink background",
    "a green star in the top right corner on a purple background",
    "an orange circle in the bottom right corner on a red background",
    "a white triangle at the top on a green background",
    "a red triangle at the top and a blue square at the bottom on a black background",
};
#define PROMPT_COUNT ((int)(sizeof PROMPTS / sizeof *PROMPTS))
#define STEPS 12
#define GUIDANCE 4.0
#define SEED 0
/* Thresholds: measured on this set (docs/demo-model.md), less one miss of slack each.
 * Measured on the 2-vCPU VM with these settings: the model of 2880 DiT steps,
 * 2026-11-23/24: 6/6, 7/7, 6/6, 6/6, all 6/6; the shipped model of 5133 steps
 * (trained on clips and edits too), 2026-11-30: background 6/6, color 6/7,
 * position 5/6, count 6/6, all criteria 5/6 (the red triangle of the pair on
 * black is drawn gray). This set guards against regressions only; held-out
 * adherence (120 prompts of tools/eval/eval_adherence.py) is lower: colors
 * 75.7%, all criteria 69.2%. */
#define MIN_BACKGROUND 5 /* of 6 */
#define MIN_COLOR 5      /* of 7 objects */
#define MIN_POSITION 4   /* of 6 positioned objects */
#define MIN_COUNT 5      /* of 6 */

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--judge")) return judge_list(argv[2]);
    moedit_init(&argc, &argv);
    if (access(MODEL "/model_index.json", R_OK) != 0) {
        fprintf(stderr, "%s: no demo model\n", MODEL);
        return 1;
    }
    char dir[] = "/tmp/moedit-demo-XXXXXX", output[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(output, sizeof output, "%s/demo.png", dir);
    moedit_generate_options o = {.model_dir = MODEL, .prompts = PROMPTS, .prompt_count = PROMPT_COUNT,
                                 .height = 256, .width = 256, .steps = STEPS, .guidance = GUIDANCE, .seed = SEED,
                                 .images_per_prompt = 1, .output = output, .quiet = 1};
    moedit_generate_result r;
    int status = moedit_generate(&o, &r);
    CHECK_MSG(status == 0, "generate: %s", moedit_error());
    CHECK(status != 0 || r.count == PROMPT_COUNT);
    demo_verdict sum = {0};
    for (int i = 0; status == 0 && i < r.count; i++) {
        CHECK(demo_judge_file(r.files[i], PROMPTS[i], &sum, NULL) == 0);
        unlink(r.files[i]);
    }
    rmdir(dir);
    demo_judge_print_totals(&sum, PROMPT_COUNT);
    printf("generated %d pictures in %.1f s (denoise %.1f s, decode %.1f s)\n", r.count, r.total_seconds,
           r.denoise_seconds, r.decode_seconds);
    moedit_generate_result_free(&r);
    CHECK_MSG(sum.background_ok >= MIN_BACKGROUND, "background %d/%d", sum.background_ok, sum.background_total);
    CHECK_MSG(sum.color_ok >= MIN_COLOR, "color %d/%d", sum.color_ok, sum.color_total);
    CHECK_MSG(sum.position_ok >= MIN_POSITION, "position %d/%d", sum.position_ok, sum.position_total);
    CHECK_MSG(sum.count_ok >= MIN_COUNT, "count %d/%d", sum.count_ok, sum.count_total);
    moedit_finalize();
    return test_finish("test_demo_adherence");
}
