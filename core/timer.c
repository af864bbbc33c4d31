/* Wall clock and percentiles; see timer.h. */
#include "core/timer.h"

#include <stdlib.h>
#include <time.h>

double timer_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double timer_percentile(double *values, int64_t n, double p)
{
    if (n <= 0) return 0;
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    double position = p / 100.0 * (double)(n - 1);
    int64_t below = (int64_t)position;
    if (below >= n - 1) return values[n - 1];
    double frac = position - (double)below;
    return values[below] * (1 - frac) + values[below + 1] * frac;
}
