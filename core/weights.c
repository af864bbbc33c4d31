/* Named weight loading with shape checks, sharding and random fill; see weights.h. */
#include "core/weights.h"

#include "core/error.h"
#include "core/philox.h"

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
    return safetensors_find(wl->st, full) != NULL;
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

static void fill_random(const weight_loader *wl, const char *name, int64_t rows, int64_t cols, float *dst)
{
    int64_t n = rows * (cols ? cols : 1);
    if (cols == 0 && strstr(name, "norm") != NULL) {
        for (int64_t i = 0; i < n; i++) dst[i] = 1.0f;
        return;
    }
    /* Uniform in (-a, a) has variance a^2 / 3: a = sqrt(3) * the wanted std. */
    float scale = sqrtf(3.0f) * (cols ? 1.0f / sqrtf((float)cols) : 0.02f);
    if (ends_with(name, ".bias")) scale = sqrtf(3.0f) * 0.02f;
    /* Counter-based: chunks are independent, so threads fill them in parallel. */
    const int64_t chunk = 1 << 16;
    uint64_t stream = name_stream(name);
#pragma omp parallel for schedule(static)
    for (int64_t first = 0; first < n; first += chunk) {
        int64_t count = n - first < chunk ? n - first : chunk;
        philox_fill_uniform(wl->seed, stream, (uint64_t)first, count, dst + first);
        for (int64_t i = first; i < first + count; i++) dst[i] *= scale;
    }
}

/* Copies the shard's block out of the full [rows, cols] matrix in place
 * (to the front of the buffer). */
static void take_shard(float *full, int64_t rows, int64_t cols, weight_shard shard, int64_t *out_rows,
                       int64_t *out_cols)
{
    int64_t width = cols ? cols : 1;
    if (shard.axis == SHARD_ROWS) {
        int64_t first = rows * shard.index / shard.count, last = rows * (shard.index + 1) / shard.count;
        memmove(full, full + first * width, (size_t)((last - first) * width) * sizeof(float));
        *out_rows = last - first;
        *out_cols = cols;
    } else if (shard.axis == SHARD_COLS) {
        int64_t first = cols * shard.index / shard.count, last = cols * (shard.index + 1) / shard.count;
        for (int64_t r = 0; r < rows; r++)
            memmove(full + r * (last - first), full + r * cols + first, (size_t)(last - first) * sizeof(float));
        *out_rows = rows;
        *out_cols = last - first;
    } else {
        *out_rows = rows;
        *out_cols = cols;
    }
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

int weight_load(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols, weight_shard shard)
{
    char full_name[512];
    snprintf(full_name, sizeof full_name, "%s%s", wl->prefix, name);
    int64_t numel = rows * (cols ? cols : 1);
    float *host = staging(wl, (size_t)numel);
    if (!host) return -1;
    if (wl->random) {
        fill_random(wl, full_name, rows, cols, host);
    } else {
        int64_t shape[2] = {rows, cols};
        if (safetensors_read_f32(wl->st, full_name, cols ? 2 : 1, shape, host) != 0) return -1;
    }
    if (shard.axis == SHARD_COLS && cols == 0) return error_set("tensor %s: a vector cannot be split by columns", name);
    int64_t shard_rows, shard_cols;
    take_shard(host, rows, cols, shard, &shard_rows, &shard_cols);
    *out = cols ? tensor_make_2d(wl->be->dtype, wl->be->device, shard_rows, shard_cols)
                : tensor_make(wl->be->dtype, wl->be->device, 1, &shard_rows);
    out->data = wl->be->ops->alloc(wl->be, tensor_nbytes(out));
    if (!out->data) return error_prefix("loading tensor %s", full_name);
    if (remember(wl, out->data) != 0) return -1;
    wl->be->ops->upload(wl->be, *out, host);
    wl->bytes_on_device += (int64_t)tensor_nbytes(out);
    wl->parameters += tensor_numel(out);
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
