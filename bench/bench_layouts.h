/* Internals of moedit bench over parallel layouts (moedit_bench_layouts in
 * moedit.h), one concept per file:
 *   bench_layout_list.c  the list syntax, "auto", and why a layout cannot run
 *   bench_runs.c         one run of one layout: through moedit_generate (the
 *                        same code as `moedit generate`), or the transformer
 *                        alone for a bare config; with probes on every rank
 *   bench_layouts.c      the matrix: reference, warm-up, timed runs, the
 *                        statistics over ranks and steps, the checks
 *   bench_report.c       JSON and markdown;  bench_plot.c  the SVG chart
 *
 * List syntax (also in `moedit bench --help`): items separated by commas,
 *   auto | auto:vaeN | LAYOUT
 *   LAYOUT = serial | TERM[xTERM...]  [+ep | +epw]  [:vaeN]
 *   TERM   = tpN | ulyssesN | ringN | cfgN | dpN
 * +ep: experts spread over the tp x ulysses x ring ranks of a branch
 * (--expert-parallel-scope branch); +epw: over every rank of the layout,
 * the CFG branches and dp replicas too (--expert-parallel-scope world).
 * e.g. "tp2,ulysses2+ep,cfg2+epw,tp2xcfg2:vae4,dp2". A layout may use fewer ranks
 * than the world when its size divides the world's: the other ranks idle
 * (data parallel replicas with no image), as the serial reference does. dpN
 * makes N images at once, one per replica, and is judged by throughput. */
#ifndef MOEDIT_BENCH_BENCH_LAYOUTS_H
#define MOEDIT_BENCH_BENCH_LAYOUTS_H

#include "dit/dit_config.h"
#include "io/temp_file.h"
#include "bench/bench.h"
#include "parallel/layout.h"
#include "parallel/pg_timed.h"

/* What decides whether a layout can run. */
typedef struct bench_facts {
    dit_config dit;
    int world_size;
    int has_vae;         /* 0: transformer only */
    int64_t latent_rows; /* the VAE's input rows (VAE bands) */
    double guidance;
    const int *host_of;  /* host of each world rank (world.h); NULL: one host */
} bench_facts;

/* Parses a list (or "auto") into layouts with degrees, canonical names and
 * descriptions; a layout that cannot run is kept, with skipped = 1 and the
 * reason. Duplicates are dropped. The layouts of an "auto" item whose
 * tensor-parallel or Ulysses groups span hosts come after its others, each
 * part in its own order (parallel/layout_hosts.h). Fails only on syntax,
 * naming the item. */
int bench_layout_list(const char *text, const bench_facts *facts, moedit_bench_layout **layouts, int *count);

/* The degrees to run a layout with on the whole world: the listed ones, dp
 * multiplied by the idle replicas. */
parallel_degrees bench_layout_degrees(const moedit_bench_layout *layout, int world_size);

/* The ranks that share a layout's experts: 1 without EP. */
int bench_layout_ep_ranks(const moedit_bench_layout *layout);

/* One run of one layout. */
typedef struct bench_run_request {
    const moedit_bench_options *options;
    const bench_facts *facts;
    const moedit_bench_layout *layout;
    int64_t steps;
    const char *embeds_path;   /* random or given prompt embeddings; NULL: the text encoder */
    const char *routing_capture, *routing_replay;
    const char *image_path;    /* generate's --output */
    const char *latents_path;  /* final latents of the first image; NULL: none */
    int probes;                /* time steps, count memory */
    int time_collectives;      /* with probes: wrap every group in a timer (pg_timed) */
    const char *expert_placement; /* EP: a routing file to place experts by, or NULL */
    const char *cache_capture, *cache_replay; /* with a step cache: its schedule file */
} bench_run_request;

/* What one rank measured in one run. */
typedef struct bench_rank_sample {
    double load_seconds, text_seconds, denoise_seconds, vae_seconds, end_to_end_seconds;
    double *step_seconds;      /* [steps], filled by the step probe */
    int64_t steps;
    pg_timing groups[GROUP_KINDS];
    int64_t weight_bytes, activation_bytes;
    int64_t device_peak_bytes; /* counted at the backend (model_dir runs) */
    int64_t expert_weight_bytes; /* of weight_bytes, the routed experts' */
    int64_t *expert_rows;      /* [expert_calls]: rows this rank's routed experts computed per MoE call */
    int64_t expert_calls;
    int64_t cache_computed, cache_cached; /* steps, with a step cache */
    double cache_flops_saved;
} bench_rank_sample;

/* Runs `request` on every rank (collective); moedit_generate with a model
 * directory, the transformer alone (random weights and embeddings) without. */
int bench_run(const bench_run_request *request, bench_rank_sample *sample);

/* Random prompt embeddings for a transformer config, as a --prompt-embeds
 * file (both branches, `tokens` t5 and llama tokens). */
int bench_write_random_embeds(const char *path, const dit_config *cfg, int64_t tokens, uint64_t seed);

/* Writes through a temporary file renamed over `path` at bench_file_close
 * ("-": stdout). */
typedef struct bench_file {
    FILE *f;
    temp_file temp; /* unless f is stdout */
} bench_file;
int bench_file_open(bench_file *file, const char *path);
int bench_file_close(bench_file *file);

#endif
