/* Blocks packed into host memory, placed under a budget, streamed in; see dit_weight_stream.h. */
#include "dit/dit_weight_stream.h"

#include "core/error.h"
#include "dit/dit_block.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE_ALIGN 256 /* every buffer of an image starts as cudaMalloc would start it */

static size_t align_up(size_t n) { return (n + IMAGE_ALIGN - 1) & ~(size_t)(IMAGE_ALIGN - 1); }

int dit_weight_stream_init(dit_weight_stream *s, int blocks)
{
    memset(s, 0, sizeof *s);
    s->blocks = blocks;
    size_t n = (size_t)(blocks > 0 ? blocks : 1);
    s->image_bytes = calloc(n, sizeof *s->image_bytes);
    s->host = calloc(n, sizeof *s->host);
    s->resident = calloc(n, sizeof *s->resident);
    s->buffer_of = calloc(n, sizeof *s->buffer_of);
    s->fields = calloc(n, sizeof *s->fields);
    s->offsets = calloc(n, sizeof *s->offsets);
    s->field_count = calloc(n, sizeof *s->field_count);
    for (int k = 0; k < BACKEND_UPLOAD_SLOTS; k++) s->holds[k] = -1;
    if (!s->image_bytes || !s->host || !s->resident || !s->buffer_of || !s->fields || !s->offsets || !s->field_count)
        return error_set("out of memory planning the transformer's weight streaming");
    return 0;
}

/* The offset in the packed image of device pointer p, which lies in one of
 * the block's buffers [first, last) of wl; (size_t)-1 when none. */
static size_t offset_of(const weight_loader *wl, int first, int last, const size_t *starts, const void *p)
{
    for (int i = first; i < last; i++) {
        const char *base = wl->allocations[i];
        size_t bytes = wl->allocation_bytes[i];
        if ((const char *)p >= base && (const char *)p < base + (bytes ? bytes : 1))
            return starts[i - first] + (size_t)((const char *)p - base);
    }
    return (size_t)-1;
}

/* Records where each data and scale pointer of the block's tensors points in the image. */
static int record_fields(dit_weight_stream *s, const weight_loader *wl, dit_block *block, int index, int first,
                         const size_t *starts)
{
    int count = dit_block_tensors(block, NULL);
    tensor **tensors = malloc((size_t)(count > 0 ? count : 1) * sizeof *tensors);
    s->fields[index] = malloc((size_t)(2 * count + 1) * sizeof(void *));
    s->offsets[index] = malloc((size_t)(2 * count + 1) * sizeof(size_t));
    if (!tensors || !s->fields[index] || !s->offsets[index]) {
        free(tensors);
        return error_set("out of memory planning the transformer's weight streaming");
    }
    dit_block_tensors(block, tensors);
    int n = 0;
    for (int t = 0; t < count; t++) {
        void **members[2] = {&tensors[t]->data, &tensors[t]->scale};
        for (int m = 0; m < 2; m++) {
            if (!*members[m]) continue;
            size_t offset = offset_of(wl, first, wl->allocation_count, starts, *members[m]);
            if (offset == (size_t)-1) continue; /* not this block's buffer (none today) */
            s->fields[index][n] = (void *)members[m];
            s->offsets[index][n++] = offset;
            *members[m] = NULL;
        }
    }
    s->field_count[index] = n;
    free(tensors);
    return 0;
}

int dit_weight_stream_pack(dit_weight_stream *s, weight_loader *wl, dit_block *block, int index, int first)
{
    backend *be = wl->be;
    int last = wl->allocation_count, buffers = last - first;
    size_t *starts = malloc((size_t)(buffers > 0 ? buffers : 1) * sizeof *starts), bytes = 0;
    if (!starts) return error_set("out of memory planning the transformer's weight streaming");
    for (int i = 0; i < buffers; i++) {
        starts[i] = bytes;
        bytes += align_up(wl->allocation_bytes[first + i]);
    }
    int status = record_fields(s, wl, block, index, first, starts);
    char *host = status ? NULL : be->ops->host_alloc(be, bytes ? bytes : 1);
    if (!status && !host) status = error_prefix("keeping transformer block %d in host memory", index);
    for (int i = 0; i < buffers && !status; i++)
        be->ops->download_raw(be, host + starts[i], wl->allocations[first + i], wl->allocation_bytes[first + i]);
    for (int i = first; i < last; i++) be->ops->free(be, wl->allocations[i]);
    wl->allocation_count = first;
    free(starts);
    if (status) {
        if (host) be->ops->host_free(be, host);
        return -1;
    }
    s->host[index] = host;
    s->image_bytes[index] = bytes;
    return 0;
}

/* Points block b's tensors into its image at base. */
static void place_fields(dit_weight_stream *s, int b, char *base)
{
    for (int i = 0; i < s->field_count[b]; i++) *(void **)s->fields[b][i] = base + s->offsets[b][i];
}

/* stream[b] = 1 for the `count` largest images (ties: the later block),
 * so the buffers are sized by as few blocks as possible. */
static void choose_streamed(const dit_weight_stream *s, int count, int *stream)
{
    memset(stream, 0, (size_t)s->blocks * sizeof *stream);
    for (int k = 0; k < count; k++) {
        int best = -1;
        for (int b = 0; b < s->blocks; b++)
            if (!stream[b] && (best < 0 || s->image_bytes[b] >= s->image_bytes[best])) best = b;
        stream[best] = 1;
    }
}

/* Device bytes the blocks take with `stream`'s blocks streamed; buffers sized into buffer_bytes. */
static int64_t blocks_cost(const dit_weight_stream *s, const int *stream, size_t *buffer_bytes, int64_t *resident)
{
    int ordinal = 0;
    *resident = 0;
    for (int k = 0; k < BACKEND_UPLOAD_SLOTS; k++) buffer_bytes[k] = 0;
    for (int b = 0; b < s->blocks; b++) {
        if (!stream[b]) {
            *resident += (int64_t)s->image_bytes[b];
            continue;
        }
        size_t *buffer = &buffer_bytes[ordinal++ % BACKEND_UPLOAD_SLOTS];
        if (s->image_bytes[b] > *buffer) *buffer = s->image_bytes[b];
    }
    int64_t cost = *resident;
    for (int k = 0; k < BACKEND_UPLOAD_SLOTS; k++) cost += (int64_t)buffer_bytes[k];
    return cost;
}

const char *dit_bytes_text(int64_t bytes, char *buf, size_t size)
{
    double b = (double)bytes;
    if (b >= 1024.0 * 1024 * 1024) snprintf(buf, size, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024) snprintf(buf, size, "%.2f MiB", b / (1024.0 * 1024));
    else if (b >= 1024.0) snprintf(buf, size, "%.1f KiB", b / 1024.0);
    else snprintf(buf, size, "%lld bytes", (long long)bytes);
    return buf;
}

static int too_small(const dit_stream_plan *p, const char *budget_text, int64_t buffers)
{
    char need[32], rest[32], buf[32], act[32];
    return error_set("--max-gpu-memory %s: too small for this run, which needs at least %s of device memory even with "
                     "all %d transformer blocks streamed from host memory (%s of weights kept resident, %s for the "
                     "two block buffers, about %s of activations)",
                     budget_text, dit_bytes_text(p->minimum, need, sizeof need), p->blocks,
                     dit_bytes_text(p->in_use, rest, sizeof rest), dit_bytes_text(buffers, buf, sizeof buf),
                     dit_bytes_text(p->activations, act, sizeof act));
}

/* Uploads a resident block's image into its own device buffer and frees the host copy. */
static int make_resident(dit_weight_stream *s, backend *be, int b)
{
    s->resident[b] = be->ops->alloc(be, s->image_bytes[b] ? s->image_bytes[b] : 1);
    if (!s->resident[b]) return error_prefix("placing transformer block %d on the device", b);
    be->ops->upload_async(be, 0, s->resident[b], s->host[b], s->image_bytes[b]);
    be->ops->upload_wait(be, 0);
    be->ops->synchronize(be); /* the host image is freed next */
    be->ops->host_free(be, s->host[b]);
    s->host[b] = NULL;
    place_fields(s, b, s->resident[b]);
    return 0;
}

int dit_weight_stream_place(dit_weight_stream *s, backend *be, int64_t budget, const char *budget_text,
                            int64_t in_use, int64_t activations, int stream_all, dit_stream_plan *plan)
{
    dit_stream_plan p = {budget, in_use, activations, 0, 0, 0, 0, s->blocks};
    int *stream = calloc((size_t)(s->blocks > 0 ? s->blocks : 1), sizeof *stream);
    if (!stream) return error_set("out of memory planning the transformer's weight streaming");
    size_t buffer_bytes[BACKEND_UPLOAD_SLOTS];
    int64_t resident;
    choose_streamed(s, s->blocks, stream);
    int64_t all_streamed = blocks_cost(s, stream, buffer_bytes, &resident);
    p.minimum = in_use + activations + all_streamed;
    int count = stream_all ? s->blocks : 0;
    for (;; count++) {
        choose_streamed(s, count, stream);
        int64_t cost = in_use + activations + blocks_cost(s, stream, buffer_bytes, &resident);
        if (cost <= budget || count >= s->blocks) break;
    }
    p.streamed = count;
    p.resident_blocks = resident;
    p.buffers = (int64_t)buffer_bytes[0] + (int64_t)buffer_bytes[1];
    if (plan) *plan = p;
    if (p.minimum > budget) {
        free(stream);
        return too_small(&p, budget_text, all_streamed);
    }
    int status = 0, ordinal = 0;
    for (int k = 0; k < BACKEND_UPLOAD_SLOTS && status == 0; k++) {
        s->buffer_bytes[k] = buffer_bytes[k];
        if (!buffer_bytes[k]) continue;
        s->buffer[k] = be->ops->alloc(be, buffer_bytes[k]);
        if (!s->buffer[k]) status = error_prefix("allocating a transformer block buffer");
    }
    for (int b = 0; b < s->blocks && status == 0; b++) {
        s->buffer_of[b] = stream[b] ? ordinal++ % BACKEND_UPLOAD_SLOTS : -1;
        if (stream[b]) place_fields(s, b, s->buffer[s->buffer_of[b]]);
        else status = make_resident(s, be, b);
    }
    s->streamed = count;
    free(stream);
    return status;
}

/* Starts copying block b into its buffer, after every op queued so far. */
static void start_copy(dit_weight_stream *s, backend *be, int b)
{
    int k = s->buffer_of[b];
    be->ops->upload_async(be, k, s->buffer[k], s->host[b], s->image_bytes[b]);
    s->holds[k] = b;
    s->uploads++;
    s->uploaded_bytes += (int64_t)s->image_bytes[b];
}

/* The streamed block after b in block order, wrapping round to the next forward's first; -1 when none. */
static int next_streamed(const dit_weight_stream *s, int b)
{
    for (int i = 1; i <= s->blocks; i++) {
        int n = (b + i) % s->blocks;
        if (s->buffer_of[n] >= 0) return n;
    }
    return -1;
}

void dit_weight_stream_acquire(dit_weight_stream *s, backend *be, int index)
{
    if (!s || s->streamed == 0) return;
    int k = s->buffer_of[index];
    if (k >= 0) {
        if (s->holds[k] != index) start_copy(s, be, index); /* not prefetched: copied now, in stream order */
        be->ops->upload_wait(be, k);
    }
    /* The next streamed block into its own buffer, unless that is the one block index reads. */
    int next = next_streamed(s, index);
    if (next < 0 || next == index) return;
    int kn = s->buffer_of[next];
    if ((k >= 0 && kn == k) || s->holds[kn] == next) return;
    start_copy(s, be, next);
}

void dit_weight_stream_free(dit_weight_stream *s, backend *be)
{
    if (s->blocks > 0 && s->image_bytes) be->ops->synchronize(be); /* no copy in flight from a host image */
    for (int b = 0; b < s->blocks; b++) {
        if (s->host && s->host[b]) be->ops->host_free(be, s->host[b]);
        if (s->resident && s->resident[b]) be->ops->free(be, s->resident[b]);
        if (s->fields) free(s->fields[b]);
        if (s->offsets) free(s->offsets[b]);
    }
    for (int k = 0; k < BACKEND_UPLOAD_SLOTS; k++)
        if (s->buffer[k]) be->ops->free(be, s->buffer[k]);
    free(s->image_bytes);
    free(s->host);
    free(s->resident);
    free(s->buffer_of);
    free(s->fields);
    free(s->offsets);
    free(s->field_count);
    memset(s, 0, sizeof *s);
}
