/* Runs a world-scope expert-parallel group can take; see expert_scope.h. */
#include "pipelines/expert_scope.h"

#include "core/error.h"
#include "pipelines/step_cache.h"

#include <stdio.h>

static int degree(int d) { return d > 1 ? d : 1; }

int expert_scope_group_size(const moedit_parallel *p)
{
    if (!p->expert_parallel) return 1;
    int branch = degree(p->tensor_parallel) * degree(p->ulysses) * degree(p->ring);
    if (p->expert_parallel_scope != MOEDIT_EXPERT_SCOPE_WORLD) return branch;
    return branch * degree(p->cfg_parallel) * degree(p->data_parallel);
}

const char *expert_scope_group_text(const moedit_parallel *p, char *text, int size)
{
    int world = p->expert_parallel_scope == MOEDIT_EXPERT_SCOPE_WORLD;
    snprintf(text, (size_t)size, "the %d rank(s) of the expert-parallel group (%s)", expert_scope_group_size(p),
             world ? "--expert-parallel-scope world: every rank" : "tp x ulysses x ring of one branch");
    return text;
}

int expert_scope_check(const moedit_generate_options *o, int jobs)
{
    const moedit_parallel *p = &o->parallel;
    if (p->expert_parallel_scope != MOEDIT_EXPERT_SCOPE_BRANCH && p->expert_parallel_scope != MOEDIT_EXPERT_SCOPE_WORLD)
        return error_set("expert_parallel_scope %d: neither branch (%d) nor world (%d)", p->expert_parallel_scope,
                         MOEDIT_EXPERT_SCOPE_BRANCH, MOEDIT_EXPERT_SCOPE_WORLD);
    if (p->expert_parallel_scope == MOEDIT_EXPERT_SCOPE_BRANCH) return 0;
    if (!p->expert_parallel) return error_set("--expert-parallel-scope world needs --enable-expert-parallel");
    int replicas = p->data_parallel > 1 ? p->data_parallel : 1;
    if (replicas == 1) return 0;
    if (jobs % replicas)
        return error_set("--expert-parallel-scope world over --data-parallel-size %d: %d image(s) do not divide over "
                         "the replicas, and every rank of the expert group must run every MoE layer alike; make the "
                         "image count a multiple of %d or use --expert-parallel-scope branch",
                         replicas, jobs, replicas);
    if (step_cache_enabled(&o->cache) && !o->cache.schedule_replay)
        return error_set("--cache %s with --expert-parallel-scope world over --data-parallel-size %d: each replica "
                         "would skip blocks on steps of its own, and every rank of the expert group must run every "
                         "MoE layer alike; replay one schedule (--cache-schedule-replay FILE) or use "
                         "--expert-parallel-scope branch",
                         o->cache.mode, replicas);
    return 0;
}
