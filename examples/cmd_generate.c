/* moedit generate: text to image (see moedit.h); and the options that edit
 * shares with it (cli.h). */
#include "examples/cli.h"

#include "core/byte_size.h"
#include "core/error.h"
#include "io/json_out.h"
#include "core/text_file.h"
#include "moedit.h"

#include <errno.h>
#include <math.h>
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

static const char *output_help(const char *command)
{
    if (!strcmp(command, "video"))
        return "clip.png (an animated PNG) or DIR/ (numbered frames), numbered -0, -1... for several prompts "
               "(default moedit.png)";
    return "output .png or .jpg, numbered -0, -1... for several (default moedit.png)";
}

int cli_generate_options(cli_generate_args *a, cli_option *options, const char *command)
{
    memset(a, 0, sizeof *a);
    moedit_generate_options defaults = {
        .height = CLI_UNSET, .width = CLI_UNSET, .steps = CLI_UNSET, .guidance = NAN, .images_per_prompt = 1,
        .batch_size = 1, .output = "moedit.png", .device = "auto",
    };
    a->o = defaults;
    a->command = command;
    a->seed = "-1";
    /* 0: not given (the library reads 0 as 1; cli_generate_finish tells "none given" apart). */
    a->tp = a->ulysses = a->ring = a->cfg = a->dp = 0;
    a->vae_patch = 1;
    int video = !strcmp(command, "video"), edit = !strcmp(command, "edit");
    const char *height_help = edit ? "output height (default: the input's, on the grid)"
                              : video ? "frame height (model default: its clips' size, 256 unless the model says)"
                                      : "image height in pixels (model default: the transformer's trained size)";
    const char *width_help = edit ? "output width (default: the input's, on the grid)"
                             : video ? "frame width (model default: its clips' size, 256 unless the model says)"
                                     : "image width in pixels (model default: the transformer's trained size)";
    moedit_generate_options *o = &a->o;
    cli_option table[] = {
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
        {"num-inference-steps", OPT_INT, &o->steps,
         "denoising steps (model default: the folder's, else 50; models/demo: 20)", "N"},
        {"guidance-scale", OPT_FLOAT, &o->guidance,
         "classifier-free guidance; 1 disables it (model default: the folder's, else 5; models/demo: 4)", "G"},
        {"seed", OPT_STRING, &a->seed,
         "noise seed, 0..2^64-1 (default -1: a random one, reported); image i of a prompt uses seed + i", "S"},
        {"num-images-per-prompt", OPT_INT, &o->images_per_prompt,
         video ? "clips per prompt (default 1)" : "images per prompt (default 1)", "N"},
        {"batch-size", OPT_INT, &o->batch_size,
         video ? "1 only: clips are denoised one at a time (generate and edit take up to 8)"
               : "images denoised together, their CFG branches in one transformer forward a step (default 1; at most "
                 "8)",
         "N"},
        {"output", OPT_STRING, &o->output, output_help(command), video ? "FILE|DIR/" : "FILE"},
        {"overwrite", OPT_FLAG, &a->overwrite,
         video ? "replace existing files, and an earlier run's frames in a frames directory (default: the next free "
                 "name, clip-1.png; a directory with old frames is refused)"
               : "replace existing files (default: the next free name, e.g. out-1.png)",
         NULL},
        {"output-latents", OPT_STRING, &o->latents_output, "also save the final latents (safetensors)", "FILE"},
        CLI_DEVICE_OPTION(&o->device),
        {"precision", OPT_STRING, &o->precision, "native (default: cpu F32, cuda BF16) or fp8: the transformer's linear layers in FP8 E4M3 (docs/fp8.md; CPU only for now)", "P"},
        {"max-gpu-memory", OPT_STRING, &o->max_gpu_memory,
         "device memory the run may take (24G, 512M): transformer blocks that do not fit stay in host memory and "
         "are copied in ahead of use (docs/memory-budget.md)",
         "SIZE"},
        {"random-weights", OPT_FLAG, &o->random_weights, "seeded random weights for every component, no weight files (benchmarks)", NULL},
        {"tensor-parallel-size", OPT_INT, &a->tp, "ranks splitting heads and hidden units", "N"},
        {"ulysses-degree", OPT_INT, &a->ulysses, "ranks splitting the sequence by all-to-all", "N"},
        {"ring-degree", OPT_INT, &a->ring, "ranks splitting the sequence by ring attention", "N"},
        {"cfg-parallel-size", OPT_INT, &a->cfg, "2: cond and uncond branches on two halves of the ranks", "N"},
        {"data-parallel-size", OPT_INT, &a->dp,
         "replicas working on different images (default under mpirun -np N with no other layout flag: N)", "N"},
        {"enable-expert-parallel", OPT_FLAG, &o->parallel.expert_parallel,
         "shard experts over the tp x ulysses x ring ranks (a mixture-of-experts transformer only)", NULL},
        {"expert-parallel-scope", OPT_STRING, &a->expert_scope,
         "with EP: branch (default: the tp x ulysses x ring ranks of one CFG branch and replica) or world (every "
         "rank, across CFG branches and data-parallel replicas; docs/expert-parallel.md)",
         "SCOPE"},
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
        {"quiet", OPT_FLAG, &o->quiet, "no progress bar, notes or warnings: only errors and results", NULL},
        {"json", OPT_FLAG, &a->json, "print a JSON result line", NULL},
    };
    /* Merged branches that each add an option must not lose one silently. */
    _Static_assert(sizeof table / sizeof table[0] == CLI_GENERATE_OPTIONS - CLI_CACHE_OPTIONS,
                   "CLI_GENERATE_OPTIONS does not count generate's options");
    memcpy(options, table, sizeof table);
    cli_cache_options(&o->cache, options + CLI_GENERATE_OPTIONS - CLI_CACHE_OPTIONS);
    return CLI_GENERATE_OPTIONS;
}

/* --seed: -1 (the default) draws a random seed below 2^32, the same on every
 * rank (moedit_random_seed); else an unsigned 64-bit number. */
static int parse_seed(const char *text, uint64_t *seed)
{
    if (!strcmp(text, "-1")) {
        *seed = moedit_random_seed() & 0xffffffffu;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || text[0] == '+' || text[0] == ' ')
        return error_set("option --seed: '%s' is not a seed (0..18446744073709551615, or -1 for a random one)", text);
    *seed = v;
    return 0;
}

/* Height, width, steps and guidance left out: the model's (edit: the input's size). */
static void apply_model_defaults(cli_generate_args *a)
{
    moedit_generate_options *o = &a->o;
    int edit = !strcmp(a->command, "edit"), video = !strcmp(a->command, "video");
    moedit_model_defaults d;
    /* An unreadable model keeps the fallbacks: the run then names what is wrong with it. */
    if (!o->model_dir || moedit_model_defaults_load(o->model_dir, &d)) {
        error_clear();
        d = (moedit_model_defaults){.height = 1024, .width = 1024, .steps = 50, .guidance = 5.0,
                                    .video_height = 256, .video_width = 256};
    }
    int64_t height = edit ? 0 : video ? d.video_height : d.height, width = edit ? 0 : video ? d.video_width : d.width;
    /* One side given: the other keeps the model's aspect (edit: the input's, as before). */
    if (o->height == CLI_UNSET && o->width != CLI_UNSET && !edit && width > 0) o->height = o->width * height / width;
    if (o->width == CLI_UNSET && o->height != CLI_UNSET && !edit && height > 0) o->width = o->height * width / height;
    if (o->height == CLI_UNSET) o->height = height;
    if (o->width == CLI_UNSET) o->width = width;
    if (o->steps == CLI_UNSET) o->steps = d.steps;
    if (isnan(o->guidance)) o->guidance = d.guidance;
}

/* No layout flag on N ranks: data parallel N, said once. */
static void default_layout(cli_generate_args *a)
{
    int ranks = moedit_world_size();
    if (ranks == 1 || a->tp || a->ulysses || a->ring || a->cfg || a->dp) return;
    a->dp = ranks;
    if (moedit_rank() == 0 && !a->o.quiet)
        fprintf(stderr, "moedit: note: %d ranks and no layout flags: data parallel %d (each rank makes whole %s; "
                "--tensor-parallel-size, --ulysses-degree, --ring-degree, --cfg-parallel-size split one)\n",
                ranks, ranks, strcmp(a->command, "video") ? "images" : "clips");
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
    if (parse_seed(a->seed, &a->o.seed)) return -1;
    /* The library reads 0 as "one at a time"; on the command line 0 is a mistake. Checked here too (the
     * library checks both again) so that serve refuses them before it loads the model. */
    if (a->o.batch_size < 1 || a->o.batch_size > MOEDIT_MAX_BATCH_SIZE)
        return error_set("--batch-size %lld: must be 1..%d", (long long)a->o.batch_size, MOEDIT_MAX_BATCH_SIZE);
    int64_t budget;
    if (a->o.max_gpu_memory && byte_size_parse(a->o.max_gpu_memory, "--max-gpu-memory", &budget)) return -1;
    apply_model_defaults(a);
    a->o.keep_existing = !a->overwrite;
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
    /* Before default_layout's note, so that a bad scope is the only line. */
    int scope = MOEDIT_EXPERT_SCOPE_BRANCH;
    if (a->expert_scope && strcmp(a->expert_scope, "branch")) {
        if (strcmp(a->expert_scope, "world"))
            return error_set("option --expert-parallel-scope: '%s' is not branch or world", a->expert_scope);
        scope = MOEDIT_EXPERT_SCOPE_WORLD;
    }
    if (a->expert_scope && !a->o.parallel.expert_parallel)
        return error_set("--expert-parallel-scope %s needs --enable-expert-parallel", a->expert_scope);
    default_layout(a);
    moedit_parallel par = {(int)a->tp, (int)a->ulysses, (int)a->ring, (int)a->cfg, (int)a->dp,
                           a->o.parallel.expert_parallel, (int)a->vae_patch, scope};
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
        if (hidream) printf("}");
        cli_cache_report(stdout, r);
        printf(",\"peak_device_bytes\":%lld,\"streamed_blocks\":%d}\n", (long long)r->peak_device_bytes,
               r->streamed_blocks);
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
    int count = cli_generate_options(a, options, "generate");
    int status = cli_parse(argc, argv, "usage: moedit generate --model DIR --prompt TEXT [options]", options, count);
    if (status == 0) status = cli_generate_finish(a);
    if (status == 0) status = moedit_generate(&a->o, r);
    if (status == 0) cli_generate_report(a, r);
    cli_generate_free(a);
    moedit_generate_result_free(r);
    free(a), free(r);
    return status < 0 ? -1 : 0;
}
