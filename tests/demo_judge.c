/* The demo model's pixel judge; see demo_judge.h. */
#include "demo_judge.h"

#include "io/image_io.h"
#include "moedit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { COLOR_COUNT = 10, MAX_OBJECTS = 4, MAX_COMPONENTS = 64, BORDER = 8 };
#define OBJECT_DISTANCE 64.0
#define MIN_AREA 0.0035

static const struct {
    const char *name;
    int rgb[3];
} PALETTE[COLOR_COUNT] = {
    {"red", {220, 30, 30}},    {"green", {30, 160, 50}},   {"blue", {30, 70, 220}},   {"yellow", {245, 220, 30}},
    {"orange", {245, 135, 15}}, {"purple", {130, 40, 170}}, {"pink", {250, 140, 200}}, {"white", {245, 245, 245}},
    {"black", {20, 20, 20}},   {"gray", {128, 128, 128}},
};

static const char *POSITION_NAMES[3][3] = {
    {"top left", "top", "top right"}, {"left", "center", "right"}, {"bottom left", "bottom", "bottom right"}};

typedef struct expected_object {
    int color;
    int row, col; /* -1: no position named */
} expected_object;

typedef struct expectation {
    int background; /* -1: not named */
    int count;
    expected_object objects[MAX_OBJECTS];
} expectation;

typedef struct found_object {
    int color;
    int row, col;
    long area;
} found_object;

typedef struct observation {
    int background;
    int count;
    found_object objects[MAX_COMPONENTS]; /* largest first */
} observation;

typedef demo_verdict verdict;

/* ---------------------------------------------------------------- the prompt */

static int color_index(const char *word)
{
    for (int i = 0; i < COLOR_COUNT; i++)
        if (!strcmp(word, PALETTE[i].name)) return i;
    return -1;
}

static int is_shape(const char *w)
{
    static const char *shapes[] = {"circle", "square", "triangle", "star", "diamond", "cross",
                                   "circles", "squares", "triangles", "stars", "diamonds", "crosses"};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(w, shapes[i])) return 1;
    return 0;
}

/* Lowercase words of text (letters only), at most max of them. */
static int split_words(const char *text, char words[][16], int max)
{
    int n = 0, len = 0;
    for (const char *p = text;; p++) {
        int letter = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
        if (letter && len < 15 && n < max) words[n][len++] = (char)(*p | 0x20);
        if (!letter && len) {
            words[n++][len] = 0;
            len = 0;
        }
        if (!*p) return n;
    }
}

/* "on the left", "at the top", "in the center", "in the top left corner": the cell, or -1. */
static int parse_position(char words[][16], int n, int i, int *row, int *col)
{
    if (i + 2 >= n || strcmp(words[i + 1], "the") || (strcmp(words[i], "on") && strcmp(words[i], "at") && strcmp(words[i], "in")))
        return -1;
    int r = 1, c = 1, j = i + 2, named = 0;
    for (; j < n && j < i + 4; j++) {
        if (!strcmp(words[j], "top")) r = 0;
        else if (!strcmp(words[j], "bottom")) r = 2;
        else if (!strcmp(words[j], "left")) c = 0;
        else if (!strcmp(words[j], "right")) c = 2;
        else if (strcmp(words[j], "center")) break;
        named++;
    }
    if (!named) return -1;
    *row = r;
    *col = c;
    return 0;
}

static int parse_prompt(const char *prompt, expectation *e)
{
    char words[64][16];
    int n = split_words(prompt, words, 64), twin = 0;
    memset(e, 0, sizeof *e);
    e->background = -1;
    for (int i = 0; i < n; i++) {
        if (!strcmp(words[i], "two")) twin = 1;
        int color = color_index(words[i]);
        if (color < 0) continue;
        if (i + 1 < n && !strcmp(words[i + 1], "background")) {
            e->background = color;
            continue;
        }
        if (i + 1 >= n || !is_shape(words[i + 1]) || e->count + 1 + twin > MAX_OBJECTS) return -1;
        expected_object o = {color, -1, -1};
        parse_position(words, n, i + 2, &o.row, &o.col);
        e->objects[e->count++] = o;
        if (twin) e->objects[e->count++] = o;
        twin = 0;
    }
    return e->count ? 0 : -1;
}

/* ---------------------------------------------------------------- the pixels */

static int nearest_color(const double rgb[3])
{
    int best = 0;
    double best_d = 1e30;
    for (int i = 0; i < COLOR_COUNT; i++) {
        double d = 0;
        for (int c = 0; c < 3; c++) d += (rgb[c] - PALETTE[i].rgb[c]) * (rgb[c] - PALETTE[i].rgb[c]);
        if (d < best_d) best_d = d, best = i;
    }
    return best;
}

static int on_border(int64_t x, int64_t y, int64_t w, int64_t h)
{
    return x < BORDER || y < BORDER || x >= w - BORDER || y >= h - BORDER;
}

/* The most common palette name on the border, and the mean color of its pixels. */
static int measure_background(const uint8_t *rgb, int64_t w, int64_t h, double mean[3])
{
    long votes[COLOR_COUNT] = {0};
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            if (on_border(x, y, w, h)) {
                double p[3] = {rgb[(y * w + x) * 3], rgb[(y * w + x) * 3 + 1], rgb[(y * w + x) * 3 + 2]};
                votes[nearest_color(p)]++;
            }
    int bg = 0;
    for (int i = 1; i < COLOR_COUNT; i++)
        if (votes[i] > votes[bg]) bg = i;
    double sum[3] = {0, 0, 0};
    long count = 0;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            const uint8_t *p = rgb + (y * w + x) * 3;
            double q[3] = {p[0], p[1], p[2]};
            if (on_border(x, y, w, h) && nearest_color(q) == bg) {
                for (int c = 0; c < 3; c++) sum[c] += p[c];
                count++;
            }
        }
    for (int c = 0; c < 3; c++) mean[c] = sum[c] / (double)count;
    return bg;
}

/* Labels the component of mask containing `start` with `label` (stack-based fill); returns its area. */
static long fill_component(int *labels, const uint8_t *mask, int64_t w, int64_t h, int64_t start, int label,
                           int64_t *stack)
{
    long area = 0, top = 0;
    stack[top++] = start;
    labels[start] = label;
    while (top) {
        int64_t i = stack[--top], x = i % w, y = i / w;
        area++;
        int64_t next[4] = {x > 0 ? i - 1 : -1, x + 1 < w ? i + 1 : -1, y > 0 ? i - w : -1, y + 1 < h ? i + w : -1};
        for (int k = 0; k < 4; k++)
            if (next[k] >= 0 && mask[next[k]] && !labels[next[k]]) {
                labels[next[k]] = label;
                stack[top++] = next[k];
            }
    }
    return area;
}

static int cell_of(double v)
{
    return v < 0.375 ? 0 : v > 0.625 ? 2 : 1;
}

/* Color (interior pixels' mean) and cell (centroid) of component `label`. */
static found_object describe_component(const uint8_t *rgb, const uint8_t *mask, const int *labels, int64_t w,
                                       int64_t h, int label, long area)
{
    double sum[3] = {0, 0, 0}, all[3] = {0, 0, 0}, sx = 0, sy = 0;
    long interior = 0;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            int64_t i = y * w + x;
            if (labels[i] != label) continue;
            sx += x + 0.5;
            sy += y + 0.5;
            int inside = x > 0 && y > 0 && x + 1 < w && y + 1 < h && mask[i - 1] && mask[i + 1] && mask[i - w] && mask[i + w];
            for (int c = 0; c < 3; c++) {
                all[c] += rgb[i * 3 + c];
                if (inside) sum[c] += rgb[i * 3 + c];
            }
            interior += inside;
        }
    double mean[3];
    for (int c = 0; c < 3; c++) mean[c] = interior ? sum[c] / interior : all[c] / area;
    found_object o = {nearest_color(mean), cell_of(sy / area / h), cell_of(sx / area / w), area};
    return o;
}

/* mask[i] = 1 where pixel i is farther than OBJECT_DISTANCE from bg. */
static void object_pixels(const uint8_t *rgb, int64_t n, const double bg[3], uint8_t *mask)
{
    for (int64_t i = 0; i < n; i++) {
        double d = 0;
        for (int c = 0; c < 3; c++) d += (rgb[i * 3 + c] - bg[c]) * (rgb[i * 3 + c] - bg[c]);
        mask[i] = d > OBJECT_DISTANCE * OBJECT_DISTANCE;
    }
}

static int observe(const uint8_t *rgb, int64_t w, int64_t h, observation *ob)
{
    double bg[3];
    memset(ob, 0, sizeof *ob);
    ob->background = measure_background(rgb, w, h, bg);
    int64_t n = w * h;
    uint8_t *mask = calloc((size_t)n, 1);
    int *labels = calloc((size_t)n, sizeof *labels);
    int64_t *stack = malloc((size_t)n * sizeof *stack);
    if (!mask || !labels || !stack) {
        free(mask), free(labels), free(stack);
        return -1;
    }
    object_pixels(rgb, n, bg, mask);
    int label = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!mask[i] || labels[i]) continue;
        long area = fill_component(labels, mask, w, h, i, ++label, stack);
        if (area < MIN_AREA * n || ob->count == MAX_COMPONENTS) continue;
        found_object o = describe_component(rgb, mask, labels, w, h, label, area);
        int k = ob->count++;
        while (k > 0 && ob->objects[k - 1].area < o.area) ob->objects[k] = ob->objects[k - 1], k--;
        ob->objects[k] = o;
    }
    free(mask), free(labels), free(stack);
    return 0;
}

/* ---------------------------------------------------------------- the verdict */

static verdict judge(const expectation *e, const observation *ob)
{
    verdict v = {0};
    if (e->background >= 0) {
        v.background_total = 1;
        v.background_ok = ob->background == e->background;
    }
    v.count_total = 1;
    v.count_ok = ob->count == e->count;
    int used[MAX_COMPONENTS] = {0};
    for (int k = 0; k < e->count; k++) {
        const expected_object *want = &e->objects[k];
        int match = -1;
        if (e->count == 1) {
            match = ob->count ? 0 : -1; /* the largest object */
        } else {
            for (int j = 0; j < ob->count && match < 0; j++) /* the largest unused one of its color */
                if (!used[j] && ob->objects[j].color == want->color) match = j;
        }
        if (match >= 0) used[match] = 1;
        v.color_total++;
        v.color_ok += match >= 0 && ob->objects[match].color == want->color;
        if (want->row >= 0) {
            v.position_total++;
            v.position_ok += match >= 0 && ob->objects[match].row == want->row && ob->objects[match].col == want->col;
        }
    }
    v.all_ok = v.background_ok == v.background_total && v.color_ok == v.color_total &&
               v.position_ok == v.position_total && v.count_ok;
    return v;
}

static void add(verdict *sum, const verdict *v)
{
    sum->background_ok += v->background_ok, sum->background_total += v->background_total;
    sum->color_ok += v->color_ok, sum->color_total += v->color_total;
    sum->position_ok += v->position_ok, sum->position_total += v->position_total;
    sum->count_ok += v->count_ok, sum->count_total += v->count_total;
    sum->all_ok += v->all_ok;
}

static void describe(const observation *ob, char *out, size_t size)
{
    int len = snprintf(out, size, "bg %s;", PALETTE[ob->background].name);
    for (int k = 0; k < ob->count && len < (int)size; k++)
        len += snprintf(out + len, size - (size_t)len, " %s@%s(%ld)", PALETTE[ob->objects[k].color].name,
                        POSITION_NAMES[ob->objects[k].row][ob->objects[k].col], ob->objects[k].area);
}

int demo_judge_file(const char *path, const char *prompt, demo_verdict *sum, demo_verdict *one)
{
    expectation e;
    if (parse_prompt(prompt, &e)) {
        fprintf(stderr, "cannot read the prompt \"%s\"\n", prompt);
        return -1;
    }
    uint8_t *rgb = NULL;
    int64_t w, h;
    if (image_read(path, 4096, 1 << 24, &rgb, &w, &h)) {
        fprintf(stderr, "%s\n", moedit_error());
        return -1;
    }
    observation ob;
    int status = observe(rgb, w, h, &ob);
    free(rgb);
    if (status) return -1;
    verdict v = judge(&e, &ob);
    add(sum, &v);
    if (one) *one = v;
    char seen[512];
    describe(&ob, seen, sizeof seen);
    printf("%s\t%s\tbackground %d/%d color %d/%d position %d/%d count %d/%d\t%s\n", v.all_ok ? "ok" : "MISS", prompt,
           v.background_ok, v.background_total, v.color_ok, v.color_total, v.position_ok, v.position_total, v.count_ok,
           v.count_total, seen);
    return 0;
}

void demo_judge_print_totals(const demo_verdict *s, int images)
{
    printf("totals: images %d background %d/%d color %d/%d position %d/%d count %d/%d all %d/%d\n", images,
           s->background_ok, s->background_total, s->color_ok, s->color_total, s->position_ok, s->position_total,
           s->count_ok, s->count_total, s->all_ok, images);
}

void demo_judge_object_mask(const uint8_t *rgb, int64_t w, int64_t h, uint8_t *mask)
{
    double bg[3];
    measure_background(rgb, w, h, bg);
    object_pixels(rgb, w * h, bg, mask);
}
