/* Terminal progress bar; see progress.h. */
#include "core/progress.h"

#include "core/timer.h"

#include <stdio.h>
#include <unistd.h>

#define BAR_WIDTH 30

void progress_begin(progress *p, const char *label, int64_t total, int quiet)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start = timer_seconds();
    p->enabled = !quiet && isatty(fileno(stderr));
}

static void draw(const progress *p)
{
    double elapsed = timer_seconds() - p->start;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    int filled = p->total > 0 ? (int)(BAR_WIDTH * p->done / p->total) : BAR_WIDTH;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    if (rate >= 1 || rate == 0)
        fprintf(stderr, "\r%-8s [%s] %lld/%lld %.2f it/s ETA %.0fs  ", p->label, bar, (long long)p->done,
                (long long)p->total, rate, eta);
    else
        fprintf(stderr, "\r%-8s [%s] %lld/%lld %.2f s/it ETA %.0fs  ", p->label, bar, (long long)p->done,
                (long long)p->total, 1 / rate, eta);
    fflush(stderr);
}

void progress_advance(progress *p, int64_t count)
{
    p->done += count;
    if (p->enabled) draw(p);
}

void progress_end(progress *p)
{
    if (!p->enabled) return;
    draw(p);
    fprintf(stderr, "%.1fs\n", timer_seconds() - p->start);
}
