/* The rank generator; see layout.h. */
#include "parallel/layout.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

enum { AXIS_TP, AXIS_ULYSSES, AXIS_RING, AXIS_CFG, AXIS_DP, AXES };

static void sizes_of(const parallel_degrees *d, int size[AXES])
{
    size[AXIS_TP] = d->tp;
    size[AXIS_ULYSSES] = d->ulysses;
    size[AXIS_RING] = d->ring;
    size[AXIS_CFG] = d->cfg;
    size[AXIS_DP] = d->dp;
}

static void coordinates(const parallel_degrees *d, int rank, int coord[AXES])
{
    int size[AXES];
    sizes_of(d, size);
    for (int a = 0; a < AXES; a++) {
        coord[a] = rank % size[a];
        rank /= size[a];
    }
}

int layout_init(parallel_layout *layout, parallel_degrees d, int world_size, int rank)
{
    memset(layout, 0, sizeof *layout);
    int *degree[6] = {&d.tp, &d.ulysses, &d.ring, &d.cfg, &d.dp, &d.vae_patch};
    const char *flag[6] = {"--tensor-parallel-size", "--ulysses-degree", "--ring-degree", "--cfg-parallel-size",
                           "--data-parallel-size", "--vae-patch-parallel-size"};
    for (int i = 0; i < 6; i++) {
        if (*degree[i] == 0) *degree[i] = 1;
        if (*degree[i] < 0 || *degree[i] > LAYOUT_MAX_RANKS)
            return error_set("%s %d: must be between 1 and %d", flag[i], *degree[i], LAYOUT_MAX_RANKS);
    }
    if (d.expert_scope != EP_SCOPE_BRANCH && d.expert_scope != EP_SCOPE_WORLD)
        return error_set("--expert-parallel-scope: %d is neither branch (0) nor world (1)", d.expert_scope);
    if (d.cfg > 2) return error_set("--cfg-parallel-size %d: only 1 or 2 (cond and uncond branches)", d.cfg);
    long product = (long)d.tp * d.ulysses * d.ring * d.cfg * d.dp;
    if (product != world_size)
        return error_set("parallel degrees tp %d x ulysses %d x ring %d x cfg %d x dp %d = %ld, but the world has %d "
                         "rank(s); their product must equal the number of ranks",
                         d.tp, d.ulysses, d.ring, d.cfg, d.dp, product, world_size);
    int replica = world_size / d.dp;
    if (replica % d.vae_patch != 0)
        return error_set("--vae-patch-parallel-size %d must divide the %d rank(s) of a data-parallel replica",
                         d.vae_patch, replica);
    if (rank < 0 || rank >= world_size) return error_set("rank %d outside a world of %d", rank, world_size);
    layout->degrees = d;
    layout->world_size = world_size;
    layout->rank = rank;
    int coord[AXES];
    coordinates(&d, rank, coord);
    layout->tp_index = coord[AXIS_TP];
    layout->ulysses_index = coord[AXIS_ULYSSES];
    layout->ring_index = coord[AXIS_RING];
    layout->cfg_index = coord[AXIS_CFG];
    layout->dp_index = coord[AXIS_DP];
    return 0;
}

/* Enumerates the ranks that agree with `rank` on every axis not in `spans`. */
static int ranks_spanning(const parallel_degrees *d, int rank, const int spans[AXES], int *ranks)
{
    int size[AXES], base[AXES], coord[AXES], count = 0;
    sizes_of(d, size);
    coordinates(d, rank, base);
    int world = d->tp * d->ulysses * d->ring * d->cfg * d->dp;
    for (int r = 0; r < world; r++) {
        coordinates(d, r, coord);
        int same = 1;
        for (int a = 0; a < AXES && same; a++)
            if (!spans[a] && coord[a] != base[a]) same = 0;
        if (same) ranks[count++] = r;
    }
    return count;
}

int layout_group_ranks(const parallel_layout *layout, group_kind kind, int rank, int *ranks)
{
    const parallel_degrees *d = &layout->degrees;
    int spans[AXES] = {0};
    switch (kind) {
    case GROUP_TP: spans[AXIS_TP] = 1; break;
    case GROUP_ULYSSES: spans[AXIS_ULYSSES] = 1; break;
    case GROUP_RING: spans[AXIS_RING] = 1; break;
    case GROUP_SP: spans[AXIS_ULYSSES] = spans[AXIS_RING] = 1; break;
    case GROUP_CFG: spans[AXIS_CFG] = 1; break;
    case GROUP_DP: spans[AXIS_DP] = 1; break;
    case GROUP_EP:
        if (!d->expert_parallel) return 0;
        spans[AXIS_TP] = spans[AXIS_ULYSSES] = spans[AXIS_RING] = 1;
        spans[AXIS_CFG] = spans[AXIS_DP] = d->expert_scope == EP_SCOPE_WORLD;
        break;
    case GROUP_VAE: {
        int first = rank - rank % d->vae_patch; /* replicas are contiguous and vae_patch divides them */
        for (int i = 0; i < d->vae_patch; i++) ranks[i] = first + i;
        return d->vae_patch;
    }
    default: return 0;
    }
    return ranks_spanning(d, rank, spans, ranks);
}

void layout_split_rows(int64_t n, int parts, int part, int64_t *first, int64_t *count)
{
    *first = n * part / parts;
    *count = n * (part + 1) / parts - *first;
}

const char *layout_group_name(group_kind kind)
{
    static const char *names[GROUP_KINDS] = {"tp", "ulysses", "ring", "sp", "cfg", "dp", "ep", "vae"};
    return kind >= 0 && kind < GROUP_KINDS ? names[kind] : "?";
}

const char *layout_describe(const parallel_degrees *d, char *buf, int size)
{
    int used = 0;
    buf[0] = '\0';
    const char *names[6] = {"tp", "ulysses", "ring", "cfg", "dp", "vae"};
    int values[6] = {d->tp, d->ulysses, d->ring, d->cfg, d->dp, d->vae_patch};
    for (int i = 0; i < 6 && used < size; i++)
        if (values[i] > 1) used += snprintf(buf + used, (size_t)(size - used), "%s%s%d", used ? " x " : "", names[i], values[i]);
    if (used == 0 && size > 0) used = snprintf(buf, (size_t)size, "serial");
    if (d->expert_parallel && used < size)
        snprintf(buf + used, (size_t)(size - used), d->expert_scope == EP_SCOPE_WORLD ? " +EP(world)" : " +EP");
    return buf;
}
