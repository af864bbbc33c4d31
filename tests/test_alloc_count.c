/* backend/alloc_count.c against a plain list: random adds and removes
 * (pointers that collide in the table, removals out of order, unknown
 * pointers) keep in_use and peak equal to the list's sums; and the CPU
 * backend's memory op reports its allocations. */
#include "backend/alloc_count.h"
#include "backend/backend.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

#define LIVE_MAX 4096

int main(void)
{
    alloc_count c;
    alloc_count_init(&c);
    uintptr_t live[LIVE_MAX];
    size_t bytes[LIVE_MAX];
    int count = 0;
    int64_t in_use = 0, peak = 0;
    uint64_t state = 12345;
    for (int step = 0; step < 200000; step++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = state >> 33;
        if (count < LIVE_MAX && (count == 0 || r % 3 != 0)) {
            /* 256-aligned pointers in a narrow range: many share a table home */
            uintptr_t ptr = 0x10000 + 256 * (uintptr_t)(step + 1);
            live[count] = ptr;
            bytes[count] = (size_t)(r % 5000) + 1;
            alloc_count_add(&c, (const void *)ptr, bytes[count]);
            in_use += (int64_t)bytes[count++];
            if (in_use > peak) peak = in_use;
        } else {
            int i = (int)(r % (uint64_t)count);
            alloc_count_remove(&c, (const void *)live[i]);
            in_use -= (int64_t)bytes[i];
            live[i] = live[--count];
            bytes[i] = bytes[count];
        }
        if (r % 97 == 0) alloc_count_remove(&c, (const void *)(uintptr_t)8); /* never added: no change */
        if (step % 1000 == 0 || step == 199999) {
            int64_t got_in_use, got_peak;
            alloc_count_read(&c, &got_in_use, &got_peak);
            CHECK_MSG(got_in_use == in_use && got_peak == peak, "step %d: %lld/%lld, want %lld/%lld", step,
                      (long long)got_in_use, (long long)got_peak, (long long)in_use, (long long)peak);
        }
    }
    while (count) alloc_count_remove(&c, (const void *)live[--count]);
    int64_t got_in_use, got_peak;
    alloc_count_read(&c, &got_in_use, &got_peak);
    CHECK(got_in_use == 0 && got_peak == peak && c.live == 0);
    alloc_count_free(&c);

    backend *be = backend_cpu_create();
    CHECK(be != NULL);
    if (be) {
        backend_memory_use use;
        void *a = be->ops->alloc(be, 1000), *b = be->ops->alloc(be, 3000);
        be->ops->free(be, a);
        be->ops->memory(be, &use);
        CHECK(use.in_use == 3000 && use.peak == 4000 && use.total > use.peak && strcmp(use.device, "cpu") == 0);
        be->ops->free(be, b);
        be->ops->memory(be, &use);
        CHECK(use.in_use == 0 && use.peak == 4000);
        backend_destroy(be);
    }
    return test_finish("alloc_count");
}
