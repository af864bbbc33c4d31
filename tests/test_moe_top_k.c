/* moe_top_k_ascending against a reference (experts sorted by score, high
 * first, ties to the lower index; the first k, ascending by index) on random
 * scores drawn from few values so that ties are common, for expert counts on
 * both sides of its two methods (up to 16: ranks; more: repeated passes). */
#include "backend/moe_gate.h"
#include "test_util.h"

#include <stdlib.h>

static const float *sort_scores;

/* Higher score first, then lower index. */
static int by_score(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (sort_scores[x] != sort_scores[y]) return sort_scores[x] > sort_scores[y] ? -1 : 1;
    return x - y;
}

static int ascending(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void reference(const float *scores, int n, int k, int *want)
{
    int order[256];
    for (int e = 0; e < n; e++) order[e] = e;
    sort_scores = scores;
    qsort(order, (size_t)n, sizeof order[0], by_score);
    for (int j = 0; j < k; j++) want[j] = order[j];
    qsort(want, (size_t)k, sizeof want[0], ascending);
}

int main(void)
{
    const int counts[] = {2, 4, 8, 16, 17, 32, 128}, ks[] = {1, 2, 4, 8};
    unsigned seed = 12345;
    int cases = 0;
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
        for (size_t kk = 0; kk < sizeof ks / sizeof ks[0]; kk++) {
            int n = counts[c], k = ks[kk];
            if (k > n) continue;
            for (int trial = 0; trial < 200; trial++) {
                float scores[256];
                for (int e = 0; e < n; e++) scores[e] = (float)(rand_r(&seed) % 5) * 0.25f; /* ties */
                int want[256];
                int32_t got[256];
                reference(scores, n, k, want);
                moe_top_k_ascending(scores, n, k, got);
                int same = 1;
                for (int j = 0; j < k; j++) same &= got[j] == want[j];
                CHECK_MSG(same, "n %d k %d trial %d: chose %d.. want %d..", n, k, trial, got[0], want[0]);
                cases++;
            }
        }
    CHECK(cases > 1000);
    return test_finish("test_moe_top_k");
}
