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
 * loaded expert to the least loaded rank with room). When `shares` is not
 * NULL, shares[layer * ep + r] is the fraction of the layer's routed rows
 * (over every call in the file) that rank r's experts took. Fails naming the
 * file when it cannot be read, when it does not route exactly the layers
 * 0 .. layers - 1 (a capture of another model), or when its expert ids do not
 * fit `experts`. */
int moe_placement_balanced(const char *path, int layers, int experts, int ep_size, int32_t *order, double *shares);

/* The shared expert's hidden units per rank, bounds[0..ranks] (0 to
 * shared_hidden), when the ep group is the tp group: every rank then routes
 * all rows, computes its own experts on them and its slice of the shared
 * expert, and the tp all-reduce adds the ranks up, so each MoE call waits
 * for the rank with the most work. Rank r's routed work is shares[r] *
 * top_k * expert_hidden hidden units a token; its shared slice is sized so
 * that both add up alike on every rank (the rank whose experts the router
 * favours gets less of the shared expert), in steps of 64 units (8 when the
 * shared expert is narrow), each rank at least one step. */
void moe_shared_split(const double *shares, int ranks, int top_k, int64_t expert_hidden, int64_t shared_hidden,
                      int64_t *bounds);

#endif
