/* Expert placement for expert parallelism, chosen from observed routing.
 *
 * Under EP each MoE call waits for the rank whose experts got the most rows.
 * moedit's default placement deals experts to ranks in id order; a routing
 * file (what `--routing-capture` or a bench run records: the experts every
 * token chose, per step, branch and layer) shows which experts the router
 * loads alike, so each layer's experts can be dealt so that the calls'
 * busiest-rank rows add up least. */
#ifndef MOEDIT_MOE_PLACEMENT_H
#define MOEDIT_MOE_PLACEMENT_H

#include <stdint.h>

/* order[layer * experts + i]: for every layer < layers, its experts in the
 * order EP ranks hold them (rank r: entries [r E / ep, (r + 1) E / ep)),
 * chosen from the routing file at `path`: exhaustively over the ways to deal
 * the experts when there are at most 100000 of them, else greedily (most
 * loaded expert to the least loaded rank with room). Layers the file does
 * not cover keep id order. Fails naming the file when it cannot be read or
 * its expert ids do not fit `experts`. */
int moe_placement_balanced(const char *path, int layers, int experts, int ep_size, int32_t *order);

#endif
