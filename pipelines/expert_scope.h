/* What a run needs when its expert-parallel group spans the CFG branches
 * and data-parallel replicas (--expert-parallel-scope world, DP2EP).
 *
 * Every rank of an EP group takes part in every MoE call of every layer:
 * the dispatch and combine all-to-alls are collective over the group. The
 * ranks of one replica already run the same calls (the CFG branches run the
 * same blocks at the same steps, and the step cache's skip decision is
 * reduced over both branches). Replicas are independent runs: they may make
 * a different number of images, and their step caches decide apart; a
 * world group over them would wait forever for the replica that ran out of
 * images or skipped a block. So world scope over dp > 1 needs as many images
 * on every replica, and a step cache only with a replayed schedule (the
 * same skips everywhere). */
#ifndef MOEDIT_PIPELINES_EXPERT_SCOPE_H
#define MOEDIT_PIPELINES_EXPERT_SCOPE_H

#include "moedit.h"

/* The ranks of the expert-parallel group (1 without EP), from the degrees. */
int expert_scope_group_size(const moedit_parallel *p);

/* "the 4 ranks of the expert-parallel group (tp x ulysses x ring)": the
 * group as the error lines name it. */
const char *expert_scope_group_text(const moedit_parallel *p, char *text, int size);

/* Checks the scope against the run's options and its `jobs` images (or
 * clips), before anything loads; one error naming the flags otherwise. */
int expert_scope_check(const moedit_generate_options *o, int jobs);

#endif
