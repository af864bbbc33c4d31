/* moe_placement_balanced on routing files written here: the exhaustive
 * search finds the best deal (4 experts over 2 ranks), the greedy one for
 * many experts (32 over 2) gives every rank its share and balances the
 * loads, and bad files (one of another model: too few or too many layers)
 * and ids fail with one message naming the file. */
#include "core/error.h"
#include "moe/moe_placement.h"
#include "moe/moe_routing.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/moedit_placement_XXXXXX";

/* A routing file of `layers` layers, one call each, top-1: expert e chosen by rows[e] tokens. */
static void write_routing(const char *path, int layers, int experts, const int *rows)
{
    moe_routing r;
    moe_routing_init(&r, ROUTING_CAPTURE);
    int total = 0;
    for (int e = 0; e < experts; e++) total += rows[e];
    int32_t *chosen = malloc((size_t)total * sizeof *chosen);
    for (int e = 0, at = 0; e < experts; e++)
        for (int i = 0; i < rows[e]; i++) chosen[at++] = e;
    for (int l = 0; l < layers; l++) CHECK(moe_routing_store(&r, 0, l, 0, total, total, 1, chosen) == 0);
    CHECK_MSG(moe_routing_save(&r, path) == 0, "%s", error_message());
    free(chosen);
    moe_routing_free(&r);
}

/* The busiest rank's rows over the mean for layer 0 of `order`. */
static double load_of(const int32_t *order, int experts, int ranks, const int *rows)
{
    double most = 0, total = 0;
    for (int r = 0; r < ranks; r++) {
        double load = 0;
        for (int i = 0; i < experts / ranks; i++) load += rows[order[r * (experts / ranks) + i]];
        most = load > most ? load : most;
        total += load;
    }
    return most / (total / ranks);
}

static int is_order(const int32_t *order, int experts)
{
    int seen[64] = {0};
    for (int i = 0; i < experts; i++) {
        if (order[i] < 0 || order[i] >= experts || seen[order[i]]++) return 0;
    }
    return 1;
}

/* Hidden units a token costs each rank: routed share plus shared slice. */
static void work(const double *shares, const int64_t *bounds, int ranks, double routed, double *out)
{
    for (int r = 0; r < ranks; r++) out[r] = shares[r] * routed + (double)(bounds[r + 1] - bounds[r]);
}

/* moe_shared_split: HiDream's MoE (top-2 of 6912-wide experts, a 3584-wide
 * shared expert) with the busier rank at 1.137x the mean: slices in steps of
 * 64 that leave the ranks within one step of each other; a load too uneven
 * to even out leaves the busy rank one step; a narrow shared expert steps by
 * 8, and one too narrow to move is split evenly. */
static void test_shared_split(void)
{
    int64_t bounds[5];
    double w[4];
    const double hidream[2] = {0.5685, 0.4315};
    moe_shared_split(hidream, 2, 2, 6912, 3584, bounds);
    work(hidream, bounds, 2, 2.0 * 6912, w);
    printf("  shared split for shares {%.4f, %.4f}: {%lld, %lld}, work %.0f vs %.0f\n", hidream[0], hidream[1],
           (long long)(bounds[1] - bounds[0]), (long long)(bounds[2] - bounds[1]), w[0], w[1]);
    CHECK(bounds[0] == 0 && bounds[2] == 3584 && bounds[1] % 64 == 0 && bounds[1] < 1792 && fabs(w[0] - w[1]) <= 64);
    const double even[2] = {0.5, 0.5};
    moe_shared_split(even, 2, 2, 6912, 3584, bounds);
    CHECK(bounds[1] == 1792);
    const double skewed[2] = {0.9, 0.1};
    moe_shared_split(skewed, 2, 2, 6912, 3584, bounds);
    CHECK(bounds[1] == 64 && bounds[2] == 3584);
    const double four[4] = {0.3, 0.2, 0.25, 0.25};
    moe_shared_split(four, 4, 2, 512, 256, bounds); /* narrow: steps of 8 */
    work(four, bounds, 4, 2.0 * 512, w);
    int ascending = 1;
    for (int r = 0; r < 4; r++) ascending &= bounds[r + 1] - bounds[r] >= 8 && (bounds[r + 1] - bounds[r]) % 8 == 0;
    CHECK(ascending && bounds[0] == 0 && bounds[4] == 256 && fabs(w[0] - w[1]) <= 8 && fabs(w[2] - w[3]) <= 8);
    moe_shared_split(hidream, 2, 2, 64, 12, bounds); /* 12 units: too narrow to move */
    CHECK(bounds[0] == 0 && bounds[1] == 6 && bounds[2] == 12);
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/routing.safetensors", dir);

    /* Experts 0 and 1 loaded alike, 2 and 3 alike: id order puts both heavy ones together. */
    const int four[4] = {40, 38, 10, 12};
    write_routing(path, 3, 4, four);
    int32_t order[3 * 64];
    CHECK_MSG(moe_placement_balanced(path, 3, 4, 2, order, NULL) == 0, "%s", error_message());
    const int32_t identity[4] = {0, 1, 2, 3};
    double placed = load_of(order, 4, 2, four), id_order = load_of(identity, 4, 2, four);
    printf("  4 experts: id order %.3f, placed %.3f ({%d, %d} | {%d, %d})\n", id_order, placed, order[0], order[1],
           order[2], order[3]);
    CHECK(is_order(order, 4) && placed < id_order && placed <= 1.0 + 1e-9); /* {0, 2} | {1, 3}: 50 vs 50 */
    CHECK(memcmp(order + 4, order, 4 * sizeof *order) == 0 && memcmp(order + 8, order, 4 * sizeof *order) == 0);

    /* A capture of another model: fewer or more layers than this one's. */
    error_clear();
    CHECK(moe_placement_balanced(path, 4, 4, 2, order, NULL) != 0);
    CHECK_MSG(strstr(error_message(), "no routing for layer 3") && strstr(error_message(), path), "got: %s",
              error_message());
    error_clear();
    CHECK(moe_placement_balanced(path, 2, 4, 2, order, NULL) != 0);
    CHECK_MSG(strstr(error_message(), "routes layer 2") && strstr(error_message(), path), "got: %s", error_message());

    /* The ranks' shares of the routed rows in the placement: one expert takes 60 of 100 rows, so the best deal
     * is 70 | 30. */
    const int lopsided[4] = {60, 20, 10, 10};
    write_routing(path, 1, 4, lopsided);
    double shares[2];
    CHECK_MSG(moe_placement_balanced(path, 1, 4, 2, order, shares) == 0, "%s", error_message());
    CHECK(fabs(shares[0] + shares[1] - 1) < 1e-12 && fabs(fabs(shares[0] - shares[1]) - 0.4) < 1e-12);

    /* 32 experts over 2 ranks: C(32, 16) / 2 = 300 540 195 deals, so the greedy path. */
    int many[32];
    for (int e = 0; e < 32; e++) many[e] = e < 16 ? 100 + e : 5 + e; /* heavy ones first in id order */
    write_routing(path, 1, 32, many);
    CHECK_MSG(moe_placement_balanced(path, 1, 32, 2, order, NULL) == 0, "%s", error_message());
    int32_t ids[32];
    for (int e = 0; e < 32; e++) ids[e] = e;
    placed = load_of(order, 32, 2, many), id_order = load_of(ids, 32, 2, many);
    printf("  32 experts (greedy): id order %.3f, placed %.3f\n", id_order, placed);
    CHECK(is_order(order, 32) && placed < 1.01 && placed < id_order);

    /* Bad inputs: one message naming the file. */
    error_clear();
    CHECK(moe_placement_balanced(path, 1, 16, 2, order, NULL) != 0); /* ids up to 31 in a 16-expert model */
    CHECK_MSG(strstr(error_message(), "names expert") && strstr(error_message(), path), "got: %s", error_message());
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    error_clear();
    CHECK(moe_placement_balanced(path, 1, 4, 2, order, NULL) != 0);
    CHECK_MSG(strstr(error_message(), "expert placement") && strstr(error_message(), "none.safetensors"), "got: %s",
              error_message());
    CHECK(moe_placement_balanced(path, 1, 6, 4, order, NULL) != 0); /* 6 experts do not split over 4 ranks */

    test_shared_split();
    snprintf(path, sizeof path, "%s/routing.safetensors", dir);
    unlink(path);
    rmdir(dir);
    return test_finish("test_moe_placement");
}
