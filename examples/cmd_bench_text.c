/* moedit bench-text: timing of HiDream-I1's four text encoders (CLIP-L,
 * CLIP-G, T5, Llama 3.1) over a prompt and its negative, as generate runs them. */
#include "examples/cli.h"

#include "bench/bench.h"
#include "core/error.h"

#include <stdio.h>

static void print_json(const moedit_text_bench_options *o, const moedit_text_bench_result *r)
{
    printf("{\"what\":\"moedit text encoders\",\"device\":\"%s\",\"random_weights\":%s,\"prompts\":%d,"
           "\"warmup\":%lld,\"iterations\":%lld,\"encoders\":{",
           o->device, o->random_weights ? "true" : "false", r->prompts, (long long)o->warmup,
           (long long)o->iterations);
    for (int k = 0; k < MOEDIT_TEXT_ENCODERS; k++) {
        const moedit_text_bench_encoder *e = &r->encoders[k];
        printf("%s\"%s\":{\"tokens\":%lld,\"ms_median\":%.3f,\"ms_p10\":%.3f,\"ms_p90\":%.3f,"
               "\"first_pass_seconds\":%.3f,\"peak_bytes\":%lld}",
               k ? "," : "", e->name, (long long)e->tokens, e->median_ms, e->p10_ms, e->p90_ms, e->first_seconds,
               (long long)e->peak_bytes);
    }
    printf("},\"total_ms_median\":%.3f}\n", r->total_median_ms);
}

static void print_text(const moedit_text_bench_options *o, const moedit_text_bench_result *r)
{
    printf("HiDream text encoders on %s, %d prompts per pass, median of %lld passes:\n", o->device, r->prompts,
           (long long)o->iterations);
    for (int k = 0; k < MOEDIT_TEXT_ENCODERS; k++) {
        const moedit_text_bench_encoder *e = &r->encoders[k];
        printf("  %-7s %4lld tokens  %9.2f ms (p10 %.2f, p90 %.2f)  first pass %.2f s  peak %.1f MiB\n", e->name,
               (long long)e->tokens, e->median_ms, e->p10_ms, e->p90_ms, e->first_seconds,
               (double)e->peak_bytes / 1048576.0);
    }
    printf("  total   %9.2f ms\n", r->total_median_ms);
}

int cli_bench_text(int argc, char **argv)
{
    moedit_text_bench_options o = {.device = "auto", .warmup = 1, .iterations = 5};
    int64_t seed = 0, max_sequence_length = CLI_UNSET; /* 0 typed was taken as the default */
    int json = 0;
    cli_option options[] = {
        {"model", OPT_STRING, &o.model_dir, "a model folder with HiDream's tokenizer*/ and text_encoder*/", "DIR"},
        {"llama", OPT_STRING, &o.llama_dir, "a Llama 3.1 folder instead of text_encoder_4/ and tokenizer_4/", "DIR"},
        CLI_DEVICE_OPTION(&o.device),
        {"random-weights", OPT_FLAG, &o.random_weights, "seeded random encoder weights from the configs (no weight files)", NULL},
        {"seed", OPT_INT, &seed, "seed of the random weights (default 0)", "S"},
        {"prompt", OPT_STRING, &o.prompt, "the prompt", "TEXT"},
        {"negative-prompt", OPT_STRING, &o.negative_prompt, "the negative prompt (default empty)", "TEXT"},
        {"max-sequence-length", OPT_INT, &max_sequence_length, "padded prompt length (default 128)", "N"},
        {"warmup", OPT_INT, &o.warmup, "untimed passes first, the first loading the encoders (default 1)", "N"},
        {"iterations", OPT_INT, &o.iterations, "timed passes (default 5)", "N"},
        {"json", OPT_FLAG, &json, "print one JSON line", NULL},
    };
    int parsed = cli_parse(argc, argv,
                           "usage: moedit bench-text --model DIR --prompt TEXT [--negative-prompt TEXT] "
                           "[--random-weights] [--device cpu|cuda|auto]\n"
                           "Each pass runs CLIP-L, CLIP-G, T5 and the Llama over the prompt and the negative prompt, "
                           "as generate encodes them for CFG.",
                           options, (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    if (seed < 0) return error_set("--seed must be >= 0");
    if (max_sequence_length != CLI_UNSET && (max_sequence_length < 1 || max_sequence_length > MOEDIT_MAX_TEXT_TOKENS))
        return error_set("--max-sequence-length must be 1..%d", MOEDIT_MAX_TEXT_TOKENS);
    if (max_sequence_length != CLI_UNSET) o.max_sequence_length = max_sequence_length;
    o.seed = (uint64_t)seed;
    moedit_text_bench_result r;
    if (moedit_bench_text(&o, &r)) return -1;
    if (json) print_json(&o, &r);
    else print_text(&o, &r);
    return 0;
}
