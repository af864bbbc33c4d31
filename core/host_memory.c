/* Available host memory; see host_memory.h. */
#include "core/host_memory.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

int64_t host_memory_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long kib, available = -1, swap = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %lld kB", &kib) == 1) available = kib;
        if (sscanf(line, "SwapFree: %lld kB", &kib) == 1) swap = kib;
    }
    fclose(f);
    return available < 0 ? -1 : (int64_t)(available + swap) * 1024;
}

static int sharers = 1;

void host_memory_set_sharers(int processes) { sharers = processes > 1 ? processes : 1; }

int host_memory_check(int64_t bytes, const char *what)
{
    int64_t available = host_memory_available(), total = bytes * sharers;
    if (available < 0 || total <= available) return 0;
    const double gib = (double)(1 << 30);
    if (sharers == 1)
        return error_set("%s: %.1f GiB of memory needed, %.1f GiB available on this machine", what, bytes / gib,
                         available / gib);
    return error_set("%s: %.1f GiB of memory needed (%.1f GiB for each of the %d ranks on this machine), %.1f GiB "
                     "available on this machine",
                     what, total / gib, bytes / gib, sharers, available / gib);
}

int64_t host_memory_address_space_left(int64_t *limit)
{
    struct rlimit r;
    *limit = -1;
    if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return -1;
    *limit = (int64_t)r.rlim_cur;
    long long mapped_kib = 0, kib;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lld kB", &kib) == 1) mapped_kib = kib;
    if (f) fclose(f);
    int64_t left = *limit - (int64_t)mapped_kib * 1024;
    return left > 0 ? left : 0;
}
