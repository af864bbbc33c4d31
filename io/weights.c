/* Named weight loading with shape checks, sharding and random fill; see weights.h. */
#include "io/weights.h"

#include "core/error.h"
#include "core/host_memory.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void weight_loader_init(weight_loader *wl, backend *be, const safetensors *st, int random, uint64_t seed)
{
    memset(wl, 0, sizeof *wl);
    wl->be = be;
    wl->st = st;
    wl->random = random;
    wl->seed = seed;
    wl->prefix = "";
}

int weight_exists(const weight_loader *wl, const char *name)
{
    if (wl->random) return 1;
    char full[512];
    snprintf(full, sizeof full, "%s%s", wl->prefix, name);
    return safetensors_dtype_of(wl->st, full) != NULL; /* of any dtype: weight_load says if it cannot read it */
}

static float *staging(weight_loader *wl, size_t floats)
{
    if (floats > wl->staging_floats) {
        free(wl->staging);
        wl->staging = malloc(floats * sizeof(float));
        wl->staging_floats = wl->staging ? floats : 0;
        if (!wl->staging) error_set("out of memory: host staging buffer of %zu MiB", floats * 4 >> 20);
    }
    return wl->staging;
}

/* FNV-1a of the name: the Philox stream of a random tensor. */
static uint64_t name_stream(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return h;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The random fill of a tensor: RMS/LayerNorm/GroupNorm weights are ones
 * (is_ones; their biases are biases); the rest uniform in (-a, a), whose
 * variance a^2 / 3 matches nn.Linear's usual 1/fan-in scale (a convolution
 * loaded as [Cout, Cin * k * k]: fan-in Cin k^2; biases and vectors: std 0.02). */
static int is_ones(const char *name, int64_t cols)
{
    return cols == 0 && strstr(name, "norm") != NULL && !ends_with(name, ".bias");
}

static float random_scale(const char *name, int64_t cols)
{
    if (ends_with(name, ".bias")) return sqrtf(3.0f) * 0.02f;
    return sqrtf(3.0f) * (cols ? 1.0f / sqrtf((float)cols) : 0.02f);
}

/* This shard's block of the full [rows, cols] matrix (a vector: cols 0). */
static void shard_block(int64_t rows, int64_t cols, weight_shard shard, int64_t *first_row, int64_t *out_rows,
                        int64_t *first_col, int64_t *out_cols)
{
    *first_row = *first_col = 0;
    *out_rows = rows;
    *out_cols = cols;
    int64_t extent = shard.axis == SHARD_ROWS ? rows : cols;
    if (shard.axis == SHARD_NONE) return;
    int64_t first = shard.bounds ? shard.bounds[shard.index] : extent * shard.index / shard.count;
    int64_t last = shard.bounds ? shard.bounds[shard.index + 1] : extent * (shard.index + 1) / shard.count;
    if (shard.axis == SHARD_ROWS) *first_row = first, *out_rows = last - first;
    else *first_col = first, *out_cols = last - first;
}

/* Copies the shard's block out of the full [rows, cols] matrix in place (to
 * the front of the buffer). */
static void take_shard(float *full, int64_t rows, int64_t cols, weight_shard shard)
{
    int64_t width = cols ? cols : 1, first_row, out_rows, first_col, out_cols;
    shard_block(rows, cols, shard, &first_row, &out_rows, &first_col, &out_cols);
    if (shard.axis == SHARD_ROWS)
        memmove(full, full + first_row * width, (size_t)(out_rows * width) * sizeof(float));
    else if (shard.axis == SHARD_COLS)
        for (int64_t r = 0; r < rows; r++)
            memmove(full + r * out_cols, full + r * cols + first_col, (size_t)out_cols * sizeof(float));
}

static int remember(weight_loader *wl, void *ptr)
{
    if (wl->allocation_count == wl->allocation_capacity) {
        int capacity = wl->allocation_capacity ? 2 * wl->allocation_capacity : 256;
        void **grown = realloc(wl->allocations, (size_t)capacity * sizeof *grown);
        if (!grown) return error_set("out of memory tracking weights");
        wl->allocations = grown;
        wl->allocation_capacity = capacity;
    }
    wl->allocations[wl->allocation_count++] = ptr;
    return 0;
}

/* weight_load into a tensor of `dtype` on the backend's device. */
static int load_as(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols, weight_shard shard,
                   tensor_dtype dtype)
{
    char full_name[512];
    snprintf(full_name, sizeof full_name, "%s%s", wl->prefix, name);
    if (shard.axis == SHARD_COLS && cols == 0) return error_set("tensor %s: a vector cannot be split by columns", name);
    int64_t first_row, shard_rows, first_col, shard_cols;
    shard_block(rows, cols, shard, &first_row, &shard_rows, &first_col, &shard_cols);
    backend *be = wl->be;
    *out = cols ? tensor_make_2d(dtype, be->device, shard_rows, shard_cols)
                : tensor_make(dtype, be->device, 1, &shard_rows);
    out->data = be->ops->alloc(be, tensor_nbytes(out));
    if (!out->data) return error_prefix("loading tensor %s", full_name);
    if (remember(wl, out->data) != 0) return -1;
    if (wl->random && is_ones(full_name, cols)) {
        be->ops->fill(be, *out, 1.0f);
    } else if (wl->random) {
        /* Made on the device, block by block: no host copy of the full tensor. */
        be->ops->fill_uniform(be, *out, wl->seed, name_stream(full_name), random_scale(full_name, cols),
                              cols ? cols : 1, first_row, first_col);
    } else {
        float *host = staging(wl, (size_t)(rows * (cols ? cols : 1)));
        int64_t shape[2] = {rows, cols};
        if (!host || safetensors_read_f32(wl->st, full_name, cols ? 2 : 1, shape, host) != 0) return -1;
        for (int i = 0; i < wl->lora_count; i++) /* before the split */
            if (lora_apply(wl->loras[i], full_name, host, rows, cols)) return -1;
        take_shard(host, rows, cols, shard);
        be->ops->upload(be, *out, host);
    }
    wl->bytes_on_device += (int64_t)tensor_nbytes(out);
    wl->parameters += tensor_numel(out);
    return 0;
}

int weight_load(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols, weight_shard shard)
{
    return load_as(wl, out, name, rows, cols, shard, wl->be->dtype);
}

int weight_load_f32(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols, weight_shard shard)
{
    return load_as(wl, out, name, rows, cols, shard, DTYPE_F32);
}

int weight_load_indices(weight_loader *wl, tensor *out, const int32_t *values, int64_t n)
{
    backend *be = wl->be;
    *out = tensor_make(DTYPE_I32, be->device, 1, &n);
    out->data = be->ops->alloc(be, tensor_nbytes(out));
    if (!out->data) return error_prefix("loading an index map of %lld entries", (long long)n);
    if (remember(wl, out->data) != 0) return -1;
    /* upload() takes F32; I32 values travel bit-for-bit as 4-byte words. */
    be->ops->upload(be, *out, (const float *)(const void *)values);
    return 0;
}

void weight_loader_finish(weight_loader *wl)
{
    free(wl->staging);
    wl->staging = NULL;
    wl->staging_floats = 0;
}

void weight_loader_free_all(weight_loader *wl)
{
    for (int i = 0; i < wl->allocation_count; i++) wl->be->ops->free(wl->be, wl->allocations[i]);
    free(wl->allocations);
    wl->allocations = NULL;
    wl->allocation_count = wl->allocation_capacity = 0;
    weight_loader_finish(wl);
}

int weights_check_host_memory(const backend *be, const safetensors *st, const char *what)
{
    if (be->device != DEVICE_CPU) return 0;
    int64_t bytes = 0;
    for (int i = 0; i < safetensors_count(st); i++) {
        const safetensors_entry *e = safetensors_entry_at(st, i);
        bytes += (int64_t)(e->nbytes / dtype_size(e->dtype)) * (int64_t)dtype_size(be->dtype);
    }
    return host_memory_check(bytes, what);
}

int weights_check_random_host_memory(const backend *be, int64_t parameters, const char *what)
{
    if (be->device != DEVICE_CPU) return 0;
    return host_memory_check(parameters * (int64_t)dtype_size(be->dtype), what);
}

int weights_load_dir(weight_loader *wl, backend *be, const char *dir, int random, uint64_t seed,
                     int64_t parameters, const char *what, int (*load)(void *user, const safetensors *st),
                     void *user)
{
    safetensors *st = NULL;
    int status = random ? weights_check_random_host_memory(be, parameters, what)
                        : safetensors_open_dir(&st, dir, "model");
    if (!status && !random) status = weights_check_host_memory(be, st, what);
    if (!status) {
        weight_loader_init(wl, be, st, random, seed);
        status = load(user, st);
        weight_loader_finish(wl);
    }
    safetensors_close(st);
    return status;
}
