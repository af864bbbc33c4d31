/* The parallel layout: which rank does what, and the rank lists of every
 * process group, all from one rank generator.
 *
 * world = tp * ulysses * ring * cfg * dp, ranks ordered tp-sp-cfg-dp with tp
 * fastest and ulysses inside ring within sp:
 *   rank = tp_i + tp * (ulysses_i + ulysses * (ring_i + ring * (cfg_i + cfg * dp_i)))
 * so TP partners are neighbours (one NVLink island), then the sequence
 * parallel ranks, then the two CFG branches, then data-parallel replicas.
 * A group is the set of ranks that differ only in the coordinates it spans:
 *   tp: tp_i; ulysses: ulysses_i; ring: ring_i; sp: ulysses_i and ring_i;
 *   cfg: cfg_i; dp: dp_i; ep, branch scope (the tp x sp ranks of one CFG
 *   branch of one replica): tp_i, ulysses_i, ring_i; ep, world scope (every
 *   rank: DP2EP, the experts spread over the branches and replicas too):
 *   all five; vae: the ranks of one dp replica, split into consecutive runs
 *   of vae_patch ranks.
 * Turning EP on adds the ep group and changes no other. */
#ifndef MOEDIT_PARALLEL_LAYOUT_H
#define MOEDIT_PARALLEL_LAYOUT_H

#include <stdint.h>

#define LAYOUT_MAX_RANKS 1024

typedef enum {
    GROUP_TP = 0,
    GROUP_ULYSSES,
    GROUP_RING,
    GROUP_SP,
    GROUP_CFG,
    GROUP_DP,
    GROUP_EP,
    GROUP_VAE,
    GROUP_KINDS
} group_kind;

typedef struct parallel_degrees {
    int tp, ulysses, ring, cfg, dp;
    int expert_parallel; /* 0/1 */
    int vae_patch;       /* ranks per VAE decode; 1 = serial */
    int expert_scope;    /* with expert_parallel: EP_SCOPE_BRANCH (0) or EP_SCOPE_WORLD */
} parallel_degrees;

/* Which ranks share the experts (--expert-parallel-scope): the tp x sp ranks
 * of one CFG branch of one replica, or every rank of the world. */
enum { EP_SCOPE_BRANCH = 0, EP_SCOPE_WORLD = 1 };

typedef struct parallel_layout {
    parallel_degrees degrees;
    int world_size, rank;
    int tp_index, ulysses_index, ring_index, cfg_index, dp_index;
} parallel_layout;

/* Degrees default to 1 when 0. Fails (naming the flags) when a degree is
 * negative or their product is not world_size, or vae_patch does not divide
 * the ranks of a dp replica, or expert_scope is neither scope. */
int layout_init(parallel_layout *layout, parallel_degrees degrees, int world_size, int rank);

/* The ranks of `kind`'s group that contains `rank`, ascending; returns the
 * count (0 for GROUP_EP when expert parallelism is off). The position of
 * `rank` in the list is its rank within the group. */
int layout_group_ranks(const parallel_layout *layout, group_kind kind, int rank, int *ranks);

const char *layout_group_name(group_kind kind);

/* Rows [first, first + count) of part `part` when n rows are cut into
 * `parts` contiguous parts as evenly as possible (sizes differ by at most 1). */
void layout_split_rows(int64_t n, int parts, int part, int64_t *first, int64_t *count);

/* "tp2 x ulysses2 x cfg2 (+EP)" style description ("+EP(world)" for the
 * world scope); returns buf. */
const char *layout_describe(const parallel_degrees *degrees, char *buf, int size);

#endif
