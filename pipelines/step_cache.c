/* The step cache's options, schedule file and figures; see step_cache.h. */
#include "pipelines/step_cache.h"

#include "core/error.h"
#include "dit/dit_flops.h"
#include "io/output_check.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STEPS 10000

static dit_cache_mode mode_of(const char *mode)
{
    if (!mode || !strcmp(mode, "none")) return DIT_CACHE_NONE;
    return !strcmp(mode, "block") ? DIT_CACHE_BLOCK : !strcmp(mode, "taylor") ? DIT_CACHE_TAYLOR : (dit_cache_mode)-1;
}

int step_cache_enabled(const moedit_cache_options *o)
{
    dit_cache_mode m = mode_of(o->mode);
    return m == DIT_CACHE_BLOCK || m == DIT_CACHE_TAYLOR;
}

int step_cache_check(const moedit_cache_options *o, int writer)
{
    dit_cache_mode m = mode_of(o->mode);
    if ((int)m < 0) return error_set("--cache %s: none, block or taylor", o->mode);
    if (m == DIT_CACHE_NONE) {
        if (o->schedule_capture || o->schedule_replay)
            return error_set("--cache-schedule-%s needs --cache block or taylor",
                             o->schedule_capture ? "capture" : "replay");
        return 0;
    }
    if (o->first_blocks < 1 || o->first_blocks > 1000)
        return error_set("--cache-first-blocks %lld: must be 1 or more (the blocks whose residual decides)",
                         (long long)o->first_blocks);
    if (o->last_blocks < 0 || o->last_blocks > 1000)
        return error_set("--cache-last-blocks %lld: must be 0 or more", (long long)o->last_blocks);
    if (!isfinite(o->threshold) || o->threshold < 0 || o->threshold > 100)
        return error_set("--cache-threshold %g: must be 0..100 (0: every step computed)", o->threshold);
    if (o->warmup_steps < 0 || o->warmup_steps > MAX_STEPS)
        return error_set("--cache-warmup %lld: must be 0..%d", (long long)o->warmup_steps, MAX_STEPS);
    if (o->max_consecutive < 1 || o->max_consecutive > MAX_STEPS)
        return error_set("--cache-max-consecutive %lld: must be 1..%d", (long long)o->max_consecutive, MAX_STEPS);
    if (m == DIT_CACHE_TAYLOR && (o->taylor_order < 1 || o->taylor_order > DIT_CACHE_MAX_ORDER))
        return error_set("--cache-taylor-order %lld: must be 1..%d", (long long)o->taylor_order, DIT_CACHE_MAX_ORDER);
    if (o->schedule_capture && o->schedule_replay)
        return error_set("--cache-schedule-capture and --cache-schedule-replay exclude each other");
    if (o->schedule_replay && access(o->schedule_replay, R_OK))
        return error_set("--cache-schedule-replay %s: no such file (make one with --cache-schedule-capture)",
                         o->schedule_replay);
    /* Written after the first image: a bad path must not surface only then. */
    if (o->schedule_capture && writer && output_check_writable(o->schedule_capture, "--cache-schedule-capture"))
        return -1;
    return 0;
}

int step_cache_settings(const moedit_cache_options *o, const dit_config *cfg, dit_cache_settings *settings)
{
    int blocks = dit_num_blocks(cfg);
    if (o->first_blocks + o->last_blocks >= blocks)
        return error_set("--cache-first-blocks %lld + --cache-last-blocks %lld: the transformer has %d blocks, so "
                         "together they must be at most %d (some must be left to skip)",
                         (long long)o->first_blocks, (long long)o->last_blocks, blocks, blocks - 1);
    dit_cache_settings s = {mode_of(o->mode), (int)o->first_blocks, (int)o->last_blocks, o->threshold,
                            (int)o->warmup_steps, (int)o->max_consecutive, (int)o->taylor_order};
    *settings = s;
    return 0;
}

int step_cache_schedule_load(const char *path, int steps, uint8_t **computed)
{
    *computed = NULL;
    safetensors *st = NULL;
    if (safetensors_open(&st, path)) return -1;
    const safetensors_entry *e = safetensors_require(st, "computed");
    int32_t *values = NULL;
    int status = -1;
    if (!e) goto done;
    if (e->ndim != 1 || e->shape[0] != steps) {
        status = error_set("--cache-schedule-replay %s: the schedule has %lld steps, this run %d", path,
                           e->ndim == 1 ? (long long)e->shape[0] : -1LL, steps);
        goto done;
    }
    int64_t shape[1] = {steps};
    values = malloc((size_t)steps * sizeof *values);
    *computed = malloc((size_t)steps);
    if (!values || !*computed) {
        status = error_set("out of memory reading %s", path);
        goto done;
    }
    if (safetensors_read_i32(st, "computed", 1, shape, values)) goto done;
    status = 0;
    for (int i = 0; i < steps && status == 0; i++) {
        if (values[i] < -1 || values[i] > 1)
            status = error_set("--cache-schedule-replay %s: step %d holds %d (1 computed, 0 cached, -1 not run)", path,
                               i, values[i]);
        (*computed)[i] = values[i] != 0; /* a step not run then is computed if run now */
    }
done:
    if (status) {
        free(*computed);
        *computed = NULL;
    }
    free(values);
    safetensors_close(st);
    return status;
}

int step_cache_schedule_save(const char *path, const dit_step_cache *cache)
{
    int32_t *values = malloc((size_t)cache->steps * sizeof *values);
    if (!values) return error_set("out of memory writing %s", path);
    for (int i = 0; i < cache->steps; i++) values[i] = cache->ran[i] ? cache->computed[i] : -1;
    const char *name = "computed";
    int64_t shape[1] = {cache->steps};
    tensor t = tensor_make(DTYPE_I32, DEVICE_CPU, 1, shape);
    t.data = values;
    int status = safetensors_write(path, &name, &t, 1);
    free(values);
    return status;
}

int step_cache_account(moedit_generate_result *r, const dit_step_cache *cache, const dit_config *cfg,
                       int64_t image_tokens, int64_t t5_tokens, int64_t llama_tokens)
{
    int64_t computed = 0, cached = 0;
    for (int i = 0; i < cache->steps; i++) {
        computed += cache->ran[i] && cache->computed[i];
        cached += cache->ran[i] && !cache->computed[i];
    }
    if (!r->cache_computed) {
        r->cache_computed = malloc((size_t)cache->steps);
        if (!r->cache_computed) return error_set("out of memory listing the cached steps");
        for (int i = 0; i < cache->steps; i++) r->cache_computed[i] = (signed char)(cache->ran[i] ? cache->computed[i] : -1);
        r->cache_steps = cache->steps;
    }
    int blocks = dit_num_blocks(cfg);
    double forward = dit_forward_flops(cfg, image_tokens, t5_tokens, llama_tokens);
    double middle = dit_blocks_flops(cfg, image_tokens, t5_tokens, llama_tokens, cache->settings.first_blocks,
                                     blocks - cache->settings.last_blocks);
    /* A running share over the images: each image weighs its steps. */
    int64_t before = r->cache_computed_steps + r->cache_cached_steps, now = computed + cached;
    double saved = now > 0 && forward > 0 ? (double)cached * middle / ((double)now * forward) : 0;
    if (before + now > 0) r->cache_flops_saved = (r->cache_flops_saved * before + saved * now) / (double)(before + now);
    r->cache_computed_steps += computed;
    r->cache_cached_steps += cached;
    if (dit_step_cache_bytes(cache) > r->cache_bytes) r->cache_bytes = dit_step_cache_bytes(cache);
    return 0;
}
