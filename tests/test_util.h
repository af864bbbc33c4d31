/* Minimal test helpers: each test file is one executable that ctest runs;
 * CHECK records a failure with file and line and the test exits non-zero at
 * the end (test_finish), so one run reports every failed check. */
#ifndef MOEDIT_TESTS_TEST_UTIL_H
#define MOEDIT_TESTS_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_failures;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures++;                                                       \
        }                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                       \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                          \
            fprintf(stderr, "\n");                                                 \
            test_failures++;                                                       \
        }                                                                          \
    } while (0)

/* Largest |a - b| over n floats. */
static inline double test_max_abs_diff(const float *a, const float *b, long n)
{
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return NAN; /* a NaN anywhere is the worst */
        if (d > worst) worst = d;
    }
    return worst;
}

/* Largest |x| over n floats: the scale tolerances are relative to. */
static inline double test_max_abs(const float *a, long n)
{
    double worst = 0;
    for (long i = 0; i < n; i++)
        if (fabs(a[i]) > worst) worst = fabs(a[i]);
    return worst;
}

/* sqrt(sum (a - reference)^2 / sum reference^2): an error relative to the
 * reference's rms (FP8 tests: docs/fp8.md). */
static inline double test_relative_rms(const float *a, const float *reference, long n)
{
    double diff = 0, ref = 0;
    for (long i = 0; i < n; i++) {
        diff += ((double)a[i] - reference[i]) * ((double)a[i] - reference[i]);
        ref += (double)reference[i] * reference[i];
    }
    return sqrt(diff / ref);
}

static inline int test_finish(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

/* test_finish for one rank of a multi-rank test: "TEST (rank R of N)". */
static inline int test_finish_rank(const char *test, int rank, int size)
{
    char name[128];
    snprintf(name, sizeof name, "%s (rank %d of %d)", test, rank, size);
    return test_finish(name);
}

#endif
