/* `moedit inspect`: a summary of a diffusers-format model directory.
 *
 * For every component directory (transformer, vae, text_encoder, ...) it
 * reads config.json for the class and key settings and the safetensors
 * headers (no weights are loaded) for parameter count, dtypes and size. The
 * transformer's counts are also derived from its config, which gives the
 * active parameters per token of a MoE. */
#include "moedit.h"

#include "core/config.h"
#include "core/error.h"
#include "io/json_out.h"
#include "io/fp8_weights.h"
#include "io/safetensors.h"
#include "dit/dit_model.h"
#include "pipelines/model_bundle.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *moedit_error(void) { return error_message(); }

typedef struct weights_summary {
    int64_t parameters;
    int64_t bytes;
    int64_t tensors;
    int64_t by_dtype[DTYPE_F8_E5M2 + 1]; /* parameters per tensor_dtype */
} weights_summary;

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int summarize_weights(const char *dir, weights_summary *out)
{
    /* diffusers' file stem, then transformers' (each also finds a sharded
     * checkpoint's index, which the stem names). */
    static const char *const stems[] = {"diffusion_pytorch_model", "model"};
    safetensors *st = NULL;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof stems / sizeof stems[0] && !st; i++)
        if (safetensors_open_dir(&st, dir, stems[i]) != 0) st = NULL;
    if (!st) {
        error_clear();
        return 0; /* a component without weights (scheduler, tokenizer) */
    }
    for (int i = 0; i < safetensors_count(st); i++) {
        const safetensors_entry *e = safetensors_entry_at(st, i);
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        out->bytes += (int64_t)e->nbytes;
        if (fp8_is_scale_name(st, e->name)) continue; /* an FP8 weight's scales: part of that weight */
        out->parameters += n;
        out->tensors++;
        out->by_dtype[e->dtype] += n;
    }
    safetensors_close(st);
    return 1;
}

static const char *main_dtype(const weights_summary *w)
{
    int best = 0;
    for (int d = 1; d <= DTYPE_F8_E5M2; d++)
        if (w->by_dtype[d] > w->by_dtype[best]) best = d;
    return dtype_name((tensor_dtype)best);
}

static const char *component_config_name(const char *component)
{
    if (!strcmp(component, "scheduler")) return "scheduler_config.json";
    return !strncmp(component, "tokenizer", 9) ? "tokenizer_config.json" : "config.json";
}

/* The class a component's config names: diffusers' _class_name, transformers'
 * architectures[0] or tokenizer_class, else its model_type; "?" for none. */
static const char *class_of(const config *cfg)
{
    static const char *const keys[] = {"_class_name", "tokenizer_class", "model_type"};
    const char *name = NULL, *architectures[8];
    int count = 0;
    if (config_has(cfg, "architectures") &&
        config_get_string_array(cfg, "architectures", architectures, 8, &count) == 0 && count > 0)
        return architectures[0];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (config_has(cfg, keys[i]) && config_get_string(cfg, keys[i], &name) == 0) return name;
    error_clear();
    return "?";
}

static void print_transformer(const char *path, int json, FILE *out)
{
    dit_config cfg;
    if (dit_config_load(&cfg, path) != 0) {
        if (json) {
            fprintf(out, ",\"config_error\":");
            json_write_string(out, error_message());
        } else {
            fprintf(out, "    config error: %s\n", error_message());
        }
        error_clear();
        return;
    }
    long long total = (long long)dit_parameter_count(&cfg), active = (long long)dit_active_parameter_count(&cfg);
    if (json) {
        fprintf(out,
                ",\"dim\":%d,\"heads\":%d,\"head_dim\":%d,\"double_blocks\":%d,\"single_blocks\":%d,"
                "\"routed_experts\":%d,\"top_k\":%d,\"patch_size\":%d,\"config_parameters\":%lld,"
                "\"active_parameters_per_token\":%lld",
                cfg.dim, cfg.heads, cfg.head_dim, cfg.num_double_blocks, cfg.num_single_blocks,
                cfg.num_routed_experts, cfg.num_activated_experts, cfg.patch_size, total, active);
        return;
    }
    fprintf(out, "    dim %d = %d heads x %d, %d double + %d single blocks, patch %d, in/out channels %d/%d\n",
            cfg.dim, cfg.heads, cfg.head_dim, cfg.num_double_blocks, cfg.num_single_blocks, cfg.patch_size,
            cfg.in_channels, cfg.out_channels);
    if (cfg.num_routed_experts > 0)
        fprintf(out, "    MoE: %d routed experts, top-%d, + shared expert; FFN hidden %lld (shared %lld)\n",
                cfg.num_routed_experts, cfg.num_activated_experts, (long long)cfg.ffn_hidden,
                (long long)cfg.shared_ffn_hidden);
    else
        fprintf(out, "    dense feed-forward, hidden %lld\n", (long long)cfg.ffn_hidden);
    fprintf(out, "    parameters from config: %.3f M total, %.3f M active per token\n", total / 1e6, active / 1e6);
}

static int print_component(const char *model_dir, const char *component, int json, int first, FILE *out)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/%s", model_dir, component);
    snprintf(path, sizeof path, "%s/%s", dir, component_config_name(component));
    const char *class_name = "?";
    config *cfg = NULL;
    if (config_load(&cfg, path) == 0) class_name = class_of(cfg);
    else error_clear();
    char tokenizer_file[4200];
    snprintf(tokenizer_file, sizeof tokenizer_file, "%s/tokenizer.json", dir);
    if (!cfg && !strncmp(component, "tokenizer", 9) && access(tokenizer_file, R_OK) == 0)
        class_name = "tokenizer.json"; /* a tokenizers file alone, as moedit's own models have */
    weights_summary w;
    int has_weights = summarize_weights(dir, &w);
    if (json) {
        fprintf(out, "%s\"%s\":{\"class\":", first ? "" : ",", component);
        json_write_string(out, class_name);
        if (has_weights)
            fprintf(out, ",\"parameters\":%lld,\"tensors\":%lld,\"dtype\":\"%s\",\"bytes\":%lld",
                    (long long)w.parameters, (long long)w.tensors, main_dtype(&w), (long long)w.bytes);
    } else {
        fprintf(out, "  %-13s %s\n", component, class_name);
        if (has_weights)
            fprintf(out, "    weights: %.3f M parameters in %lld tensors, %s, %.2f MiB on disk\n",
                    w.parameters / 1e6, (long long)w.tensors, main_dtype(&w), w.bytes / 1048576.0);
    }
    if (!strcmp(component, "transformer")) print_transformer(path, json, out);
    if (json) fprintf(out, "}");
    config_free(cfg);
    return 0;
}

/* Loads the transformer's weights on the CPU and frees them again. */
static int check_transformer(const char *model_dir)
{
    backend *be = backend_cpu_create();
    if (!be) return -1;
    dit_model model;
    int status = dit_model_load(&model, be, model_dir, 0, 0, NULL);
    if (status == 0) dit_model_free(&model);
    backend_destroy(be);
    return status;
}

int moedit_inspect(const char *model_dir, int json, int check, FILE *out)
{
    /* moedit's own models have one text encoder, HiDream-I1 four (which
     * moedit does not run: tools/encode_prompt.py); all are listed. */
    static const char *components[] = {"transformer",    "vae",         "text_encoder",   "tokenizer",
                                       "text_encoder_2", "tokenizer_2", "text_encoder_3", "tokenizer_3",
                                       "text_encoder_4", "tokenizer_4", "scheduler"};
    if (model_dir_check(model_dir)) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/transformer", model_dir);
    if (!is_dir(path)) return error_set("%s has no transformer/ directory: not a diffusers model", model_dir);
    if (check && check_transformer(model_dir) != 0) return -1;
    if (!out) return 0;
    if (json) {
        fprintf(out, "{\"model\":");
        json_write_string(out, model_dir);
        fprintf(out, ",\"components\":{");
    } else {
        fprintf(out, "model %s\n", model_dir);
    }
    int first = 1;
    for (size_t i = 0; i < sizeof components / sizeof components[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", model_dir, components[i]);
        if (!is_dir(path)) continue;
        print_component(model_dir, components[i], json, first, out);
        first = 0;
    }
    if (json) fprintf(out, "}%s}\n", check ? ",\"checked\":true" : "");
    else if (check) fprintf(out, "all transformer weights loaded and match the config\n");
    return 0;
}
