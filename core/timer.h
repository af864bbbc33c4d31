/* Monotonic wall-clock time in seconds, and the median/percentiles of a
 * sample of durations. */
#ifndef MOEDIT_CORE_TIMER_H
#define MOEDIT_CORE_TIMER_H

#include <stdint.h>

double timer_seconds(void);

/* The p-th percentile (0..100, linear interpolation) of n values; sorts them. */
double timer_percentile(double *values, int64_t n, double p);

#endif
