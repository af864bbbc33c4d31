/* moedit generate: text to image (see moedit.h). */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROMPTS 1024

/* One prompt per non-empty line; the lines live in `buffer`. */
static int read_prompt_file(const char *path, char **buffer, const char **prompts, int *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) return error_set("--prompt-file %s: cannot open it", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 0 || size > (64L << 20)) {
        fclose(f);
        return error_set("--prompt-file %s: unreadable or larger than 64 MiB", path);
    }
    *buffer = calloc((size_t)size + 1, 1);
    if (!*buffer || fread(*buffer, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return error_set("--prompt-file %s: read failed", path);
    }
    fclose(f);
    *count = 0;
    for (char *line = strtok(*buffer, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        if (!*line) continue;
        if (*count == MAX_PROMPTS) return error_set("--prompt-file %s: more than %d prompts", path, MAX_PROMPTS);
        prompts[(*count)++] = line;
    }
    if (*count == 0) return error_set("--prompt-file %s holds no prompt", path);
    return 0;
}

static void print_json(const moedit_generate_result *r)
{
    printf("{\"files\":[");
    for (int i = 0; i < r->count; i++) printf("%s\"%s\"", i ? "," : "", r->files[i]);
    printf("],\"seeds\":[");
    for (int i = 0; i < r->count; i++) printf("%s%llu", i ? "," : "", r->seeds[i]);
    printf("],\"seconds\":{\"load\":%.3f,\"text\":%.3f,\"denoise\":%.3f,\"decode\":%.3f,\"total\":%.3f}}\n",
           r->load_seconds, r->text_seconds, r->denoise_seconds, r->decode_seconds, r->total_seconds);
}

int cli_generate(int argc, char **argv)
{
    moedit_generate_options o = {
        .height = 1024, .width = 1024, .steps = 50, .guidance = 5.0, .images_per_prompt = 1,
        .output = "moedit.png", .device = "cpu",
    };
    const char *prompt = NULL, *prompt_file = NULL;
    int64_t seed = 0, tp = 1, ulysses = 1, ring = 1, cfg = 1, dp = 1, vae_patch = 1;
    int json = 0;
    cli_option options[] = {
        {"model", OPT_STRING, &o.model_dir, "diffusers-format model directory", "DIR"},
        {"prompt", OPT_STRING, &prompt, "what to draw", "TEXT"},
        {"prompt-file", OPT_STRING, &prompt_file, "one prompt per line (instead of --prompt)", "FILE"},
        {"negative-prompt", OPT_STRING, &o.negative_prompt, "what to steer away from (default empty)", "TEXT"},
        {"prompt-embeds", OPT_STRING, &o.prompt_embeds_path, "precomputed embeddings (safetensors, diffusers names)", "FILE"},
        {"init-noise", OPT_STRING, &o.init_noise_path, "initial latents (tensor `latents`) instead of seeded noise", "FILE"},
        {"height", OPT_INT, &o.height, "image height in pixels (default 1024)", "H"},
        {"width", OPT_INT, &o.width, "image width in pixels (default 1024)", "W"},
        {"num-inference-steps", OPT_INT, &o.steps, "denoising steps (default 50)", "N"},
        {"guidance-scale", OPT_FLOAT, &o.guidance, "classifier-free guidance; 1 disables it (default 5)", "G"},
        {"seed", OPT_INT, &seed, "noise seed (default 0); image i of a prompt uses seed + i", "S"},
        {"num-images-per-prompt", OPT_INT, &o.images_per_prompt, "images per prompt (default 1)", "N"},
        {"output", OPT_STRING, &o.output, "output .png or .jpg, numbered -0, -1... for several (default moedit.png)", "FILE"},
        {"output-latents", OPT_STRING, &o.latents_output, "also save the final latents (safetensors)", "FILE"},
        {"device", OPT_STRING, &o.device, "cpu or cuda (default cpu)", "DEV"},
        {"random-weights", OPT_FLAG, &o.random_weights, "seeded random transformer weights (benchmarks)", NULL},
        {"tensor-parallel-size", OPT_INT, &tp, "ranks splitting heads and hidden units", "N"},
        {"ulysses-degree", OPT_INT, &ulysses, "ranks splitting the sequence by all-to-all", "N"},
        {"ring-degree", OPT_INT, &ring, "ranks splitting the sequence by ring attention", "N"},
        {"cfg-parallel-size", OPT_INT, &cfg, "2: cond and uncond branches on two halves of the ranks", "N"},
        {"data-parallel-size", OPT_INT, &dp, "replicas working on different images", "N"},
        {"enable-expert-parallel", OPT_FLAG, &o.parallel.expert_parallel, "shard experts over the tp x sp ranks", NULL},
        {"vae-patch-parallel-size", OPT_INT, &vae_patch, "ranks decoding one image in row bands", "N"},
        {"routing-capture", OPT_STRING, &o.routing_capture, "save every layer's chosen experts", "FILE"},
        {"routing-replay", OPT_STRING, &o.routing_replay, "force the experts saved by --routing-capture", "FILE"},
        {"quiet", OPT_FLAG, &o.quiet, "no progress bar", NULL},
        {"json", OPT_FLAG, &json, "print a JSON result line", NULL},
    };
    int parsed = cli_parse(argc, argv, "usage: moedit generate --model DIR --prompt TEXT [options]", options,
                           (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    if (prompt && prompt_file) return error_set("give --prompt or --prompt-file, not both");
    const char *prompts[MAX_PROMPTS];
    char *buffer = NULL;
    if (prompt_file && read_prompt_file(prompt_file, &buffer, prompts, &o.prompt_count)) {
        free(buffer);
        return -1;
    }
    if (prompt) {
        prompts[0] = prompt;
        o.prompt_count = 1;
    }
    o.prompts = prompts;
    o.seed = (uint64_t)seed;
    moedit_parallel par = {(int)tp, (int)ulysses, (int)ring, (int)cfg, (int)dp, o.parallel.expert_parallel, (int)vae_patch};
    o.parallel = par;
    moedit_generate_result *r = malloc(sizeof *r);
    if (!r) {
        free(buffer);
        return error_set("out of memory");
    }
    int status = moedit_generate(&o, r);
    if (status == 0 && json && r->count > 0) print_json(r);
    if (status == 0 && !json && !o.quiet)
        for (int i = 0; i < r->count; i++) fprintf(stderr, "wrote %s (seed %llu)\n", r->files[i], r->seeds[i]);
    free(r);
    free(buffer);
    return status;
}
