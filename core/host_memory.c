/* Available host memory; see host_memory.h. */
#include "core/host_memory.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

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

int host_memory_check(int64_t bytes, const char *what)
{
    int64_t available = host_memory_available();
    if (available < 0 || bytes <= available) return 0;
    return error_set("%s: %.1f GiB of memory needed, %.1f GiB available on this machine", what,
                     (double)bytes / (1 << 30), (double)available / (1 << 30));
}
