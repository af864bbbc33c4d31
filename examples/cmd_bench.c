/* moedit bench: timing of the transformer forward (per denoising step) for a
 * model directory or a config with random weights. */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <stdio.h>

static void print_result(const moedit_transformer_bench_options *o, const moedit_transformer_bench_result *r, int json)
{
    if (json) {
        printf("{\"device\":\"%s\",\"height\":%lld,\"width\":%lld,\"image_tokens\":%lld,\"text_tokens\":%lld,"
               "\"parameters\":%lld,\"active_parameters\":%lld,\"forward_ms_median\":%.3f,\"forward_ms_p10\":%.3f,"
               "\"forward_ms_p90\":%.3f,\"tflops\":%.3f,\"weight_mib\":%.1f,\"scratch_peak_mib\":%.1f,"
               "\"iterations\":%lld}\n",
               o->device, (long long)o->height, (long long)o->width, r->image_tokens, r->text_tokens, r->parameters,
               r->active_parameters, r->median_ms, r->p10_ms, r->p90_ms, r->tflops, r->weight_mib,
               r->scratch_peak_mib, (long long)o->iterations);
        return;
    }
    printf("transformer: %.1f M parameters (%.1f M active per token), weights %.1f MiB on %s, loaded in %.2f s\n",
           r->parameters / 1e6, r->active_parameters / 1e6, r->weight_mib, o->device, r->load_seconds);
    printf("input: %lldx%lld pixels = %lld image tokens + %lld text tokens\n", (long long)o->height,
           (long long)o->width, r->image_tokens, r->text_tokens);
    printf("forward: median %.2f ms (p10 %.2f, p90 %.2f) over %lld runs after %lld warm-up; %.2f TFLOP/s "
           "(%.1f GFLOP per forward); scratch peak %.1f MiB\n",
           r->median_ms, r->p10_ms, r->p90_ms, (long long)o->iterations, (long long)o->warmup, r->tflops,
           r->forward_flops / 1e9, r->scratch_peak_mib);
}

int cli_bench(int argc, char **argv)
{
    moedit_transformer_bench_options o = {
        .device = "cpu", .height = 256, .width = 256, .t5_tokens = 128, .llama_tokens = 128,
        .warmup = 1, .iterations = 5, .seed = 0,
    };
    int64_t seed = 0, text_tokens = 128;
    int json = 0;
    cli_option options[] = {
        {"model", OPT_STRING, &o.model_dir, "diffusers-format model directory", "DIR"},
        {"config", OPT_STRING, &o.config_path, "transformer config.json (with --random-weights)", "FILE"},
        {"random-weights", OPT_FLAG, &o.random_weights, "seeded random weights instead of files", NULL},
        {"device", OPT_STRING, &o.device, "cpu or cuda (default cpu)", "DEV"},
        {"height", OPT_INT, &o.height, "image height in pixels (default 256)", "H"},
        {"width", OPT_INT, &o.width, "image width in pixels (default 256)", "W"},
        {"text-tokens", OPT_INT, &text_tokens, "t5 and llama tokens each (default 128)", "N"},
        {"warmup", OPT_INT, &o.warmup, "untimed forwards first (default 1)", "N"},
        {"iterations", OPT_INT, &o.iterations, "timed forwards (default 5)", "N"},
        {"seed", OPT_INT, &seed, "seed of random weights and inputs (default 0)", "S"},
        {"json", OPT_FLAG, &json, "print one JSON line", NULL},
    };
    int parsed = cli_parse(argc, argv,
                           "usage: moedit bench (--model DIR | --config FILE --random-weights) [--height H --width W]\n"
                           "                    [--device cpu|cuda] [--iterations N] [--json]\n"
                           "Times one transformer forward (one denoising step of one sample).",
                           options, (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    o.seed = (uint64_t)seed;
    o.t5_tokens = o.llama_tokens = text_tokens;
    moedit_transformer_bench_result r;
    if (moedit_bench_transformer(&o, &r)) return -1;
    print_result(&o, &r, json);
    return 0;
}
