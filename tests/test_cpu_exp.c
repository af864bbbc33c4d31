/* cpu_exp_in_place against double-precision exp: within 2e-7 relative over
 * [-87, 88] (a sweep of 2^20 values), 0 below the normal range, finite
 * above it, and a value in an array's tail gets the same result as in its
 * body. */
#include "backend/cpu/cpu_exp.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

enum { N = 1 << 20 };

int main(void)
{
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * (float)i / (float)(N - 1);
    static float y[N];
    for (int i = 0; i < N; i++) y[i] = x[i];
    cpu_exp_in_place(y, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]), rel = fabs((double)y[i] - want) / want;
        if (!(rel <= worst)) worst = rel; /* a NaN sticks */
    }
    printf("  worst relative error %.3g over [-87, 88]\n", worst);
    CHECK_MSG(worst <= 2e-7, "worst relative error %.3g", worst);

    float edges[7] = {-INFINITY, -1000.0f, -87.4f, 0.0f, 88.5f, 1000.0f, INFINITY};
    cpu_exp_in_place(edges, 7); /* 4 in the body, 3 in the tail */
    CHECK(edges[0] == 0.0f && edges[1] == 0.0f && edges[2] == 0.0f && edges[3] == 1.0f);
    CHECK(isfinite(edges[4]) && edges[4] > 2e38f && isfinite(edges[5]) && isfinite(edges[6]));

    float body[5] = {0.5f, -3.25f, 7.0f, 11.5f, 1.0f}, tail[1] = {-3.25f};
    cpu_exp_in_place(body, 5);
    cpu_exp_in_place(tail, 1);
    CHECK(tail[0] == body[1]);

    /* SiLU (times up): the scalar formula on cpu_exp_in_place's e^-x, bit for
     * bit, in the body and the tail (n = 7), in place too. */
    float in[7] = {-90.0f, -3.5f, -0.25f, 0.0f, 0.75f, 6.0f, 100.0f}, up[7] = {2, -1, 0.5f, 3, -4, 1, 0.25f};
    float e[7], silu[7], times[7], want_silu[7], want_times[7];
    for (int i = 0; i < 7; i++) e[i] = -in[i];
    cpu_exp_in_place(e, 7);
    for (int i = 0; i < 7; i++) {
        want_silu[i] = in[i] / (1.0f + e[i]);
        want_times[i] = in[i] / (1.0f + e[i]) * up[i];
    }
    cpu_silu_times(silu, in, NULL, 7);
    cpu_silu_times(times, in, up, 7);
    CHECK(memcmp(silu, want_silu, sizeof silu) == 0 && memcmp(times, want_times, sizeof times) == 0);
    cpu_silu_times(up, in, up, 7); /* out = up */
    CHECK(memcmp(up, want_times, sizeof up) == 0);
    /* Softmax: the scalar steps (max, x - max, e^x by the lanes, four double
     * running sums, scale) bit for bit, on a row whose length leaves a tail,
     * with -inf entries (masked keys). */
    enum { ROW = 37 };
    float row[ROW], want[ROW];
    for (int i = 0; i < ROW; i++) row[i] = want[i] = i % 5 == 3 ? -INFINITY : 0.37f * (float)((i * 7) % 23) - 4.0f;
    float max = want[0];
    for (int i = 1; i < ROW; i++) max = want[i] > max ? want[i] : max;
    for (int i = 0; i < ROW; i++) want[i] -= max;
    cpu_exp_in_place(want, ROW);
    double part[4] = {0, 0, 0, 0};
    for (int i = 0; i < ROW; i++) part[i < ROW / 4 * 4 ? i % 4 : 0] += want[i];
    double total = (part[0] + part[1]) + (part[2] + part[3]);
    for (int i = 0; i < ROW; i++) want[i] *= (float)(1.0 / total);
    float log_sum = cpu_softmax_in_place(row, ROW);
    CHECK(memcmp(row, want, sizeof row) == 0);
    CHECK(log_sum == max + (float)log(total));
    CHECK(cpu_softmax_in_place(NULL, 0) == -INFINITY); /* no keys: nothing read (NULL would crash) */
    return test_finish("test_cpu_exp");
}
