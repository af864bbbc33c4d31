/* The bytes a backend holds on its device, counted by the backend itself:
 * each live allocation's size by its pointer (device frees, like cudaFree,
 * are handed only the pointer), the sum in use now and the most in use at
 * once since the counter was made (or its peak reset). Behind
 * backend_ops.memory (backend.h), which moedit serve's /metrics reads, and
 * the counting view of backend_memory.h. Thread-safe (a mutex): allocations
 * are rare next to the ops between them. */
#ifndef MOEDIT_BACKEND_ALLOC_COUNT_H
#define MOEDIT_BACKEND_ALLOC_COUNT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct alloc_count {
    pthread_mutex_t lock;
    struct alloc_slot *slots; /* open addressing by pointer, linear probing; NULL ptr: empty */
    size_t capacity, live;
    int64_t in_use, peak;
} alloc_count;

void alloc_count_init(alloc_count *c);
void alloc_count_free(alloc_count *c);
/* Records ptr's bytes. Out of host memory for the table: the bytes are
 * still counted in use (and never taken off again), so the figures err
 * high rather than drift low. */
void alloc_count_add(alloc_count *c, const void *ptr, size_t bytes);
/* Takes ptr's bytes off; an unknown or NULL pointer changes nothing. */
void alloc_count_remove(alloc_count *c, const void *ptr);
void alloc_count_read(alloc_count *c, int64_t *in_use, int64_t *peak);
void alloc_count_reset_peak(alloc_count *c); /* peak = bytes in use now */

#endif
