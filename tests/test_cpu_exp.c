/* cpu_exp_in_place against double-precision exp: within 2e-7 relative over
 * [-87, 88] (a sweep of 2^20 values), 0 below the normal range, finite
 * above it, and a value in an array's tail gets the same result as in its
 * body. */
#include "core/cpu_exp.h"
#include "test_util.h"

#include <math.h>

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
    return test_finish("test_cpu_exp");
}
