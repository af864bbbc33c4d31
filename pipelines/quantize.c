/* moedit quantize: a copy of a model folder whose transformer is FP8
 * (docs/fp8.md). The transformer's weights that --precision fp8 holds in
 * FP8 (dit_weight_quantized) are written as
 *   NAME        F8_E4M3 [out, in]   codes, rounded to nearest even, saturating
 *   NAME_scale  F32 [out]           amax of the row / 448 (1 for a zero row)
 * (an F8_E4M3 source keeps its codes, its scales rewritten per row; any
 * other dtype, F8_E5M2 included, is read as values and quantized exactly as
 * the loader quantizes at load time), every other tensor as it is (F8 ones
 * that are not quantized weights: as F32 values), into one
 * diffusion_pytorch_model.safetensors beside the config. The other
 * components are hard-linked (or copied). Everything is made in a hidden
 * folder beside the output and renamed to it at the end, so a failed run
 * leaves no output. The quantized codes are held in memory until written:
 * 1 byte per quantized weight. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "moedit.h"

#include "core/error.h"
#include "dit/dit_config.h"
#include "dit/dit_model.h"
#include "io/directory_tree.h"
#include "io/fp8_weights.h"
#include "io/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_BUFFER 4096

/* What one output tensor of the transformer holds, and what to free. */
typedef struct quantized_file {
    const char **names;
    tensor *tensors;
    void **owned;
    int count, capacity, owned_count;
    int64_t quantized_weights;
} quantized_file;

static int add_tensor(quantized_file *q, const char *name, tensor t, void *owned)
{
    if (q->count == q->capacity) {
        int capacity = q->capacity ? 2 * q->capacity : 256;
        const char **names = realloc(q->names, (size_t)capacity * sizeof *names);
        if (names) q->names = names;
        tensor *tensors = names ? realloc(q->tensors, (size_t)capacity * sizeof *tensors) : NULL;
        if (tensors) q->tensors = tensors;
        void **owned_list = tensors ? realloc(q->owned, (size_t)(2 * capacity) * sizeof *owned_list) : NULL;
        if (!owned_list) return error_set("out of memory listing the transformer's tensors");
        q->owned = owned_list;
        q->capacity = capacity;
    }
    char *copy = strdup(name);
    if (!copy) return error_set("out of memory");
    q->owned[q->owned_count++] = copy;
    if (owned) q->owned[q->owned_count++] = owned;
    q->names[q->count] = copy;
    q->tensors[q->count++] = t;
    return 0;
}

static void quantized_file_free(quantized_file *q)
{
    for (int i = 0; i < q->owned_count; i++) free(q->owned[i]);
    free(q->owned);
    free(q->names);
    free(q->tensors);
}

/* The weight as codes and per-row scales (NAME, NAME_scale). */
static int add_quantized(quantized_file *q, const safetensors *st, const safetensors_entry *e)
{
    int64_t rows = e->shape[0], cols = e->shape[1];
    uint8_t *codes = malloc((size_t)(rows * cols) + 1);
    float *scales = malloc((size_t)rows * sizeof(float) + 1);
    float *staging = e->dtype == DTYPE_F8_E4M3 ? NULL : malloc((size_t)(rows * cols) * sizeof(float) + 1);
    int status = !codes || !scales || (e->dtype != DTYPE_F8_E4M3 && !staging)
                     ? error_set("out of memory quantizing %s", e->name)
                     : fp8_read_quantized(st, e->name, rows, cols, codes, scales, staging);
    free(staging);
    char scale_name[512];
    snprintf(scale_name, sizeof scale_name, "%s%s", e->name, FP8_SCALE_SUFFIX);
    tensor w = tensor_make_2d(DTYPE_F8_E4M3, DEVICE_CPU, rows, cols), s = tensor_make(DTYPE_F32, DEVICE_CPU, 1, &rows);
    w.data = codes;
    s.data = scales;
    if (status || add_tensor(q, e->name, w, codes)) {
        free(codes);
        free(scales);
        return -1;
    }
    q->quantized_weights++;
    return add_tensor(q, scale_name, s, scales) ? (free(scales), -1) : 0;
}

/* A tensor kept as it is (from the mapping), or an F8 one as its F32 values. */
static int add_kept(quantized_file *q, const safetensors *st, const safetensors_entry *e)
{
    tensor t = tensor_make(e->dtype, DEVICE_CPU, e->ndim, e->shape);
    t.data = (void *)e->data;
    if (!fp8_is_stored(st, e->name)) return add_tensor(q, e->name, t, NULL);
    int64_t rows = e->ndim ? e->shape[0] : 1, cols = e->ndim == 2 ? e->shape[1] : 0;
    if (e->ndim > 2) return error_set("%s: F8 tensor \"%s\" has %d dimensions; moedit reads F8 matrices and vectors",
                                      e->file, e->name, e->ndim);
    float *values = malloc((size_t)(rows * (cols ? cols : 1)) * sizeof(float) + 1);
    if (!values || fp8_read_dequantized(st, e->name, rows, cols, values)) {
        free(values);
        return values ? -1 : error_set("out of memory reading %s", e->name);
    }
    t.dtype = DTYPE_F32;
    t.data = values;
    return add_tensor(q, e->name, t, values) ? (free(values), -1) : 0;
}

static int join(char *buf, const char *dir, const char *name)
{
    int n = snprintf(buf, PATH_BUFFER, "%s/%s", dir, name);
    return n > 0 && n < PATH_BUFFER ? 0 : error_set("%s/%s: path too long", dir, name);
}

static int is_safetensors_file(const char *name)
{
    size_t n = strlen(name);
    return (n > 12 && !strcmp(name + n - 12, ".safetensors")) ||
           (n > 23 && !strcmp(name + n - 23, ".safetensors.index.json"));
}

/* dst/: the source's files other than weights (config.json...), then the quantized weights. */
static int quantize_transformer(const char *src, const char *dst, int64_t *quantized)
{
    char from[PATH_BUFFER], to[PATH_BUFFER];
    if (mkdir(dst, 0755) != 0) return error_set("cannot create %s: %s", dst, strerror(errno));
    DIR *d = opendir(src);
    if (!d) return error_set("cannot open directory %s: %s", src, strerror(errno));
    int status = 0;
    for (struct dirent *e; status == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.' || is_safetensors_file(e->d_name)) continue;
        status = join(from, src, e->d_name) || join(to, dst, e->d_name) || directory_tree_copy(from, to) ? -1 : 0;
    }
    closedir(d);
    safetensors *st = NULL;
    if (status || safetensors_open_dir(&st, src, "diffusion_pytorch_model")) return -1;
    quantized_file q = {0};
    for (int i = 0; i < safetensors_count(st) && status == 0; i++) {
        const safetensors_entry *e = safetensors_entry_at(st, i);
        if (fp8_is_scale_name(st, e->name)) continue; /* written with its weight */
        int quantize = e->ndim == 2 && dit_weight_quantized(e->name);
        status = quantize ? add_quantized(&q, st, e) : add_kept(&q, st, e);
    }
    if (status == 0 && join(to, dst, "diffusion_pytorch_model.safetensors")) status = -1;
    if (status == 0 && q.quantized_weights == 0)
        status = error_set("%s: no linear weight to quantize (is it a HiDreamImageTransformer2DModel?)", src);
    if (status == 0) status = safetensors_write(to, q.names, q.tensors, q.count);
    *quantized = q.quantized_weights;
    quantized_file_free(&q);
    safetensors_close(st);
    return status;
}

/* A hidden folder beside `output` for the copy in progress, into buf. */
static int make_work_folder(const char *output, char *buf)
{
    const char *slash = strrchr(output, '/');
    int n = slash ? snprintf(buf, PATH_BUFFER, "%.*s/.%s.moedit-quantize-XXXXXX", (int)(slash - output), output,
                             slash + 1)
                  : snprintf(buf, PATH_BUFFER, ".%s.moedit-quantize-XXXXXX", output);
    if (n <= 0 || n >= PATH_BUFFER) return error_set("--output %s: path too long", output);
    if (!mkdtemp(buf)) return error_set("--output %s: cannot make a folder beside it: %s", output, strerror(errno));
    return 0;
}

static int check_request(const char *model_dir, const char *output_dir, const char *precision)
{
    struct stat info;
    char path[PATH_BUFFER];
    dit_config cfg;
    if (precision && strcmp(precision, "fp8"))
        return error_set("--precision %s: quantize writes fp8 (the only precision it knows)", precision);
    if (!model_dir) return error_set("quantize needs --model DIR");
    if (!output_dir || !output_dir[0]) return error_set("quantize needs --output DIR (a new folder)");
    if (stat(model_dir, &info) != 0 || !S_ISDIR(info.st_mode))
        return error_set("--model %s is not a directory (give the model's folder, the one with model_index.json)",
                         model_dir);
    if (join(path, model_dir, "transformer/config.json")) return -1;
    if (access(path, R_OK) != 0)
        return error_set("--model %s is not a diffusers model folder: no transformer/config.json", model_dir);
    if (dit_config_load(&cfg, path)) return -1;
    size_t n = strlen(output_dir);
    while (n > 1 && output_dir[n - 1] == '/') n--;
    if (lstat(output_dir, &info) == 0 || (n < strlen(output_dir) && stat(output_dir, &info) == 0))
        return error_set("--output %s exists: quantize writes a new folder and never overwrites one", output_dir);
    return 0;
}

int moedit_quantize(const char *model_dir, const char *output_dir, const char *precision, int64_t *quantized)
{
    char work[PATH_BUFFER], from[PATH_BUFFER], to[PATH_BUFFER], output[PATH_BUFFER];
    *quantized = 0;
    if (check_request(model_dir, output_dir, precision)) return -1;
    if (strlen(output_dir) >= sizeof output - 64) return error_set("--output %s: path too long", output_dir);
    snprintf(output, sizeof output, "%s", output_dir);
    for (size_t n = strlen(output); n > 1 && output[n - 1] == '/'; n--) output[n - 1] = '\0';
    if (make_work_folder(output, work)) return -1;
    DIR *d = opendir(model_dir);
    int status = d ? 0 : error_set("cannot open directory %s: %s", model_dir, strerror(errno));
    for (struct dirent *e; status == 0 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (join(from, model_dir, e->d_name) || join(to, work, e->d_name)) status = -1;
        else if (strcmp(e->d_name, "transformer")) status = directory_tree_copy(from, to);
        else status = quantize_transformer(from, to, quantized);
    }
    if (d) closedir(d);
    if (status == 0 && chmod(work, 0755) != 0) status = error_set("%s: %s", work, strerror(errno));
    if (status == 0 && rename(work, output) != 0)
        status = error_set("cannot rename %s to %s: %s", work, output, strerror(errno));
    if (status) directory_tree_remove(work);
    return status;
}
