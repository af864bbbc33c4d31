/* Scratch arena for activations, on a backend's device.
 *
 * A pipeline run owns one arena and resets it at every denoising step, so the
 * step loop does not allocate. Allocation is a pointer bump. The arena is
 * sized by its first use: while a step needs more than the current block, it
 * chains extra blocks; the next reset frees them and replaces everything by one
 * block of the peak size seen, after which steps never allocate again.
 * arena_mark/arena_release free everything allocated after a mark (per block
 * scratch). */
#ifndef MOEDIT_BACKEND_ARENA_H
#define MOEDIT_BACKEND_ARENA_H

#include "backend/backend.h"

#define ARENA_MAX_BLOCKS 64

typedef struct arena {
    backend *be;
    char *blocks[ARENA_MAX_BLOCKS];
    size_t block_size[ARENA_MAX_BLOCKS];
    int block_count;
    size_t used;     /* bytes used in the last block */
    size_t in_use;   /* bytes handed out, over all blocks */
    size_t peak;     /* most bytes in use at once since creation */
    size_t block_allocations; /* device allocations made so far (tests watch this) */
    const char *name; /* the stage whose activations these are, for errors ("the VAE decoder's activations"); NULL: "scratch arena" */
} arena;

typedef struct arena_mark_t {
    int block_count;
    size_t used;
    size_t in_use;
} arena_mark_t;

void arena_init(arena *a, backend *be);
void arena_free(arena *a);

/* 256-byte aligned; NULL with the error set when the device is out of memory. */
void *arena_alloc(arena *a, size_t bytes);

/* A [rows, cols] tensor of the backend's dtype; data NULL on failure. */
tensor arena_tensor_2d(arena *a, int64_t rows, int64_t cols);
tensor arena_tensor_typed(arena *a, tensor_dtype dtype, int64_t rows, int64_t cols);

arena_mark_t arena_mark(const arena *a);
void arena_release(arena *a, arena_mark_t mark);

/* Forget all allocations; consolidates the blocks into one of peak size. */
int arena_reset(arena *a);

#endif
