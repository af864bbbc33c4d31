/* Live allocations by pointer; see alloc_count.h. A table of at least twice
 * the live count, so probes stay short; a removal shifts the run after the
 * freed slot back (no tombstones). */
#include "backend/alloc_count.h"

#include <stdlib.h>

typedef struct alloc_slot {
    const void *ptr;
    size_t bytes;
} alloc_slot;

static size_t slot_of(const void *ptr, size_t capacity)
{
    uint64_t h = (uint64_t)(uintptr_t)ptr * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: aligned pointers spread */
    return (size_t)(h >> 32) & (capacity - 1);
}

void alloc_count_init(alloc_count *c)
{
    c->slots = NULL;
    c->capacity = c->live = 0;
    c->in_use = c->peak = 0;
    pthread_mutex_init(&c->lock, NULL);
}

void alloc_count_free(alloc_count *c)
{
    free(c->slots);
    c->slots = NULL;
    pthread_mutex_destroy(&c->lock);
}

static void place(alloc_slot *slots, size_t capacity, const void *ptr, size_t bytes)
{
    size_t i = slot_of(ptr, capacity);
    while (slots[i].ptr) i = (i + 1) & (capacity - 1);
    slots[i] = (alloc_slot){ptr, bytes};
}

/* Room for one more at half load at most; 0 when out of host memory. */
static int make_room(alloc_count *c)
{
    if (2 * (c->live + 1) <= c->capacity) return 1;
    size_t capacity = c->capacity ? 2 * c->capacity : 256;
    alloc_slot *slots = calloc(capacity, sizeof *slots);
    if (!slots) return 0;
    for (size_t i = 0; i < c->capacity; i++)
        if (c->slots[i].ptr) place(slots, capacity, c->slots[i].ptr, c->slots[i].bytes);
    free(c->slots);
    c->slots = slots;
    c->capacity = capacity;
    return 1;
}

void alloc_count_add(alloc_count *c, const void *ptr, size_t bytes)
{
    if (!ptr) return;
    pthread_mutex_lock(&c->lock);
    if (make_room(c)) {
        place(c->slots, c->capacity, ptr, bytes);
        c->live++;
    }
    c->in_use += (int64_t)bytes;
    if (c->in_use > c->peak) c->peak = c->in_use;
    pthread_mutex_unlock(&c->lock);
}

void alloc_count_remove(alloc_count *c, const void *ptr)
{
    if (!ptr) return;
    pthread_mutex_lock(&c->lock);
    size_t mask = c->capacity - 1, i = c->capacity ? slot_of(ptr, c->capacity) : 0;
    while (c->capacity && c->slots[i].ptr && c->slots[i].ptr != ptr) i = (i + 1) & mask;
    if (c->capacity && c->slots[i].ptr) {
        c->in_use -= (int64_t)c->slots[i].bytes;
        c->live--;
        /* Backward shift: an entry after the hole whose probe path passes
         * the hole (its home lies at or before it) moves into it. */
        size_t hole = i;
        c->slots[hole].ptr = NULL;
        for (size_t j = (hole + 1) & mask; c->slots[j].ptr; j = (j + 1) & mask) {
            size_t home = slot_of(c->slots[j].ptr, c->capacity);
            if (((j - home) & mask) >= ((j - hole) & mask)) {
                c->slots[hole] = c->slots[j];
                c->slots[j].ptr = NULL;
                hole = j;
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
}

void alloc_count_read(alloc_count *c, int64_t *in_use, int64_t *peak)
{
    pthread_mutex_lock(&c->lock);
    *in_use = c->in_use;
    *peak = c->peak;
    pthread_mutex_unlock(&c->lock);
}

void alloc_count_reset_peak(alloc_count *c)
{
    pthread_mutex_lock(&c->lock);
    c->peak = c->in_use;
    pthread_mutex_unlock(&c->lock);
}
