/* moedit bench: a matrix of parallel layouts, each timed and checked against
 * the serial run (moedit_bench_layouts); or, with --forward-only, one
 * transformer forward on one rank (moedit_bench_transformer). */
#include "examples/cli.h"

#include "core/error.h"
#include "io/output_check.h"
#include "bench/bench.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define UNSET INT64_MIN

static const char usage[] =
    "usage: mpirun -np N moedit bench (--model DIR [--random-weights] | --config FILE --random-weights)\n"
    "                   [--height H --width W] [--num-inference-steps S] [--layouts auto|LIST]\n"
    "                   [--warmup N] [--json | --json-output FILE] [--markdown FILE] [--plot FILE.svg]\n"
    "                   [--device cpu|cuda|auto]\n"
    "       moedit bench --forward-only (--model DIR | --config FILE --random-weights) [--iterations N]\n"
    "                   [--warmup N] [--text-tokens N] [--num-frames F] [--batch 1|2] [--json | --json-output FILE]\n"
    "                   (one forward; --iterations implies it; --num-frames: a clip;\n"
    "                   --batch 2: both CFG branches in the forward, a denoising step's transformer work)\n"
    "\n"
    "Runs every layout of the list on the N ranks of the launcher (one rank without one): a warm-up run,\n"
    "then a timed run of the whole pipeline (text, denoising, VAE decode, image) through the same code as\n"
    "`moedit generate`. Each layout's final latents and image are compared with the serial run (rank 0\n"
    "alone, first), whose MoE routing every layout replays. Reported per layout: per-step latency (median,\n"
    "p10, p90 over steps, max over ranks), VAE decode and end-to-end time, images/s, speedup and\n"
    "efficiency vs the serial run, communication share, peak memory per rank, max latent difference and\n"
    "PSNR; the fastest correct layout is marked. The table goes to stdout (--json: the JSON instead);\n"
    "--json-output, --markdown, --plot write files. With --config (no model directory) there is no VAE or\n"
    "text encoder: the transformer is\n"
    "timed alone on random prompt embeddings, and the output says so.\n"
    "\n"
    "LIST: layouts separated by commas:\n"
    "  auto         every layout of exactly N ranks: tp x ulysses x ring x cfg x dp = N, EP off, +ep and\n"
    "               (with cfg or dp) +epw,\n"
    "               every VAE patch size dividing a replica; those the model cannot run are listed as\n"
    "               skipped with the reason (auto:vaeK: VAE patch size K only); on several hosts, those\n"
    "               whose tp or Ulysses groups span hosts are listed last (docs/multi-node.md)\n"
    "  LAYOUT       serial | TERM[xTERM...] [+ep|+epw] [:vaeK]   with TERM = tpK | ulyssesK | ringK | cfgK | dpK\n"
    "               e.g. tp2,ulysses2+ep,cfg2+epw,tp2xcfg2:vae4,ring2xulysses2,dp2\n"
    "  +ep enables expert parallelism over tp x ulysses x ring (--expert-parallel-scope branch); +epw over\n"
    "  every rank of the layout, CFG branches and dp replicas too (--expert-parallel-scope world, DP2EP; it\n"
    "  must use the whole world); :vaeK decodes in K row bands; dpK makes K\n"
    "  images at once (judged by images/s). A layout of fewer than N ranks runs on the first ones while the\n"
    "  others idle; its size must divide N.";

static int forward_only(moedit_transformer_bench_options *o, int64_t text_tokens, const char *json)
{
    o->t5_tokens = o->llama_tokens = text_tokens;
    moedit_transformer_bench_result r;
    if (moedit_bench_transformer(o, &r)) return -1;
    if (json) {
        FILE *f = strcmp(json, "-") ? fopen(json, "w") : stdout;
        if (!f) return error_set("cannot write %s", json);
        fprintf(f, "{\"device\":\"%s\",\"batch\":%lld,\"frames\":%lld,\"height\":%lld,\"width\":%lld,\"image_tokens\":%lld,"
                   "\"text_tokens\":%lld,"
                   "\"parameters\":%lld,\"active_parameters\":%lld,\"forward_ms_median\":%.3f,\"forward_ms_p10\":%.3f,"
                   "\"forward_ms_p90\":%.3f,\"tflops\":%.3f,\"weight_mib\":%.1f,\"scratch_peak_mib\":%.1f,"
                   "\"iterations\":%lld,\"device_peak_mib\":%.1f,\"streamed_blocks\":%d}\n",
                o->device, (long long)r.batch, (long long)o->frames, (long long)o->height, (long long)o->width, r.image_tokens, r.text_tokens, r.parameters,
                r.active_parameters, r.median_ms, r.p10_ms, r.p90_ms, r.tflops, r.weight_mib, r.scratch_peak_mib,
                (long long)o->iterations, r.device_peak_mib, r.streamed_blocks);
        if (f != stdout && fclose(f) != 0) return error_set("cannot write %s", json);
        return 0;
    }
    printf("transformer: %.1f M parameters (%.1f M active per token), weights %.1f MiB on %s, loaded in %.2f s\n",
           r.parameters / 1e6, r.active_parameters / 1e6, r.weight_mib, o->device, r.load_seconds);
    printf("input: %lld sample(s) of %lld frame(s) of %lldx%lld pixels = %lld image tokens + %lld text tokens each\n",
           (long long)r.batch, (long long)o->frames, (long long)o->height, (long long)o->width,
           r.image_tokens, r.text_tokens);
    printf("forward: median %.2f ms (p10 %.2f, p90 %.2f) over %lld runs after %lld warm-up; %.2f TFLOP/s "
           "(%.1f GFLOP per forward); scratch peak %.1f MiB; device peak %.1f MiB, %d blocks streamed\n",
           r.median_ms, r.p10_ms, r.p90_ms, (long long)o->iterations, (long long)o->warmup, r.tflops,
           r.forward_flops / 1e9, r.scratch_peak_mib, r.device_peak_mib, r.streamed_blocks);
    return 0;
}

static int write_reports(const moedit_bench_result *r, const char *json, const char *markdown, const char *plot)
{
    if (moedit_rank() != 0) return 0;
    if (!json || strcmp(json, "-")) {
        if (moedit_bench_write_markdown(r, "-")) return -1;
    }
    if (json && moedit_bench_write_json(r, json)) return -1;
    if (markdown && moedit_bench_write_markdown(r, markdown)) return -1;
    if (plot && moedit_bench_write_svg(r, plot)) return -1;
    return 0;
}

int cli_bench(int argc, char **argv)
{
    moedit_bench_options o = {
        .device = "auto", .text_tokens = 128, .height = UNSET, .width = UNSET, .steps = 4, .guidance = 5.0,
        .layouts = "auto", .warmup_steps = 1,
    };
    /* UNSET: not typed (typed values, even out of range, go to the library's checks). */
    moedit_transformer_bench_options f = {.warmup = UNSET, .iterations = UNSET, .frames = UNSET, .batch = UNSET};
    int64_t seed = 0, warmup = UNSET;
    int forward = 0;
    const char *json = NULL, *markdown = NULL, *plot = NULL, *comm_timing = "auto";
    cli_option table[] = {
        {"model", OPT_STRING, &o.model_dir, "diffusers-format model directory", "DIR"},
        {"config", OPT_STRING, &o.config_path, "transformer config.json: random weights, transformer only", "FILE"},
        {"random-weights", OPT_FLAG, &o.random_weights, "seeded random transformer weights instead of files", NULL},
        CLI_DEVICE_OPTION(&o.device),
        {"precision", OPT_STRING, &o.precision, "native (default: cpu F32, cuda BF16) or fp8: the transformer's linear layers in FP8 E4M3 (docs/fp8.md; CPU only for now)", "P"},
        {"max-gpu-memory", OPT_STRING, &o.max_gpu_memory,
         "device memory each rank's run (--model) or the one forward (--forward-only) may take (24G, 512M); "
         "blocks that do not fit are streamed from host memory (docs/memory-budget.md)",
         "SIZE"},
        {"height", OPT_INT, &o.height, "image height in pixels (default 1024; --forward-only: 256)", "H"},
        {"width", OPT_INT, &o.width, "image width in pixels (default 1024; --forward-only: 256)", "W"},
        {"num-inference-steps", OPT_INT, &o.steps, "timed denoising steps per layout (default 4)", "S"},
        {"guidance-scale", OPT_FLOAT, &o.guidance, "classifier-free guidance; > 1 runs two branches (default 5)", "G"},
        {"prompt", OPT_STRING, &o.prompt, "prompt for the text encoder (default: a fixed one)", "TEXT"},
        {"prompt-embeds", OPT_STRING, &o.prompt_embeds_path, "precomputed embeddings instead of the text encoder", "FILE"},
        {"text-tokens", OPT_INT, &o.text_tokens, "t5 and llama tokens of random embeddings (default 128; at most 4096)", "N"},
        {"num-frames", OPT_INT, &f.frames, "--forward-only: a clip of F frames (moedit video's sequence)", "F"},
        {"batch", OPT_INT, &f.batch, "--forward-only: 2 runs both CFG branches as one forward (default 1)", "N"},
        {"seed", OPT_INT, &seed, "seed of noise and random weights (default 0)", "S"},
        {"layouts", OPT_STRING, &o.layouts, "auto (default) or a list, see above", "LIST"},
        {"warmup", OPT_INT, &warmup,
         "untimed work first: steps of a warm-up run before each layout, or with --forward-only forwards (default 1; "
         "0: none)",
         "N"},
        {"warmup-steps", OPT_INT, &warmup, NULL, "N"}, /* the spelling of 2026-11 */
        {"work-dir", OPT_STRING, &o.work_dir, "keep images, latents and routing here (default: temporary)", "DIR"},
        {"json", OPT_OPTIONAL_STRING, &json, "print the results as JSON instead of the table (--json FILE, the old spelling: --json-output FILE)", "FILE"},
        {"json-output", OPT_STRING, &json, "write the results as JSON to FILE (-: stdout)", "FILE"},
        {"markdown", OPT_STRING, &markdown, "write the markdown table", "FILE"},
        {"plot", OPT_STRING, &plot, "write an SVG bar chart of images/s per layout", "FILE.svg"},
        {"comm-timing", OPT_STRING, &comm_timing, "time every collective: auto (CPU yes, GPU no: it syncs), on, off", "MODE"},
        {"expert-placement", OPT_STRING, &o.expert_placement,
         "EP layouts: deal experts (tp + EP: and the shared expert's slices) by the loads in a --routing-capture "
         "file, or by the reference run's (FILE = reference)",
         "FILE"},
        {"quiet", OPT_FLAG, &o.quiet, "no progress lines on stderr", NULL},
        {"forward-only", OPT_FLAG, &forward, "time one transformer forward on one rank instead", NULL},
        {"iterations", OPT_INT, &f.iterations, "timed forwards (default 5; implies --forward-only)", "N"},
    };
    int count = (int)(sizeof table / sizeof table[0]);
    cli_option options[sizeof table / sizeof table[0] + CLI_CACHE_OPTIONS];
    memcpy(options, table, sizeof table);
    count += cli_cache_options(&o.cache, options + count);
    int parsed = cli_parse(argc, argv, usage, options, count);
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    o.seed = (uint64_t)seed;
    /* --iterations belongs to the single-forward timing (moedit bench before layouts). */
    if (f.iterations != UNSET) forward = 1;
    if (forward && strcmp(o.layouts, "auto"))
        return error_set("--layouts times a matrix of layouts; --forward-only and --iterations time one "
                         "forward on one rank");
    if (forward) f.warmup = warmup;
    else if (warmup != UNSET) o.warmup_steps = warmup;
    if (o.max_gpu_memory && !forward && !o.model_dir)
        return error_set("--max-gpu-memory budgets the runs of a model folder (--model DIR) or one forward "
                         "(--forward-only): not --config's layouts");
    if (forward && moedit_world_size() > 1)
        return error_set("--forward-only times one forward on one rank: run it without mpirun (%d ranks would each "
                         "time their own and compete for the machine)", moedit_world_size());
    if (forward && o.cache.mode && strcmp(o.cache.mode, "none"))
        return error_set("--cache %s skips steps of the denoising loop; --forward-only times one forward", o.cache.mode);
    if (f.frames != UNSET && !forward) return error_set("--num-frames times one forward of a clip: add --forward-only");
    if (f.batch != UNSET && f.batch != 1 && !forward)
        return error_set("--batch %lld: the samples of one timed forward; add --forward-only", (long long)f.batch);
    if (forward) {
        f.model_dir = o.model_dir, f.config_path = o.config_path, f.random_weights = o.random_weights;
        f.device = o.device, f.seed = o.seed, f.precision = o.precision, f.max_gpu_memory = o.max_gpu_memory;
        f.height = o.height == UNSET ? 256 : o.height;
        f.width = o.width == UNSET ? 256 : o.width;
        if (f.iterations == UNSET) f.iterations = 5;
        if (f.warmup == UNSET) f.warmup = 1;
        if (f.frames == UNSET) f.frames = 1;
        if (f.batch == UNSET) f.batch = 1;
        return forward_only(&f, o.text_tokens, json);
    }
    if (!strcmp(comm_timing, "on")) o.comm_timing = 1;
    else if (!strcmp(comm_timing, "off")) o.comm_timing = -1;
    else if (strcmp(comm_timing, "auto")) return error_set("--comm-timing %s: auto, on or off", comm_timing);
    if (o.height == UNSET) o.height = 1024;
    if (o.width == UNSET) o.width = 1024;
    /* The reports are written at the end of a run that may take an hour. */
    if (plot && (strlen(plot) < 4 || strcmp(plot + strlen(plot) - 4, ".svg")))
        return error_set("--plot %s: the chart is SVG; give a name ending in .svg", plot);
    const char *reports[3][2] = {{json, "--json-output"}, {markdown, "--markdown"}, {plot, "--plot"}};
    for (int i = 0; i < 3; i++)
        if (moedit_rank() == 0 && reports[i][0] && strcmp(reports[i][0], "-") &&
            output_check_writable(reports[i][0], reports[i][1]))
            return -1;
    moedit_bench_result r;
    int status = moedit_bench_layouts(&o, &r);
    if (status == 0) status = write_reports(&r, json, markdown, plot);
    moedit_bench_free(&r);
    return status;
}
