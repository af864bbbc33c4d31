/* Loading a transformer from a damaged model directory fails with one clear
 * message naming the file and tensor or key, and never crashes: a missing
 * tensor, a tensor of the wrong shape, a malformed config, a config value of
 * the wrong type, inconsistent config values, and no weight file at all.
 * Each case copies the dit_dense fixture into a temporary directory and
 * damages one thing. */
#include "backend/backend.h"
#include "core/error.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "dit/dit_model.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char model_dir[256];

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* Rewrites the fixture's weights into model_dir: `drop` is left out, and
 * `reshape` (if set) is written with its first dimension cut by one. */
static void write_weights(const char *drop, const char *reshape)
{
    char path[512];
    safetensors *st = NULL;
    snprintf(path, sizeof path, "%s/dit_dense/transformer/diffusion_pytorch_model.safetensors", MOEDIT_FIXTURES);
    if (safetensors_open(&st, path)) {
        CHECK_MSG(0, "%s", error_message());
        return;
    }
    int n = safetensors_count(st), kept = 0;
    const char **names = calloc((size_t)n, sizeof *names);
    tensor *tensors = calloc((size_t)n, sizeof *tensors);
    float **buffers = calloc((size_t)n, sizeof *buffers);
    for (int i = 0; i < n; i++) {
        const safetensors_entry *e = safetensors_entry_at(st, i);
        if (drop && !strcmp(e->name, drop)) continue;
        tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, e->ndim, e->shape);
        buffers[kept] = malloc(tensor_nbytes(&t));
        safetensors_read_f32(st, e->name, e->ndim, e->shape, buffers[kept]);
        if (reshape && !strcmp(e->name, reshape)) t.shape[0] -= 1;
        t.data = buffers[kept];
        names[kept] = e->name;
        tensors[kept++] = t;
    }
    snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model.safetensors", model_dir);
    CHECK_MSG(safetensors_write(path, names, tensors, kept) == 0, "%s", error_message());
    for (int i = 0; i < kept; i++) free(buffers[i]);
    free(buffers), free(tensors), free(names);
    safetensors_close(st);
}

static void write_config(const char *from, const char *to)
{
    char path[512];
    snprintf(path, sizeof path, "%s/dit_dense/transformer/config.json", MOEDIT_FIXTURES);
    char *text = NULL;
    CHECK_MSG(text_file_read(path, 1 << 20, "config", &text) == 0, "%s", error_message());
    if (!text) return;
    if (from) {
        char *at = strstr(text, from);
        CHECK_MSG(at != NULL, "config has no %s", from);
        if (at) {
            size_t size = strlen(text) + strlen(to) + 1;
            char *edited = calloc(size, 1);
            memcpy(edited, text, (size_t)(at - text));
            strcat(edited, to);
            strcat(edited, at + strlen(from));
            free(text);
            text = edited;
        }
    }
    snprintf(path, sizeof path, "%s/transformer/config.json", model_dir);
    CHECK(write_text(path, text) == 0);
    free(text);
}

/* Loads model_dir; expects failure with a message holding every `needle`. */
static void expect_failure(const char *what, const char *needle1, const char *needle2)
{
    backend *be = backend_cpu_create();
    dit_model model;
    error_clear();
    int status = dit_model_load(&model, be, model_dir, 0, 0, NULL);
    CHECK_MSG(status != 0, "%s: loaded anyway", what);
    if (status == 0) dit_model_free(&model);
    const char *msg = error_message();
    CHECK_MSG(strstr(msg, needle1) && (!needle2 || strstr(msg, needle2)), "%s: message '%s' lacks '%s' / '%s'",
              what, msg, needle1, needle2 ? needle2 : "");
    CHECK_MSG(strchr(msg, '\n') == NULL, "%s: message spans lines", what);
    printf("  %-28s -> %s\n", what, msg);
    backend_destroy(be);
}

int main(void)
{
    char dir_template[] = "/tmp/moedit_loader_XXXXXX", sub[600];
    CHECK(mkdtemp(dir_template) != NULL);
    snprintf(model_dir, sizeof model_dir, "%s", dir_template);
    snprintf(sub, sizeof sub, "%s/transformer", model_dir);
    mkdir(sub, 0755);

    write_config(NULL, NULL);
    write_weights(NULL, NULL);
    backend *be = backend_cpu_create();
    dit_model model;
    CHECK_MSG(dit_model_load(&model, be, model_dir, 0, 0, NULL) == 0, "intact copy: %s", error_message());
    dit_model_free(&model);
    backend_destroy(be);

    write_weights("single_stream_blocks.1.block.attn1.to_k.bias", NULL);
    expect_failure("missing tensor", "single_stream_blocks.1.block.attn1.to_k.bias", "diffusion_pytorch_model");
    write_weights(NULL, "double_stream_blocks.0.block.ff_t.w2.weight");
    expect_failure("wrong shape", "double_stream_blocks.0.block.ff_t.w2.weight", "shape");
    write_weights(NULL, NULL);

    write_config("\"num_attention_heads\": 2", "\"num_attention_heads\": 2,,");
    expect_failure("malformed config", "config.json", NULL);
    write_config("\"num_attention_heads\": 2", "\"num_attention_heads\": \"two\"");
    expect_failure("wrong-typed config value", "num_attention_heads", "config.json");
    write_config("\"num_attention_heads\": 2", "\"num_attention_heads\": 3");
    expect_failure("config disagrees with weights", "shape", NULL);
    write_config("\"llama_layers\": [", "\"llama_layers\": [1, ");
    expect_failure("llama_layers count", "llama_layers", "entries");
    write_config("\"axes_dims_rope\": [", "\"axes_dims_rope\": [6, ");
    expect_failure("rope axes vs head dim", "axes_dims_rope", NULL);
    write_config("\"num_activated_experts\": 2", "\"num_activated_experts\": -1");
    expect_failure("negative top-k", "num_activated_experts", NULL);
    /* Sizes whose product or sum would overflow int (undefined behaviour under the sanitizer build). */
    write_config("\"num_attention_heads\": 2", "\"num_attention_heads\": 1000000000");
    expect_failure("heads x head dim beyond int", "num_attention_heads x attention_head_dim", "not supported");
    write_config("\"axes_dims_rope\": [", "\"axes_dims_rope\": [1073741824, 1073741824], \"old_axes\": [");
    expect_failure("rope axes beyond the size limit", "axes_dims_rope", "not supported");
    write_config("\"max_resolution\": [", "\"max_resolution\": [4294967304, 8], \"old_resolution\": [");
    expect_failure("max_resolution beyond int", "max_resolution", "not supported");
    write_config(NULL, NULL);

    snprintf(sub, sizeof sub, "%s/transformer/diffusion_pytorch_model.safetensors", model_dir);
    unlink(sub);
    expect_failure("no weight file", "transformer", NULL);
    snprintf(sub, sizeof sub, "%s/transformer/config.json", model_dir);
    unlink(sub);
    expect_failure("no config", "config.json", NULL);

    snprintf(sub, sizeof sub, "%s/transformer", model_dir);
    rmdir(sub);
    rmdir(model_dir);
    return test_finish("test_dit_loader_errors");
}
