/* moedit generate: text to image (see moedit.h); and the options that edit
 * shares with it (cli.h). */
#include "examples/cli.h"

#include "core/error.h"
#include "io/json_out.h"
#include "core/text_file.h"
#include "moedit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMPT_FILE_MAX_BYTES ((size_t)64 << 20)

/* One prompt per non-empty line; the lines live in `buffer`. */
static int read_prompt_file(const char *path, char **buffer, const char **prompts, int *count)
{
    if (text_file_read(path, PROMPT_FILE_MAX_BYTES, "prompt file (--prompt-file)", buffer)) return -1;
    *count = 0;
    for (char *line = strtok(*buffer, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        if (!*line) continue;
        if (*count == CLI_MAX_PROMPTS) return error_set("--prompt-file %s: more than %d prompts", path, CLI_MAX_PROMPTS);
        prompts[(*count)++] = line;
    }
    if (*count == 0) return error_set("--prompt-file %s holds no prompt", path);
    return 0;
}

int cli_generate_options(cli_generate_args *a, cli_option *options, const char *height_help, const char *width_help)
{
    memset(a, 0, sizeof *a);
    moedit_generate_options defaults = {
        .height = 1024, .width = 1024, .steps = 50, .guidance = 5.0, .images_per_prompt = 1,
        .output = "moedit.png", .device = "auto",
    };
    a->o = defaults;
    a->tp = a->ulysses = a->ring = a->cfg = a->dp = a->vae_patch = 1;
    moedit_generate_options *o = &a->o;
    cli_option table[CLI_GENERATE_OPTIONS] = {
        {"model", OPT_STRING, &o->model_dir, "diffusers-format model directory", "DIR"},
        {"prompt", OPT_STRING, &a->prompt, "what to draw", "TEXT"},
        {"prompt-file", OPT_STRING, &a->prompt_file, "one prompt per line (instead of --prompt)", "FILE"},
        {"negative-prompt", OPT_STRING, &o->negative_prompt, "what to steer away from (default empty)", "TEXT"},
        {"prompt-2", OPT_STRING, &o->prompt_2, "HiDream: the prompt of the second encoder, CLIP-G (default --prompt)", "TEXT"},
        {"prompt-3", OPT_STRING, &o->prompt_3, "HiDream: the prompt of the T5 encoder (default --prompt)", "TEXT"},
        {"prompt-4", OPT_STRING, &o->prompt_4, "HiDream: the prompt of the Llama encoder (default --prompt)", "TEXT"},
        {"negative-prompt-2", OPT_STRING, &o->negative_prompt_2, "HiDream: CLIP-G's negative prompt (default --negative-prompt)", "TEXT"},
        {"negative-prompt-3", OPT_STRING, &o->negative_prompt_3, "HiDream: T5's negative prompt (default --negative-prompt)", "TEXT"},
        {"negative-prompt-4", OPT_STRING, &o->negative_prompt_4, "HiDream: the Llama's negative prompt (default --negative-prompt)", "TEXT"},
        {"llama", OPT_STRING, &o->llama_dir,
         "HiDream: a Llama 3.1 folder (config.json, safetensors, tokenizer.json) when the model has no text_encoder_4/",
         "DIR"},
        {"max-sequence-length", OPT_INT, &a->max_sequence_length,
         "HiDream: tokens each prompt is padded or cut to (default 128; CLIP at most 218)", "N"},
        {"keep-text-encoders", OPT_FLAG, &o->keep_text_encoders,
         "HiDream: keep the four text encoders loaded after encoding (default: each is freed after use)", NULL},
        {"text-device", OPT_STRING, &o->text_device, "HiDream: cpu or cuda for the text encoders (default --device)",
         "DEV"},
        {"prompt-embeds", OPT_STRING, &o->prompt_embeds_path,
         "precomputed embeddings (safetensors, diffusers names; tools/encode_prompt.py makes them with HiDream-I1's "
         "own encoders)",
         "FILE"},
        {"init-noise", OPT_STRING, &o->init_noise_path, "initial latents (tensor `latents`) instead of seeded noise", "FILE"},
        {"height", OPT_INT, &o->height, height_help, "H"},
        {"width", OPT_INT, &o->width, width_help, "W"},
        {"num-inference-steps", OPT_INT, &o->steps, "denoising steps (default 50)", "N"},
        {"guidance-scale", OPT_FLOAT, &o->guidance, "classifier-free guidance; 1 disables it (default 5)", "G"},
        {"seed", OPT_INT, &a->seed, "noise seed (default 0; -S is 2^64 - S, as --json reports it); image i of a prompt uses seed + i", "S"},
        {"num-images-per-prompt", OPT_INT, &o->images_per_prompt, "images per prompt (default 1)", "N"},
        {"output", OPT_STRING, &o->output, "output .png or .jpg, numbered -0, -1... for several (default moedit.png)", "FILE"},
        {"output-latents", OPT_STRING, &o->latents_output, "also save the final latents (safetensors)", "FILE"},
        CLI_DEVICE_OPTION(&o->device),
        {"random-weights", OPT_FLAG, &o->random_weights, "seeded random transformer weights (benchmarks)", NULL},
        {"tensor-parallel-size", OPT_INT, &a->tp, "ranks splitting heads and hidden units", "N"},
        {"ulysses-degree", OPT_INT, &a->ulysses, "ranks splitting the sequence by all-to-all", "N"},
        {"ring-degree", OPT_INT, &a->ring, "ranks splitting the sequence by ring attention", "N"},
        {"cfg-parallel-size", OPT_INT, &a->cfg, "2: cond and uncond branches on two halves of the ranks", "N"},
        {"data-parallel-size", OPT_INT, &a->dp, "replicas working on different images", "N"},
        {"enable-expert-parallel", OPT_FLAG, &o->parallel.expert_parallel, "shard experts over the tp x sp ranks", NULL},
        {"vae-patch-parallel-size", OPT_INT, &a->vae_patch, "ranks decoding (and encoding) one image in row bands", "N"},
        {"routing-capture", OPT_STRING, &o->routing_capture, "save every layer's chosen experts", "FILE"},
        {"routing-replay", OPT_STRING, &o->routing_replay, "force the experts saved by --routing-capture", "FILE"},
        {"expert-placement", OPT_STRING, &o->expert_placement,
         "with EP: deal each layer's experts to ranks by the loads in a --routing-capture file (tp + EP: "
         "also size the shared expert's slices by them)",
         "FILE"},
        {"lora", OPT_STRING_LIST, &a->loras,
         "merge a LoRA into the transformer as it loads (safetensors: lora_A/lora_B or lora_down/lora_up pairs); "
         "repeat for several, up to 8",
         "FILE"},
        {"lora-scale", OPT_FLOAT_LIST, &a->lora_scales,
         "a LoRA's strength (default 1: as trained); the k-th --lora-scale goes with the k-th --lora", "S"},
        {"quiet", OPT_FLAG, &o->quiet, "no progress bar", NULL},
        {"json", OPT_FLAG, &a->json, "print a JSON result line", NULL},
    };
    memcpy(options, table, sizeof table);
    return CLI_GENERATE_OPTIONS;
}

static int generate_finish(cli_generate_args *a);
static int agree_request(cli_generate_args *a, int status);

int cli_generate_finish(cli_generate_args *a)
{
    return agree_request(a, generate_finish(a));
}

static int generate_finish(cli_generate_args *a)
{
    if (a->prompt && a->prompt_file) return error_set("give --prompt or --prompt-file, not both");
    if (a->lora_scales.count > a->loras.count)
        return error_set("%d --lora-scale for %d --lora: each strength goes with the --lora of its place",
                         a->lora_scales.count, a->loras.count);
    for (int i = 0; i < a->loras.count; i++) {
        if (!*a->loras.values[i]) return error_set("--lora: an empty file name");
        if (i >= a->lora_scales.count) a->lora_scales.values[i] = 1.0;
        if (a->lora_scales.values[i] == 0)
            return error_set("--lora-scale 0 for %s: that is no LoRA at all; leave out its --lora", a->loras.values[i]);
    }
    if (a->max_sequence_length < 0 || a->max_sequence_length > 1 << 20)
        return error_set("--max-sequence-length %lld: must be 1..%d", (long long)a->max_sequence_length, 1 << 20);
    a->o.max_sequence_length = (int)a->max_sequence_length;
    if (a->o.text_device && strcmp(a->o.text_device, "cpu") && strcmp(a->o.text_device, "cuda"))
        return error_set("option --text-device: '%s' is not cpu or cuda", a->o.text_device);
    a->o.lora_paths = a->loras.values;
    a->o.lora_scales = a->lora_scales.values;
    a->o.lora_count = a->loras.count;
    if (a->prompt_file && read_prompt_file(a->prompt_file, &a->prompt_buffer, a->prompts, &a->o.prompt_count))
        return -1;
    if (a->prompt) {
        a->prompts[0] = a->prompt;
        a->o.prompt_count = 1;
    }
    a->o.prompts = a->prompts;
    a->o.seed = (uint64_t)a->seed;
    moedit_parallel par = {(int)a->tp, (int)a->ulysses, (int)a->ring, (int)a->cfg, (int)a->dp,
                           a->o.parallel.expert_parallel, (int)a->vae_patch};
    a->o.parallel = par;
    return 0;
}

/* What the ranks compare beyond the options (cli.h): the prompt file's
 * lines (the first few one by one, so a message can name the one that
 * differs), the model folder's files; then the comparison itself. */
#define PROMPTS_COMPARED_ONE_BY_ONE 16
static int agree_request(cli_generate_args *a, int status)
{
    if (status == 0 && a->prompt_file) {
        char count[32], name[64];
        snprintf(count, sizeof count, "%d", a->o.prompt_count);
        moedit_request_add("the number of prompts in --prompt-file", count);
        for (int i = 0; i < a->o.prompt_count && i < PROMPTS_COMPARED_ONE_BY_ONE; i++) {
            snprintf(name, sizeof name, "prompt %d of --prompt-file", i + 1);
            moedit_request_add(name, a->prompts[i]);
        }
        size_t length = 0, used = 0;
        for (int i = PROMPTS_COMPARED_ONE_BY_ONE; i < a->o.prompt_count; i++) length += strlen(a->prompts[i]) + 1;
        char *rest = length ? malloc(length) : NULL;
        for (int i = PROMPTS_COMPARED_ONE_BY_ONE; rest && i < a->o.prompt_count; i++)
            used += (size_t)snprintf(rest + used, length - used, "%s\n", a->prompts[i]);
        if (length) moedit_request_add("the prompts of --prompt-file after the 16th", rest ? rest : "(out of memory)");
        free(rest);
    }
    if (status == 0) moedit_request_add_model(a->o.model_dir);
    return moedit_agree_request(status);
}

void cli_generate_report(const cli_generate_args *a, const moedit_generate_result *r)
{
    if (a->json && r->count > 0) {
        printf("{\"files\":[");
        for (int i = 0; i < r->count; i++) {
            if (i) putchar(',');
            json_write_string(stdout, r->files[i]);
        }
        printf("],\"seeds\":[");
        for (int i = 0; i < r->count; i++) printf("%s%llu", i ? "," : "", r->seeds[i]);
        printf("],\"seconds\":{\"load\":%.3f,\"text\":%.3f,\"encode\":%.3f,\"denoise\":%.3f,\"decode\":%.3f,"
               "\"total\":%.3f}",
               r->load_seconds, r->text_seconds, r->encode_seconds, r->denoise_seconds, r->decode_seconds,
               r->total_seconds);
        /* HiDream's four encoders, when this rank ran them. */
        static const char *const encoders[4] = {"clip_l", "clip_g", "t5", "llama"};
        int hidream = r->text_encoder_seconds[0] > 0;
        for (int k = 0; k < 4 && hidream; k++)
            printf("%s\"%s\":{\"seconds\":%.3f,\"peak_bytes\":%lld}", k ? "," : ",\"text_encoders\":{",
                   encoders[k], r->text_encoder_seconds[k], (long long)r->text_encoder_peak_bytes[k]);
        printf("%s}\n", hidream ? "}" : "");
    }
    if (!a->json && !a->o.quiet)
        for (int i = 0; i < r->count; i++) fprintf(stderr, "wrote %s (seed %llu)\n", r->files[i], r->seeds[i]);
}

void cli_generate_free(cli_generate_args *a)
{
    free(a->prompt_buffer);
    a->prompt_buffer = NULL;
}

int cli_generate(int argc, char **argv)
{
    cli_generate_args *a = malloc(sizeof *a);
    moedit_generate_result *r = calloc(1, sizeof *r);
    if (!a || !r) {
        free(a), free(r);
        return error_set("out of memory");
    }
    cli_option options[CLI_GENERATE_OPTIONS];
    int count = cli_generate_options(a, options, "image height in pixels (default 1024)",
                                     "image width in pixels (default 1024)");
    int status = cli_parse(argc, argv, "usage: moedit generate --model DIR --prompt TEXT [options]", options, count);
    if (status == 0) status = cli_generate_finish(a);
    if (status == 0) status = moedit_generate(&a->o, r);
    if (status == 0) cli_generate_report(a, r);
    cli_generate_free(a);
    moedit_generate_result_free(r);
    free(a), free(r);
    return status < 0 ? -1 : 0;
}
