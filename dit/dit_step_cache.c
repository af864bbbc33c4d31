/* Step caching of the middle blocks; see dit_step_cache.h for the rule.
 * Residuals are kept negated (-r, -D_k): gated_residual (x += g * y) with
 * g = -1 subtracts, and every residual is made by one such pass. */
#include "dit/dit_step_cache.h"

#include "core/error.h"
#include "dit/dit_blocks.h"
#include "dit/dit_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows of c->gates. */
enum { GATE_MINUS_ONE, GATE_INVERSE_DELTA, GATE_MINUS_INVERSE_DELTA, GATE_TAYLOR, GATE_ROWS = GATE_TAYLOR + DIT_CACHE_MAX_ORDER + 1 };

int dit_step_cache_init(dit_step_cache *c, const dit_cache_settings *settings, backend *be, int64_t dim, int steps,
                        const uint8_t *replay, process_group *cfg)
{
    memset(c, 0, sizeof *c);
    c->settings = *settings;
    if (c->settings.mode == DIT_CACHE_BLOCK) c->settings.taylor_order = 0;
    c->cfg = cfg;
    c->steps = steps;
    c->last_computed = c->previous_computed = -1;
    c->last_change = NAN;
    arena_init(&c->storage, be);
    c->computed = calloc((size_t)steps, 1);
    c->ran = calloc((size_t)steps, 1);
    c->gates = arena_tensor_2d(&c->storage, GATE_ROWS, dim);
    if (!c->computed || !c->ran || !c->gates.data) {
        dit_step_cache_free(c);
        return error_set("out of memory for the step cache");
    }
    be->ops->fill(be, tensor_row_slice(c->gates, GATE_MINUS_ONE, 1), -1.0f);
    if (replay) {
        memcpy(c->computed, replay, (size_t)steps);
        c->replay = 1;
    }
    return 0;
}

void dit_step_cache_free(dit_step_cache *c)
{
    arena_free(&c->storage);
    free(c->computed);
    free(c->ran);
    c->computed = c->ran = NULL;
}

int64_t dit_step_cache_bytes(const dit_step_cache *c) { return (int64_t)c->storage.peak; }

/* Gate row `row` filled with value. */
static tensor gate(dit_step_cache *c, int row, float value)
{
    tensor g = tensor_row_slice(c->gates, row, 1);
    if (row != GATE_MINUS_ONE) c->storage.be->ops->fill(c->storage.be, g, value);
    return g;
}

/* The slot of a sample: its tensors made at the first forward, then checked. */
static int slot_for(dit_step_cache *c, const dit_sequence *s, dit_cache_slot **out)
{
    dit_cache_slot *slot = &c->slots[s->branch ? 1 : 0];
    *out = slot;
    if (slot->made) {
        if (slot->rows != s->kept_tokens || slot->head_rows != s->valid_tokens)
            return error_set("step cache: the sequence of branch %d changed from %lld to %lld rows between steps",
                             s->branch, (long long)slot->rows, (long long)s->kept_tokens);
        return 0;
    }
    int64_t dim = tensor_cols(&c->gates), rows = s->kept_tokens > 0 ? s->kept_tokens : 1;
    int64_t head_rows = s->valid_tokens > 0 ? s->valid_tokens : 1;
    int buffers = c->settings.taylor_order + 1;
    slot->head = arena_tensor_2d(&c->storage, head_rows, dim);
    slot->incoming = arena_tensor_2d(&c->storage, rows, dim);
    slot->spare = c->settings.taylor_order > 0 ? arena_tensor_2d(&c->storage, rows, dim) : slot->incoming;
    int ok = slot->head.data && slot->incoming.data && slot->spare.data;
    for (int k = 0; k < buffers && ok; k++) {
        slot->factors[k] = arena_tensor_2d(&c->storage, rows, dim);
        ok = slot->factors[k].data != NULL;
    }
    if (!ok) return error_set("out of memory for the step cache's residuals (%lld rows of %lld)", (long long)rows, (long long)dim);
    slot->rows = s->kept_tokens;
    slot->head_rows = s->valid_tokens;
    slot->head = tensor_row_slice(slot->head, 0, s->valid_tokens);
    slot->incoming = tensor_row_slice(slot->incoming, 0, s->kept_tokens);
    slot->spare = tensor_row_slice(slot->spare, 0, s->kept_tokens);
    for (int k = 0; k < buffers; k++) slot->factors[k] = tensor_row_slice(slot->factors[k], 0, s->kept_tokens);
    slot->made = 1;
    return 0;
}

/* t = sum over all values of x^2, from the backend's row sums. */
static int add_squares(dit_run *run, tensor x, double *total)
{
    backend *be = run->model->be;
    int64_t rows = tensor_rows(&x);
    if (rows == 0) return 0;
    tensor sums = arena_tensor_typed(&run->scratch, DTYPE_F32, rows, 1);
    float *host = malloc((size_t)rows * sizeof(float));
    if (!sums.data || !host) {
        free(host);
        return error_set("out of memory measuring the step cache's change");
    }
    be->ops->row_sum_squares(be, sums, x);
    be->ops->download(be, host, sums);
    for (int64_t i = 0; i < rows; i++) *total += host[i];
    free(host);
    return 0;
}

/* Sums a host value over a group (every rank gets the same). */
static int reduce(process_group *group, float *values, int64_t count)
{
    if (!group || group->size < 2) return 0;
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, count);
    t.data = values;
    return group->ops->all_reduce_sum(group, t);
}

/* c_t from each sample's -r_t (heads) and the slots' -r_p: the sums of
 * squares over the real image rows of every sample and rank. */
static int measure(dit_step_cache *c, dit_run *run, dit_batch *batch, const tensor *heads, double *change)
{
    backend *be = run->model->be;
    double sums[2] = {0, 0};
    for (int i = 0; i < batch->count; i++) {
        dit_cache_slot *slot = &c->slots[batch->s[i].branch ? 1 : 0];
        if (heads[i].data == NULL || tensor_rows(&heads[i]) == 0) continue;
        arena_mark_t mark = arena_mark(&run->scratch);
        tensor diff = arena_tensor_2d(&run->scratch, tensor_rows(&heads[i]), tensor_cols(&heads[i]));
        if (!diff.data) return -1;
        be->ops->copy(be, diff, heads[i]);
        be->ops->gated_residual(be, diff, gate(c, GATE_MINUS_ONE, -1), slot->head);
        if (add_squares(run, diff, &sums[0]) || add_squares(run, slot->head, &sums[1])) return -1;
        arena_release(&run->scratch, mark);
    }
    float both[2] = {(float)sums[0], (float)sums[1]};
    if (reduce(run->par.sp, both, 2) || reduce(c->cfg, both, 2)) return -1;
    *change = both[1] > 0 ? sqrt((double)both[0] / both[1]) : INFINITY;
    return 0;
}

/* The rule of dit_step_cache.h: 1 compute, 0 cached. heads NULL under replay. */
static int decide(dit_step_cache *c, dit_run *run, dit_batch *batch, const tensor *heads, int *compute)
{
    const dit_cache_settings *s = &c->settings;
    c->last_change = NAN;
    if (c->replay) {
        *compute = c->computed[c->step];
        if (!*compute && c->filled == 0)
            return error_set("step cache schedule: step %d is cached but no step before it was computed", c->step);
        return 0;
    }
    *compute = c->forwards < s->warmup_steps || c->last_computed < 0 || c->consecutive_cached >= s->max_cached ||
               s->threshold <= 0;
    if (!*compute) {
        if (measure(c, run, batch, heads, &c->last_change)) return -1;
        *compute = !(c->last_change <= s->threshold);
    }
    /* The sums are equal on every rank; the flag is made so whatever the reduction order. */
    float flag[1] = {(float)*compute};
    if (reduce(run->par.tp, flag, 1) || reduce(run->par.sp, flag, 1) || reduce(c->cfg, flag, 1)) return -1;
    *compute = flag[0] > 0;
    return 0;
}

static void swap(tensor *a, tensor *b)
{
    tensor t = *a;
    *a = *b;
    *b = t;
}

/* slot->incoming holds -m_t of this computed step: the new -D_0, and the
 * finite differences against the previous factors (delta steps apart). */
static void update_factors(dit_step_cache *c, dit_cache_slot *slot, int delta, int *filled)
{
    backend *be = c->storage.be;
    int k = 0;
    for (; k < c->settings.taylor_order && k < c->filled && delta > 0; k++) {
        be->ops->fill(be, slot->spare, 0.0f);
        be->ops->gated_residual(be, slot->spare, gate(c, GATE_INVERSE_DELTA, 1.0f / delta), slot->incoming);
        be->ops->gated_residual(be, slot->spare, gate(c, GATE_MINUS_INVERSE_DELTA, -1.0f / delta), slot->factors[k]);
        swap(&slot->factors[k], &slot->incoming); /* D_k(t); incoming: the old buffer */
        swap(&slot->incoming, &slot->spare);      /* incoming: D_{k+1}(t) */
    }
    swap(&slot->factors[k], &slot->incoming);
    *filled = k + 1;
}

/* seq's kept rows += m~ = sum_k D_k o^k / k! with o steps since the last computed one. */
static void apply_residual(dit_step_cache *c, const dit_sequence *s, const dit_cache_slot *slot)
{
    backend *be = c->storage.be;
    tensor kept = tensor_row_slice(s->seq, 0, s->kept_tokens);
    double offset = c->step - c->last_computed, coefficient = 1;
    for (int k = 0; k < c->filled; k++) {
        if (k > 0) coefficient *= offset / k;
        be->ops->gated_residual(be, kept, gate(c, GATE_TAYLOR + k, (float)-coefficient), slot->factors[k]);
    }
}

int dit_step_cache_run_blocks(dit_step_cache *c, dit_run *run, const dit_sample *samples, dit_batch *batch,
                              dit_block_range_fn run_range)
{
    backend *be = run->model->be;
    int blocks = dit_num_blocks(&run->model->cfg), first = c->settings.first_blocks, end = blocks - c->settings.last_blocks;
    if (c->step < 0 || c->step >= c->steps)
        return error_set("step cache: step %d outside the schedule's %d steps", c->step, c->steps);
    dit_cache_slot *slots[DIT_MAX_BATCH];
    tensor heads[DIT_MAX_BATCH];
    int measuring = !c->replay;
    for (int i = 0; i < batch->count; i++) {
        if (slot_for(c, &batch->s[i], &slots[i])) return -1;
        heads[i] = tensor_none();
        if (!measuring || batch->s[i].valid_tokens == 0) continue;
        heads[i] = arena_tensor_2d(&run->scratch, batch->s[i].valid_tokens, tensor_cols(&batch->s[i].seq));
        if (!heads[i].data) return -1;
        be->ops->copy(be, heads[i], tensor_row_slice(batch->s[i].seq, 0, batch->s[i].valid_tokens)); /* h0 */
    }
    if (run_range(run, samples, batch, 0, first)) return -1;
    for (int i = 0; i < batch->count && measuring; i++) /* -r_t = h0 - hF */
        if (heads[i].data)
            be->ops->gated_residual(be, heads[i], gate(c, GATE_MINUS_ONE, -1),
                                    tensor_row_slice(batch->s[i].seq, 0, batch->s[i].valid_tokens));
    int compute;
    if (decide(c, run, batch, heads, &compute)) return -1;
    c->ran[c->step] = 1;
    c->computed[c->step] = (uint8_t)compute;
    c->forwards++;
    if (!compute) {
        c->consecutive_cached++;
        for (int i = 0; i < batch->count; i++) apply_residual(c, &batch->s[i], slots[i]);
        return run_range(run, samples, batch, end, blocks);
    }
    for (int i = 0; i < batch->count; i++) {
        if (heads[i].data) be->ops->copy(be, slots[i]->head, heads[i]);
        be->ops->copy(be, slots[i]->incoming, tensor_row_slice(batch->s[i].seq, 0, batch->s[i].kept_tokens)); /* hF */
    }
    if (run_range(run, samples, batch, first, end)) return -1;
    int delta = c->last_computed >= 0 ? c->step - c->last_computed : 0, filled = 1;
    for (int i = 0; i < batch->count; i++) { /* -m_t = hF - h_{N-B} */
        be->ops->gated_residual(be, slots[i]->incoming, gate(c, GATE_MINUS_ONE, -1),
                                tensor_row_slice(batch->s[i].seq, 0, batch->s[i].kept_tokens));
        update_factors(c, slots[i], delta, &filled);
    }
    c->filled = filled;
    c->previous_computed = c->last_computed;
    c->last_computed = c->step;
    c->consecutive_cached = 0;
    return run_range(run, samples, batch, end, blocks);
}
