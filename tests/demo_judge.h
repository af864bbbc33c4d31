/* The pixel judge of the demo model's pictures (models/demo): from a picture
 * and its prompt, the background color, each object's color, its cell on the
 * 3 x 3 grid and the object count, right or wrong. Used by
 * test_demo_adherence (prompt adherence) and test_demo_edit (edit success).
 *
 *   - every pixel is named by the nearest color of the palette (tools/train/
 *     data.py COLORS); the background is the most common name on the 8-pixel
 *     border, its color the mean of those border pixels;
 *   - object pixels are those farther than OBJECT_DISTANCE (RGB) from it; their
 *     4-connected components of at least MIN_AREA of the image are objects;
 *   - an object's color is the palette name nearest the mean of its interior
 *     pixels; its position the 3 x 3 cell of its centroid (cells split at 3/8
 *     and 5/8, anchors at 1/4, 1/2, 3/4 as in the training data);
 *   - the prompt is read with the training captions' grammar: "COLOR
 *     background", "[two] [small|large] COLOR SHAPE[s] [on the left | at the
 *     top | in the center | in the top left corner ...]".
 * Single-object prompts: color and position of the largest object. Pairs: each
 * named object must match a distinct found object of its color, at its
 * position. Count: the number of objects found equals the number named. */
#ifndef MOEDIT_TESTS_DEMO_JUDGE_H
#define MOEDIT_TESTS_DEMO_JUDGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct demo_verdict {
    int background_ok, background_total;
    int color_ok, color_total;
    int position_ok, position_total;
    int count_ok, count_total;
    int all_ok;
} demo_verdict;

/* Judges the picture at path against prompt: adds to *sum, prints one line
 * "ok|MISS<TAB>prompt<TAB>scores<TAB>what was seen". -1 (message on stderr)
 * when the prompt or the file cannot be read. v (may be NULL): this one's verdict. */
int demo_judge_file(const char *path, const char *prompt, demo_verdict *sum, demo_verdict *v);
void demo_judge_print_totals(const demo_verdict *sum, int images);

/* mask[h * w] = 1 where a pixel is an object's (farther than the judge's
 * OBJECT_DISTANCE from the measured background color), else 0. */
void demo_judge_object_mask(const uint8_t *rgb, int64_t w, int64_t h, uint8_t *mask);

#endif
