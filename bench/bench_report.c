/* Reports of moedit bench over layouts: JSON and a markdown table; see
 * moedit.h. Files are written to a temporary name and renamed, so a failed
 * bench never leaves half a report. */
#include "bench/bench_layouts.h"

#include "core/error.h"
#include "io/json_out.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int bench_file_open(bench_file *file, const char *path)
{
    memset(file, 0, sizeof *file);
    if (!strcmp(path, "-")) {
        file->f = stdout;
        return 0;
    }
    if (temp_file_open(&file->temp, path)) return -1;
    file->f = file->temp.f;
    return 0;
}

int bench_file_close(bench_file *file)
{
    if (file->f == stdout) return fflush(stdout) == 0 ? 0 : error_set("cannot write to stdout");
    return temp_file_commit(&file->temp, 0);
}

static const char *group_names[MOEDIT_BENCH_GROUPS] = {"tp", "ulysses", "ring", "sp", "cfg", "dp", "ep", "vae"};

/* ---- JSON ---- */

static void json_number(FILE *f, const char *key, double v, const char *after)
{
    if (isfinite(v)) fprintf(f, "\"%s\": %.6g%s", key, v, after);
    else fprintf(f, "\"%s\": null%s", key, after);
}

static void json_string(FILE *f, const char *key, const char *s, const char *after)
{
    fprintf(f, "\"%s\": ", key);
    json_write_string(f, s);
    fputs(after, f);
}

static const char *status_of(const moedit_bench_layout *l)
{
    if (l->skipped) return "skipped";
    if (l->failed) return "failed";
    if (l->reference) return "reference";
    return l->correct ? "ok" : "wrong";
}

static void json_measurements(FILE *f, const moedit_bench_result *r, const moedit_bench_layout *l)
{
    fprintf(f, ", \"step_ms\": {");
    json_number(f, "median", l->step_ms_median, ", ");
    json_number(f, "p10", l->step_ms_p10, ", ");
    json_number(f, "p90", l->step_ms_p90, "}");
    fprintf(f, ", \"seconds\": {");
    json_number(f, "load", l->load_seconds, ", ");
    json_number(f, "text", l->text_seconds, ", ");
    json_number(f, "denoise", l->denoise_seconds, ", ");
    json_number(f, "vae_decode", r->transformer_only ? NAN : l->vae_seconds, ", ");
    json_number(f, "end_to_end", l->end_to_end_seconds, "}, ");
    json_number(f, "images_per_second", l->images_per_second, ", ");
    json_number(f, "speedup", l->speedup, ", ");
    json_number(f, "efficiency", l->efficiency, ", ");
    json_number(f, "step_speedup", l->step_speedup, ", ");
    fprintf(f, "\"communication\": {");
    json_number(f, "seconds", l->comm_seconds, ", ");
    json_number(f, "share", l->comm_share, ", ");
    json_number(f, "mib", l->comm_mib, ", ");
    fprintf(f, "\"by_group_seconds\": {");
    for (int k = 0; k < MOEDIT_BENCH_GROUPS; k++)
        json_number(f, group_names[k], l->comm_group_seconds[k], k + 1 < MOEDIT_BENCH_GROUPS ? ", " : "}}, ");
    json_number(f, "expert_load", l->expert_load, ", ");
    fprintf(f, "\"memory_mib\": {");
    json_number(f, "peak_max", l->memory_mib_max, ", ");
    json_number(f, "weights_max", l->weights_mib_max, ", ");
    json_number(f, "expert_weights_max", l->expert_weights_mib_max, ", ");
    json_number(f, "activations_max", l->activations_mib_max, ", ");
    json_number(f, "rss_peak_max", l->rss_mib_max >= 0 ? l->rss_mib_max : NAN, ", ");
    json_number(f, "device_peak_max", l->device_peak_mib_max > 0 ? l->device_peak_mib_max : NAN, ", ");
    fprintf(f, "\"per_rank\": [");
    for (int i = 0; i < r->world_size && l->rank_memory_mib; i++)
        fprintf(f, "%s%.1f", i ? ", " : "", l->rank_memory_mib[i]);
    fprintf(f, "]}, \"check\": {");
    json_number(f, "latent_max_abs_diff", l->latent_max_diff, ", ");
    json_number(f, "latent_scale", l->latent_scale, ", ");
    json_number(f, "latent_psnr_db", l->latent_psnr_db, ", ");
    json_number(f, "image_psnr_db", l->image_psnr_db, ", ");
    if (l->max_pixel_diff >= 0) fprintf(f, "\"max_pixel_diff\": %d, ", l->max_pixel_diff);
    else fprintf(f, "\"max_pixel_diff\": null, ");
    fprintf(f, "\"correct\": %s}, \"fastest\": %s", l->correct ? "true" : "false", l->fastest ? "true" : "false");
}

static void json_layout(FILE *f, const moedit_bench_result *r, const moedit_bench_layout *l, int last)
{
    fprintf(f, "    {");
    json_string(f, "name", l->name, ", ");
    json_string(f, "description", l->description, ", ");
    json_string(f, "status", status_of(l), ", ");
    fprintf(f, "\"reference\": %s, \"degrees\": {\"tp\": %d, \"ulysses\": %d, \"ring\": %d, \"cfg\": %d, \"dp\": %d, "
               "\"expert_parallel\": %s, \"expert_scope\": \"%s\", \"vae_patch\": %d}, \"ranks\": %d, \"images\": %d, "
               "\"run_order\": %d",
            l->reference ? "true" : "false", l->tp, l->ulysses, l->ring, l->cfg, l->dp,
            l->expert_parallel ? "true" : "false", l->expert_scope == MOEDIT_EXPERT_SCOPE_WORLD ? "world" : "branch",
            l->vae_patch, l->ranks, l->images, l->run_order);
    if (l->skipped || l->failed) {
        fprintf(f, ", ");
        json_string(f, "reason", l->reason, "");
    } else {
        json_measurements(f, r, l);
    }
    fprintf(f, "}%s\n", last ? "" : ",");
}

int moedit_bench_write_json(const moedit_bench_result *r, const char *path)
{
    bench_file file;
    if (bench_file_open(&file, path)) return -1;
    FILE *f = file.f;
    fprintf(f, "{\n  \"moedit_version\": \"%s\",\n  ", MOEDIT_VERSION);
    json_string(f, "model", r->model, ",\n  ");
    fprintf(f, "\"transformer_only\": %s,\n  ", r->transformer_only ? "true" : "false");
    json_string(f, "device", r->device, ",\n  ");
    fprintf(f, "\"world_size\": %d, \"height\": %lld, \"width\": %lld, \"steps\": %lld, \"warmup_steps\": %lld, ",
            r->world_size, (long long)r->height, (long long)r->width, (long long)r->steps, (long long)r->warmup_steps);
    json_number(f, "guidance", r->guidance, ", ");
    fprintf(f, "\"seed\": %llu,\n  ", (unsigned long long)r->seed);
    json_string(f, "machine", r->host, ",\n  ");
    json_string(f, "correct_means", r->tolerance, ",\n  ");
    json_string(f, "note", r->note, ",\n  ");
    json_string(f, "step_cache", r->cache, ",\n  ");
    fprintf(f, "\"communication_timed\": %s,\n  ", r->comm_measured ? "true" : "false");
    if (r->fastest >= 0) json_string(f, "fastest", r->layouts[r->fastest].name, ",\n");
    else fprintf(f, "\"fastest\": null,\n");
    fprintf(f, "  \"layouts\": [\n");
    for (int i = 0; i < r->count; i++) json_layout(f, r, &r->layouts[i], i + 1 == r->count);
    fprintf(f, "  ]\n}\n");
    return bench_file_close(&file);
}

/* ---- markdown ---- */

static const char *seconds_text(double s, char *buf, size_t size)
{
    if (!isfinite(s)) snprintf(buf, size, "-");
    else snprintf(buf, size, s < 10 ? "%.3f" : s < 1000 ? "%.1f" : "%.0f", s);
    return buf;
}

static const char *ms_text(double ms, char *buf, size_t size)
{
    snprintf(buf, size, ms < 100 ? "%.2f" : ms < 10000 ? "%.0f" : "%.3g", ms);
    return buf;
}

static const char *psnr_text(double db, char *buf, size_t size)
{
    if (isnan(db)) snprintf(buf, size, "-");
    else if (isinf(db)) snprintf(buf, size, "inf");
    else snprintf(buf, size, "%.1f", db);
    return buf;
}

static const char *percent_text(double share, char *buf, size_t size)
{
    if (isfinite(share)) snprintf(buf, size, "%.0f%%", 100 * share);
    else snprintf(buf, size, "-");
    return buf;
}

static void markdown_row(FILE *f, const moedit_bench_result *r, const moedit_bench_layout *l)
{
    char median[32], p10[32], p90[32], vae[32], e2e[32], psnr[32], comm[32];
    const char *name = l->reference ? "serial (reference, rank 0 alone)" : l->name;
    const char *check = l->reference ? "reference" : l->correct ? "ok" : "**WRONG**";
    fprintf(f,
            "| %s%s%s%s | %d | %s (%s-%s) | %.2fx | %s | %s | %.3g | %.2fx | %.0f%% | %s | %.1f | %.2f | %.2g (of %.2g) | %s | %s |\n",
            l->fastest ? "**" : "", name, l->fastest ? "** (fastest)" : "", l->images > 1 ? " [images in parallel]" : "",
            l->ranks, ms_text(l->step_ms_median, median, sizeof median), ms_text(l->step_ms_p10, p10, sizeof p10),
            ms_text(l->step_ms_p90, p90, sizeof p90), l->step_speedup,
            seconds_text(r->transformer_only ? NAN : l->vae_seconds, vae, sizeof vae),
            seconds_text(l->end_to_end_seconds, e2e, sizeof e2e), l->images_per_second, l->speedup, 100 * l->efficiency,
            percent_text(l->comm_share, comm, sizeof comm), l->memory_mib_max, l->expert_weights_mib_max,
            l->latent_max_diff, l->latent_scale,
            psnr_text(r->transformer_only ? l->latent_psnr_db : l->image_psnr_db, psnr, sizeof psnr), check);
}

int moedit_bench_write_markdown(const moedit_bench_result *r, const char *path)
{
    bench_file file;
    if (bench_file_open(&file, path)) return -1;
    FILE *f = file.f;
    fprintf(f, "### `%s`: %lldx%lld, %lld steps, guidance %g, %s, %d rank(s)\n\n", r->model, (long long)r->height,
            (long long)r->width, (long long)r->steps, r->guidance, r->device, r->world_size);
    fprintf(f, "Machine: %s. Warm-up: one untimed run of %lld step(s) per layout. Correct: %s.\n", r->host,
            (long long)r->warmup_steps, r->tolerance);
    if (r->note[0]) fprintf(f, "Note: %s\n", r->note);
    if (r->cache[0]) fprintf(f, "Step cache: %s.\n", r->cache);
    fprintf(f, "\n| layout | ranks | step ms median (p10-p90) | step speedup | VAE decode s | end to end s | images/s | "
               "speedup | efficiency | comm | peak MiB/rank | expert weights MiB/rank | max latent diff | %s PSNR dB | check |\n",
            r->transformer_only ? "latent" : "image");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->count; i++)
        if (!r->layouts[i].skipped && !r->layouts[i].failed) markdown_row(f, r, &r->layouts[i]);
    int listed = 0;
    for (int i = 0; i < r->count; i++) {
        const moedit_bench_layout *l = &r->layouts[i];
        if (!l->skipped && !l->failed) continue;
        if (!listed++) fprintf(f, "\nNot run:\n\n");
        fprintf(f, "- `%s` %s: %s\n", l->name, l->failed ? "**failed**" : "skipped", l->reason);
    }
    fprintf(f, "\nstep: one denoising step (every CFG branch), max over ranks; step speedup: the reference's step over "
               "this one's; end to end: %s, after loading; "
               "speedup and efficiency: images/s vs the reference, per working rank; comm: share of end-to-end time "
               "inside collectives (mean over working ranks, waiting for peers included); peak: weights + "
               "activation arenas, max over working ranks; expert weights: the routed experts' share of the weights on "
               "the rank holding most (expert parallelism: 1/ep of the serial run's).\n",
            r->transformer_only ? "caption projections + denoising" : "text encoding + denoising + VAE decode + image file");
    listed = 0;
    for (int i = 0; i < r->count; i++) {
        const moedit_bench_layout *l = &r->layouts[i];
        if (l->skipped || l->failed || !isfinite(l->expert_load)) continue;
        fprintf(f, "%s`%s` %.3f", listed++ ? ", " : "Expert load (per MoE call, the rows the busiest rank's routed "
                                                    "experts computed over the ranks' mean, summed over calls; each "
                                                    "call waits for its busiest rank): ",
                l->name, l->expert_load);
    }
    if (listed) fprintf(f, ".\n");
    if (!r->comm_measured)
        fprintf(f, "Collectives were not timed (on GPUs that needs a synchronisation around each; --comm-timing on "
                   "times them at that cost).\n");
    return bench_file_close(&file);
}
