/* Vectorised e^x; see cpu_exp.h.
 *
 * Range reduction x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts
 * so n ln2 is exact enough), e^r by a degree-6 polynomial (the Cephes expf
 * coefficients, as published), and 2^n built in the exponent bits. */
#include "core/cpu_exp.h"

#include <string.h>

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

#define LOWEST -87.3365447505531f /* e^x below this is subnormal: 0 */
#define HIGHEST 88.3762626647949f

/* where(mask, a, b) for lanes: a where mask is all ones, else b. */
static inline v4f select4(v4i mask, v4f a, v4f b) { return (v4f)(((v4i)a & mask) | ((v4i)b & ~mask)); }

static inline v4f exp4(v4f x)
{
    const v4f low = {LOWEST, LOWEST, LOWEST, LOWEST}, high = {HIGHEST, HIGHEST, HIGHEST, HIGHEST};
    v4i underflow = x < low;
    x = select4(x > high, high, select4(underflow, low, x));
    /* n = round(x / ln2): adding 1.5 * 2^23 rounds to an integer in plain float arithmetic. */
    v4f n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    v4f r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v4f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v4i two_to_n = (__builtin_convertvector(n, v4i) + 127) << 23;
    return select4(underflow, (v4f){0, 0, 0, 0}, p * (v4f)two_to_n);
}

/* Lanes [0, count) of a vector from p, the rest `fill`. */
static inline v4f load4(const float *p, int64_t count, float fill)
{
    v4f v = {fill, fill, fill, fill};
    memcpy(&v, p, (size_t)count * sizeof(float));
    return v;
}

static inline v4f silu_times4(v4f x, v4f u) { return x / (1.0f + exp4(-x)) * u; }

void cpu_silu_times(float *out, const float *in, const float *up, int64_t n)
{
    const v4f ones = {1, 1, 1, 1};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) { /* fixed-size copies: plain vector loads and stores */
        v4f x, u = ones, y;
        memcpy(&x, in + i, sizeof x);
        if (up) memcpy(&u, up + i, sizeof u);
        y = silu_times4(x, u);
        memcpy(out + i, &y, sizeof y);
    }
    if (i < n) { /* the tail through the same lanes, as in cpu_exp_in_place */
        v4f y = silu_times4(load4(in + i, n - i, 0.0f), up ? load4(up + i, n - i, 1.0f) : ones);
        memcpy(out + i, &y, (size_t)(n - i) * sizeof(float));
    }
}

void cpu_exp_in_place(float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        memcpy(&v, x + i, sizeof v);
        v = exp4(v);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) { /* the tail through the same lanes: the same numbers wherever a value sits */
        v4f v = {0, 0, 0, 0};
        memcpy(&v, x + i, (size_t)(n - i) * sizeof(float));
        v = exp4(v);
        memcpy(x + i, &v, (size_t)(n - i) * sizeof(float));
    }
}
