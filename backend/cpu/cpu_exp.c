/* Vectorised e^x; see cpu_exp.h.
 *
 * Range reduction x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts
 * so n ln2 is exact enough), e^r by a degree-6 polynomial (the Cephes expf
 * coefficients, as published), and 2^n built in the exponent bits.
 *
 * Eight lanes: the exported functions are built twice (target_clones), for
 * AVX2, where a lane vector is one register (about twice the speed of SSE2
 * here), and for any x86-64, where it is two SSE2 registers. Neither build
 * may fuse a multiply and an add (the AVX2 target has no FMA), so every lane
 * computes the same IEEE operations in the same order on either: results do
 * not depend on the machine. */
#include "backend/cpu/cpu_exp.h"

#include <math.h>
#include <string.h>

#define LANES 8
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LANE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LANE_CLONES
#endif

/* GCC warns that 32-byte vectors change the calling convention of functions
 * built without AVX; the helpers below are always inlined, so no call passes
 * one. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define LOWEST -87.3365447505531f /* e^x below this is subnormal: 0 */
#define HIGHEST 88.3762626647949f

/* Every lane of a vector set to v. */
#define SPLAT(v) ((vf){v, v, v, v, v, v, v, v})

/* where(mask, a, b) for lanes: a where mask is all ones, else b. */
static inline __attribute__((always_inline)) vf select_lanes(vi mask, vf a, vf b)
{
    return (vf)(((vi)a & mask) | ((vi)b & ~mask));
}

static inline __attribute__((always_inline)) vf exp_lanes(vf x)
{
    vi underflow = x < SPLAT(LOWEST);
    x = select_lanes(x > SPLAT(HIGHEST), SPLAT(HIGHEST), select_lanes(underflow, SPLAT(LOWEST), x));
    /* n = round(x / ln2): adding 1.5 * 2^23 rounds to an integer in plain float arithmetic. */
    vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi two_to_n = (__builtin_convertvector(n, vi) + 127) << 23;
    return select_lanes(underflow, SPLAT(0.0f), p * (vf)two_to_n);
}

static inline __attribute__((always_inline)) vf silu_times_lanes(vf x, vf u) { return x / (1.0f + exp_lanes(-x)) * u; }

/* Lanes [0, count) of a vector from p, the rest `fill`. */
static inline __attribute__((always_inline)) vf load_lanes(const float *p, int64_t count, float fill)
{
    vf v = SPLAT(fill);
    memcpy(&v, p, (size_t)count * sizeof(float));
    return v;
}

/* out[i] = e^(in[i] - shift), or with `silu` SiLU(in[i]) * up[i] (up NULL: 1),
 * for i in [0, n); out may be in. The tail goes through the same lanes, so a
 * value gives the same number wherever it sits. Always inlined with a constant
 * `silu`, so each caller gets its own loop. */
static inline __attribute__((always_inline)) void map_lanes(float *out, const float *in, const float *up, float shift,
                                                            int silu, int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) { /* fixed-size copies: plain vector loads and stores */
        vf x, u = SPLAT(1.0f), y;
        memcpy(&x, in + i, sizeof x);
        if (up) memcpy(&u, up + i, sizeof u);
        y = silu ? silu_times_lanes(x, u) : exp_lanes(x - shift);
        memcpy(out + i, &y, sizeof y);
    }
    if (i < n) {
        vf x = load_lanes(in + i, n - i, 0.0f), u = up ? load_lanes(up + i, n - i, 1.0f) : SPLAT(1.0f);
        vf y = silu ? silu_times_lanes(x, u) : exp_lanes(x - shift);
        memcpy(out + i, &y, (size_t)(n - i) * sizeof(float));
    }
}

LANE_CLONES void cpu_exp_in_place(float *x, int64_t n) { map_lanes(x, x, NULL, 0.0f, 0, n); }

/* max over x[0, n), n >= 1, lane by lane and then across (max is exact, so
 * the order does not matter). */
static inline __attribute__((always_inline)) float max_of(const float *x, int64_t n)
{
    vf best = SPLAT(x[0]);
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        best = select_lanes(v > best, v, best);
    }
    float m = best[0];
    for (int k = 1; k < LANES; k++) m = best[k] > m ? best[k] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

LANE_CLONES float cpu_softmax_in_place(float *x, int64_t n)
{
    if (n < 1) return -INFINITY; /* no keys (an empty ring slot): the log of an empty sum */
    float max = max_of(x, n);
    map_lanes(x, x, NULL, max, 0, n); /* e^(x - max) */
    double part[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (int t = 0; t < 4; t++) part[t] += x[j + t];
    for (; j < n; j++) part[0] += x[j];
    double sum = (part[0] + part[1]) + (part[2] + part[3]);
    float inv = (float)(1.0 / sum);
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        v = v * inv;
        memcpy(x + i, &v, sizeof v);
    }
    for (; i < n; i++) x[i] *= inv;
    return max + (float)log(sum);
}

LANE_CLONES void cpu_silu_times(float *out, const float *in, const float *up, int64_t n)
{
    map_lanes(out, in, up, 0.0f, 1, n);
}
