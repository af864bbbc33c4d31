/* A layout's groups on the hosts; see layout_hosts.h. */
#include "parallel/layout_hosts.h"

#include "core/error.h"

#include <stdio.h>

int layout_group_spans_hosts(const parallel_layout *layout, group_kind kind, const int *host_of)
{
    if (!host_of) return 0;
    for (int r = 0; r < layout->world_size; r++) {
        int ranks[LAYOUT_MAX_RANKS], n = layout_group_ranks(layout, kind, r, ranks);
        if (n == 0 || ranks[0] != r) continue; /* each group once, from its first rank */
        for (int i = 1; i < n; i++)
            if (host_of[ranks[i]] != host_of[r]) return 1;
    }
    return 0;
}

static int fast_groups_span_hosts(const parallel_layout *layout, const int *host_of)
{
    return layout_group_spans_hosts(layout, GROUP_TP, host_of) || layout_group_spans_hosts(layout, GROUP_ULYSSES, host_of);
}

int layout_degrees_cross_hosts(const parallel_degrees *degrees, int world_size, const int *host_of)
{
    parallel_layout layout;
    if (!host_of) return 0;
    if (layout_init(&layout, *degrees, world_size, 0)) {
        error_clear();
        return 0;
    }
    return fast_groups_span_hosts(&layout, host_of);
}

static int greatest_common_divisor(int a, int b) { return b ? greatest_common_divisor(b, a % b) : a; }

/* Hosts are numbered in the order of their first rank, so each holds
 * consecutive ranks exactly when the numbers never go down. */
static int hosts_hold_consecutive_ranks(const int *host_of, int world)
{
    for (int r = 1; r < world; r++)
        if (host_of[r] < host_of[r - 1]) return 0;
    return 1;
}

/* With consecutive hosts: the largest g dividing every host's rank count
 * (a group of g aligned consecutive ranks then never straddles two), the
 * number of hosts, and whether all hold the same count. */
static int common_host_block(const int *host_of, int world, int *hosts, int *even)
{
    int block = 0, run = 1, first_run = 0;
    *even = 1;
    for (int r = 1; r <= world; r++) {
        if (r < world && host_of[r] == host_of[r - 1]) {
            run++;
            continue;
        }
        if (!first_run) first_run = run;
        if (run != first_run) *even = 0;
        block = greatest_common_divisor(run, block);
        run = 1;
    }
    *hosts = host_of[world - 1] + 1;
    return block;
}

/* The degrees closest to the layout's whose tp x ulysses divides `block`:
 * the largest divisors tp' of tp and u' of ulysses with tp' * u' | block
 * (the larger tp' on a tie), the rest of both moved to ring. */
static parallel_degrees degrees_inside_hosts(parallel_degrees d, int block)
{
    int best_tp = 1, best_ulysses = 1;
    for (int tp = 1; tp <= d.tp; tp++)
        for (int u = 1; u <= d.ulysses; u++) {
            if (d.tp % tp || d.ulysses % u || block % (tp * u)) continue;
            if (tp * u > best_tp * best_ulysses || (tp * u == best_tp * best_ulysses && tp > best_tp))
                best_tp = tp, best_ulysses = u;
        }
    d.ring *= (d.tp / best_tp) * (d.ulysses / best_ulysses);
    d.tp = best_tp;
    d.ulysses = best_ulysses;
    return d;
}

/* "--tensor-parallel-size 2 --ring-degree 2": the flags that change. */
static void describe_change(const parallel_degrees *from, const parallel_degrees *to, char *buf, int size)
{
    int used = 0;
    buf[0] = '\0';
    if (to->tp != from->tp) used += snprintf(buf + used, (size_t)(size - used), "--tensor-parallel-size %d ", to->tp);
    if (to->ulysses != from->ulysses && used < size)
        used += snprintf(buf + used, (size_t)(size - used), "--ulysses-degree %d ", to->ulysses);
    if (used < size) snprintf(buf + used, (size_t)(size - used), "--ring-degree %d", to->ring);
}

int layout_host_warning(const parallel_layout *layout, const int *host_of, char *buf, int size)
{
    int tp = layout_group_spans_hosts(layout, GROUP_TP, host_of);
    int ulysses = layout_group_spans_hosts(layout, GROUP_ULYSSES, host_of);
    if (!tp && !ulysses) return 0;
    const parallel_degrees *d = &layout->degrees;
    const char *which = tp && ulysses ? "tensor-parallel and Ulysses groups" : tp ? "tensor-parallel groups" : "Ulysses groups";
    if (!hosts_hold_consecutive_ranks(host_of, layout->world_size)) {
        snprintf(buf, (size_t)size,
                 "the %s (tp %d x ulysses %d) span hosts because the launcher placed ranks of one host apart: their "
                 "exchanges in every block cross the network; start the ranks so that each host holds consecutive "
                 "ones (Open MPI: --map-by slot or core, not --map-by node; Slurm: --distribution=block); see "
                 "docs/multi-node.md",
                 which, d->tp, d->ulysses);
        return 1;
    }
    int hosts, even, block = common_host_block(host_of, layout->world_size, &hosts, &even);
    parallel_degrees inside = degrees_inside_hosts(*d, block);
    char change[128], shape[96];
    describe_change(d, &inside, change, (int)sizeof change);
    if (even)
        snprintf(shape, sizeof shape, "%d hosts of %d ranks", hosts, block);
    else
        snprintf(shape, sizeof shape, "%d hosts of uneven sizes, all multiples of %d ranks", hosts, block);
    snprintf(buf, (size_t)size,
             "the %s (tp %d x ulysses %d = %d consecutive ranks) span hosts (%s): their exchanges in every block "
             "cross the network; %s keeps them inside one host (tp x ulysses must divide a host's ranks; ring, cfg "
             "and dp may cross hosts); see docs/multi-node.md",
             which, d->tp, d->ulysses, d->tp * d->ulysses, shape, change);
    return 1;
}
