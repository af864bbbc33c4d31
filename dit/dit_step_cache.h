/* Step caching: skip the middle transformer blocks on denoising steps whose
 * early-block output barely changed, and reuse (block) or extrapolate
 * (taylor) what those blocks added.
 *
 * With F first and B last blocks always computed (cache-dit's DBCache
 * "FnBn"), every step runs blocks [0, F); let h0 be the sequence entering
 * block 0 and hF the one leaving block F-1 (the kept rows of dit_sequence.h:
 * image, context and initial text). Then
 *   head residual   r_t = hF - h0                  over the real image rows
 *   change          c_t = ||r_t - r_p||_2 / ||r_p||_2
 * where p is the last computed step, the sums of squares taken over every
 * real image row of every sample (both CFG branches) and added over the
 * sequence-parallel and CFG ranks, so every rank gets the same c_t. (diffusers'
 * FirstBlockCache and cache-dit compare mean |r_t - r_p| / mean |r_p|, an L1
 * ratio; this is the L2 one, of the same order.) The step is computed when
 *   it is among the first `warmup_steps` of the job, or no step was computed
 *   yet, or `max_cached` steps in a row were cached, or threshold <= 0, or
 *   c_t > threshold;
 * otherwise it is cached. A computed step runs blocks [F, N-B) and keeps the
 * middle residual m_t = h_{N-B} - hF of the kept rows; a cached step replaces
 * those blocks (their attention, feed-forward and MoE layers, routing
 * included) by hF + m~ and goes on with the last B blocks, where
 *   block:  m~ = m_p                                   (FBCache / DBCache)
 *   taylor: m~ = sum_{k<=K} D_k (t - p)^k / k!         (TaylorSeer)
 * with D_0 = m_p and D_{k+1} = (D_k(p) - D_k(p')) / (p - p') updated at every
 * computed step p from the one before, p' (finite differences in step index;
 * K = taylor_order, lower while fewer steps were computed).
 *
 * The residuals live on the device in the cache's own arena, each rank
 * holding its rows of the sequence (sharded like the activations). The
 * decisions are recorded per step (the schedule) and can be forced from a
 * recorded schedule instead (replay), so that two layouts skip the same steps
 * and stay comparable with the usual tolerances. */
#ifndef MOEDIT_DIT_STEP_CACHE_H
#define MOEDIT_DIT_STEP_CACHE_H

#include "backend/arena.h"
#include "parallel/process_group.h"

#include <stdint.h>

struct dit_run;
struct dit_batch;
struct dit_sample;

typedef enum { DIT_CACHE_NONE = 0, DIT_CACHE_BLOCK, DIT_CACHE_TAYLOR } dit_cache_mode;

#define DIT_CACHE_MAX_ORDER 4

typedef struct dit_cache_settings {
    dit_cache_mode mode;
    int first_blocks; /* F >= 1 */
    int last_blocks;  /* B >= 0; F + B < number of blocks */
    double threshold; /* on c_t; <= 0: every step computed */
    int warmup_steps; /* the job's first forwards, always computed */
    int max_cached;   /* most consecutive cached steps, >= 1 */
    int taylor_order; /* taylor: K, 1..DIT_CACHE_MAX_ORDER (block: 0) */
} dit_cache_settings;

/* Per CFG branch: the residuals of its sample on this rank. */
typedef struct dit_cache_slot {
    int made;
    int64_t rows;       /* kept rows on this rank */
    int64_t head_rows;  /* real image rows on this rank */
    tensor head;        /* -r_p [head_rows, C] */
    tensor factors[DIT_CACHE_MAX_ORDER + 1]; /* -D_k [rows, C] */
    tensor incoming, spare; /* [rows, C]: hF, then -m_t; the finite differences' scratch */
} dit_cache_slot;

typedef struct dit_step_cache {
    dit_cache_settings settings;
    process_group *cfg;    /* the CFG-parallel group (size 2), NULL when both branches run here */
    arena storage;         /* the slots' tensors and the gates */
    tensor gates;          /* [DIT_CACHE_MAX_ORDER + 2, C]: coefficient rows for gated_residual */
    dit_cache_slot slots[2];
    int step;              /* set by the pipeline before each forward */
    int steps;             /* of the schedule */
    uint8_t *computed;     /* [steps]: 1 computed, 0 cached, for the steps run; with replay: forced */
    uint8_t *ran;          /* [steps]: 1 for the steps run */
    int replay;
    int filled;            /* factors holding values */
    int last_computed;     /* step p, or -1 */
    int previous_computed; /* step p', or -1 */
    int forwards, consecutive_cached;
    double last_change;    /* c_t of the last measured step (NAN: none) */
} dit_step_cache;

/* A cache for a job of `steps` scheduler steps on backend be (settings
 * checked by the caller, step_cache.h). replay: computed[steps] to force
 * (copied), or NULL to decide. */
int dit_step_cache_init(dit_step_cache *c, const dit_cache_settings *settings, backend *be, int64_t dim, int steps,
                        const uint8_t *replay, process_group *cfg);
void dit_step_cache_free(dit_step_cache *c);

/* Bytes of device memory the cache holds on this rank. */
int64_t dit_step_cache_bytes(const dit_step_cache *c);

/* The blocks of one forward with the cache (dit_forward.c calls it in
 * place of its blocks loop): runs blocks [first, end) through `run_range`,
 * which is the uncached loop over a range. */
typedef int (*dit_block_range_fn)(struct dit_run *run, const struct dit_sample *samples, struct dit_batch *batch,
                                  int first, int end);
int dit_step_cache_run_blocks(dit_step_cache *c, struct dit_run *run, const struct dit_sample *samples,
                              struct dit_batch *batch, dit_block_range_fn run_range);

#endif
