/* The rank generator builds the groups DESIGN.md describes: hand-written
 * rank lists for representative layouts, and for every combination of
 * degrees with product <= 8 (EP off, on over a branch, on over the world)
 * the groups partition the world, have the expected sizes, agree among
 * their members, and turning EP on in either scope changes no other group.
 * Bad degree products and scopes are errors that say so. */
#include "core/error.h"
#include "parallel/layout.h"
#include "test_util.h"

#include <string.h>

static void expect_group(const parallel_layout *layout, group_kind kind, int rank, const int *want, int count)
{
    int got[LAYOUT_MAX_RANKS];
    int n = layout_group_ranks(layout, kind, rank, got);
    int same = n == count;
    for (int i = 0; i < n && same; i++) same = got[i] == want[i];
    CHECK_MSG(same, "%s group of rank %d: got %d ranks starting %d", layout_group_name(kind), rank, n, n ? got[0] : -1);
}

/* ep: 0 off, 1 over a branch, 2 over the world. */
static parallel_layout make(int tp, int ulysses, int ring, int cfg, int dp, int ep, int vae, int world, int rank)
{
    parallel_layout layout;
    parallel_degrees d = {tp, ulysses, ring, cfg, dp, ep > 0, vae, ep == 2 ? EP_SCOPE_WORLD : EP_SCOPE_BRANCH};
    CHECK_MSG(layout_init(&layout, d, world, rank) == 0, "%s", error_message());
    return layout;
}

static void hand_written_layouts(void)
{
    /* 8 ranks, tp2 x ulysses2 x cfg2 (+EP): rank 5 = tp 1, ulysses 0, cfg 1 */
    parallel_layout a = make(2, 2, 1, 2, 1, 1, 1, 8, 5);
    CHECK(a.tp_index == 1 && a.ulysses_index == 0 && a.cfg_index == 1);
    expect_group(&a, GROUP_TP, 5, (int[]){4, 5}, 2);
    expect_group(&a, GROUP_ULYSSES, 5, (int[]){5, 7}, 2);
    expect_group(&a, GROUP_SP, 5, (int[]){5, 7}, 2);
    expect_group(&a, GROUP_CFG, 5, (int[]){1, 5}, 2);
    expect_group(&a, GROUP_EP, 5, (int[]){4, 5, 6, 7}, 4);
    expect_group(&a, GROUP_DP, 5, (int[]){5}, 1);
    /* 8 ranks, tp2 x ulysses2 x ring2: rank 6 = tp 0, ulysses 1, ring 1 */
    parallel_layout b = make(2, 2, 2, 1, 1, 0, 1, 8, 6);
    expect_group(&b, GROUP_RING, 6, (int[]){2, 6}, 2);
    expect_group(&b, GROUP_ULYSSES, 6, (int[]){4, 6}, 2);
    expect_group(&b, GROUP_SP, 6, (int[]){0, 2, 4, 6}, 4);
    expect_group(&b, GROUP_TP, 6, (int[]){6, 7}, 2);
    expect_group(&b, GROUP_EP, 6, NULL, 0);
    /* 4 ranks, cfg2 x dp2: rank 3 = cfg 1, dp 1 */
    parallel_layout c = make(1, 1, 1, 2, 2, 0, 1, 4, 3);
    expect_group(&c, GROUP_CFG, 3, (int[]){2, 3}, 2);
    expect_group(&c, GROUP_DP, 3, (int[]){1, 3}, 2);
    /* 4 ranks, ulysses4 + EP; VAE over 2 of them */
    parallel_layout d = make(1, 4, 1, 1, 1, 1, 2, 4, 2);
    expect_group(&d, GROUP_EP, 2, (int[]){0, 1, 2, 3}, 4);
    expect_group(&d, GROUP_VAE, 2, (int[]){2, 3}, 2);
    /* 8 ranks, ring2 x cfg2 x dp2: rank 7 = ring 1, cfg 1, dp 1 */
    parallel_layout e = make(1, 1, 2, 2, 2, 1, 2, 8, 7);
    expect_group(&e, GROUP_RING, 7, (int[]){6, 7}, 2);
    expect_group(&e, GROUP_CFG, 7, (int[]){5, 7}, 2);
    expect_group(&e, GROUP_DP, 7, (int[]){3, 7}, 2);
    expect_group(&e, GROUP_EP, 7, (int[]){6, 7}, 2);
    expect_group(&e, GROUP_VAE, 7, (int[]){6, 7}, 2);
    /* The same, EP over the world (DP2EP): one group of all 8, rank 7 its 8th. */
    parallel_layout f = make(1, 1, 2, 2, 2, 2, 2, 8, 7);
    expect_group(&f, GROUP_EP, 7, (int[]){0, 1, 2, 3, 4, 5, 6, 7}, 8);
    expect_group(&f, GROUP_RING, 7, (int[]){6, 7}, 2);
    expect_group(&f, GROUP_DP, 7, (int[]){3, 7}, 2);
    /* 2 ranks, cfg2 and dp2 over the world: both branches / replicas share the experts. */
    parallel_layout g = make(1, 1, 1, 2, 1, 2, 1, 2, 1);
    expect_group(&g, GROUP_EP, 1, (int[]){0, 1}, 2);
    parallel_layout h = make(1, 1, 1, 1, 2, 2, 1, 2, 0);
    expect_group(&h, GROUP_EP, 0, (int[]){0, 1}, 2);
    char text[128];
    CHECK(strcmp(layout_describe(&f.degrees, text, sizeof text), "ring2 x cfg2 x dp2 x vae2 +EP(world)") == 0);
    CHECK(strcmp(layout_describe(&e.degrees, text, sizeof text), "ring2 x cfg2 x dp2 x vae2 +EP") == 0);
}

/* Every rank is in exactly one group of each kind, groups have `size` ranks,
 * and every member computes the same list. */
static void check_partition(const parallel_layout *layout, group_kind kind, int size)
{
    int world = layout->world_size, owner[LAYOUT_MAX_RANKS];
    memset(owner, -1, sizeof owner);
    for (int r = 0; r < world; r++) {
        int ranks[LAYOUT_MAX_RANKS], n = layout_group_ranks(layout, kind, r, ranks);
        CHECK_MSG(n == size, "%s group of rank %d has %d ranks, expected %d", layout_group_name(kind), r, n, size);
        int found = 0;
        for (int i = 0; i < n; i++) {
            int other[LAYOUT_MAX_RANKS], m = layout_group_ranks(layout, kind, ranks[i], other);
            CHECK(m == n && memcmp(other, ranks, (size_t)n * sizeof(int)) == 0);
            if (ranks[i] == r) found = 1;
            if (i) CHECK(ranks[i] > ranks[i - 1]);
        }
        CHECK(found);
    }
}

static void every_combination_up_to_8(void)
{
    int combinations = 0;
    for (int tp = 1; tp <= 8; tp++)
        for (int u = 1; tp * u <= 8; u++)
            for (int ring = 1; tp * u * ring <= 8; ring++)
                for (int cfg = 1; cfg <= 2 && tp * u * ring * cfg <= 8; cfg++)
                    for (int dp = 1; tp * u * ring * cfg * dp <= 8; dp++) {
                        int world = tp * u * ring * cfg * dp;
                        parallel_layout off = make(tp, u, ring, cfg, dp, 0, 1, world, 0);
                        parallel_layout on = make(tp, u, ring, cfg, dp, 1, 1, world, 0);
                        parallel_layout wide = make(tp, u, ring, cfg, dp, 2, 1, world, 0);
                        int sizes[GROUP_EP] = {tp, u, ring, u * ring, cfg, dp};
                        for (int k = 0; k < GROUP_EP; k++) {
                            check_partition(&off, (group_kind)k, sizes[k]);
                            for (int r = 0; r < world; r++) { /* EP, in either scope, changes no other group */
                                int a[LAYOUT_MAX_RANKS], b[LAYOUT_MAX_RANKS], c[LAYOUT_MAX_RANKS];
                                int n = layout_group_ranks(&off, (group_kind)k, r, a);
                                CHECK(n == layout_group_ranks(&on, (group_kind)k, r, b) &&
                                      memcmp(a, b, (size_t)n * sizeof(int)) == 0);
                                CHECK(n == layout_group_ranks(&wide, (group_kind)k, r, c) &&
                                      memcmp(a, c, (size_t)n * sizeof(int)) == 0);
                            }
                        }
                        check_partition(&on, GROUP_EP, tp * u * ring);
                        check_partition(&wide, GROUP_EP, world);
                        /* A branch's EP ranks are consecutive: a rank's place in either group
                         * is its rank modulo the group's size (moedit bench shares weights by it). */
                        for (int r = 0; r < world; r++) {
                            int ranks[LAYOUT_MAX_RANKS], n = layout_group_ranks(&on, GROUP_EP, r, ranks);
                            CHECK(ranks[r % n] == r);
                            CHECK(layout_group_ranks(&wide, GROUP_EP, r, ranks) == world && ranks[r] == r);
                        }
                        int none[LAYOUT_MAX_RANKS];
                        CHECK(layout_group_ranks(&off, GROUP_EP, 0, none) == 0);
                        combinations++;
                    }
    CHECK(combinations > 50);
    printf("checked %d layouts\n", combinations);
}

static void bad_degrees_are_errors(void)
{
    parallel_layout layout;
    parallel_degrees d = {2, 2, 1, 1, 1, 0, 1, 0};
    CHECK(layout_init(&layout, d, 8, 0) != 0);
    CHECK_MSG(strstr(error_message(), "must equal the number of ranks"), "%s", error_message());
    parallel_degrees cfg3 = {1, 1, 1, 3, 1, 0, 1, 0};
    CHECK(layout_init(&layout, cfg3, 3, 0) != 0);
    parallel_degrees vae = {1, 1, 1, 1, 3, 0, 2, 0};
    CHECK(layout_init(&layout, vae, 3, 0) != 0);
    CHECK_MSG(strstr(error_message(), "--vae-patch-parallel-size"), "%s", error_message());
    parallel_degrees scope = {1, 1, 1, 2, 1, 1, 1, 7};
    CHECK(layout_init(&layout, scope, 2, 0) != 0);
    CHECK_MSG(strstr(error_message(), "--expert-parallel-scope"), "%s", error_message());
}

int main(void)
{
    hand_written_layouts();
    every_combination_up_to_8();
    bad_degrees_are_errors();
    return test_finish("test_layout");
}
