/* Named weight loading with shape checks, sharding and random fill; see weights.h. */
#include "io/weights.h"

#include "core/error.h"
#include "core/float8.h"
#include "core/host_memory.h"
#include "core/philox.h"
#include "io/fp8_weights.h"

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

/* Copies the shard's block out of the full [rows, cols] matrix of `elem`-byte
 * elements in place (to the front of the buffer). */
static void take_shard(void *full, size_t elem, int64_t rows, int64_t cols, weight_shard shard)
{
    int64_t width = cols ? cols : 1, first_row, out_rows, first_col, out_cols;
    char *bytes = full;
    shard_block(rows, cols, shard, &first_row, &out_rows, &first_col, &out_cols);
    if (shard.axis == SHARD_ROWS)
        memmove(bytes, bytes + (size_t)(first_row * width) * elem, (size_t)(out_rows * width) * elem);
    else if (shard.axis == SHARD_COLS)
        for (int64_t r = 0; r < rows; r++)
            memmove(bytes + (size_t)(r * out_cols) * elem, bytes + (size_t)(r * cols + first_col) * elem,
                    (size_t)out_cols * elem);
}

static int remember(weight_loader *wl, void *ptr, size_t bytes)
{
    if (wl->allocation_count == wl->allocation_capacity) {
        int capacity = wl->allocation_capacity ? 2 * wl->allocation_capacity : 256;
        void **grown = realloc(wl->allocations, (size_t)capacity * sizeof *grown);
        if (grown) wl->allocations = grown;
        size_t *sizes = grown ? realloc(wl->allocation_bytes, (size_t)capacity * sizeof *sizes) : NULL;
        if (sizes) wl->allocation_bytes = sizes;
        if (!grown || !sizes) return error_set("out of memory tracking weights");
        wl->allocation_capacity = capacity;
    }
    wl->allocation_bytes[wl->allocation_count] = bytes;
    wl->allocations[wl->allocation_count++] = ptr;
    return 0;
}

/* The full [rows, cols] tensor's F32 values into host: an F8 tensor times its
 * scales (io/fp8_weights.h), then the LoRAs merged (before any split). */
static int read_values(weight_loader *wl, const char *full_name, int64_t rows, int64_t cols, float *host)
{
    if (fp8_read_dequantized(wl->st, full_name, rows, cols, host)) return -1;
    for (int i = 0; i < wl->lora_count; i++)
        if (lora_apply(wl->loras[i], full_name, host, rows, cols)) return -1;
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
    if (remember(wl, out->data, tensor_nbytes(out)) != 0) return -1;
    if (wl->random && is_ones(full_name, cols)) {
        be->ops->fill(be, *out, 1.0f);
    } else if (wl->random) {
        /* Made on the device, block by block: no host copy of the full tensor. */
        be->ops->fill_uniform(be, *out, wl->seed, name_stream(full_name), random_scale(full_name, cols),
                              cols ? cols : 1, first_row, first_col);
    } else {
        float *host = staging(wl, (size_t)(rows * (cols ? cols : 1)));
        if (!host || read_values(wl, full_name, rows, cols, host)) return -1;
        take_shard(host, sizeof(float), rows, cols, shard);
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

/* The full matrix as E4M3 codes and per-row scales (host: rows * cols values,
 * then rows scales): random weights made as fill_uniform makes them, a
 * stored F8_E4M3 weight as it is (no LoRA: nothing to merge), anything else
 * read as values and quantized. */
static int read_quantized(weight_loader *wl, const char *full_name, int64_t rows, int64_t cols, float *host,
                          uint8_t *codes)
{
    float *scales = host + rows * cols;
    if (wl->random) {
        float scale = random_scale(full_name, cols);
        uint64_t stream = name_stream(full_name);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            philox_fill_uniform(wl->seed, stream, (uint64_t)(r * cols), cols, host + r * cols);
            for (int64_t c = 0; c < cols; c++) host[r * cols + c] *= scale;
        }
    } else if (!wl->lora_count) {
        return fp8_read_quantized(wl->st, full_name, rows, cols, codes, scales, host);
    } else if (read_values(wl, full_name, rows, cols, host)) {
        return -1;
    }
    f8_quantize_rows(host, rows, cols, codes, scales);
    return 0;
}

/* weight_load_linear under fp8: codes and scales quantized from the whole
 * matrix (each row's scale from the whole row), then split. */
static int load_quantized(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols,
                          weight_shard shard)
{
    char full_name[512];
    snprintf(full_name, sizeof full_name, "%s%s", wl->prefix, name);
    backend *be = wl->be;
    int64_t first_row, shard_rows, first_col, shard_cols;
    shard_block(rows, cols, shard, &first_row, &shard_rows, &first_col, &shard_cols);
    float *host = staging(wl, (size_t)(rows * cols + rows));
    uint8_t *codes = malloc((size_t)(rows * cols));
    int status = !host || !codes ? error_set("out of memory quantizing %s", full_name)
                                 : read_quantized(wl, full_name, rows, cols, host, codes);
    if (status) {
        free(codes);
        return -1;
    }
    float *scales = host + rows * cols;
    take_shard(codes, 1, rows, cols, shard);
    if (shard.axis == SHARD_ROWS) memmove(scales, scales + first_row, (size_t)shard_rows * sizeof(float));
    *out = tensor_make_2d(DTYPE_F8_E4M3, be->device, shard_rows, shard_cols);
    tensor scale = tensor_make(DTYPE_F32, be->device, 1, &shard_rows);
    out->data = be->ops->alloc(be, tensor_nbytes(out));
    out->scale = scale.data = out->data ? be->ops->alloc(be, tensor_nbytes(&scale)) : NULL;
    if (out->data && remember(wl, out->data, tensor_nbytes(out))) status = -1;
    if (out->scale && remember(wl, out->scale, tensor_nbytes(&scale))) status = -1;
    if (!status && (!out->data || !out->scale)) status = error_prefix("loading tensor %s", full_name);
    if (!status) {
        be->ops->upload(be, *out, (const float *)(const void *)codes); /* raw bytes (backend.h) */
        be->ops->upload(be, scale, scales);
        wl->bytes_on_device += (int64_t)(tensor_nbytes(out) + tensor_nbytes(&scale));
        wl->parameters += tensor_numel(out);
    }
    free(codes);
    return status;
}

int weight_load_linear(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols,
                       weight_shard shard)
{
    if (!wl->fp8) return weight_load(wl, out, name, rows, cols, shard);
    return load_quantized(wl, out, name, rows, cols, shard);
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
    if (remember(wl, out->data, tensor_nbytes(out)) != 0) return -1;
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
    free(wl->allocation_bytes);
    wl->allocations = NULL;
    wl->allocation_bytes = NULL;
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
