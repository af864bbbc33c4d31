/* Fuzz target: safetensors files (io/safetensors.c) and what reads them
 * whole (moe/moe_routing.c's routing captures).
 *
 * An input that starts with '{' is a sharded index
 * (model.safetensors.index.json) beside one valid shard, shard.safetensors;
 * any other input is a model.safetensors file. Whatever opens is read back
 * tensor by tensor (F32 and I32 conversions at the entry's own shape) and as
 * a routing capture. Any input must fail with an error or succeed: no crash,
 * no out-of-bounds read, no leak. */
#include "tests/fuzz/fuzz_files.h"

#include "core/error.h"
#include "io/safetensors.h"
#include "moe/moe_routing.h"

/* Two tensors: "a" F32 [2] = {1, 2}, "b" I32 [1] = {7}; header padded to 8 bytes. */
static void write_shard(void)
{
    static const char header[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                 "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
    uint8_t file[8 + sizeof header + 8 + 12];
    size_t n = sizeof header - 1, padded = (n + 7) / 8 * 8;
    memset(file, ' ', sizeof file);
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)(padded >> (8 * i));
    memcpy(file + 8, header, n);
    float a[2] = {1, 2};
    int32_t b = 7;
    memcpy(file + 8 + padded, a, 8);
    memcpy(file + 8 + padded + 8, &b, 4);
    fuzz_file_write("shard.safetensors", file, 8 + padded + 12);
}

static void read_every_tensor(const safetensors *st)
{
    for (int i = 0; i < safetensors_count(st); i++) {
        const safetensors_entry *e = safetensors_entry_at(st, i);
        (void)safetensors_dtype_of(st, e->name);
        if (safetensors_find(st, e->name) == NULL) abort(); /* an entry must be found by its name */
        int64_t elements = 1;
        for (int d = 0; d < e->ndim; d++) elements *= e->shape[d];
        if (elements > (1 << 20)) continue;
        void *buffer = malloc((size_t)(elements ? elements : 1) * 4);
        if (!buffer) continue;
        (void)safetensors_read_f32(st, e->name, e->ndim, e->shape, buffer);
        (void)safetensors_read_i32(st, e->name, e->ndim, e->shape, buffer);
        free(buffer);
    }
    (void)safetensors_require(st, "no such tensor");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path;
    if (size && data[0] == '{') {
        write_shard();
        path = fuzz_file_write("model.safetensors.index.json", data, size);
    } else {
        path = fuzz_file_write("model.safetensors", data, size);
    }
    safetensors *st = NULL;
    if (safetensors_open(&st, path) == 0) {
        read_every_tensor(st);
        safetensors_close(st);
    }
    moe_routing routing;
    moe_routing_init(&routing, ROUTING_REPLAY);
    (void)moe_routing_load(&routing, path);
    moe_routing_free(&routing);
    error_clear();
    return 0;
}
