/* The SVG chart of moedit bench: one horizontal bar per layout that ran,
 * its length images per second (the reference in grey, the fastest correct
 * layout in green, a layout whose output differs from the reference in red),
 * labelled with images/s and the speedup. Written by hand: a title, a scale
 * line and a <rect> + two <text> per layout. */
#include "bench/bench_layouts.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LABEL_WIDTH 250
#define BAR_WIDTH 420
#define VALUE_WIDTH 190
#define ROW_HEIGHT 24
#define TOP 56

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '&') fputs("&amp;", f);
        else if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static const char *bar_colour(const moedit_bench_layout *l)
{
    if (l->fastest) return "#2e8b57";
    if (l->reference) return "#8c8c8c";
    return l->correct ? "#4a78b5" : "#c0392b";
}

static void bar(FILE *f, const moedit_bench_layout *l, int row, double best)
{
    int y = TOP + row * ROW_HEIGHT;
    double length = best > 0 && !l->failed ? BAR_WIDTH * l->images_per_second / best : 0;
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LABEL_WIDTH - 8, y + 16);
    xml_text(f, l->reference ? "serial (reference)" : l->name);
    fprintf(f, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", LABEL_WIDTH, y + 3, length,
            ROW_HEIGHT - 6, bar_colour(l));
    fprintf(f, "<text x=\"%.1f\" y=\"%d\">", LABEL_WIDTH + length + 6, y + 16);
    if (l->failed) fprintf(f, "failed");
    else fprintf(f, "%.3g/s (%.2fx)%s%s", l->images_per_second, l->speedup, l->fastest ? " fastest" : "",
                 !l->reference && !l->correct ? " WRONG" : "");
    fprintf(f, "</text>\n");
}

int moedit_bench_write_svg(const moedit_bench_result *r, const char *path)
{
    int rows = 0;
    double best = 0;
    for (int i = 0; i < r->count; i++) {
        const moedit_bench_layout *l = &r->layouts[i];
        if (l->skipped) continue;
        rows++;
        if (!l->failed && l->images_per_second > best) best = l->images_per_second;
    }
    int width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH, height = TOP + rows * ROW_HEIGHT + 30;
    bench_file file;
    if (bench_file_open(&file, path)) return -1;
    FILE *f = file.f;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"13\">\n", width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" "
               "font-weight=\"bold\">images per second by layout: ");
    xml_text(f, r->model);
    fprintf(f, "</text>\n<text x=\"10\" y=\"42\" fill=\"#555\">%lldx%lld, %lld steps, guidance %g, %s, %d rank(s)%s</text>\n",
            (long long)r->height, (long long)r->width, (long long)r->steps, r->guidance, r->device, r->world_size,
            r->transformer_only ? ", transformer only" : "");
    int row = 0;
    for (int i = 0; i < r->count; i++)
        if (!r->layouts[i].skipped) bar(f, &r->layouts[i], row++, best);
    int axis = TOP + rows * ROW_HEIGHT + 4;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", LABEL_WIDTH, axis,
            LABEL_WIDTH + BAR_WIDTH, axis);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">0</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"end\" "
               "fill=\"#555\">%.3g images/s</text>\n</svg>\n",
            LABEL_WIDTH, axis + 16, LABEL_WIDTH + BAR_WIDTH, axis + 16, best);
    return bench_file_close(&file);
}
