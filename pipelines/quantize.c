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
 * leaves no output; a signal (SIGINT, SIGTERM, SIGHUP) removes the folder
 * (temp_file_folder_create). The file is written tensor by tensor (header
 * first, from the source's shapes): one weight's codes (and, from an F32
 * source, its values) are in memory at a time. */
#define _POSIX_C_SOURCE 200809L /* lstat */
#include "moedit.h"

#include "core/error.h"
#include "dit/dit_config.h"
#include "dit/dit_model.h"
#include "io/directory_tree.h"
#include "io/fp8_weights.h"
#include "io/safetensors.h"
#include "io/temp_file.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_BUFFER 4096

/* The output file's tensors in order (name, dtype, shape), each with the
 * source tensor it is made from; written one by one, so only one tensor's
 * codes (or values) are in memory at a time. */
typedef enum { MADE_CODES, MADE_SCALES, KEPT, KEPT_AS_F32 } made_from;

typedef struct transformer_plan {
    char **names;
    tensor *layouts;
    const safetensors_entry **sources;
    made_from *kinds;
    int count, capacity;
    int64_t quantized_weights;
} transformer_plan;

static int plan_add(transformer_plan *p, const char *name, const char *suffix, tensor layout,
                    const safetensors_entry *source, made_from kind)
{
    if (p->count == p->capacity) {
        int capacity = p->capacity ? 2 * p->capacity : 256;
        char **names = realloc(p->names, (size_t)capacity * sizeof *names);
        if (names) p->names = names;
        tensor *layouts = names ? realloc(p->layouts, (size_t)capacity * sizeof *layouts) : NULL;
        if (layouts) p->layouts = layouts;
        const safetensors_entry **sources = layouts ? realloc(p->sources, (size_t)capacity * sizeof *sources) : NULL;
        if (sources) p->sources = sources;
        made_from *kinds = sources ? realloc(p->kinds, (size_t)capacity * sizeof *kinds) : NULL;
        if (!kinds) return error_set("out of memory listing the transformer's tensors");
        p->kinds = kinds;
        p->capacity = capacity;
    }
    size_t n = strlen(name) + strlen(suffix) + 1;
    char *full = malloc(n);
    if (!full) return error_set("out of memory");
    snprintf(full, n, "%s%s", name, suffix);
    p->names[p->count] = full;
    p->layouts[p->count] = layout;
    p->sources[p->count] = source;
    p->kinds[p->count++] = kind;
    return 0;
}

static void plan_free(transformer_plan *p)
{
    for (int i = 0; i < p->count; i++) free(p->names[i]);
    free(p->names);
    free(p->layouts);
    free(p->sources);
    free(p->kinds);
}

/* The output tensors made from source tensor e: a quantized weight's codes
 * and scales (NAME, NAME_scale), or the tensor kept (an F8 one that is no
 * quantized weight: as its F32 values). */
static int plan_entry(transformer_plan *p, const safetensors *st, const safetensors_entry *e)
{
    if (e->ndim == 2 && dit_weight_quantized(e->name)) {
        int64_t rows = e->shape[0];
        p->quantized_weights++;
        return plan_add(p, e->name, "", tensor_make_2d(DTYPE_F8_E4M3, DEVICE_CPU, rows, e->shape[1]), e,
                        MADE_CODES) ||
               plan_add(p, e->name, FP8_SCALE_SUFFIX, tensor_make(DTYPE_F32, DEVICE_CPU, 1, &rows), e, MADE_SCALES);
    }
    tensor kept = tensor_make(e->dtype, DEVICE_CPU, e->ndim, e->shape);
    if (!fp8_is_stored(st, e->name)) return plan_add(p, e->name, "", kept, e, KEPT);
    if (e->ndim == 0 || e->ndim > 2)
        return error_set("%s: F8 tensor \"%s\" has %d dimensions; moedit reads F8 matrices and vectors", e->file,
                         e->name, e->ndim);
    kept.dtype = DTYPE_F32;
    return plan_add(p, e->name, "", kept, e, KEPT_AS_F32);
}

/* Appends the quantized weight e as codes, then scales (plan items i, i + 1). */
static int write_quantized(safetensors_writer *w, const safetensors *st, const transformer_plan *p, int i)
{
    const safetensors_entry *e = p->sources[i];
    int64_t rows = e->shape[0], cols = e->shape[1];
    tensor codes = p->layouts[i], scales = p->layouts[i + 1];
    codes.data = malloc((size_t)(rows * cols) + 1);
    scales.data = malloc((size_t)rows * sizeof(float) + 1);
    float *staging = e->dtype == DTYPE_F8_E4M3 ? NULL : malloc((size_t)(rows * cols) * sizeof(float) + 1);
    int status = !codes.data || !scales.data || (e->dtype != DTYPE_F8_E4M3 && !staging)
                     ? error_set("out of memory quantizing %s", e->name)
                     : fp8_read_quantized(st, e->name, rows, cols, codes.data, scales.data, staging);
    free(staging);
    safetensors_release(e);
    if (status == 0) status = safetensors_writer_append(w, &codes) || safetensors_writer_append(w, &scales) ? -1 : 0;
    free(codes.data);
    free(scales.data);
    return status;
}

/* Appends the kept tensor of plan item i: from the mapping, or an F8 one as F32 values. */
static int write_kept(safetensors_writer *w, const safetensors *st, const transformer_plan *p, int i)
{
    const safetensors_entry *e = p->sources[i];
    tensor t = p->layouts[i];
    int status;
    if (p->kinds[i] == KEPT) {
        t.data = (void *)e->data;
        status = safetensors_writer_append(w, &t);
        safetensors_release(e);
        return status;
    }
    int64_t rows = e->shape[0], cols = e->ndim == 2 ? e->shape[1] : 0; /* plan_entry kept 1 or 2 dimensions */
    float *values = malloc((size_t)(rows * (cols ? cols : 1)) * sizeof(float) + 1);
    status = !values ? error_set("out of memory reading %s", e->name)
                     : fp8_read_dequantized(st, e->name, rows, cols, values);
    safetensors_release(e);
    t.data = values;
    if (status == 0) status = safetensors_writer_append(w, &t);
    free(values);
    return status;
}

/* The plan's tensors into path, one at a time. */
static int write_plan(const char *path, const safetensors *st, const transformer_plan *p)
{
    safetensors_writer *w = NULL;
    if (safetensors_writer_open(&w, path, (const char *const *)p->names, p->layouts, p->count)) return -1;
    int status = 0;
    for (int i = 0; i < p->count && status == 0; i++) {
        if (p->kinds[i] == MADE_SCALES) continue; /* written with its codes */
        status = p->kinds[i] == MADE_CODES ? write_quantized(w, st, p, i) : write_kept(w, st, p, i);
    }
    if (status) {
        safetensors_writer_discard(w);
        return -1;
    }
    return safetensors_writer_commit(w);
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
    transformer_plan plan = {0};
    for (int i = 0; i < safetensors_count(st) && status == 0; i++) {
        const safetensors_entry *e = safetensors_entry_at(st, i);
        if (fp8_is_scale_name(st, e->name)) continue; /* written with its weight */
        status = fp8_check_scale_of(st, e->name) || plan_entry(&plan, st, e) ? -1 : 0;
    }
    if (status == 0 && join(to, dst, "diffusion_pytorch_model.safetensors")) status = -1;
    if (status == 0 && plan.quantized_weights == 0)
        status = error_set("%s: no linear weight to quantize (is it a HiDreamImageTransformer2DModel?)", src);
    if (status == 0) status = write_plan(to, st, &plan);
    *quantized = plan.quantized_weights;
    plan_free(&plan);
    safetensors_close(st);
    return status;
}

/* A hidden folder beside `output` for the copy in progress, into buf; a
 * signal removes it until *slot is released (io/temp_file.h). */
static int make_work_folder(const char *output, char *buf, int *slot)
{
    const char *slash = strrchr(output, '/');
    int n = slash ? snprintf(buf, PATH_BUFFER, "%.*s/.%s.moedit-quantize-XXXXXX", (int)(slash - output), output,
                             slash + 1)
                  : snprintf(buf, PATH_BUFFER, ".%s.moedit-quantize-XXXXXX", output);
    if (n <= 0 || n >= PATH_BUFFER) return error_set("--output %s: path too long", output);
    if (temp_file_folder_create(buf, slot)) return error_set("--output %s: cannot make a folder beside it: %s", output, strerror(errno));
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

/* Errors while writing name the hidden work folder's files; the user knows
 * them by --output's name, under which they would have appeared. */
static void name_output_in_error(const char *work, const char *output)
{
    const char *message = error_message(), *at = strstr(message, work);
    if (!at) return;
    char text[2 * PATH_BUFFER];
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - message), message, output, at + strlen(work));
    error_set("%s", text);
}

int moedit_quantize(const char *model_dir, const char *output_dir, const char *precision, int64_t *quantized)
{
    char work[PATH_BUFFER], from[PATH_BUFFER], to[PATH_BUFFER], output[PATH_BUFFER];
    *quantized = 0;
    if (check_request(model_dir, output_dir, precision)) return -1;
    if (strlen(output_dir) >= sizeof output - 64) return error_set("--output %s: path too long", output_dir);
    snprintf(output, sizeof output, "%s", output_dir);
    for (size_t n = strlen(output); n > 1 && output[n - 1] == '/'; n--) output[n - 1] = '\0';
    int slot;
    if (make_work_folder(output, work, &slot)) return -1;
    DIR *d = opendir(model_dir);
    int status = d ? 0 : error_set("cannot open directory %s: %s", model_dir, strerror(errno));
    for (struct dirent *e; status == 0 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (join(from, model_dir, e->d_name) || join(to, work, e->d_name)) status = -1;
        else if (strcmp(e->d_name, "transformer")) status = directory_tree_copy(from, to);
        else status = quantize_transformer(from, to, quantized);
    }
    if (d) closedir(d);
    if (status) name_output_in_error(work, output);
    if (status == 0 && chmod(work, 0755) != 0) status = error_set("%s: %s", work, strerror(errno));
    if (status == 0 && rename(work, output) != 0)
        status = error_set("cannot rename %s to %s: %s", work, output, strerror(errno));
    if (status) directory_tree_remove(work);
    temp_file_folder_release(slot);
    return status;
}
