/* The step cache of a moedit_generate run (moedit.h's moedit_cache_options;
 * the rule itself is dit/dit_step_cache.h): the options checked (each bad
 * value one error naming its flag), the schedule file written or replayed,
 * and what the cache saved, into the run's result.
 *
 * Schedule file: safetensors with one I32 tensor "computed" [steps]: 1 the
 * step was computed, 0 cached, -1 not run (an edit's skipped first steps).
 * It records the run's first image; a replay forces it on every image. */
#ifndef MOEDIT_PIPELINES_STEP_CACHE_H
#define MOEDIT_PIPELINES_STEP_CACHE_H

#include "dit/dit_config.h"
#include "dit/dit_step_cache.h"
#include "moedit.h"

/* 1 when the options ask for caching (block or taylor), 0 for none. */
int step_cache_enabled(const moedit_cache_options *o);

/* Checks the options alone, before any model loads: mode, knob ranges,
 * capture and replay (they exclude each other and need a mode; the capture
 * path writable on the rank that writes it, `writer`). */
int step_cache_check(const moedit_cache_options *o, int writer);

/* The settings for this transformer (first + last blocks leave some to skip). */
int step_cache_settings(const moedit_cache_options *o, const dit_config *cfg, dit_cache_settings *settings);

/* A replay file's schedule for `steps` steps: computed[steps] (malloc'd). */
int step_cache_schedule_load(const char *path, int steps, uint8_t **computed);

/* Writes cache's schedule (the steps it ran) to path. */
int step_cache_schedule_save(const char *path, const dit_step_cache *cache);

/* Adds one image's cache figures to the result: the schedule of the first,
 * step counts, the FLOPs its cached steps skipped (blocks [F, N-B) of a
 * forward of image_tokens + text tokens, over the steps it ran) and the
 * cache's bytes. */
int step_cache_account(moedit_generate_result *r, const dit_step_cache *cache, const dit_config *cfg,
                       int64_t image_tokens, int64_t t5_tokens, int64_t llama_tokens);

#endif
