/* Bump allocator over backend memory; see arena.h. */
#include "backend/arena.h"

#include "core/error.h"

#include <string.h>

#define ARENA_ALIGN 256
#define ARENA_MIN_BLOCK ((size_t)1 << 20)

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

void arena_init(arena *a, backend *be)
{
    memset(a, 0, sizeof *a);
    a->be = be;
}

static void free_blocks(arena *a)
{
    for (int i = 0; i < a->block_count; i++) a->be->ops->free(a->be, a->blocks[i]);
    a->block_count = 0;
    a->used = 0;
    a->in_use = 0;
}

void arena_free(arena *a)
{
    free_blocks(a);
    a->peak = 0;
}

static int add_block(arena *a, size_t size)
{
    const char *name = a->name ? a->name : "scratch arena";
    if (a->block_count == ARENA_MAX_BLOCKS) return error_set("%s: more than %d blocks", name, ARENA_MAX_BLOCKS);
    char *block = a->be->ops->alloc(a->be, size);
    if (!block) return error_prefix("%s", name); /* the backend said how much and where */
    a->blocks[a->block_count] = block;
    a->block_size[a->block_count] = size;
    a->block_count++;
    a->used = 0;
    a->block_allocations++;
    return 0;
}

void *arena_alloc(arena *a, size_t bytes)
{
    bytes = align_up(bytes ? bytes : 1);
    int last = a->block_count - 1;
    if (last < 0 || a->used + bytes > a->block_size[last]) {
        size_t size = bytes > ARENA_MIN_BLOCK ? bytes : ARENA_MIN_BLOCK;
        if (last >= 0 && size < 2 * a->block_size[last]) size = 2 * a->block_size[last]; /* few blocks */
        if (add_block(a, size) != 0) return NULL;
        last = a->block_count - 1;
    }
    void *ptr = a->blocks[last] + a->used;
    a->used += bytes;
    a->in_use += bytes;
    if (a->in_use > a->peak) a->peak = a->in_use;
    return ptr;
}

tensor arena_tensor_typed(arena *a, tensor_dtype dtype, int64_t rows, int64_t cols)
{
    tensor t = tensor_make_2d(dtype, a->be->device, rows, cols);
    t.data = arena_alloc(a, tensor_nbytes(&t));
    return t;
}

tensor arena_tensor_2d(arena *a, int64_t rows, int64_t cols) { return arena_tensor_typed(a, a->be->dtype, rows, cols); }

arena_mark_t arena_mark(const arena *a)
{
    arena_mark_t mark = {a->block_count, a->used, a->in_use};
    return mark;
}

void arena_release(arena *a, arena_mark_t mark)
{
    /* Everything allocated after the mark is dead. Blocks chained since the
     * mark stay until the next reset, but the newest one is reusable from its
     * start; in_use is the logical count a single block would need. */
    a->used = a->block_count == mark.block_count ? mark.used : 0;
    a->in_use = mark.in_use;
}

int arena_reset(arena *a)
{
    if (a->block_count <= 1) {
        a->used = 0;
        a->in_use = 0;
        return 0;
    }
    free_blocks(a);
    return add_block(a, align_up(a->peak));
}
