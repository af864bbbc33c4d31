/* Routing capture/replay records and their safetensors file; see moe_routing.h. */
#include "moe/moe_routing.h"

#include "core/error.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void moe_routing_init(moe_routing *r, routing_mode mode)
{
    memset(r, 0, sizeof *r);
    r->mode = mode;
}

void moe_routing_free(moe_routing *r)
{
    for (int i = 0; i < r->count; i++) free(r->records[i].experts);
    free(r->records);
    r->records = NULL;
    r->count = r->capacity = 0;
}

static routing_record *find_record(const moe_routing *r, int step, int branch, int layer)
{
    for (int i = 0; i < r->count; i++) {
        routing_record *rec = &r->records[i];
        if (rec->step == step && rec->branch == branch && rec->layer == layer) return rec;
    }
    return NULL;
}

static routing_record *add_record(moe_routing *r, int step, int branch, int layer, int64_t rows, int top_k)
{
    if (r->count == r->capacity) {
        int capacity = r->capacity ? 2 * r->capacity : 64;
        routing_record *grown = realloc(r->records, (size_t)capacity * sizeof *grown);
        if (!grown) return NULL;
        r->records = grown;
        r->capacity = capacity;
    }
    routing_record *rec = &r->records[r->count];
    rec->experts = calloc((size_t)(rows * top_k), sizeof(int32_t));
    if (!rec->experts) return NULL;
    rec->step = step;
    rec->branch = branch;
    rec->layer = layer;
    rec->rows = rows;
    rec->top_k = top_k;
    r->count++;
    return rec;
}

int moe_routing_store(moe_routing *r, int branch, int layer, int64_t first_row, int64_t rows, int64_t total_rows,
                      int top_k, const int32_t *experts)
{
    routing_record *rec = find_record(r, r->step, branch, layer);
    if (!rec) rec = add_record(r, r->step, branch, layer, total_rows, top_k);
    if (!rec) return error_set("out of memory capturing routing");
    if (rec->rows < first_row + rows || rec->top_k != top_k)
        return error_set("routing capture: layer %d of step %d changed shape", layer, r->step);
    memcpy(rec->experts + first_row * top_k, experts, (size_t)(rows * top_k) * sizeof(int32_t));
    return 0;
}

int moe_routing_lookup(const moe_routing *r, int branch, int layer, int64_t first_row, int64_t rows, int top_k,
                       const int32_t **experts)
{
    const routing_record *rec = find_record(r, r->step, branch, layer);
    if (!rec)
        return error_set("routing replay %s: no record for step %d, branch %d, layer %d", r->source, r->step,
                         branch, layer);
    if (rec->top_k != top_k || first_row + rows > rec->rows)
        return error_set("routing replay %s: step %d, branch %d, layer %d holds [%lld, %d], needs rows up to %lld "
                         "with top-%d",
                         r->source, r->step, branch, layer, (long long)rec->rows, rec->top_k,
                         (long long)(first_row + rows), top_k);
    *experts = rec->experts + first_row * top_k;
    return 0;
}

int moe_routing_save(const moe_routing *r, const char *path)
{
    char (*names)[64] = calloc((size_t)(r->count ? r->count : 1), sizeof *names);
    const char **name_list = calloc((size_t)(r->count ? r->count : 1), sizeof *name_list);
    tensor *tensors = calloc((size_t)(r->count ? r->count : 1), sizeof *tensors);
    int status = -1;
    if (!names || !name_list || !tensors) {
        error_set("out of memory saving routing to %s", path);
        goto done;
    }
    for (int i = 0; i < r->count; i++) {
        const routing_record *rec = &r->records[i];
        snprintf(names[i], sizeof names[i], "step%d.branch%d.layer%d", rec->step, rec->branch, rec->layer);
        name_list[i] = names[i];
        tensors[i] = tensor_make_2d(DTYPE_I32, DEVICE_CPU, rec->rows, rec->top_k);
        tensors[i].data = rec->experts;
    }
    status = safetensors_write(path, name_list, tensors, r->count);
done:
    free(names);
    free(name_list);
    free(tensors);
    return status;
}

int moe_routing_load(moe_routing *r, const char *path)
{
    safetensors *st = NULL;
    if (safetensors_open(&st, path)) return -1;
    snprintf(r->source, sizeof r->source, "%s", path);
    int status = 0;
    for (int i = 0; i < safetensors_count(st) && status == 0; i++) {
        const safetensors_entry *entry = safetensors_entry_at(st, i);
        int step, branch, layer;
        if (sscanf(entry->name, "step%d.branch%d.layer%d", &step, &branch, &layer) != 3 ||
            entry->dtype != DTYPE_I32 || entry->ndim != 2) {
            status = error_set("routing file %s: tensor %s is not an I32 [tokens, K] routing record", path,
                               entry->name);
            break;
        }
        routing_record *rec = add_record(r, step, branch, layer, entry->shape[0], (int)entry->shape[1]);
        if (!rec) status = error_set("out of memory loading routing from %s", path);
        else memcpy(rec->experts, entry->data, entry->nbytes);
    }
    safetensors_close(st);
    return status;
}
