/* moedit_bench_text: times HiDream-I1's four text encoders as generate runs
 * them, over the prompt and the negative prompt; see bench.h. */
#include "bench/bench.h"

#include "core/error.h"
#include "core/timer.h"
#include "text/hidream_prompt.h"

#include <stdlib.h>
#include <string.h>

static const char *const ENCODER_KEYS[MOEDIT_TEXT_ENCODERS] = {"clip_l", "clip_g", "t5", "llama"};

/* One pass: every encoder over both prompts; seconds[k] per encoder. */
static int run_pass(hidream_text *t, const hidream_prompt prompts[2], double seconds[MOEDIT_TEXT_ENCODERS])
{
    hidream_prompt_embeds out[2];
    memset(t->usage, 0, sizeof t->usage);
    if (hidream_text_encode(t, prompts, 2, out)) return -1;
    hidream_prompt_embeds_free(&out[0]);
    hidream_prompt_embeds_free(&out[1]);
    for (int k = 0; k < MOEDIT_TEXT_ENCODERS; k++) seconds[k] = t->usage[k].seconds;
    return 0;
}

static void summarize(moedit_text_bench_result *r, double *times[MOEDIT_TEXT_ENCODERS + 1], int64_t n)
{
    for (int k = 0; k < MOEDIT_TEXT_ENCODERS; k++) {
        r->encoders[k].median_ms = timer_percentile(times[k], n, 50);
        r->encoders[k].p10_ms = timer_percentile(times[k], n, 10);
        r->encoders[k].p90_ms = timer_percentile(times[k], n, 90);
    }
    r->total_median_ms = timer_percentile(times[MOEDIT_TEXT_ENCODERS], n, 50);
}

static int run_passes(hidream_text *t, const moedit_text_bench_options *o, moedit_text_bench_result *r,
                      double *times[MOEDIT_TEXT_ENCODERS + 1])
{
    const char *negative = o->negative_prompt ? o->negative_prompt : "";
    hidream_prompt prompts[2] = {{{o->prompt, NULL, NULL, NULL}}, {{negative, NULL, NULL, NULL}}};
    for (int64_t i = 0; i < o->warmup + o->iterations; i++) {
        double seconds[MOEDIT_TEXT_ENCODERS];
        if (run_pass(t, prompts, seconds)) return -1;
        for (int k = 0; k < MOEDIT_TEXT_ENCODERS && i == 0; k++) {
            r->encoders[k].first_seconds = seconds[k];
            r->encoders[k].peak_bytes = t->usage[k].peak_bytes; /* weights made and run: the most it holds */
        }
        if (i < o->warmup) continue;
        double sum = 0;
        for (int k = 0; k < MOEDIT_TEXT_ENCODERS; k++) {
            times[k][i - o->warmup] = 1e3 * seconds[k];
            sum += 1e3 * seconds[k];
        }
        times[MOEDIT_TEXT_ENCODERS][i - o->warmup] = sum;
    }
    return 0;
}

int moedit_bench_text(const moedit_text_bench_options *o, moedit_text_bench_result *r)
{
    memset(r, 0, sizeof *r);
    if (!o->model_dir) return error_set("bench-text needs --model DIR (HiDream's tokenizers and text encoders)");
    if (!o->prompt) return error_set("bench-text needs --prompt TEXT");
    if (o->warmup < 1 || o->iterations < 1 || o->warmup > MOEDIT_BENCH_MAX_REPEATS ||
        o->iterations > MOEDIT_BENCH_MAX_REPEATS)
        return error_set("--warmup must be 1..%d (the first pass loads the encoders) and --iterations 1..%d",
                         MOEDIT_BENCH_MAX_REPEATS, MOEDIT_BENCH_MAX_REPEATS);
    if (o->max_sequence_length < 0 || o->max_sequence_length > MOEDIT_MAX_TEXT_TOKENS)
        return error_set("--max-sequence-length must be 1..%d", MOEDIT_MAX_TEXT_TOKENS);
    backend *be = backend_create(o->device);
    if (!be) return -1;
    /* Kept loaded between passes: only the first pass makes the weights. */
    hidream_text_options ho = {o->model_dir, o->llama_dir, (int)o->max_sequence_length, 1, o->random_weights, o->seed};
    hidream_text t;
    int status = hidream_text_open(&t, be, &ho, NULL);
    if (status) {
        backend_destroy(be);
        return -1;
    }
    double *times[MOEDIT_TEXT_ENCODERS + 1] = {NULL};
    for (int k = 0; k <= MOEDIT_TEXT_ENCODERS && !status; k++)
        if (!(times[k] = calloc((size_t)o->iterations, sizeof(double)))) status = error_set("out of memory");
    if (!status) status = run_passes(&t, o, r, times);
    if (!status) summarize(r, times, o->iterations);
    for (int k = 0; k < MOEDIT_TEXT_ENCODERS; k++) {
        r->encoders[k].name = ENCODER_KEYS[k];
        r->encoders[k].tokens = t.length[k];
    }
    r->prompts = 2;
    for (int k = 0; k <= MOEDIT_TEXT_ENCODERS; k++) free(times[k]);
    hidream_text_close(&t);
    backend_destroy(be);
    return status;
}
