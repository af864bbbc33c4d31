/* moedit_bench_layouts: the matrix of layouts (see moedit.h and
 * bench_layouts.h).
 *
 * The reference runs first: the serial pipeline on rank 0 alone (the world
 * as data-parallel replicas with one image, as tests/mpi_generate_layouts.c
 * does), once untimed over the whole schedule, capturing the MoE routing of
 * every step, branch and layer (that run is also its warm-up), then timed.
 * Then each layout that can run: an untimed warm-up run of `warmup_steps`
 * steps, a barrier, and the timed run. Every timed run, the reference's
 * included, replays the captured routing, so all are timed alike. Every
 * rank records its phase times, the wall time of every step and of every
 * collective (generate_hooks, pg_timed) and its memory; one all-gather brings
 * the records to rank 0, which reduces them:
 *   step latency  = percentiles over steps of (max over ranks of the step)
 *   phase times   = max over the working ranks
 *   images/s      = images / end-to-end;  speedup = images/s / reference's
 *   efficiency    = speedup / working ranks
 *   comm share    = mean over working ranks of (time in collectives / end-to-end)
 * and compares the final latents (and image) with the reference's. */
#include "bench/bench_layouts.h"

#include "core/error.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "core/timer.h"
#include "parallel/world.h"
#include "pipelines/model_bundle.h"
#include "pipelines/runtime.h"
#include "pipelines/step_cache.h"
#include "vae/vae_config.h"

#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MESSAGE_CHARS 512
#define MIB 1048576.0

/* One rank's record, as floats for the all-gather. */
enum {
    F_LOAD, F_TEXT, F_DENOISE, F_VAE, F_E2E, F_WEIGHTS_MIB, F_EXPERT_WEIGHTS_MIB, F_ACTIVATIONS_MIB, F_RSS_MIB, F_COMM_MIB,
    F_DEVICE_PEAK_MIB, F_GROUP_SECONDS, F_STEPS = F_GROUP_SECONDS + GROUP_KINDS
};

typedef struct bench_state {
    const moedit_bench_options *o;
    moedit_bench_result *r;
    const world *w;
    backend *host;         /* the CPU, for the world group's copies */
    process_group *world;  /* every rank: barriers and the records */
    bench_facts facts;
    char dir[1024];
    int temp_dir;
    char routing[1100], embeds[1100], schedule[1100];
    const char *embeds_path;
    int routed;            /* MoE: capture and replay the routing */
    int cached;            /* step cache: capture and replay its schedule */
    int64_t expert_calls;  /* most MoE calls of a timed run on one rank: steps x 2 branches x MoE layers */
} bench_state;

/* ---- ranks ---- */

/* --precision fp8 */
static int bench_fp8(const moedit_bench_options *o) { return o->precision && !strcmp(o->precision, "fp8"); }

static int barrier(bench_state *b)
{
    float one = 1;
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, 1);
    t.data = &one;
    return b->world->ops->all_reduce_sum(b->world, t);
}

/* rows[N, cols] on every rank = every rank's `mine`[cols]. */
static int gather(bench_state *b, float *rows, float *mine, int64_t cols)
{
    int64_t counts[LAYOUT_MAX_RANKS];
    for (int i = 0; i < b->w->size; i++) counts[i] = 1;
    tensor out = tensor_make_2d(DTYPE_F32, DEVICE_CPU, b->w->size, cols), in = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, cols);
    out.data = rows;
    in.data = mine;
    return b->world->ops->all_gather_rows(b->world, out, in, counts);
}

/* Makes every rank agree on a collective step's outcome: returns -1 on every
 * rank when any failed, with the first failing rank's message, marked agreed
 * (one line for the run, no rank aborted). */
static int agree(bench_state *b, int status)
{
    float rows[LAYOUT_MAX_RANKS], mine = status ? 1.0f : 0.0f;
    if (gather(b, rows, &mine, 1)) return -1;
    int failed = -1;
    for (int i = 0; i < b->w->size && failed < 0; i++)
        if (rows[i] != 0) failed = i;
    if (failed < 0) return 0;
    int32_t text[MESSAGE_CHARS] = {0};
    const char *message = error_message();
    for (int i = 0; i < MESSAGE_CHARS - 1 && message[i]; i++) text[i] = (unsigned char)message[i];
    tensor t = tensor_make_2d(DTYPE_I32, DEVICE_CPU, 1, MESSAGE_CHARS);
    t.data = text;
    if (b->world->ops->broadcast(b->world, t, failed)) return -1;
    char got[MESSAGE_CHARS];
    for (int i = 0; i < MESSAGE_CHARS; i++) got[i] = (char)text[i];
    got[MESSAGE_CHARS - 1] = '\0';
    if (b->w->size > 1) error_set("[rank %d] %s", failed, got);
    else error_set("%s", got);
    /* Every rank has the message now: none needs aborting, rank 0 prints it. */
    error_mark_agreed(b->w->rank == 0);
    return -1;
}

/* ---- memory of the process (Linux): VmHWM, reset per run ---- */

static void rss_reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

static double rss_peak_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = strtod(line + 6, NULL);
    if (f) fclose(f);
    return kib < 0 ? -1 : kib / 1024.0;
}

/* ---- setup ---- */

static int validate(const moedit_bench_options *o)
{
    if (!o->model_dir && !o->config_path) return error_set("bench needs --model DIR or --config FILE --random-weights");
    if (o->model_dir && o->config_path)
        return error_set("give --model DIR or --config FILE, not both (--model DIR --random-weights gives a model's "
                         "shape random weights)");
    if (o->config_path && !o->random_weights)
        return error_set("--config %s needs --random-weights (a config has no weights)", o->config_path);
    if (o->config_path && (o->prompt || o->prompt_embeds_path))
        return error_set("--prompt and --prompt-embeds need --model DIR: --config times the transformer alone on "
                         "random prompt embeddings");
    if (o->steps < 1 || o->steps > MOEDIT_BENCH_MAX_REPEATS)
        return error_set("--num-inference-steps %lld: must be 1..%d", (long long)o->steps, MOEDIT_BENCH_MAX_REPEATS);
    if (o->expert_placement && strcmp(o->expert_placement, "reference") && access(o->expert_placement, R_OK))
        return error_set("--expert-placement %s: no such routing file (give reference or a --routing-capture file)",
                         o->expert_placement);
    if (o->warmup_steps < 0 || o->warmup_steps > MOEDIT_BENCH_MAX_REPEATS)
        return error_set("--warmup %lld: must be 0..%d", (long long)o->warmup_steps, MOEDIT_BENCH_MAX_REPEATS);
    if (step_cache_check(&o->cache, 0)) return -1;
    if (o->cache.schedule_capture || o->cache.schedule_replay)
        return error_set("bench captures the serial run's step-cache schedule and replays it in every layout itself: "
                         "leave out --cache-schedule-capture and --cache-schedule-replay");
    if (o->text_tokens < 1 || o->text_tokens > MOEDIT_MAX_TEXT_TOKENS)
        return error_set("--text-tokens %lld: must be 1..%d", (long long)o->text_tokens, MOEDIT_MAX_TEXT_TOKENS);
    if (o->height < 8 || o->width < 8 || o->height > MOEDIT_BENCH_MAX_SIDE || o->width > MOEDIT_BENCH_MAX_SIDE)
        return error_set("--height %lld --width %lld: each must be 8..%d", (long long)o->height, (long long)o->width,
                         MOEDIT_BENCH_MAX_SIDE);
    return 0;
}

static int load_facts(bench_state *b)
{
    const moedit_bench_options *o = b->o;
    bench_facts *f = &b->facts;
    char path[4200];
    f->world_size = b->w->size;
    f->guidance = o->guidance;
    f->has_vae = o->model_dir != NULL;
    f->latent_rows = o->height / 8;
    f->host_of = b->w->host_of;
    snprintf(path, sizeof path, "%s/transformer/config.json", o->model_dir ? o->model_dir : "");
    if (dit_config_load(&f->dit, o->model_dir ? path : o->config_path)) return -1;
    if (!o->model_dir) return 0;
    vae_config vae;
    snprintf(path, sizeof path, "%s/vae/config.json", o->model_dir);
    if (vae_config_load(&vae, path)) return -1;
    f->latent_rows = o->height / vae.downscale;
    return 0;
}

/* The same directory on every rank: rank 0 names it, the others make it too. */
static int make_work_dir(bench_state *b)
{
    int status = 0;
    if (b->o->work_dir) {
        snprintf(b->dir, sizeof b->dir, "%s", b->o->work_dir);
    } else if (b->w->rank == 0) {
        snprintf(b->dir, sizeof b->dir, "/tmp/moedit_bench_XXXXXX");
        if (!mkdtemp(b->dir)) status = error_set("cannot make a temporary directory under /tmp");
        b->temp_dir = 1;
    }
    if (agree(b, status)) return -1;
    int32_t text[1024] = {0};
    for (int i = 0; i < 1023 && b->dir[i]; i++) text[i] = (unsigned char)b->dir[i];
    tensor t = tensor_make_2d(DTYPE_I32, DEVICE_CPU, 1, 1024);
    t.data = text;
    if (b->world->ops->broadcast(b->world, t, 0)) return -1;
    for (int i = 0; i < 1024; i++) b->dir[i] = (char)text[i];
    b->temp_dir = !b->o->work_dir;
    struct stat st;
    if (mkdir(b->dir, 0755) != 0 && (stat(b->dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        status = error_set("--work-dir %s: cannot make it", b->dir);
    return agree(b, status);
}

static void remove_work_dir(bench_state *b)
{
    if (!b->temp_dir || b->w->rank != 0 || !b->dir[0]) return;
    DIR *d = opendir(b->dir);
    struct dirent *e;
    char path[2200];
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", b->dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(b->dir);
}

/* Prompt embeddings: given, the text encoder, or random ones written by rank 0. */
static int prepare_embeds(bench_state *b)
{
    const moedit_bench_options *o = b->o;
    char path[4200];
    struct stat st;
    if (o->prompt_embeds_path || !o->model_dir) {
        b->embeds_path = o->prompt_embeds_path;
        return 0;
    }
    snprintf(path, sizeof path, "%s/text_encoder", o->model_dir);
    if (stat(path, &st) == 0) return 0;
    snprintf(b->embeds, sizeof b->embeds, "%s/random_embeds.safetensors", b->dir);
    b->embeds_path = b->embeds;
    int status = b->w->rank == 0 ? bench_write_random_embeds(b->embeds, &b->facts.dit, o->text_tokens, o->seed) : 0;
    return agree(b, status);
}

static void describe_run(bench_state *b)
{
    const moedit_bench_options *o = b->o;
    moedit_bench_result *r = b->r;
    r->world_size = b->w->size;
    r->transformer_only = !o->model_dir;
    r->comm_measured = o->comm_timing > 0 || (o->comm_timing == 0 && !strcmp(o->device, "cpu"));
    snprintf(r->model, sizeof r->model, "%s", o->model_dir ? o->model_dir : o->config_path);
    snprintf(r->device, sizeof r->device, "%s", o->device);
    r->height = o->height, r->width = o->width, r->steps = o->steps, r->warmup_steps = o->warmup_steps;
    r->guidance = o->guidance;
    r->seed = o->seed;
    int cpu = !strcmp(o->device, "cpu");
    /* FP8 turns last-bit differences between layouts into E4M3 rounding flips (docs/fp8.md). */
    snprintf(r->tolerance, sizeof r->tolerance, "%s",
             cpu && bench_fp8(o) ? "fp8 (CPU): final latents within 1e-4 x their max |value| of the reference, or "
                                   "(E4M3 rounding flips) PSNR >= 40 dB"
             : cpu                 ? "fp32: final latents within 1e-4 x their max |value| of the reference"
             : r->transformer_only ? "bf16: latent PSNR >= 40 dB vs the reference"
                                   : "bf16: image PSNR >= 40 dB vs the reference");
    char hostname[128] = "?";
    gethostname(hostname, sizeof hostname - 1);
    snprintf(r->host, sizeof r->host, "%s: %ld CPUs online, %d OpenMP thread(s) per rank, %d rank(s)", hostname,
             sysconf(_SC_NPROCESSORS_ONLN), omp_get_max_threads(), b->w->size);
    int used = 0;
    r->note[0] = '\0';
    if (r->transformer_only)
        used += snprintf(r->note + used, sizeof r->note - (size_t)used,
                         "transformer only: --config has no VAE or text encoder, so random weights, random prompt "
                         "embeddings (%lld tokens each) and no VAE decode, image or image PSNR.",
                         (long long)o->text_tokens);
    else if (b->embeds_path == b->embeds && b->embeds_path)
        used += snprintf(r->note + used, sizeof r->note - (size_t)used,
                         "random prompt embeddings (%lld tokens each): the model has no text encoder.",
                         (long long)o->text_tokens);
    if (o->model_dir && o->random_weights)
        snprintf(r->note + used, sizeof r->note - (size_t)used, "%srandom transformer weights.", used ? " " : "");
}

/* The cache line of the reports, from the reference's timed run. */
static void describe_cache(bench_state *b, const bench_rank_sample *s)
{
    const moedit_cache_options *c = &b->o->cache;
    char order[32] = "";
    if (!strcmp(c->mode, "taylor")) snprintf(order, sizeof order, " order %lld", (long long)c->taylor_order);
    snprintf(b->r->cache, sizeof b->r->cache,
             "%s%s, first %lld and last %lld blocks, threshold %g, warm-up %lld, at most %lld cached in a row: the "
             "serial run computed %lld of %lld steps (%.1f%% of the transformer FLOPs skipped); every layout "
             "replays its schedule",
             c->mode, order, (long long)c->first_blocks, (long long)c->last_blocks, c->threshold,
             (long long)c->warmup_steps, (long long)c->max_consecutive, (long long)s->cache_computed,
             (long long)(s->cache_computed + s->cache_cached), 100 * s->cache_flops_saved);
}

/* ---- one layout ---- */

/* <dir>/serial.png and .latents for the reference, <dir>/layout-<index>.* for the others. */
static void run_paths(bench_state *b, int index, char *image, char *latents, size_t size)
{
    char stem[32] = "serial";
    if (index > 0) snprintf(stem, sizeof stem, "layout-%d", index);
    snprintf(image, size, "%s/%s.png", b->dir, stem);
    snprintf(latents, size, "%s/%s.latents", b->dir, stem);
}

/* This rank's record of the timed run. */
static void record(const bench_rank_sample *s, double rss_mib, float *row)
{
    row[F_LOAD] = (float)s->load_seconds;
    row[F_TEXT] = (float)s->text_seconds;
    row[F_DENOISE] = (float)s->denoise_seconds;
    row[F_VAE] = (float)s->vae_seconds;
    row[F_E2E] = (float)s->end_to_end_seconds;
    row[F_WEIGHTS_MIB] = (float)(s->weight_bytes / MIB);
    row[F_EXPERT_WEIGHTS_MIB] = (float)(s->expert_weight_bytes / MIB);
    row[F_ACTIVATIONS_MIB] = (float)(s->activation_bytes / MIB);
    row[F_RSS_MIB] = (float)rss_mib;
    row[F_DEVICE_PEAK_MIB] = (float)(s->device_peak_bytes / MIB);
    double bytes = 0;
    for (int k = 0; k < GROUP_KINDS; k++) {
        row[F_GROUP_SECONDS + k] = (float)s->groups[k].seconds;
        bytes += s->groups[k].bytes;
    }
    row[F_COMM_MIB] = (float)(bytes / MIB);
    for (int64_t i = 0; i < s->steps; i++) row[F_STEPS + i] = (float)s->step_seconds[i];
    for (int64_t i = 0; i < s->expert_calls; i++) row[F_STEPS + s->steps + i] = (float)s->expert_rows[i];
}

static double max_over(const float *rows, int64_t cols, int ranks, int field)
{
    double m = 0;
    for (int i = 0; i < ranks; i++)
        if (rows[i * cols + field] > m) m = rows[i * cols + field];
    return m;
}

/* Rank 0: the statistics of a layout from every rank's record. */
static int summarize(bench_state *b, moedit_bench_layout *l, const float *rows, int64_t cols)
{
    int n = l->ranks, steps = (int)b->o->steps;
    double *step_ms = malloc((size_t)steps * sizeof(double));
    l->rank_memory_mib = calloc((size_t)b->w->size, sizeof(double));
    if (!step_ms || !l->rank_memory_mib) {
        free(step_ms);
        return error_set("out of memory");
    }
    for (int i = 0; i < steps; i++) step_ms[i] = 1e3 * max_over(rows, cols, n, F_STEPS + i);
    l->step_ms_median = timer_percentile(step_ms, steps, 50);
    l->step_ms_p10 = timer_percentile(step_ms, steps, 10);
    l->step_ms_p90 = timer_percentile(step_ms, steps, 90);
    free(step_ms);
    l->load_seconds = max_over(rows, cols, n, F_LOAD);
    l->text_seconds = max_over(rows, cols, n, F_TEXT);
    l->denoise_seconds = max_over(rows, cols, n, F_DENOISE);
    l->vae_seconds = max_over(rows, cols, n, F_VAE);
    l->end_to_end_seconds = max_over(rows, cols, n, F_E2E);
    l->images_per_second = l->end_to_end_seconds > 0 ? l->images / l->end_to_end_seconds : 0;
    l->weights_mib_max = max_over(rows, cols, n, F_WEIGHTS_MIB);
    l->expert_weights_mib_max = max_over(rows, cols, n, F_EXPERT_WEIGHTS_MIB);
    l->activations_mib_max = max_over(rows, cols, n, F_ACTIVATIONS_MIB);
    l->rss_mib_max = max_over(rows, cols, n, F_RSS_MIB);
    l->device_peak_mib_max = max_over(rows, cols, n, F_DEVICE_PEAK_MIB);
    for (int i = 0; i < b->w->size; i++) {
        const float *row = rows + i * cols;
        l->rank_memory_mib[i] = row[F_WEIGHTS_MIB] + row[F_ACTIVATIONS_MIB];
        if (i < n && l->rank_memory_mib[i] > l->memory_mib_max) l->memory_mib_max = l->rank_memory_mib[i];
        l->comm_mib += row[F_COMM_MIB];
        if (i >= n) continue;
        double comm = 0;
        for (int k = 0; k < GROUP_KINDS; k++) {
            comm += row[F_GROUP_SECONDS + k];
            l->comm_group_seconds[k] += row[F_GROUP_SECONDS + k] / n;
        }
        l->comm_seconds += comm / n;
        if (row[F_E2E] > 0) l->comm_share += comm / row[F_E2E] / n;
    }
    /* Each MoE call waits for its busiest rank: the calls' maxima over their means. */
    double busiest = 0, mean = 0;
    for (int64_t e = 0; e < b->expert_calls; e++) {
        int field = F_STEPS + steps + e;
        busiest += max_over(rows, cols, n, field);
        for (int i = 0; i < n; i++) mean += rows[i * cols + field] / n;
    }
    l->expert_load = l->expert_parallel && mean > 0 ? busiest / mean : NAN;
    if (!b->r->comm_measured) {
        l->comm_seconds = l->comm_share = l->comm_mib = NAN;
        for (int k = 0; k < GROUP_KINDS; k++) l->comm_group_seconds[k] = NAN;
    }
    return 0;
}

/* The final latents of a run ("latents" of any shape); *count elements. */
static float *read_latents(const char *path, int64_t *count)
{
    safetensors *st = NULL;
    if (safetensors_open(&st, path)) return NULL;
    const safetensors_entry *e = safetensors_require(st, "latents"); /* absent, or of a dtype moedit does not read */
    float *data = NULL;
    if (e) {
        *count = 1;
        for (int d = 0; d < e->ndim; d++) *count *= e->shape[d];
        data = malloc((size_t)*count * sizeof(float));
        if (data && safetensors_read_f32(st, "latents", e->ndim, e->shape, data)) {
            free(data);
            data = NULL;
        }
    }
    safetensors_close(st);
    return data;
}

static void compare_latents(moedit_bench_layout *l, const char *reference, const char *mine)
{
    int64_t n_ref = 0, n = 0;
    float *a = read_latents(reference, &n_ref), *x = read_latents(mine, &n);
    l->latent_max_diff = NAN;
    if (a && x && n == n_ref) {
        double diff = 0, scale = 0, squares = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)x[i] - a[i]);
            if (isnan(d)) diff = NAN;
            if (d > diff) diff = d;
            if (fabs(a[i]) > scale) scale = fabs(a[i]);
            squares += d * d;
        }
        l->latent_max_diff = diff;
        l->latent_scale = scale;
        l->latent_psnr_db = squares == 0 ? INFINITY : 10 * log10(scale * scale / (squares / (double)n));
    }
    free(a), free(x);
}

static void compare_images(moedit_bench_layout *l, const char *reference, const char *mine)
{
    uint8_t *a = NULL, *x = NULL;
    int64_t aw, ah, xw, xh;
    l->image_psnr_db = NAN;
    l->max_pixel_diff = -1;
    if (image_read(reference, 65536, (int64_t)1 << 32, &a, &aw, &ah) == 0 &&
        image_read(mine, 65536, (int64_t)1 << 32, &x, &xw, &xh) == 0 && aw == xw && ah == xh) {
        double squares = 0;
        int worst = 0;
        for (int64_t i = 0; i < aw * ah * 3; i++) {
            int d = abs((int)a[i] - (int)x[i]);
            worst = d > worst ? d : worst;
            squares += (double)d * d;
        }
        l->max_pixel_diff = worst;
        l->image_psnr_db = squares == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (squares / (double)(aw * ah * 3)));
    }
    free(a), free(x);
}

/* Rank 0: the layout's output against the reference's. */
static void check(bench_state *b, moedit_bench_layout *l, int index)
{
    char ref_image[1100], ref_latents[1100], image[1100], latents[1100];
    run_paths(b, 0, ref_image, ref_latents, sizeof ref_image);
    run_paths(b, index, image, latents, sizeof image);
    if (l->images > 1) snprintf(image, sizeof image, "%s/layout-%d-0.png", b->dir, index);
    compare_latents(l, ref_latents, latents);
    l->image_psnr_db = NAN;
    l->max_pixel_diff = -1;
    if (b->facts.has_vae) compare_images(l, ref_image, image);
    int cpu = !strcmp(b->o->device, "cpu"), exact = l->latent_max_diff <= 1e-4 * l->latent_scale;
    int psnr_ok = b->facts.has_vae ? l->image_psnr_db >= 40 : l->latent_psnr_db >= 40;
    l->correct = cpu ? exact || (bench_fp8(b->o) && psnr_ok) : psnr_ok;
}

static void progress_line(bench_state *b, const moedit_bench_layout *l, int index)
{
    if (b->o->quiet || b->w->rank != 0) return;
    if (l->skipped) {
        fprintf(stderr, "bench: [%d/%d] %-24s skipped: %s\n", index, b->r->count - 1, l->name, l->reason);
    } else if (l->failed) {
        fprintf(stderr, "bench: [%d/%d] %-24s FAILED: %s\n", index, b->r->count - 1, l->name, l->reason);
    } else {
        /* Everything a reader of a cut-off run needs per layout: the tables are written at the end. */
        char comm[40] = "", load[40] = "";
        /* Collectives are timed only on request on GPUs: no share then. */
        if (isfinite(l->comm_share)) snprintf(comm, sizeof comm, ", comm %.0f%%", 100 * l->comm_share);
        if (isfinite(l->expert_load)) snprintf(load, sizeof load, ", expert load %.3f", l->expert_load);
        fprintf(stderr,
                "bench: [%d/%d] %-24s step %.2f ms, vae %.3f s, end to end %.3f s, %.3g images/s, memory %.0f MiB "
                "(weights %.0f, experts %.1f, device peak %.0f)%s%s, latent diff %.3g, image PSNR %.1f dB%s\n",
                index, b->r->count - 1, l->reference ? "serial (reference)" : l->name, l->step_ms_median,
                l->vae_seconds, l->end_to_end_seconds, l->images_per_second, l->memory_mib_max, l->weights_mib_max,
                l->expert_weights_mib_max, l->device_peak_mib_max, comm, load, l->latent_max_diff, l->image_psnr_db, l->correct ? "" : "  (NOT CORRECT)");
    }
    fflush(stderr);
}

/* Warm-up, timed run, records, statistics and checks of layouts[index]. A
 * failure of the run marks the layout failed; only a failure of the bench's
 * own collectives (or of the reference) is returned. */
static int run_layout(bench_state *b, int index)
{
    moedit_bench_layout *l = &b->r->layouts[index];
    const moedit_bench_options *o = b->o;
    char image[1100], latents[1100], warmup_image[1100];
    run_paths(b, index, image, latents, sizeof image);
    snprintf(warmup_image, sizeof warmup_image, "%s/warmup.png", b->dir);
    /* The reference's untimed run is the whole schedule, capturing the routing
     * and the step cache's schedule; other warm-ups decide their own. */
    int capture = l->reference && (b->routed || b->cached);
    /* World-scope EP over replicas: one skip schedule on every replica (the
     * reference's, over the whole schedule), or their MoE calls would differ. */
    int replay = !l->reference && b->cached && l->expert_scope == MOEDIT_EXPERT_SCOPE_WORLD && l->dp > 1;
    bench_run_request q = {o, &b->facts, l, capture || replay ? o->steps : o->warmup_steps, b->embeds_path,
                           capture && b->routed ? b->routing : NULL, NULL, warmup_image, NULL, 0, 0, NULL,
                           capture && b->cached ? b->schedule : NULL, replay ? b->schedule : NULL};
    if (o->expert_placement && l->expert_parallel)
        q.expert_placement = strcmp(o->expert_placement, "reference") ? o->expert_placement : b->routing;
    bench_rank_sample s;
    memset(&s, 0, sizeof s);
    int status = 0;
    if (q.steps > 0) {
        if (barrier(b)) return -1;
        status = agree(b, bench_run(&q, &s));
    }
    s.steps = o->steps;
    s.step_seconds = calloc((size_t)o->steps, sizeof(double));
    s.expert_calls = b->expert_calls;
    s.expert_rows = calloc((size_t)b->expert_calls + 1, sizeof(int64_t));
    int64_t cols = F_STEPS + o->steps + b->expert_calls;
    float *mine = calloc((size_t)cols, sizeof(float)), *rows = calloc((size_t)(cols * b->w->size), sizeof(float));
    if (!s.step_seconds || !s.expert_rows || !mine || !rows) status = error_set("out of memory");
    if (status == 0) {
        memset(s.groups, 0, sizeof s.groups);
        q.steps = o->steps;
        q.routing_capture = NULL;
        q.routing_replay = b->routed ? b->routing : NULL;
        q.cache_capture = NULL;
        q.cache_replay = b->cached ? b->schedule : NULL;
        q.image_path = image;
        q.latents_path = latents;
        q.probes = 1;
        q.time_collectives = b->r->comm_measured;
        if (barrier(b) == 0) {
            rss_reset_peak();
            status = agree(b, bench_run(&q, &s));
        } else {
            status = -1;
        }
    }
    if (status == 0) {
        record(&s, rss_peak_mib(), mine);
        status = gather(b, rows, mine, cols);
        if (status == 0 && b->w->rank == 0) status = summarize(b, l, rows, cols);
        if (status == 0 && b->w->rank == 0) check(b, l, index);
        if (status == 0 && l->reference && b->cached) describe_cache(b, &s);
    }
    free(s.step_seconds), free(s.expert_rows), free(mine), free(rows);
    if (status != 0 && l->reference) return -1;
    if (status != 0) {
        l->failed = 1;
        snprintf(l->reason, sizeof l->reason, "%s", error_message());
    }
    return 0;
}

static void relate_to_reference(moedit_bench_result *r)
{
    const moedit_bench_layout *ref = &r->layouts[0];
    r->fastest = -1;
    for (int i = 0; i < r->count; i++) {
        moedit_bench_layout *l = &r->layouts[i];
        if (l->skipped || l->failed) continue;
        l->speedup = ref->images_per_second > 0 ? l->images_per_second / ref->images_per_second : 0;
        l->efficiency = l->speedup / l->ranks;
        l->step_speedup = l->step_ms_median > 0 ? ref->step_ms_median / l->step_ms_median : 0;
        if (l->correct && (r->fastest < 0 || l->images_per_second > r->layouts[r->fastest].images_per_second))
            r->fastest = i;
    }
    if (r->fastest >= 0) r->layouts[r->fastest].fastest = 1;
}

/* layouts[0] = the reference, then the list. */
static int list_layouts(bench_state *b)
{
    moedit_bench_layout *listed = NULL;
    int count = 0;
    if (bench_layout_list(b->o->layouts ? b->o->layouts : "auto", &b->facts, &listed, &count)) return -1;
    moedit_bench_result *r = b->r;
    r->layouts = calloc((size_t)count + 1, sizeof *r->layouts);
    if (!r->layouts) {
        free(listed);
        return error_set("out of memory");
    }
    moedit_bench_layout *ref = &r->layouts[0];
    ref->tp = ref->ulysses = ref->ring = ref->cfg = ref->dp = ref->vae_patch = 1;
    ref->ranks = ref->images = 1;
    ref->reference = 1;
    snprintf(ref->name, sizeof ref->name, "serial");
    snprintf(ref->description, sizeof ref->description, "serial, rank 0 alone (reference)");
    memcpy(r->layouts + 1, listed, (size_t)count * sizeof *listed);
    r->count = count + 1;
    free(listed);
    return 0;
}

/* Layouts with one key hold the same weight shards (tensor-parallel degree,
 * EP group size). */
static int shard_key(const moedit_bench_layout *l)
{
    /* A rank's EP shard is its rank modulo the group's size in either scope
     * (a branch's tp x sp ranks are consecutive), so the size decides it. */
    return l->tp * (LAYOUT_MAX_RANKS + 1) + bench_layout_ep_ranks(l);
}

/* The run keeps one loaded model for the next layout of the same shards, and
 * a model from files can take minutes to load: so layouts run grouped by
 * shard key, groups in order of first appearance, the reference's group
 * first. The tables keep the listed order. */
static int order_runs(moedit_bench_result *r, int *order)
{
    char *placed = calloc((size_t)r->count, 1);
    if (!placed) return error_set("out of memory");
    int n = 0;
    for (int i = 0; i < r->count; i++) {
        if (placed[i]) continue;
        int key = shard_key(&r->layouts[i]);
        for (int j = i; j < r->count; j++)
            if (!placed[j] && shard_key(&r->layouts[j]) == key) {
                placed[j] = 1;
                r->layouts[j].run_order = n;
                order[n++] = j;
            }
    }
    free(placed);
    return 0;
}

/* A placement is only used by EP layouts that run; given without one, the
 * user's intent is not met and they should hear so. */
static int any_expert_parallel(const moedit_bench_result *r)
{
    for (int i = 0; i < r->count; i++)
        if (r->layouts[i].expert_parallel && !r->layouts[i].skipped) return 1;
    return 0;
}

static int bench_all(bench_state *b)
{
    if (load_facts(b) || make_work_dir(b) || prepare_embeds(b) || list_layouts(b)) return -1;
    b->routed = dit_is_moe(&b->facts.dit);
    b->cached = step_cache_enabled(&b->o->cache);
    snprintf(b->schedule, sizeof b->schedule, "%s/cache_schedule.safetensors", b->dir);
    b->expert_calls = b->routed ? b->o->steps * 2 * (b->facts.dit.num_double_blocks + b->facts.dit.num_single_blocks) : 0;
    snprintf(b->routing, sizeof b->routing, "%s/routing.safetensors", b->dir);
    describe_run(b);
    if (b->o->expert_placement && !b->routed)
        return error_set("--expert-placement: %s has no routed experts to place", b->r->model);
    if (b->o->expert_placement && !any_expert_parallel(b->r))
        return error_set("--expert-placement: no layout that runs on %d rank(s) uses expert parallelism "
                         "(list one with +ep)", b->w->size);
    int *order = malloc((size_t)b->r->count * sizeof *order);
    if (!order || order_runs(b->r, order)) {
        free(order);
        return order ? -1 : error_set("out of memory");
    }
    int status = 0;
    for (int k = 0; k < b->r->count && status == 0; k++) {
        moedit_bench_layout *l = &b->r->layouts[order[k]];
        if (!l->skipped && run_layout(b, order[k])) status = -1;
        else progress_line(b, l, order[k]);
    }
    free(order);
    if (status) return -1;
    relate_to_reference(b->r);
    return barrier(b);
}

int moedit_bench_layouts(const moedit_bench_options *o, moedit_bench_result *r)
{
    memset(r, 0, sizeof *r);
    r->fastest = -1;
    if (validate(o)) return -1;
    bench_state b;
    memset(&b, 0, sizeof b);
    b.o = o;
    b.r = r;
    b.w = runtime_world();
    b.host = backend_cpu_create();
    if (!b.host) return -1;
    int ranks[LAYOUT_MAX_RANKS];
    for (int i = 0; i < b.w->size; i++) ranks[i] = i;
    b.world = b.w->size == 1 ? pg_create_self("world", 0, b.host) : pg_create_mpi("world", ranks, b.w->size, b.w->rank, b.host);
    int status = b.world ? bench_all(&b) : -1;
    model_bundle_drop_kept(); /* the runs kept the last model for the next */
    remove_work_dir(&b);
    pg_destroy(b.world);
    backend_destroy(b.host);
    return status;
}

void moedit_bench_free(moedit_bench_result *r)
{
    for (int i = 0; i < r->count; i++) free(r->layouts[i].rank_memory_mib);
    free(r->layouts);
    memset(r, 0, sizeof *r);
}
