/* The transformer's blocks under a device memory budget (--max-gpu-memory,
 * docs/memory-budget.md).
 *
 * Loading packs each block's weights, as the backend holds them (dtype,
 * shard, FP8 codes and scales), into one host image of
 *   image_bytes(b) = sum over the block's buffers of align256(bytes)
 * and frees the device copy, so the device never holds more than one block
 * beyond the resident weights while loading. The plan then keeps resident
 * as many blocks as the budget allows and streams the rest through a double
 * buffer: with R the device bytes in use (every weight but the blocks'), A
 * the activations' estimate and S the streamed blocks,
 *   R + A + sum_{b not in S} image_bytes(b) + buffer(0) + buffer(1) <= budget
 * where the k-th streamed block (in block order) uses buffer k % 2 and
 * buffer(j) is the largest image of its blocks. S is the fewest largest
 * blocks that satisfy it; with every block streamed the left side is the
 * least any run of this model needs, which the error names.
 *
 * At run time dit_weight_stream_acquire(b) before block b makes its weights
 * ready (copied in, if its buffer does not hold them already) and starts the
 * copy of the next streamed block into the other buffer (backend
 * upload_async), so that copy overlaps block b's compute. Whatever runs or
 * is skipped (a step cache), a buffer is refilled only after every op queued
 * before the refill, so results are bit-identical to the resident run. */
#ifndef MOEDIT_DIT_WEIGHT_STREAM_H
#define MOEDIT_DIT_WEIGHT_STREAM_H

#include "backend/backend.h"
#include "io/weights.h"

#include <stdint.h>

struct dit_block;

typedef struct dit_weight_stream {
    int blocks;
    size_t *image_bytes; /* [blocks] */
    void **host;         /* [blocks] the packed image in host memory (backend host_alloc); NULL once resident */
    void **resident;     /* [blocks] the device copy of a resident block, else NULL */
    int *buffer_of;      /* [blocks] the buffer a streamed block runs from, -1 when resident */
    /* Where each tensor pointer of a block points into its image: fields[b][i] is the
     * address of a `data` or `scale` member of one of block b's tensors, offsets[b][i]
     * its byte offset in the image. */
    void ***fields;
    size_t **offsets;
    int *field_count;
    void *buffer[BACKEND_UPLOAD_SLOTS];
    size_t buffer_bytes[BACKEND_UPLOAD_SLOTS];
    int holds[BACKEND_UPLOAD_SLOTS]; /* the block whose weights a buffer holds or is being filled with; -1 none */
    int streamed;                    /* blocks streamed */
    int64_t uploads, uploaded_bytes; /* copies made at run time */
} dit_weight_stream;

/* What a plan came to, in bytes. */
typedef struct dit_stream_plan {
    int64_t budget, in_use, activations;
    int64_t resident_blocks, buffers; /* resident blocks' images; the two buffers */
    int64_t minimum;                  /* the least with every block streamed */
    int streamed, blocks;
} dit_stream_plan;

int dit_weight_stream_init(dit_weight_stream *s, int blocks);

/* After block `index` was loaded through wl (its device buffers the loader's
 * allocations from first_allocation on): packs them into a host image,
 * frees them and forgets them in wl; the block's tensor pointers are NULL
 * until the plan places the block. */
int dit_weight_stream_pack(dit_weight_stream *s, weight_loader *wl, struct dit_block *block, int index,
                           int first_allocation);

/* Places every block (resident blocks uploaded now, buffers allocated) for
 * `budget` bytes with `in_use` bytes already on the device and about
 * `activations` more to come. stream_all: stream every block even where
 * more would fit (tests). Fails when even streaming every block cannot fit, with
 * "--max-gpu-memory TEXT: ... needs at least N ..." (budget_text: the
 * option as given). plan may be NULL. */
int dit_weight_stream_place(dit_weight_stream *s, backend *be, int64_t budget, const char *budget_text,
                            int64_t in_use, int64_t activations, int stream_all, dit_stream_plan *plan);

/* Before block `index` runs: its weights ready for every op queued after
 * this call; the next streamed block's copy started. No-op for a resident
 * block but the prefetch. */
void dit_weight_stream_acquire(dit_weight_stream *s, backend *be, int index);

void dit_weight_stream_free(dit_weight_stream *s, backend *be);

/* "1.5 GiB", "512.0 MiB", "96.0 KiB", "100 bytes" into buf; returns buf. */
const char *dit_bytes_text(int64_t bytes, char *buf, size_t size);

#endif
