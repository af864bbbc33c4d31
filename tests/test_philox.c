/* Tests for core/philox: Philox4x32-10 known-answer vectors, the
 * (seed, stream, index) -> normal mapping against independently computed
 * values, fill == pointwise for unaligned ranges, rank-style slices that
 * concatenate to the full run, and moment statistics over 1e6 samples. */
#include "core/philox.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

/* Known-answer vectors for philox4x32 with 10 rounds, as listed in
 * Random123's kat_vectors file (counter[4], key[2] -> out[4]). They were
 * cross-checked against an independent Python implementation written from
 * the paper's description of the round function and key schedule, which
 * reproduces all three. */
static const struct {
    uint32_t ctr[4], key[2], out[4];
} kat[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000}, {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_kat(void)
{
    for (size_t t = 0; t < sizeof kat / sizeof kat[0]; t++) {
        uint32_t out[4];
        philox4x32_10(kat[t].ctr, kat[t].key, out);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(out[i] == kat[t].out[i], "vector %zu word %d: got %08x want %08x", t, i,
                      (unsigned)out[i], (unsigned)kat[t].out[i]);
    }
    /* out may alias counter. */
    uint32_t c[4];
    memcpy(c, kat[2].ctr, sizeof c);
    philox4x32_10(c, kat[2].key, c);
    CHECK(memcmp(c, kat[2].out, sizeof c) == 0);
}

/* The documented mapping, computed independently in Python (float64 Box-Muller
 * from the same Philox words, rounded to float32). libm may differ from
 * Python's by an ulp, hence the small tolerance. */
static void test_mapping(void)
{
    static const struct {
        uint64_t seed, stream, index;
        float want;
    } ref[] = {
        {0x0ULL, 0x0ULL, 0x0ULL, 9.911376834e-01f},
        {0x0ULL, 0x0ULL, 0x1ULL, -9.246625900e-01f},
        {0x0ULL, 0x0ULL, 0x2ULL, -6.176089644e-01f},
        {0x0ULL, 0x0ULL, 0x3ULL, -4.820685983e-01f},
        {0x2aULL, 0x0ULL, 0x5ULL, 1.391374916e-01f},
        {0x2aULL, 0x7ULL, 0xf4243ULL, -1.942930460e+00f},
        {0x123456789abcdef0ULL, 0xfedcba9876543210ULL, 0x10000000006ULL, -1.288435310e-01f},
    };
    for (size_t t = 0; t < sizeof ref / sizeof ref[0]; t++) {
        float got = philox_normal(ref[t].seed, ref[t].stream, ref[t].index);
        CHECK_MSG(fabs((double)got - (double)ref[t].want) <= 1e-6, "ref %zu: got %.9g want %.9g",
                  t, got, ref[t].want);
    }
}

/* Exact bitwise float equality (NaN-safe: compares representations). */
static int same_bits(const float *a, const float *b, long n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

static void test_fill_matches_pointwise(void)
{
    const uint64_t seed = 0x0123456789abcdefULL, stream = 3;
    float buf[64], one[64];
    const uint64_t firsts[] = {0, 1, 2, 3, 4, 5, 7, 1001, (1ULL << 33) + 2,
                               UINT64_MAX - 9 /* wraps past 2^64 */};
    for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++) {
        for (int64_t count = 0; count <= 19; count++) {
            for (int i = 0; i < 64; i++) buf[i] = -12345.0f;
            philox_fill_normal(seed, stream, firsts[f], count, buf);
            for (int64_t i = 0; i < count; i++)
                one[i] = philox_normal(seed, stream, firsts[f] + (uint64_t)i);
            CHECK_MSG(same_bits(buf, one, (long)count), "first=%llu count=%lld",
                      (unsigned long long)firsts[f], (long long)count);
            CHECK_MSG(buf[count] == -12345.0f, "wrote past count: first=%llu count=%lld",
                      (unsigned long long)firsts[f], (long long)count);
        }
    }
    buf[0] = -1.0f;
    philox_fill_normal(seed, stream, 0, -5, buf);
    CHECK(buf[0] == -1.0f);
}

/* Ranks generate uneven slices of one tensor independently. */
static void test_slices_concatenate(void)
{
    enum { N = 1237 };
    static float full[N], parts[N];
    const uint64_t seed = 2024, stream = 11, base = 77;
    philox_fill_normal(seed, stream, base, N, full);
    const int cuts_list[][5] = {{0, 618, 1237, -1, -1}, {0, 3, 5, 1001, 1237},
                                {0, 1, 1236, 1237, -1}, {0, 413, 826, 1237, -1}};
    for (size_t c = 0; c < sizeof cuts_list / sizeof cuts_list[0]; c++) {
        memset(parts, 0, sizeof parts);
        for (int r = 0; r + 1 < 5 && cuts_list[c][r + 1] >= 0; r++) {
            int lo = cuts_list[c][r], hi = cuts_list[c][r + 1];
            philox_fill_normal(seed, stream, base + (uint64_t)lo, hi - lo, parts + lo);
        }
        CHECK_MSG(same_bits(full, parts, N), "cut set %zu", c);
    }
}

static void test_statistics(void)
{
    enum { N = 1000000 };
    float *x = malloc(N * sizeof *x);
    float *y = malloc(N * sizeof *y);
    CHECK(x && y);
    if (!x || !y) {
        free(x);
        free(y);
        return;
    }
    philox_fill_normal(42, 0, 0, N, x);
    double sum = 0, sum2 = 0;
    long bad = 0;
    for (long i = 0; i < N; i++) {
        if (!isfinite(x[i])) bad++;
        sum += x[i];
        sum2 += (double)x[i] * x[i];
    }
    double mean = sum / N, var = sum2 / N - mean * mean;
    printf("philox_normal: mean %.6f variance %.6f over %d samples\n", mean, var, N);
    CHECK(bad == 0);
    CHECK_MSG(fabs(mean) < 0.005, "mean %g", mean);
    CHECK_MSG(fabs(var - 1.0) < 0.01, "variance %g", var);

    /* Different seeds and streams give different (uncorrelated) sequences. */
    const struct { uint64_t seed, stream; } other[] = {{43, 0}, {42, 1}, {42ULL << 32, 0}, {42, 1ULL << 32}};
    for (size_t o = 0; o < sizeof other / sizeof other[0]; o++) {
        philox_fill_normal(other[o].seed, other[o].stream, 0, N, y);
        long equal = 0;
        double dot = 0;
        for (long i = 0; i < N; i++) {
            equal += x[i] == y[i];
            dot += (double)x[i] * y[i];
        }
        double corr = dot / N;
        CHECK_MSG(equal < 10, "variant %zu: %ld equal samples", o, equal);
        CHECK_MSG(fabs(corr) < 0.01, "variant %zu: correlation %g", o, corr);
    }
    free(x);
    free(y);
}

/* Uniforms: in (-1, 1), mean 0 and variance 1/3, and slices made apart
 * equal the whole (what parallel random-weight loading relies on). */
static void test_uniform(void)
{
    enum { N = 1 << 20 };
    static float all[N], part[N];
    philox_fill_uniform(9, 4, 3, N, all);
    double mean = 0, var = 0;
    for (int i = 0; i < N; i++) {
        CHECK(all[i] > -1.0f && all[i] < 1.0f);
        mean += all[i];
        var += (double)all[i] * all[i];
    }
    mean /= N;
    var = var / N - mean * mean;
    CHECK_MSG(fabs(mean) < 0.005 && fabs(var - 1.0 / 3.0) < 0.005, "mean %g var %g", mean, var);
    philox_fill_uniform(9, 4, 3, 1001, part);
    philox_fill_uniform(9, 4, 3 + 1001, N - 1001, part + 1001);
    CHECK(memcmp(all, part, sizeof all) == 0);
}

int main(void)
{
    test_kat();
    test_mapping();
    test_fill_matches_pointwise();
    test_slices_concatenate();
    test_statistics();
    test_uniform();
    return test_finish("test_philox");
}
